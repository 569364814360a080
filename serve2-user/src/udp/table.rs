//! The flow table: flows by (client, dialled address), bounded in all
//! (`maxFlows`) and per source prefix (`maxFlowsPerSource`: a /24 for
//! IPv4, a /64 for IPv6, so one host cannot fill the table by changing
//! address within its own network).

use std::collections::HashMap;
use std::net::IpAddr;

use super::flow::{Flow, FlowKey};
use super::set::FlowLimits;
use super::stats::DropReason;

/// The network a source address counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum SourcePrefix {
    /// The /24 of an IPv4 address.
    V4(u32),
    /// The /64 of an IPv6 address.
    V6(u64),
}

impl SourcePrefix {
    /// The prefix `ip` counts against (IPv4-mapped addresses as IPv4).
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => SourcePrefix::V4(u32::from(v4) & 0xffff_ff00),
            IpAddr::V6(v6) => SourcePrefix::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// Every flow, and how many each source prefix has.
#[derive(Debug, Default)]
pub(super) struct FlowTable {
    flows: HashMap<FlowKey, Flow>,
    per_source: HashMap<SourcePrefix, usize>,
}

impl FlowTable {
    pub fn get(&self, key: &FlowKey) -> Option<&Flow> {
        self.flows.get(key)
    }

    pub fn get_mut(&mut self, key: &FlowKey) -> Option<&mut Flow> {
        self.flows.get_mut(key)
    }

    /// Whether a new flow for `key` fits the limits, or which one it passes.
    pub fn admits(&self, key: &FlowKey, limits: FlowLimits) -> Result<(), DropReason> {
        if self.flows.len() >= limits.max_flows {
            return Err(DropReason::TableFull);
        }
        let from_source = self.per_source.get(&SourcePrefix::of(key.client.ip())).copied().unwrap_or(0);
        if from_source >= limits.max_flows_per_source {
            return Err(DropReason::SourceFull);
        }
        Ok(())
    }

    /// Adds a flow (admitted by [`FlowTable::admits`]).
    pub fn insert(&mut self, key: FlowKey, flow: Flow) {
        *self.per_source.entry(SourcePrefix::of(key.client.ip())).or_default() += 1;
        if let Some(replaced) = self.flows.insert(key, flow) {
            // Not reached (a key is inserted only when absent); keep the
            // per-source count true anyway.
            drop(replaced);
            self.release(&key);
        }
    }

    /// Removes a flow; its source prefix gets the slot back.
    pub fn remove(&mut self, key: &FlowKey) -> Option<Flow> {
        let flow = self.flows.remove(key)?;
        self.release(key);
        Some(flow)
    }

    fn release(&mut self, key: &FlowKey) {
        let prefix = SourcePrefix::of(key.client.ip());
        if let Some(count) = self.per_source.get_mut(&prefix) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_source.remove(&prefix);
            }
        }
    }

    /// The flows with nothing either way for longer than their timeout
    /// (`idleTimeout` until the backend answered, `establishedTimeout`
    /// after), at `now_ms` on the server's clock.
    pub fn idle(&self, now_ms: u64) -> Vec<FlowKey> {
        self.flows
            .iter()
            .filter(|(_, flow)| {
                let timeouts = flow.policy.set.timeouts;
                let limit = if flow.shared.answered() { timeouts.established } else { timeouts.idle };
                now_ms.saturating_sub(flow.shared.last_activity()) >= limit.as_millis() as u64
            })
            .map(|(key, _)| *key)
            .collect()
    }

    /// Every key, to end every flow.
    pub fn keys(&self) -> Vec<FlowKey> {
        self.flows.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_count_by_their_slash_24_or_slash_64() {
        let of = |s: &str| SourcePrefix::of(s.parse().unwrap());
        assert_eq!(of("192.0.2.7"), of("192.0.2.200"));
        assert_ne!(of("192.0.2.7"), of("192.0.3.7"));
        assert_eq!(of("::ffff:192.0.2.9"), of("192.0.2.7"));
        assert_eq!(of("2001:db8:0:1::1"), of("2001:db8:0:1:ffff::2"));
        assert_ne!(of("2001:db8:0:1::1"), of("2001:db8:0:2::1"));
    }
}
