//! What the program's maps hold for one configuration: each steered port's
//! entry (which sockets, which policy), each policy's source rules, and the
//! kernel-direct routes.

use std::net::{SocketAddr, ToSocketAddrs};

use serve2_common::{MAX_POLICIES, PORT_COUNT, PORT_DIRECT, PORT_SOURCES, PORT_TCP, PORT_UDP, port_entry};

use super::SteerPlan;
use crate::config::{Config, DirectCandidate, SourceRules, local_addresses};
use crate::ports::PortSet;

/// One policy as the kernel sees it (index 0: the top level's ports).
#[derive(Debug, Clone, PartialEq)]
pub struct KernelPolicy {
    /// Index in the program's per-policy maps.
    pub index: u16,
    /// Its name, for status.
    pub name: String,
    /// Its steered ports.
    pub ports: PortSet,
    /// Its source rules.
    pub sources: SourceRules,
    /// The local backend its `forward` route may hand connections to.
    pub direct: Option<SocketAddr>,
}

/// The program's maps for one configuration.
#[derive(Debug, Clone)]
pub struct KernelTable {
    /// [`serve2_common::PORTS_MAP`]'s value for every port.
    pub entries: Vec<u32>,
    /// Every policy, by index.
    pub policies: Vec<KernelPolicy>,
}

/// Why a configuration does not fit the program's maps.
#[derive(Debug, thiserror::Error)]
#[error("{0} policies: the kernel program keeps source rules for at most {max}", max = MAX_POLICIES - 1)]
pub struct TooManyPolicies(pub usize);

impl KernelTable {
    /// The maps for `config`, steering `plan`'s ports.
    pub fn new(config: &Config, plan: &SteerPlan) -> Result<KernelTable, TooManyPolicies> {
        if config.policies.len() >= MAX_POLICIES as usize {
            return Err(TooManyPolicies(config.policies.len()));
        }
        let local = local_addresses();
        let owned = config.policies.iter().fold(PortSet::new(), |owned, p| owned.union(&p.ports));
        let top = KernelPolicy {
            index: 0,
            name: crate::metrics::TOP_POLICY.to_owned(),
            ports: plan.steered.union(&plan.udp_steered).difference(&owned),
            sources: config.sources.clone(),
            direct: config.direct.as_ref().and_then(|c| local_backend(c, &local)),
        };
        let policies = config.policies.iter().enumerate().map(|(i, policy)| KernelPolicy {
            index: (i + 1) as u16,
            name: policy.name.clone(),
            ports: policy.ports.clone(),
            sources: policy.sources.clone(),
            direct: policy.direct.as_ref().and_then(|c| local_backend(c, &local)),
        });
        let policies: Vec<KernelPolicy> = std::iter::once(top).chain(policies).collect();
        let mut entries = vec![0u32; PORT_COUNT as usize];
        for policy in &policies {
            let mut flags = 0;
            if !policy.sources.is_empty() {
                flags |= PORT_SOURCES;
            }
            if policy.direct.is_some() {
                flags |= PORT_DIRECT;
            }
            for port in policy.ports.iter() {
                let mut port_flags = flags;
                if plan.steered.contains(port) {
                    port_flags |= PORT_TCP;
                }
                if plan.udp_steered.contains(port) {
                    port_flags |= PORT_UDP;
                }
                if port_flags & (PORT_TCP | PORT_UDP) != 0 {
                    entries[usize::from(port)] = port_entry(port_flags, policy.index);
                }
            }
        }
        Ok(KernelTable { entries, policies })
    }
}

/// The forward target, if it is an address of this namespace (only a
/// socket listening here can be handed connections by the kernel).
fn local_backend(candidate: &DirectCandidate, local: &[std::net::IpAddr]) -> Option<SocketAddr> {
    let addresses = candidate.target.to_socket_addrs().ok()?;
    addresses.into_iter().find(|a| a.ip().is_loopback() || local.contains(&a.ip().to_canonical()))
}
