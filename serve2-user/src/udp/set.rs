//! A checked `udp` block: what a new flow is detected as and where it goes.

use std::sync::Arc;
use std::time::Duration;

use super::kinds::{DatagramDetector, DatagramVerdict};

/// Where a flow's datagrams go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpRoute {
    /// `host:port` of the backend (resolved when a flow starts).
    pub target: String,
    /// Prefix every datagram sent to the backend with a PROXY v2 header
    /// (`"proxyProtocol": "v2"`, DGRAM, the client's and the dialled address).
    pub proxy_header: bool,
}

/// One entry of `udp.protocols`.
#[derive(Debug, Clone)]
pub struct UdpProtocol {
    /// Its kind (`quic`, `wireguard`, …), for logs, status and metrics.
    pub name: String,
    /// Recognises the kind's first datagrams.
    pub detector: Arc<dyn DatagramDetector>,
    /// Where its flows go.
    pub route: UdpRoute,
}

/// How long flows live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowTimeouts {
    /// How long a new flow's datagrams are buffered undecided
    /// (`detectTimeout` of the policy or top level).
    pub detect: Duration,
    /// A flow the backend never answered is removed after this long without
    /// traffic (`idleTimeout`).
    pub idle: Duration,
    /// A flow that has seen replies is removed after this long without
    /// traffic (`establishedTimeout`).
    pub established: Duration,
}

/// The defaults of `idleTimeout` and `establishedTimeout`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// See [`DEFAULT_IDLE_TIMEOUT`].
pub const DEFAULT_ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(120);

/// Bounds on the flow table (`maxFlows`, `maxFlowsPerSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowLimits {
    /// Most flows at once, all policies together (default 65536).
    pub max_flows: usize,
    /// Most flows at once from one source prefix: a /24 for IPv4, a /64
    /// for IPv6 (default 1024).
    pub max_flows_per_source: usize,
}

impl Default for FlowLimits {
    fn default() -> Self {
        Self { max_flows: 65_536, max_flows_per_source: 1024 }
    }
}

/// A checked `udp` block (top level or one policy's).
#[derive(Debug, Clone)]
pub struct UdpSet {
    /// The detected protocols, in order.
    pub protocols: Vec<UdpProtocol>,
    /// The `"default": true` entry: undetected flows go to its route.
    pub fallback: Option<UdpProtocol>,
    /// `forward`: no detection, every flow to this route.
    pub forward: Option<UdpRoute>,
    /// Flow lifetimes.
    pub timeouts: FlowTimeouts,
}

/// What the protocols of a set say about a new flow's datagrams so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Protocol `i` matched (the first in order that did, with every one
    /// before it ruled out).
    Protocol(usize),
    /// Nothing matched: the default route.
    Fallback,
    /// Nothing matched and there is no default: drop the flow.
    Undetected,
    /// Some protocol before any match is still undecided: buffer more.
    Pending,
}

impl UdpSet {
    /// Judges `datagrams` (a flow's first ones, in order). With `last`
    /// (the deadline passed, or the buffer is full) no more will come, so
    /// undecided protocols count as refusals.
    pub fn decide(&self, datagrams: &[&[u8]], last: bool) -> Decision {
        if self.forward.is_some() {
            return Decision::Fallback;
        }
        for (index, protocol) in self.protocols.iter().enumerate() {
            match protocol.detector.detect(datagrams) {
                DatagramVerdict::Match => return Decision::Protocol(index),
                DatagramVerdict::NoMatch => {}
                DatagramVerdict::NeedMore if last => {}
                DatagramVerdict::NeedMore => return Decision::Pending,
            }
        }
        if self.fallback.is_some() { Decision::Fallback } else { Decision::Undetected }
    }

    /// The route and name of a decision, `None` for `Undetected`/`Pending`.
    pub fn route_of(&self, decision: Decision) -> Option<(&str, &UdpRoute)> {
        match decision {
            Decision::Protocol(i) => self.protocols.get(i).map(|p| (p.name.as_str(), &p.route)),
            Decision::Fallback => match (&self.forward, &self.fallback) {
                (Some(forward), _) => Some(("forward", forward)),
                (None, Some(fallback)) => Some((fallback.name.as_str(), &fallback.route)),
                (None, None) => None,
            },
            Decision::Undetected | Decision::Pending => None,
        }
    }

    /// The protocol names, in order, for status.
    pub fn protocol_names(&self) -> Vec<String> {
        self.protocols.iter().map(|p| p.name.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(text: &str, datagrams: usize) -> UdpProtocol {
        let conf = serde_json::json!({"prefix": text, "datagrams": datagrams});
        let detector = super::super::kinds::udp_kind("prefix").unwrap().build(conf).unwrap();
        UdpProtocol { name: text.into(), detector, route: UdpRoute { target: "h:1".into(), proxy_header: false } }
    }

    fn set(protocols: Vec<UdpProtocol>, fallback: bool) -> UdpSet {
        let timeouts = FlowTimeouts {
            detect: Duration::from_secs(1),
            idle: DEFAULT_IDLE_TIMEOUT,
            established: DEFAULT_ESTABLISHED_TIMEOUT,
        };
        UdpSet { protocols, fallback: fallback.then(|| prefix("F", 1)), forward: None, timeouts }
    }

    #[test]
    fn the_first_match_in_order_wins_once_every_earlier_protocol_is_ruled_out() {
        let set = set(vec![prefix("AB", 2), prefix("A", 1)], false);
        // "AB" could still match: wait, even though "A" already does.
        assert_eq!(set.decide(&[b"AB1"], false), Decision::Pending);
        assert_eq!(set.decide(&[b"AB1", b"AB2"], false), Decision::Protocol(0));
        assert_eq!(set.decide(&[b"AB1", b"A2"], false), Decision::Protocol(1));
        // No more datagrams will come: the undecided one is out.
        assert_eq!(set.decide(&[b"AB1"], true), Decision::Protocol(1));
        assert_eq!(set.decide(&[b"x"], false), Decision::Undetected);
    }

    #[test]
    fn without_a_match_the_default_takes_the_flow() {
        let set = set(vec![prefix("A", 1)], true);
        assert_eq!(set.decide(&[b"x"], false), Decision::Fallback);
        assert_eq!(set.route_of(Decision::Fallback).map(|(name, _)| name), Some("F"));
        assert_eq!(set.route_of(Decision::Undetected), None);
    }
}
