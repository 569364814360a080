//! `udp` blocks (top level and per policy), `udpAddress`, `maxFlows` and
//! `maxFlowsPerSource`: the configuration of UDP flows.

use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::JsonPath;
use super::protocols::strip_position;
use super::raw::RawConfig;
use super::steer::{Policy, RawSteer, SteerConfig};
use super::{Checker, ListenAddress, check_target, parse_listen_address};
use crate::ports::PortSet;
use crate::udp::kinds::{udp_kind, udp_kinds};
use crate::udp::set::{
    DEFAULT_ESTABLISHED_TIMEOUT, DEFAULT_IDLE_TIMEOUT, FlowLimits, FlowTimeouts, UdpProtocol, UdpRoute, UdpSet,
};

/// A `udp` block as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawUdp<'a> {
    /// The UDP protocols, tried in order on a new flow's first datagrams.
    #[serde(default, borrow)]
    pub protocols: Vec<RawUdpProtocol<'a>>,
    /// Skip detection: every flow goes to this route.
    pub forward: Option<UdpRouteConf>,
    /// Seconds without traffic after which a flow the backend never
    /// answered is removed (default 30).
    pub idle_timeout: Option<f64>,
    /// Seconds without traffic after which a flow that has seen replies is
    /// removed (default 120).
    pub established_timeout: Option<f64>,
}

/// One entry of `udp.protocols`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUdpProtocol<'a> {
    /// The UDP kind.
    pub kind: String,
    /// Undetected flows go to this entry's target.
    #[serde(default)]
    pub default: bool,
    /// The route keys and the kind's own keys.
    #[serde(borrow)]
    pub conf: Option<&'a RawValue>,
}

/// A UDP route as written: `udp.forward`, and the route keys of every
/// `udp.protocols` entry's `conf`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UdpRouteConf {
    /// `host:port` to send the flow's datagrams to.
    pub target: String,
    /// Prefix every datagram with a PROXY header: `"v2"` (DGRAM).
    #[schemars(extend("enum" = ["v2", null]))]
    pub proxy_protocol: Option<String>,
}

/// The keys of [`UdpRouteConf`], taken out of a UDP kind's `conf` before the
/// rest goes to its detector.
pub const UDP_ROUTE_KEYS: [&str; 2] = ["target", "proxyProtocol"];

/// The checked UDP side of a configuration.
#[derive(Debug, Clone, Default)]
pub struct UdpConfig {
    /// `udpAddress`: the plain UDP socket, if any.
    pub listen: Option<ListenAddress>,
    /// `steer.udpPorts`, when steering is configured.
    pub steer: Option<UdpSteer>,
    /// The top-level `udp` block: for `udpAddress` and for UDP-steered
    /// ports no policy's `udp` block owns.
    pub top: Option<UdpSet>,
    /// `maxFlows` and `maxFlowsPerSource`.
    pub limits: FlowLimits,
}

impl UdpConfig {
    /// Whether the daemon needs a UDP socket at all.
    pub fn enabled(&self) -> bool {
        self.listen.is_some() || self.steered_ports().is_some_and(|ports| !ports.is_empty())
    }

    /// The UDP ports steering should send to serve2, before skipping ports
    /// in use (`None` without `steer`).
    pub fn steered_ports(&self) -> Option<PortSet> {
        self.steer.as_ref().map(UdpSteer::configured)
    }
}

/// Checked `steer.udpPorts`, with what of `steer` applies to UDP too
/// (`exclude`, `addresses`).
pub type UdpSteer = SteerConfig;

impl Checker<'_> {
    /// `steer.udpPorts` (with `steer.exclude` and `steer.addresses`, already
    /// checked in `steer`).
    pub(super) fn udp_steer(&mut self, raw: &RawSteer, steer: &SteerConfig) -> UdpSteer {
        let (listed, ranged) = self.port_list(&JsonPath::default().key("steer").key("udpPorts"), &raw.udp_ports);
        UdpSteer { listed, ranged, exclude: steer.exclude.clone(), scope: steer.scope.clone(), ..UdpSteer::default() }
    }

    /// The UDP side of the configuration: `udpAddress`, the top-level `udp`
    /// block, the flow limits, and whether every UDP port has a block.
    pub(super) fn udp_config(
        &mut self,
        raw: &RawConfig<'_>,
        steer: Option<UdpSteer>,
        policies: &[Policy],
        detect_timeout: Duration,
    ) -> UdpConfig {
        let root = JsonPath::default();
        let listen = raw.udp_address.as_deref().and_then(|address| {
            parse_listen_address(address).map_err(|message| self.problem(root.key("udpAddress"), message)).ok()
        });
        let top = raw.udp.as_ref().and_then(|udp| self.udp_set(&root.key("udp"), udp, detect_timeout));
        let defaults = FlowLimits::default();
        let limits = FlowLimits {
            max_flows: self.flow_count(&root.key("maxFlows"), raw.max_flows, defaults.max_flows),
            max_flows_per_source: self.flow_count(
                &root.key("maxFlowsPerSource"),
                raw.max_flows_per_source,
                defaults.max_flows_per_source,
            ),
        };
        let udp_steered = steer.as_ref().map(UdpSteer::configured).unwrap_or_default();
        if raw.udp.is_some() && raw.udp_address.is_none() && udp_steered.is_empty() {
            let message = "a `udp` block needs a UDP socket: add udpAddress or steer.udpPorts";
            self.problem(root.key("udp"), message.into());
        }
        if raw.udp.is_none() {
            if let Some(address) = &listen
                && policies.iter().all(|p| p.udp.is_none() || !p.ports.contains(address.socket_addr().port()))
            {
                let message = "udpAddress needs a top-level `udp` block (its protocols or forward)";
                self.problem(root.key("udpAddress"), message.into());
            }
            let owned =
                policies.iter().filter(|p| p.udp.is_some()).fold(PortSet::new(), |owned, p| owned.union(&p.ports));
            let orphans = udp_steered.difference(&owned);
            if !orphans.is_empty() {
                let message = format!(
                    "ports {orphans} are steered for UDP but no `udp` block serves them: add a top-level `udp` \
                     or a policy with one"
                );
                self.problem(root.key("steer").key("udpPorts"), message);
            }
        }
        UdpConfig { listen, steer, top, limits }
    }

    /// A flow limit: at least 1.
    fn flow_count(&mut self, at: &JsonPath, value: Option<u64>, default: usize) -> usize {
        match value {
            None => default,
            Some(0) => {
                self.problem(at.clone(), "expected a number of flows of at least 1".into());
                default
            }
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        }
    }

    /// Builds the `udp` block at `at`.
    pub(super) fn udp_set(&mut self, at: &JsonPath, raw: &RawUdp<'_>, detect: Duration) -> Option<UdpSet> {
        let timeouts = FlowTimeouts {
            detect,
            idle: self.seconds(&at.key("idleTimeout"), raw.idle_timeout, DEFAULT_IDLE_TIMEOUT),
            established: self.seconds(
                &at.key("establishedTimeout"),
                raw.established_timeout,
                DEFAULT_ESTABLISHED_TIMEOUT,
            ),
        };
        let list = at.key("protocols");
        if let Some(forward) = &raw.forward {
            if !raw.protocols.is_empty() {
                let message = "a `udp` block with `forward` detects nothing: remove `protocols` or `forward`";
                self.problem(at.key("forward"), message.into());
            }
            let forward = self.udp_route(&at.key("forward"), forward)?;
            return Some(UdpSet { protocols: Vec::new(), fallback: None, forward: Some(forward), timeouts });
        }
        if raw.protocols.is_empty() {
            self.problem(at.clone(), "expected `protocols` (at least one) or `forward`".into());
            return None;
        }
        let mut protocols = Vec::new();
        let mut fallback: Option<(usize, UdpProtocol)> = None;
        let mut complete = true;
        for (index, entry) in raw.protocols.iter().enumerate() {
            let Some(protocol) = self.udp_protocol(&list.index(index), entry) else {
                complete = false;
                continue;
            };
            match &fallback {
                _ if !entry.default => protocols.push(protocol),
                Some((first, _)) => {
                    let message = format!("only one UDP protocol may be the default; {list}[{first}] already is");
                    self.problem(list.index(index).key("default"), message);
                }
                None => fallback = Some((index, protocol)),
            }
        }
        complete.then(|| UdpSet { protocols, fallback: fallback.map(|(_, p)| p), forward: None, timeouts })
    }

    /// One `udp.protocols` entry: the route keys of `conf` make the route,
    /// the rest its kind's detector.
    fn udp_protocol(&mut self, at: &JsonPath, raw: &RawUdpProtocol<'_>) -> Option<UdpProtocol> {
        let Some(kind) = udp_kind(&raw.kind) else {
            let known: Vec<&str> = udp_kinds().map(|k| k.name).collect();
            let message = format!("unknown UDP kind `{}`; expected one of {}", raw.kind, known.join(", "));
            self.problem(at.key("kind"), message);
            return None;
        };
        let conf_at = at.key("conf");
        let mut keys: serde_json::Map<String, serde_json::Value> = self.conf(at, raw.conf)?;
        let route: serde_json::Map<String, serde_json::Value> =
            UDP_ROUTE_KEYS.iter().filter_map(|&k| keys.remove_entry(k)).collect();
        let route = match serde_path_to_error::deserialize::<_, UdpRouteConf>(serde_json::Value::Object(route)) {
            Ok(route) => self.udp_route(&conf_at, &route),
            Err(e) => {
                let message = strip_position(&e.inner().to_string());
                let path = conf_at.join_serde(e.path());
                self.problem(if path == conf_at { at.clone() } else { path }, format!("conf: {message}"));
                None
            }
        };
        let detector = kind
            .build(serde_json::Value::Object(keys))
            .map_err(|e| self.detector_problem(&conf_at, kind.name, &UDP_ROUTE_KEYS, e))
            .ok();
        Some(UdpProtocol { name: kind.name.to_owned(), detector: Arc::clone(&detector?), route: route? })
    }

    /// A UDP route (at `at`: the object holding its keys).
    fn udp_route(&mut self, at: &JsonPath, route: &UdpRouteConf) -> Option<UdpRoute> {
        let proxy_header = match route.proxy_protocol.as_deref() {
            None => false,
            Some("v2") => true,
            Some(other) => {
                let message = format!("`{other}`: expected \"v2\" (UDP carries only the binary header)");
                self.problem(at.key("proxyProtocol"), message);
                return None;
            }
        };
        match check_target(&route.target) {
            Ok(()) => {
                self.udp_targets.push((at.key("target"), route.target.clone()));
                Some(UdpRoute { target: route.target.clone(), proxy_header })
            }
            Err(message) => {
                self.problem(at.key("target"), message);
                None
            }
        }
    }

    /// The UDP side of [`Checker::no_loops`]: a local UDP target on a port
    /// only a range or `"all"` of `steer.udpPorts` names is left unsteered;
    /// one on a port listed one by one is refused.
    pub(super) fn udp_no_loops(&mut self, steer: &mut UdpSteer) {
        let targets = std::mem::take(&mut self.udp_targets);
        self.no_loops_in(targets, steer, "steer.udpPorts", "datagrams");
    }
}

#[cfg(test)]
mod tests;
