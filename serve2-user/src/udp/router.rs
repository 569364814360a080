//! Which `udp` block a new flow runs through, by the port it dialled: a
//! policy's when the policy has one, else the top level's.

use std::sync::Arc;
use std::time::Duration;

use super::set::{FlowLimits, UdpSet};
use super::stats::{PolicyCounters, UdpPolicyStatus};
use crate::config::Config;

/// The name the top-level block has in status and metrics.
pub const TOP_LEVEL: &str = "top level";

/// One `udp` block with its name and counters.
#[derive(Debug)]
pub struct UdpPolicy {
    /// The policy's name, or [`TOP_LEVEL`].
    pub name: String,
    /// Its ports, for status (`every other port` for the top level).
    pub ports: String,
    /// What its flows are detected as and where they go.
    pub set: UdpSet,
    /// Its flows, shared with the policy of the same name after a reload.
    pub counters: Arc<PolicyCounters>,
}

impl UdpPolicy {
    /// The `policy` label of its metrics (`top` for the top level, as TCP's).
    pub fn metric_label(&self) -> &str {
        if self.name == TOP_LEVEL { crate::metrics::TOP_POLICY } else { &self.name }
    }

    /// Its status line.
    pub fn status(&self) -> UdpPolicyStatus {
        let (protocols, fallback) = match &self.set.forward {
            Some(forward) => (vec![format!("forward {}", forward.target)], None),
            None => (self.set.protocol_names(), self.set.fallback.as_ref().map(|p| p.name.clone())),
        };
        UdpPolicyStatus {
            name: self.name.clone(),
            ports: self.ports.clone(),
            protocols,
            fallback,
            flows: self.counters.active(),
            created: self.counters.total_created(),
            undetected: self.counters.total_undetected(),
        }
    }
}

/// Dialled port → `udp` block, in constant time.
#[derive(Debug, Default)]
pub struct UdpRouter {
    /// Policies with a `udp` block, in configuration order.
    policies: Vec<Arc<UdpPolicy>>,
    top: Option<Arc<UdpPolicy>>,
    /// Per port: 0 for the top level, `i + 1` for `policies[i]`.
    by_port: Option<Box<[u16]>>,
    /// `maxFlows`, `maxFlowsPerSource`.
    pub limits: FlowLimits,
}

impl UdpRouter {
    /// The blocks of `config`; counters of same-named blocks of `previous`
    /// (the configuration before a reload) carry over.
    pub fn new(config: &Config, previous: Option<&UdpRouter>) -> UdpRouter {
        let counters = |name: &str| {
            previous
                .and_then(|p| p.all().find(|policy| policy.name == name))
                .map_or_else(Arc::default, |p| p.counters.clone())
        };
        let mut router = UdpRouter { limits: config.udp.limits, ..UdpRouter::default() };
        for policy in config.policies.iter() {
            let Some(set) = &policy.udp else { continue };
            let index = router.policies.len() + 1;
            let Ok(index) = u16::try_from(index) else { break };
            let table = router.by_port.get_or_insert_with(|| vec![0u16; 1 << 16].into_boxed_slice());
            for port in policy.ports.iter() {
                table[usize::from(port)] = index;
            }
            router.policies.push(Arc::new(UdpPolicy {
                name: policy.name.clone(),
                ports: format!("ports {}", policy.ports),
                set: set.clone(),
                counters: counters(&policy.name),
            }));
        }
        router.top = config.udp.top.as_ref().map(|set| {
            Arc::new(UdpPolicy {
                name: TOP_LEVEL.to_owned(),
                ports: "every other port".to_owned(),
                set: set.clone(),
                counters: counters(TOP_LEVEL),
            })
        });
        router
    }

    /// The block for a flow dialled to `port`, if any serves it.
    pub fn for_port(&self, port: u16) -> Option<&Arc<UdpPolicy>> {
        match self.by_port.as_ref().map_or(0, |table| usize::from(table[usize::from(port)])) {
            0 => self.top.as_ref(),
            index => self.policies.get(index - 1),
        }
    }

    /// Every block: the policies, then the top level.
    pub fn all(&self) -> impl Iterator<Item = &Arc<UdpPolicy>> {
        self.policies.iter().chain(self.top.iter())
    }

    /// How often idle flows are looked for: a tenth of the shortest flow
    /// timeout, between 10 ms and 1 s, so a flow outlives its timeout by at
    /// most a tenth of it (or a second).
    pub fn reap_period(&self) -> Duration {
        let shortest = self.all().map(|p| p.set.timeouts.idle.min(p.set.timeouts.established)).min();
        shortest.map_or(Duration::from_secs(1), |t| t / 10).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}
