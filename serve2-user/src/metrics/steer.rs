//! The kernel steering program's counters, read at scrape time.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;

/// Reads the steering program's counters, each summed over CPUs, by name
/// (`crate::steer::KernelCounters::read`).
pub type KernelCounterSource = Box<dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync>;

/// Exposes each kernel counter `name` as `serve2_steer_<name>_total`.
pub(super) struct KernelCollector {
    source: KernelCounterSource,
}

impl KernelCollector {
    pub fn new(source: KernelCounterSource) -> Self {
        Self { source }
    }
}

impl std::fmt::Debug for KernelCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelCollector").finish_non_exhaustive()
    }
}

impl Collector for KernelCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        for (name, value) in (self.source)() {
            let counter = ConstCounter::new(value);
            let metric = format!("steer_{name}");
            let described = encoder.encode_descriptor(&metric, help(name), None, counter.metric_type())?;
            counter.encode(described)?;
        }
        Ok(())
    }
}

/// The help line of a kernel counter.
fn help(name: &str) -> &'static str {
    match name {
        "lookups" => "Socket lookups the steering program ran (new TCP connections in the namespace), over all CPUs.",
        "steered" => "Connections the steering program assigned to serve2, over all CPUs.",
        "no_socket" => "Connections to steered ports passed on because serve2 had no listener in the map.",
        "assign_errors" => "Connections to steered ports passed on because the kernel refused the assignment.",
        "out_of_scope" => "Connections to steered ports passed on because the local address is outside the scope.",
        "stale_daemon" => "Connections to steered ports passed on because serve2's heartbeat was stale.",
        _ => "A kernel steering counter, over all CPUs.",
    }
}
