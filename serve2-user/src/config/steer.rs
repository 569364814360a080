//! `steer` and `policies`: which ports the kernel sends to serve2, and which
//! protocols each port gets.

use std::net::{IpAddr, ToSocketAddrs};

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::error::JsonPath;
use super::raw::{RawConfig, RawProtocol};
use super::{Checker, protocols};
use crate::ports::PortSet;
use crate::protocol::{DetectLimits, ProtocolSet};

/// `steer` as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSteer {
    /// TCP ports to steer: numbers, `"first-last"` ranges, or `"all"`.
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    /// UDP ports to steer, as `ports` (serve2 addition).
    #[serde(default, rename = "udpPorts")]
    pub udp_ports: Vec<PortSpec>,
    /// Ports never to steer (TCP and UDP).
    #[serde(default)]
    pub exclude: Vec<PortSpec>,
    /// Local prefixes (`"10.0.0.0/8"`, `"::1/128"`) steering is limited to;
    /// empty = every local address.
    #[serde(default)]
    pub addresses: Vec<String>,
}

/// One entry of `policies` as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPolicy<'a> {
    /// A name for logs and status (default `policy N`).
    pub name: Option<String>,
    /// The steered ports this policy owns.
    pub ports: Vec<PortSpec>,
    /// The protocols for these ports, as at the top level.
    #[serde(default, borrow)]
    pub protocols: Vec<RawProtocol<'a>>,
    /// Skip detection: dial this route at accept.
    pub forward: Option<super::raw::RouteConf>,
    /// Where a client that sent nothing by `detectTimeout` goes.
    pub on_timeout: Option<super::raw::RouteConf>,
    /// Source prefixes that must send a PROXY header first.
    pub accept_proxy: Option<Vec<String>>,
    /// Overrides the top-level `maxRead`.
    pub max_read: Option<u64>,
    /// Overrides the top-level `detectTimeout`.
    pub detect_timeout: Option<f64>,
    /// Overrides the top-level `stallTimeout`.
    pub stall_timeout: Option<f64>,
    /// Overrides the top-level `idleTimeout`.
    pub idle_timeout: Option<f64>,
    /// Most connections open at once on this policy's ports.
    pub max_connections: Option<u64>,
    /// Source prefixes accepted (the kernel refuses every other source).
    pub allow: Option<Vec<String>>,
    /// Source prefixes refused.
    pub deny: Option<Vec<String>>,
    /// New connections per second per source prefix.
    pub rate_limit: Option<super::sources::RawRateLimit>,
    /// `false`: never hand `forward`'s connections to its backend's own
    /// listener in the kernel (default true).
    pub kernel_direct: Option<bool>,
    /// UDP flows on these ports: protocols or forward, and timeouts.
    #[serde(borrow)]
    pub udp: Option<super::udp::RawUdp<'a>>,
}

/// A port list item: `22`, `"22"`, `"8000-8100"` or `"all"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    /// A number.
    Number(u64),
    /// A string, parsed when checked.
    Text(String),
}

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PortSpecVisitor;
        impl Visitor<'_> for PortSpecVisitor {
            type Value = PortSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a port number, a range \"first-last\", or \"all\"")
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<PortSpec, E> {
                Ok(PortSpec::Number(value))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<PortSpec, E> {
                Ok(PortSpec::Text(value.to_owned()))
            }
        }
        deserializer.deserialize_any(PortSpecVisitor)
    }
}

/// Checked `steer`: its TCP ports (`steer.ports`) or, as
/// [`super::UdpSteer`], its UDP ports (`steer.udpPorts`), with what applies
/// to both (`exclude`, `addresses`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SteerConfig {
    /// Ports listed one by one: taken even where another socket is bound.
    pub listed: PortSet,
    /// Ports from ranges and `"all"`: skipped where another socket is bound.
    pub ranged: PortSet,
    /// Ports never steered (`steer.exclude`, for UDP as for TCP).
    pub exclude: PortSet,
    /// Local prefixes steering is limited to (empty: all).
    pub scope: Vec<IpNet>,
    /// Ports of local backends (`target`s) that only a range or `"all"`
    /// named: left unsteered so serve2's own connections or datagrams to
    /// them do not come back to it.
    pub local_targets: PortSet,
}

impl SteerConfig {
    /// Every port the configuration steers, before skipping ports in use.
    pub fn configured(&self) -> PortSet {
        self.listed.union(&self.ranged).difference(&self.exclude).difference(&self.local_targets)
    }

    /// Whether a connection to `ip` on `port` would be steered (when `ip` is
    /// local).
    pub fn captures(&self, ip: IpAddr, port: u16) -> bool {
        let in_scope = self.scope.is_empty() || self.scope.iter().any(|net| net.contains(&ip.to_canonical()));
        in_scope && self.configured().contains(port)
    }
}

/// A checked policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Its name.
    pub name: String,
    /// Its ports.
    pub ports: PortSet,
    /// Its protocols.
    pub protocols: ProtocolSet,
    /// Its source rules, enforced by the kernel before accept.
    pub sources: super::SourceRules,
    /// Its `forward` route, if the kernel may take it to the backend directly.
    pub direct: Option<super::DirectCandidate>,
    /// Its `udp` block, if it has one.
    pub udp: Option<crate::udp::set::UdpSet>,
}

impl Policy {
    /// Whether TCP connections on its ports are its own: false for a
    /// policy with only a `udp` block (its TCP ports go to the top level).
    pub fn serves_tcp(&self) -> bool {
        let set = &self.protocols;
        self.udp.is_none() || !set.protocols().is_empty() || set.fallback().is_some() || set.forward_route().is_some()
    }
}

impl Checker<'_> {
    /// Parses a port list: (ports listed one by one, ports from ranges/all).
    pub(super) fn port_list(&mut self, at: &JsonPath, specs: &[PortSpec]) -> (PortSet, PortSet) {
        let mut listed = PortSet::new();
        let mut ranged = PortSet::new();
        for (i, spec) in specs.iter().enumerate() {
            match parse_port_spec(spec) {
                Ok(PortItem::One(port)) => listed.insert(port),
                Ok(PortItem::Range(first, last)) => ranged.insert_range(first, last),
                Err(message) => self.problem(at.index(i), message),
            }
        }
        (listed, ranged)
    }

    pub(super) fn steer(&mut self, raw: &RawSteer) -> SteerConfig {
        let root = JsonPath::default().key("steer");
        let (listed, ranged) = self.port_list(&root.key("ports"), &raw.ports);
        let (excluded_one, excluded_range) = self.port_list(&root.key("exclude"), &raw.exclude);
        let mut scope = Vec::new();
        for (i, text) in raw.addresses.iter().enumerate() {
            match text.parse::<IpNet>().or_else(|_| text.parse::<IpAddr>().map(IpNet::from)) {
                Ok(net) => scope.push(net.trunc()),
                Err(_) => self.problem(
                    root.key("addresses").index(i),
                    format!("`{text}`: expected an address or prefix like 10.0.0.0/8 or ::1/128"),
                ),
            }
        }
        if raw.ports.is_empty() && raw.udp_ports.is_empty() {
            let message = "at least one port, range or \"all\" is required (in steer.ports or steer.udpPorts)";
            self.problem(root.key("ports"), message.into());
        }
        SteerConfig {
            listed,
            ranged,
            exclude: excluded_one.union(&excluded_range),
            scope,
            local_targets: PortSet::new(),
        }
    }

    /// Checks and builds `policies` against the steered ports.
    pub(super) fn policies(
        &mut self,
        raw: &RawConfig<'_>,
        steer: Option<&SteerConfig>,
        udp_steer: Option<&super::udp::UdpSteer>,
        limits: DetectLimits,
        shared: protocols::Shared,
    ) -> Vec<Policy> {
        let root = JsonPath::default().key("policies");
        let mut owned = PortSet::new();
        let mut policies = Vec::new();
        for (i, policy) in raw.policies.iter().enumerate() {
            let at = root.index(i);
            let Some(steer) = steer else {
                self.problem(at, "policies apply to steered ports: add \"steer\"".into());
                continue;
            };
            let ports_at = at.key("ports");
            let (listed, ranged) = self.port_list(&ports_at, &policy.ports);
            let ports = listed.union(&ranged);
            let serves_tcp = !policy.protocols.is_empty() || policy.forward.is_some() || policy.udp.is_none();
            let udp_steered = udp_steer.map(super::udp::UdpSteer::configured).unwrap_or_default();
            let (steered, not_steered) = match (serves_tcp, policy.udp.is_some()) {
                (true, false) => (steer.configured(), "is not steered (add it to steer.ports)"),
                (false, _) => (udp_steered, "is not steered for UDP (add it to steer.udpPorts)"),
                (true, true) => {
                    (steer.configured().union(&udp_steered), "is not steered (add it to steer.ports or steer.udpPorts)")
                }
            };
            for (port_spec_index, spec) in policy.ports.iter().enumerate() {
                let Ok(item) = parse_port_spec(spec) else { continue };
                let spec_ports = item.ports();
                let spec_at = ports_at.index(port_spec_index);
                if let Some(port) = spec_ports.intersection(&owned).iter().next() {
                    self.problem(spec_at, format!("port {port} already belongs to an earlier policy"));
                } else if let Some(port) = spec_ports.intersection(&steer.exclude).iter().next() {
                    self.problem(spec_at, format!("port {port} is excluded from steering (steer.exclude)"));
                } else if let Some(port) = spec_ports.difference(&steered).iter().next() {
                    self.problem(spec_at, format!("port {port} {not_steered}"));
                }
            }
            owned = owned.union(&ports);
            let limits = DetectLimits {
                max_read: policy.max_read.map_or(limits.max_read, |n| usize::try_from(n).unwrap_or(usize::MAX).max(1)),
                timeout: self.seconds(&at.key("detectTimeout"), policy.detect_timeout, limits.timeout),
                ..limits
            };
            let routes = super::routes::RawRoutes {
                forward: policy.forward.as_ref(),
                on_timeout: policy.on_timeout.as_ref(),
                accept_proxy: policy.accept_proxy.as_deref(),
            };
            let relay_limits = self.relay_limits(&at, policy.stall_timeout, policy.idle_timeout, shared.relay_limits);
            let shared = protocols::Shared { relay_limits, ..shared };
            let max_connections = self.count(&at.key("maxConnections"), policy.max_connections);
            let udp = policy.udp.as_ref().map(|udp| self.udp_set(&at.key("udp"), udp, limits.timeout));
            let protocols = self
                .routed_set(&at, &policy.protocols, &routes, limits, shared, !serves_tcp)
                .map(|set| set.with_max_connections(max_connections));
            let name = policy.name.clone().unwrap_or_else(|| format!("policy {i}"));
            let raw_sources = super::sources::RawSources {
                allow: policy.allow.as_deref(),
                deny: policy.deny.as_deref(),
                rate_limit: policy.rate_limit.as_ref(),
            };
            let sources = self.sources(&at, &raw_sources, true);
            let direct = super::sources::direct_candidate(
                policy.forward.as_ref(),
                policy.accept_proxy.as_deref(),
                policy.kernel_direct,
            );
            match (protocols, udp) {
                (Some(protocols), None) => policies.push(Policy { name, ports, protocols, sources, direct, udp: None }),
                (Some(protocols), Some(Some(udp))) => {
                    policies.push(Policy { name, ports, protocols, sources, direct, udp: Some(udp) })
                }
                _ => {}
            }
        }
        policies
    }

    /// Leaves the ports of local targets unsteered when only a range or
    /// `"all"` names them, and refuses targets on ports listed one by one:
    /// either would be steered back into serve2.
    pub(super) fn no_loops(&mut self, steer: &mut SteerConfig) {
        let targets = std::mem::take(&mut self.targets);
        self.no_loops_in(targets, steer, "steer.ports", "connections");
    }

    /// [`Checker::no_loops`] for `targets` against `steer`'s ports, which
    /// the configuration names `field`; `what` travels to them.
    pub(super) fn no_loops_in(
        &mut self,
        targets: Vec<(JsonPath, String)>,
        steer: &mut SteerConfig,
        field: &str,
        what: &str,
    ) {
        let local = local_addresses();
        for (at, target) in targets {
            let Ok(addrs) = target.to_socket_addrs() else {
                continue; // Not resolvable now; cannot be judged.
            };
            let looping = addrs.into_iter().find(|a| {
                (a.ip().is_loopback() || local.contains(&a.ip().to_canonical())) && steer.captures(a.ip(), a.port())
            });
            if let Some(addr) = looping {
                let port = addr.port();
                if !steer.listed.contains(port) {
                    steer.local_targets.insert(port);
                    continue;
                }
                let message = format!(
                    "`{target}` is a local address on port {port}, which {field} lists: {what} to it would \
                     come back to serve2; remove {port} from {field} or add it to steer.exclude"
                );
                self.problem(at, message);
            }
        }
    }
}

enum PortItem {
    One(u16),
    Range(u16, u16),
}

impl PortItem {
    fn ports(&self) -> PortSet {
        let mut set = PortSet::new();
        match *self {
            PortItem::One(port) => set.insert(port),
            PortItem::Range(first, last) => set.insert_range(first, last),
        }
        set
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("`{text}` is not a port from 1 to 65535")),
        Ok(port) => Ok(port),
    }
}

fn parse_port_spec(spec: &PortSpec) -> Result<PortItem, String> {
    match spec {
        PortSpec::Number(n) => u16::try_from(*n)
            .ok()
            .filter(|&p| p > 0)
            .map(PortItem::One)
            .ok_or_else(|| format!("{n} is not a port from 1 to 65535")),
        PortSpec::Text(text) if text == "all" => Ok(PortItem::Range(1, u16::MAX)),
        PortSpec::Text(text) => match text.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (parse_port(first)?, parse_port(last)?);
                if first > last {
                    return Err(format!("`{text}`: the range ends before it starts"));
                }
                Ok(PortItem::Range(first, last))
            }
            None => parse_port(text).map(PortItem::One),
        },
    }
}

/// Addresses of this network namespace's interfaces.
pub fn local_addresses() -> Vec<IpAddr> {
    let mut addresses = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below; we
    // only read entries whose address family we check first.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return addresses;
        }
        let mut entry = list;
        while !entry.is_null() {
            let addr = (*entry).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let v4 = &*(addr as *const libc::sockaddr_in);
                        addresses.push(IpAddr::from(v4.sin_addr.s_addr.to_ne_bytes()));
                    }
                    libc::AF_INET6 => {
                        let v6 = &*(addr as *const libc::sockaddr_in6);
                        addresses.push(IpAddr::from(v6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            entry = (*entry).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    addresses
}
