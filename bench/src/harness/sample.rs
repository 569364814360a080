//! Everything measured for one system in one round, and how errors and
//! problems are counted into it.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    pub round: u32,
    pub system: String,
    pub bulk_up_gbps: Option<f64>,
    pub bulk_down_gbps: Option<f64>,
    /// Proxy CPU seconds (all its processes) per 10⁹ bytes moved by both transfers.
    pub cpu_s_per_gb: Option<f64>,
    /// New connections per second, 16 clients each connecting, exchanging
    /// SSH banners and closing.
    pub conns_per_sec: Option<f64>,
    /// Time to first reply byte in that run, from just before connect().
    pub load_ttfr_p50_us: Option<f64>,
    pub load_ttfr_p99_us: Option<f64>,
    /// Proxy CPU microseconds (all its processes) per connection of that run.
    pub cpu_us_per_conn: Option<f64>,
    /// Time to first reply byte, one connection at a time.
    pub ttfr_p50_us: Option<f64>,
    pub ttfr_p90_us: Option<f64>,
    pub ttfr_p99_us: Option<f64>,
    pub ttfr_mean_us: Option<f64>,
    pub http_keepalive_rps: Option<f64>,
    pub http_close_rps: Option<f64>,
    pub idle_kib_per_conn: Option<f64>,
    pub idle_fds_per_conn: Option<f64>,
    pub held: Option<u64>,
    /// UDP round trips per second: one flow, 32 datagrams of 64 bytes in
    /// flight, each echo answered at once.
    pub udp_dgrams_per_sec: Option<f64>,
    /// UDP payload bytes echoed per second: the same with 1200-byte datagrams.
    pub udp_bytes_per_sec: Option<f64>,
    /// New UDP flows per second: 16 clients, each flow from a new source
    /// port sending one datagram and waiting for its echo.
    pub udp_flows_per_sec: Option<f64>,
    /// The proxy's memory and descriptors per idle UDP flow.
    pub udp_idle_kib_per_flow: Option<f64>,
    pub udp_idle_fds_per_flow: Option<f64>,
    pub udp_held: Option<u64>,
    /// Datagrams sent in the round-trip runs whose echo never came back.
    pub udp_lost: Option<u64>,
    /// A logging system's connection lines written during the
    /// connection-rate and latency runs, and the connections those runs
    /// completed (each reached the proxy, so each must have its line).
    pub log_lines: Option<u64>,
    pub logged_connections: Option<u64>,
    pub errors: u64,
    pub misroutes: u64,
    /// Errors and misroutes per tool.
    pub by_tool: BTreeMap<String, [u64; 2]>,
    /// serve2-load's errors by tool and kind ("connrate TimedOut").
    pub error_kinds: BTreeMap<String, u64>,
    pub problems: Vec<String>,
}

impl Sample {
    pub fn count(&mut self, tool: &str, errors: u64, misroutes: u64) {
        self.errors += errors;
        self.misroutes += misroutes;
        let entry = self.by_tool.entry(tool.to_owned()).or_default();
        entry[0] += errors;
        entry[1] += misroutes;
    }

    /// Counts serve2-load's `errors` and `misroutes`.
    pub fn count_load(&mut self, tool: &str, result: &serde_json::Value) {
        let field = |key: &str| result[key].as_u64().unwrap_or(0);
        self.count(tool, field("errors"), field("misroutes"));
        for (kind, count) in result["error_kinds"].as_object().into_iter().flatten() {
            *self.error_kinds.entry(format!("{tool} {kind}")).or_default() += count.as_u64().unwrap_or(0);
        }
    }

    /// Records a metric that could not be measured.
    pub fn check(&mut self, tool: &str, result: anyhow::Result<()>) {
        if let Err(e) = result {
            self.count(tool, 1, 0);
            self.problems.push(format!("round {} {}: {tool}: {e:#}", self.round + 1, self.system));
        }
    }

    /// Whether this sample's log check found fewer lines than connections
    /// (`None` when the system does not log).
    pub fn log_short(&self) -> Option<bool> {
        Some(self.log_lines? < self.logged_connections?)
    }
}

/// Connections a serve2-load result completed (answered, by the right
/// origin or not); failed ones may never have reached the proxy.
pub fn completed(result: &serde_json::Value) -> u64 {
    ["ok", "misroutes"].iter().map(|key| result[key].as_u64().unwrap_or(0)).sum()
}
