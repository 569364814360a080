//! Writing a [`KernelTable`] into the program's maps, and keeping
//! kernel-direct routes pointed at their backends' listeners.

use std::os::fd::AsRawFd;

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, MapData, SockMap};
use ipnet::IpNet;
use serve2_common::{
    DIRECT_MAP, POLICY_FLAGS, POLICY_HAS_ALLOW, POLICY_INTERVAL_NS, POLICY_PREFIXES, POLICY_RATE_LIMITED,
    POLICY_SETTINGS_MAP, POLICY_TOLERANCE_NS, PORT_COUNT, PORTS_MAP, SOURCE_ALLOW, SOURCE_DENY, SOURCES_V4_MAP,
    SOURCES_V6_MAP,
};

use super::direct::{DirectRoute, take_socket};
use super::listening::{listener_for, listening_sockets};
use super::table::{KernelPolicy, KernelTable};
use super::{SteerError, map_error};
use crate::config::SourceRules;

/// The program's configuration maps and what was last written to them.
pub(super) struct KernelMaps {
    pub ports: Array<MapData, u32>,
    pub direct: SockMap<MapData>,
    pub sources_v4: LpmTrie<MapData, [u8; 6], u8>,
    pub sources_v6: LpmTrie<MapData, [u8; 18], u8>,
    pub settings: Array<MapData, [u64; 4]>,
    /// The port entries in the map.
    pub entries: Vec<u32>,
    /// The policies whose rules are in the maps.
    pub policies: Vec<KernelPolicy>,
    /// The kernel-direct routes.
    pub routes: Vec<DirectRoute>,
}

/// Which port entries a write touches: reloads turn ports off before the
/// router changes and on after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ports {
    /// Only ports the new table no longer steers.
    Leaving,
    /// Every other entry that changed.
    Joining,
}

impl KernelMaps {
    /// Writes `table`'s source rules and routes (on `Joining`) and the port
    /// entries `ports` selects.
    pub fn write(&mut self, table: &KernelTable, ports: Ports) -> Result<(), SteerError> {
        if ports == Ports::Joining {
            self.write_policies(&table.policies)?;
        }
        for port in 0..PORT_COUNT as usize {
            let (old, new) = (self.entries[port], table.entries[port]);
            let selected = match ports {
                Ports::Leaving => new == 0,
                Ports::Joining => new != 0,
            };
            if old != new && selected {
                self.ports.set(port as u32, new, 0).map_err(map_error(PORTS_MAP))?;
                self.entries[port] = new;
            }
        }
        Ok(())
    }

    fn write_policies(&mut self, policies: &[KernelPolicy]) -> Result<(), SteerError> {
        // New rules go in before stale ones leave, so no rule is missing
        // while the two overlap; a prefix in both gets its new value.
        for policy in policies {
            let old = self.policies.iter().find(|p| p.index == policy.index).map(|p| &p.sources);
            if old != Some(&policy.sources) {
                self.insert_rules(policy.index, &policy.sources)?;
                self.settings
                    .set(u32::from(policy.index), settings(&policy.sources), 0)
                    .map_err(map_error(POLICY_SETTINGS_MAP))?;
            }
        }
        for old in std::mem::take(&mut self.policies) {
            let new = policies.iter().find(|p| p.index == old.index).map(|p| &p.sources);
            for net in old.sources.allow.iter().chain(&old.sources.deny) {
                if !new.is_some_and(|n| n.allow.contains(net) || n.deny.contains(net)) {
                    self.remove_rule(old.index, net);
                }
            }
            if new.is_none() {
                self.settings.set(u32::from(old.index), [0; 4], 0).map_err(map_error(POLICY_SETTINGS_MAP))?;
            }
        }
        self.policies = policies.to_vec();
        let routes: Vec<DirectRoute> = policies
            .iter()
            .filter_map(|p| {
                Some(DirectRoute { ports: p.ports.clone(), target: p.direct?, inode: None, last_error: None })
            })
            .collect();
        for old in std::mem::replace(&mut self.routes, routes) {
            for port in old.ports.iter().filter(|&port| !self.routes.iter().any(|r| r.ports.contains(port))) {
                // An empty slot is what clearing wants.
                let _ = self.direct.clear_index(&u32::from(port));
            }
        }
        self.refresh_routes();
        Ok(())
    }

    fn insert_rules(&mut self, policy: u16, rules: &SourceRules) -> Result<(), SteerError> {
        // Deny last: where one prefix is in both lists, refusing wins.
        let allow = rules.allow.iter().map(|net| (net, SOURCE_ALLOW));
        for (net, value) in allow.chain(rules.deny.iter().map(|net| (net, SOURCE_DENY))) {
            let [p0, p1] = policy.to_be_bytes();
            let prefix = 16 + u32::from(net.prefix_len());
            match net {
                IpNet::V4(v4) => {
                    let [a, b, c, d] = v4.addr().octets();
                    let key = Key::new(prefix, [p0, p1, a, b, c, d]);
                    self.sources_v4.insert(&key, value, 0).map_err(map_error(SOURCES_V4_MAP))?;
                }
                IpNet::V6(v6) => {
                    let mut data = [0u8; 18];
                    data[0] = p0;
                    data[1] = p1;
                    data[2..].copy_from_slice(&v6.addr().octets());
                    self.sources_v6.insert(&Key::new(prefix, data), value, 0).map_err(map_error(SOURCES_V6_MAP))?;
                }
            }
        }
        Ok(())
    }

    fn remove_rule(&mut self, policy: u16, net: &IpNet) {
        let [p0, p1] = policy.to_be_bytes();
        let prefix = 16 + u32::from(net.prefix_len());
        // A rule already gone is what removing wants.
        let _ = match net {
            IpNet::V4(v4) => {
                let [a, b, c, d] = v4.addr().octets();
                self.sources_v4.remove(&Key::new(prefix, [p0, p1, a, b, c, d]))
            }
            IpNet::V6(v6) => {
                let mut data = [0u8; 18];
                data[0] = p0;
                data[1] = p1;
                data[2..].copy_from_slice(&v6.addr().octets());
                self.sources_v6.remove(&Key::new(prefix, data))
            }
        };
    }

    /// Points each kernel-direct route at its backend's current listener,
    /// or notes that it has none (the program then falls back to the
    /// daemon by itself).
    pub fn refresh_routes(&mut self) {
        if self.routes.is_empty() {
            return;
        }
        let sockets = match listening_sockets() {
            Ok(sockets) => sockets,
            Err(e) => return tracing::warn!(error = %e, "kernel-direct routes: listing listening sockets"),
        };
        for route in &mut self.routes {
            let listener = listener_for(route.target, &sockets);
            if listener.map(|l| l.inode) == route.inode {
                continue;
            }
            let Some(listener) = listener else {
                route.inode = None;
                tracing::warn!(ports = %route.ports, target = %route.target, "backend stopped listening: kernel-direct route falls back to serve2");
                continue;
            };
            match take_socket(listener.inode) {
                Ok(socket) => {
                    let fd = socket.as_raw_fd();
                    let set = route.ports.iter().try_for_each(|port| self.direct.set(u32::from(port), &fd, 0));
                    match set {
                        Ok(()) => {
                            route.inode = Some(listener.inode);
                            tracing::info!(ports = %route.ports, target = %route.target, listener = %listener.local, "kernel-direct route: the kernel hands these ports' connections to the backend's listener");
                        }
                        Err(e) => {
                            tracing::warn!(ports = %route.ports, error = %map_error(DIRECT_MAP)(e), "kernel-direct route not set; serve2 forwards")
                        }
                    }
                    // `socket` closes here: the map must not keep the backend's socket open.
                }
                Err(e) => {
                    route.inode = None;
                    let error = e.to_string();
                    if route.last_error.as_ref() != Some(&error) {
                        tracing::warn!(ports = %route.ports, target = %route.target, %error, "cannot borrow the backend's listener (needs CAP_SYS_PTRACE over it); serve2 forwards");
                        route.last_error = Some(error);
                    }
                }
            }
        }
    }
}

/// A policy's [`POLICY_SETTINGS_MAP`] value.
fn settings(rules: &SourceRules) -> [u64; 4] {
    let mut value = [0u64; 4];
    if !rules.allow.is_empty() {
        value[POLICY_FLAGS] |= POLICY_HAS_ALLOW;
    }
    if let Some(limit) = rules.rate_limit {
        value[POLICY_FLAGS] |= POLICY_RATE_LIMITED;
        let interval = (1e9 / limit.per_second).round().max(1.0) as u64;
        value[POLICY_INTERVAL_NS] = interval;
        value[POLICY_TOLERANCE_NS] = interval.saturating_mul(u64::from(limit.burst.saturating_sub(1)));
        value[POLICY_PREFIXES] = u64::from(limit.prefix_v4) | (u64::from(limit.prefix_v6) << 8);
    }
    value
}
