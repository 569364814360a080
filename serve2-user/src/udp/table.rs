//! The flow table of one socket's dispatcher: its flows by (client,
//! dialled address). The limits it enforces (`maxFlows`,
//! `maxFlowsPerSource`) are shared by every dispatcher ([`Admission`]).

use std::collections::HashMap;
use std::sync::Arc;

use super::admission::Admission;
use super::flow::{Flow, FlowKey};
use super::set::FlowLimits;
use super::stats::DropReason;

/// One dispatcher's flows; each holds a slot of the shared admission.
#[derive(Debug)]
pub(super) struct FlowTable {
    flows: HashMap<FlowKey, Flow>,
    admission: Arc<Admission>,
}

impl FlowTable {
    pub fn get(&self, key: &FlowKey) -> Option<&Flow> {
        self.flows.get(key)
    }

    pub fn get_mut(&mut self, key: &FlowKey) -> Option<&mut Flow> {
        self.flows.get_mut(key)
    }

    /// An empty table taking its flows' slots from `admission`.
    pub fn new(admission: Arc<Admission>) -> Self {
        Self { flows: HashMap::new(), admission }
    }

    /// Flows in this table.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Takes a slot for a new flow for `key` ([`FlowTable::insert`] it
    /// next), or says which limit it passes.
    pub fn admit(&self, key: &FlowKey, limits: FlowLimits) -> Result<(), DropReason> {
        self.admission.admit(key.client.ip(), limits)
    }

    /// Adds a flow (admitted by [`FlowTable::admit`]).
    pub fn insert(&mut self, key: FlowKey, flow: Flow) {
        if let Some(replaced) = self.flows.insert(key, flow) {
            // Not reached (a key is inserted only when absent); keep the
            // admitted count true anyway.
            drop(replaced);
            self.admission.release(key.client.ip());
        }
    }

    /// Removes a flow; its slot goes back to the admission.
    pub fn remove(&mut self, key: &FlowKey) -> Option<Flow> {
        let flow = self.flows.remove(key)?;
        self.admission.release(key.client.ip());
        Some(flow)
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
