//! Prometheus metrics: the registry and its metric families, the
//! per-policy handles connections count through, and the `GET /metrics`
//! endpoint (`"metrics": "127.0.0.1:9100"`).
//!
//! The connection path stays cheap: every label set a connection can touch
//! is resolved into a [`PolicyMetrics`] handle (one per protocol set), so a
//! connection costs a few relaxed atomic additions and no label hashing or
//! allocation. Series appear on first use; each single-protocol chain
//! (`ssh`, `proxy`) is a table slot found by index, nested chains
//! (`tls>http`) are looked up by a packed integer key, at most
//! [`MAX_NESTED_CHAINS`] per policy (later ones are labelled `other`).
//!
//! Labels are bounded by the configuration: policy names, protocol names
//! and fixed words. Nothing from the wire (addresses, SNI, Host) becomes a
//! label.

mod families;
mod histogram;
mod http;
mod policy;
mod steer;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use prometheus_client::registry::Registry;

use crate::protocol::ProtocolSet;
pub use policy::{ActiveConnection, Direction, MAX_NESTED_CHAINS, Outcome, PolicyMetrics};
pub(crate) use policy::{ChainKey, Slot};

pub use http::{Endpoint, start};
pub use steer::KernelCounterSource;

/// The policy label of the top-level protocols.
pub const TOP_POLICY: &str = "top";

/// The `Content-Type` of the exposition: Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The registry and the metric families of one daemon.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    families: families::Families,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every family registered, empty: `serve2_build_info` and the reload
    /// counts are there from the start, per-policy series once a policy is
    /// instrumented.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("serve2");
        let families = families::Families::register(&mut registry);
        Self { registry, families }
    }

    /// Adds the kernel steering counters (`serve2_steer_*_total`), read from
    /// `source` at every scrape.
    pub fn with_kernel_counters(mut self, source: KernelCounterSource) -> Self {
        self.registry.register_collector(Box::new(steer::KernelCollector::new(source)));
        self
    }

    /// Adds the UDP flow series (`serve2_udp_*`), read from `server` at every
    /// scrape.
    pub fn with_udp(mut self, server: crate::udp::UdpServer) -> Self {
        self.registry.register_collector(Box::new(crate::udp::metrics::UdpCollector::new(server)));
        self
    }

    /// The handle the connections of `set` (labelled `policy`) count through:
    /// its active, byte and TLS-error series exist (at 0) from now on.
    pub fn policy(&self, policy: &str, set: &ProtocolSet) -> Arc<PolicyMetrics> {
        Arc::new(PolicyMetrics::new(&self.families, policy, set))
    }

    /// A copy of `set` counting its connections under `policy`.
    pub fn instrument(&self, policy: &str, set: &ProtocolSet) -> ProtocolSet {
        set.clone().with_metrics(Some(self.policy(policy, set)))
    }

    /// Counts a configuration reload, successful or not
    /// (`serve2_reloads_total{result="ok"|"failed"}`).
    pub fn record_reload(&self, ok: bool) {
        self.families.reload(ok).inc();
    }

    /// The exposition, in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(4096);
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}
