//! From samples to figures: the metrics of the table, medians over rounds
//! with their spread, and comparisons made round by round (same round,
//! same conditions) before taking the median.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::sample::Sample;

/// How a metric is compared with `direct` in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// Throughput: the system's value and its ratio to direct.
    Ratio,
    /// Latency: what the system adds to direct (direct shows its own value).
    Added,
    /// A cost only proxies have: the value alone.
    Own,
}

#[derive(Debug)]
pub struct Metric {
    pub key: &'static str,
    pub title: &'static str,
    pub value: fn(&Sample) -> Option<f64>,
    pub compare: Compare,
}

/// The table's columns, in order (errors come last, separately).
pub const METRICS: [Metric; 12] = [
    Metric { key: "bulk_up_gbps", title: "bulk up Gbit/s", value: |s| s.bulk_up_gbps, compare: Compare::Ratio },
    Metric { key: "bulk_down_gbps", title: "bulk down Gbit/s", value: |s| s.bulk_down_gbps, compare: Compare::Ratio },
    Metric { key: "conns_per_sec", title: "conns/s", value: |s| s.conns_per_sec, compare: Compare::Ratio },
    Metric {
        key: "load_ttfr_p99_us",
        title: "TTFR p99 at 16 clients added µs",
        value: |s| s.load_ttfr_p99_us,
        compare: Compare::Added,
    },
    Metric { key: "ttfr_p50_us", title: "TTFR p50 added µs", value: |s| s.ttfr_p50_us, compare: Compare::Added },
    Metric { key: "ttfr_p99_us", title: "TTFR p99 added µs", value: |s| s.ttfr_p99_us, compare: Compare::Added },
    Metric { key: "http_close_rps", title: "HTTP close req/s", value: |s| s.http_close_rps, compare: Compare::Ratio },
    Metric {
        key: "http_keepalive_rps",
        title: "HTTP keep-alive req/s",
        value: |s| s.http_keepalive_rps,
        compare: Compare::Ratio,
    },
    Metric { key: "idle_kib_per_conn", title: "idle KiB/conn", value: |s| s.idle_kib_per_conn, compare: Compare::Own },
    Metric { key: "idle_fds_per_conn", title: "idle fds/conn", value: |s| s.idle_fds_per_conn, compare: Compare::Own },
    Metric { key: "cpu_s_per_gb", title: "CPU s/GB", value: |s| s.cpu_s_per_gb, compare: Compare::Own },
    Metric { key: "cpu_us_per_conn", title: "CPU µs/conn", value: |s| s.cpu_us_per_conn, compare: Compare::Own },
];

/// The UDP table's columns (its rows: direct and the UDP systems).
pub const UDP_METRICS: [Metric; 5] = [
    Metric {
        key: "udp_dgrams_per_sec",
        title: "64 B round trips/s, 1 flow",
        value: |s| s.udp_dgrams_per_sec,
        compare: Compare::Ratio,
    },
    Metric {
        key: "udp_mbytes_per_sec",
        title: "1200 B MB/s, 1 flow",
        value: |s| s.udp_bytes_per_sec.map(|bytes| bytes / 1e6),
        compare: Compare::Ratio,
    },
    Metric { key: "udp_flows_per_sec", title: "new flows/s", value: |s| s.udp_flows_per_sec, compare: Compare::Ratio },
    Metric {
        key: "udp_idle_kib_per_flow",
        title: "idle KiB/flow",
        value: |s| s.udp_idle_kib_per_flow,
        compare: Compare::Own,
    },
    Metric {
        key: "udp_idle_fds_per_flow",
        title: "idle fds/flow",
        value: |s| s.udp_idle_fds_per_flow,
        compare: Compare::Own,
    },
];

/// One metric of one system over the rounds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Median over rounds of system ÷ direct.
    pub ratio: Option<f64>,
    /// Median, min and max over rounds of system − direct.
    pub added: Option<[f64; 3]>,
}

#[derive(Debug, Serialize)]
pub struct SystemSummary {
    pub system: String,
    pub metrics: BTreeMap<&'static str, Stat>,
    pub errors: u64,
    pub misroutes: u64,
}

/// A system's figures over its rounds, each compared with `direct`'s.
pub fn summarise(system: &str, samples: &[Sample]) -> SystemSummary {
    let own: Vec<&Sample> = samples.iter().filter(|s| s.system == system).collect();
    let mut metrics = BTreeMap::new();
    for metric in METRICS.iter().chain(&UDP_METRICS) {
        let values: Vec<f64> = own.iter().filter_map(|s| (metric.value)(s)).collect();
        let Some([median, min, max]) = spread(values) else { continue };
        let pairs = paired(samples, system, "direct", metric.value);
        let ratio = spread(ratios(&pairs)).map(|[median, ..]| median);
        let added = spread(pairs.iter().map(|&(_, value, direct)| value - direct).collect());
        metrics.insert(metric.key, Stat { median, min, max, ratio, added });
    }
    SystemSummary {
        system: system.to_owned(),
        metrics,
        errors: own.iter().map(|s| s.errors).sum(),
        misroutes: own.iter().map(|s| s.misroutes).sum(),
    }
}

/// (round, system's value, peer's value) for every round that has both.
pub fn paired(samples: &[Sample], system: &str, peer: &str, value: fn(&Sample) -> Option<f64>) -> Vec<(u32, f64, f64)> {
    let peer_in = |round: u32| samples.iter().find(|s| s.system == peer && s.round == round);
    samples
        .iter()
        .filter(|s| s.system == system)
        .filter_map(|s| Some((s.round, value(s)?, value(peer_in(s.round)?)?)))
        .collect()
}

/// system ÷ peer for each pair whose peer value is not 0.
pub fn ratios(pairs: &[(u32, f64, f64)]) -> Vec<f64> {
    pairs.iter().filter(|(_, _, peer)| *peer != 0.0).map(|(_, value, peer)| value / peer).collect()
}

/// [median, min, max], or `None` without values.
pub fn spread(mut values: Vec<f64>) -> Option<[f64; 3]> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
    Some([median, values[0], values[n - 1]])
}

/// The median of `values`, or `None` without values.
pub fn median(values: Vec<f64>) -> Option<f64> {
    spread(values).map(|[median, ..]| median)
}

/// Three significant digits or so, without noise decimals on big numbers.
pub fn number(value: f64, signed: bool) -> String {
    let sign = if signed && value >= 0.0 { "+" } else { "" };
    let magnitude = value.abs();
    let text = if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    };
    format!("{sign}{text}")
}

pub fn rounds(n: u32) -> String {
    if n == 1 { "1 round".to_owned() } else { format!("{n} rounds") }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample(system: &str, round: u32, conns: f64, p50: f64) -> Sample {
        Sample { system: system.into(), round, conns_per_sec: Some(conns), ttfr_p50_us: Some(p50), ..Sample::default() }
    }

    #[test]
    fn compares_with_direct_round_by_round() {
        let samples = vec![
            sample("direct", 0, 100.0, 50.0),
            sample("proxy", 0, 50.0, 80.0),
            sample("direct", 1, 200.0, 60.0),
            sample("proxy", 1, 150.0, 70.0),
            sample("direct", 2, 100.0, 50.0),
            sample("proxy", 2, 40.0, 100.0),
        ];
        let proxy = summarise("proxy", &samples);
        let conns = proxy.metrics["conns_per_sec"];
        assert_eq!((conns.median, conns.min, conns.max), (50.0, 40.0, 150.0));
        assert_eq!(conns.ratio, Some(0.5)); // ratios 0.5, 0.75, 0.4
        assert_eq!(proxy.metrics["ttfr_p50_us"].added, Some([30.0, 10.0, 50.0]));
        assert!(!proxy.metrics.contains_key("bulk_up_gbps"));
    }

    #[test]
    fn pairs_only_rounds_with_both() {
        let samples = vec![sample("a", 0, 10.0, 1.0), sample("b", 0, 5.0, 1.0), sample("a", 1, 10.0, 1.0)];
        assert_eq!(paired(&samples, "a", "b", |s| s.conns_per_sec), [(0, 10.0, 5.0)]);
        assert_eq!(median(vec![3.0, 1.0, 2.0, 4.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(number(42856.7, false), "42857");
        assert_eq!(number(12.345, true), "+12.3");
        assert_eq!(number(-0.5, true), "-0.50");
    }
}
