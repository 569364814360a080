//! Turning samples into results: medians over rounds, spread, comparisons
//! with `direct` made per round (same round, same conditions) and then
//! median'ed; written as results.json, report.md and ratios.svg.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde::Serialize;

use super::Plan;
use super::measure::Sample;

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
pub const METRICS: [Metric; 10] = [
    Metric { key: "bulk_up_gbps", title: "bulk up Gbit/s", value: |s| s.bulk_up_gbps, compare: Compare::Ratio },
    Metric { key: "bulk_down_gbps", title: "bulk down Gbit/s", value: |s| s.bulk_down_gbps, compare: Compare::Ratio },
    Metric { key: "conns_per_sec", title: "conns/s", value: |s| s.conns_per_sec, compare: Compare::Ratio },
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

#[derive(Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub kernel: String,
    pub peers: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Results {
    pub date: String,
    pub machine: Machine,
    pub rounds: u32,
    pub seconds: u64,
    pub held: usize,
    pub latency_count: usize,
    pub summary: Vec<SystemSummary>,
    pub samples: Vec<Sample>,
}

impl Results {
    pub fn new(plan: &Plan, samples: Vec<Sample>) -> Self {
        let summary = plan.systems.iter().map(|system| summarise(system.name(), &samples)).collect();
        Results {
            date: first_line(Command::new("date").args(["-u", "+%Y-%m-%d"])),
            machine: Machine::describe(),
            rounds: plan.rounds,
            seconds: plan.seconds,
            held: plan.held,
            latency_count: plan.latency_count,
            summary,
            samples,
        }
    }

    /// Writes results.json, report.md and ratios.svg into `out`; returns the
    /// markdown table.
    pub fn write(&self, out: &Path) -> anyhow::Result<String> {
        std::fs::create_dir_all(out)?;
        std::fs::write(out.join("results.json"), serde_json::to_string_pretty(self)?)?;
        let table = self.table();
        let mut report = format!("# serve2 benchmark\n\n{}\n\n{table}\n{}", self.conditions(), LEGEND);
        let notes = error_notes(&self.summary, &self.samples);
        if !notes.is_empty() {
            report.push_str("\n## Errors by tool\n\n");
            for note in notes {
                report.push_str(&format!("- {note}\n"));
            }
        }
        let problems: Vec<&String> = self.samples.iter().flat_map(|s| &s.problems).collect();
        if !problems.is_empty() {
            report.push_str("\n## Problems\n\n");
            for problem in problems {
                report.push_str(&format!("- {problem}\n"));
            }
        }
        std::fs::write(out.join("report.md"), report)?;
        std::fs::write(out.join("ratios.svg"), super::svg::ratios(self))?;
        Ok(table)
    }

    /// One line: when, on what, how long.
    pub fn conditions(&self) -> String {
        let m = &self.machine;
        format!(
            "{}: {} cores ({}), Linux {}; {} × {} s per timed metric, {} held connections, {} latency samples; {}.",
            self.date,
            m.nproc,
            m.cpu,
            m.kernel,
            rounds(self.rounds),
            self.seconds,
            self.held,
            self.latency_count,
            m.peers.join(", ")
        )
    }

    /// Rows = systems, columns = metrics: median (min–max when several
    /// rounds) and ×ratio to direct, or what the system adds to direct.
    pub fn table(&self) -> String {
        let mut table = String::from("| system |");
        let mut rule = String::from("|---|");
        for metric in &METRICS {
            table.push_str(&format!(" {} |", metric.title));
            rule.push_str("---:|");
        }
        table.push_str(" errors |\n");
        table.push_str(&rule);
        table.push_str("---:|\n");
        for summary in &self.summary {
            table.push_str(&format!("| {} |", summary.system));
            let is_direct = summary.system == "direct";
            for metric in &METRICS {
                let cell = summary
                    .metrics
                    .get(metric.key)
                    .map_or_else(|| "—".to_owned(), |stat| self.cell(stat, metric, is_direct));
                table.push_str(&format!(" {cell} |"));
            }
            let errors = match summary.misroutes {
                0 => summary.errors.to_string(),
                misroutes => format!("{} ({misroutes} misrouted)", summary.errors + misroutes),
            };
            table.push_str(&format!(" {errors} |\n"));
        }
        table
    }

    fn cell(&self, stat: &Stat, metric: &Metric, is_direct: bool) -> String {
        let spread = |min: f64, max: f64, signed: bool| {
            if self.rounds > 1 {
                format!(" ({}–{})", number(min, signed), number(max, signed))
            } else {
                String::new()
            }
        };
        match (metric.compare, stat.added) {
            (Compare::Added, Some([median, min, max])) if !is_direct => {
                format!("{}{}", number(median, true), spread(min, max, true))
            }
            (Compare::Added, _) if is_direct => format!("base {}", number(stat.median, false)),
            _ => {
                let ratio = match (metric.compare, stat.ratio) {
                    (Compare::Ratio, Some(ratio)) if !is_direct => format!(" ×{ratio:.2}"),
                    _ => String::new(),
                };
                format!("{}{}{ratio}", number(stat.median, false), spread(stat.min, stat.max, false))
            }
        }
    }
}

const LEGEND: &str = "
Medians over rounds, (min–max) when there are several, ×ratio to `direct` (computed per round,
then median'ed). TTFR: time from connect() to the first reply byte of an SSH banner exchange;
\"added\" is the system's minus direct's in the same round (direct shows its own as \"base\").
Idle: the proxy's memory (Pss, all its processes) and descriptors per held connection. CPU s/GB:
the proxy's CPU time (all its processes) per 10⁹ bytes of the two bulk transfers. Errors: failed
connections, requests and tool runs over all rounds (misrouted: reached the wrong origin).
";

fn summarise(system: &str, samples: &[Sample]) -> SystemSummary {
    let own: Vec<&Sample> = samples.iter().filter(|s| s.system == system).collect();
    let direct_in = |round: u32| samples.iter().find(|s| s.system == "direct" && s.round == round);
    let mut metrics = BTreeMap::new();
    for metric in &METRICS {
        let values: Vec<f64> = own.iter().filter_map(|s| (metric.value)(s)).collect();
        let Some([median, min, max]) = spread(values) else { continue };
        // Pairs of (system, direct) from the same round.
        let pairs: Vec<(f64, f64)> =
            own.iter().filter_map(|s| Some(((metric.value)(s)?, (metric.value)(direct_in(s.round)?)?))).collect();
        let ratios = pairs.iter().filter(|(_, direct)| *direct != 0.0).map(|(value, direct)| value / direct).collect();
        let ratio = spread(ratios).map(|[median, ..]| median);
        let added = spread(pairs.iter().map(|(value, direct)| value - direct).collect());
        metrics.insert(metric.key, Stat { median, min, max, ratio, added });
    }
    SystemSummary {
        system: system.to_owned(),
        metrics,
        errors: own.iter().map(|s| s.errors).sum(),
        misroutes: own.iter().map(|s| s.misroutes).sum(),
    }
}

/// [median, min, max], or `None` without values.
fn spread(mut values: Vec<f64>) -> Option<[f64; 3]> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
    Some([median, values[0], values[n - 1]])
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

impl Machine {
    fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu =
            cpuinfo.lines().find_map(|line| line.strip_prefix("model name")?.split_once(':')).map(|(_, name)| name);
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, usize::from),
            cpu: cpu.unwrap_or("unknown CPU").trim().to_owned(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned(),
            peers: vec![
                name_and_version(first_line(Command::new("haproxy").arg("-v"))),
                name_and_version(first_line(Command::new("sslh").arg("-V"))),
                name_and_version(first_line(Command::new("iperf3").arg("--version"))),
                name_and_version(first_line(Command::new("wrk").arg("-v"))),
            ],
        }
    }
}

pub fn rounds(n: u32) -> String {
    if n == 1 { "1 round".to_owned() } else { format!("{n} rounds") }
}

/// The first line a command prints (on stdout or stderr), whatever its exit code.
fn first_line(command: &mut Command) -> String {
    let output = command.output().map(|o| [o.stdout, o.stderr].concat()).unwrap_or_default();
    String::from_utf8_lossy(&output).lines().next().unwrap_or("?").trim().to_owned()
}

/// "HAProxy version 2.6.12-1 2026/10/17 - https://…" → "HAProxy 2.6.12-1".
fn name_and_version(line: String) -> String {
    line.split_whitespace().filter(|word| *word != "version").take(2).collect::<Vec<_>>().join(" ")
}

/// For each system with errors: how many each tool met, over all rounds
/// ("sslh-select: connrate 830, wrk-close 3575").
pub fn error_notes(summary: &[SystemSummary], samples: &[Sample]) -> Vec<String> {
    let mut notes = Vec::new();
    for system in summary.iter().filter(|s| s.errors + s.misroutes > 0) {
        let mut by_tool: BTreeMap<&str, [u64; 2]> = BTreeMap::new();
        for sample in samples.iter().filter(|s| s.system == system.system) {
            for (tool, [errors, misroutes]) in &sample.by_tool {
                let entry = by_tool.entry(tool).or_default();
                entry[0] += errors;
                entry[1] += misroutes;
            }
        }
        let counts: Vec<String> = by_tool
            .iter()
            .filter(|(_, [errors, misroutes])| errors + misroutes > 0)
            .map(|(tool, [errors, misroutes])| match misroutes {
                0 => format!("{tool} {errors}"),
                _ => format!("{tool} {errors} (+{misroutes} misrouted)"),
            })
            .collect();
        notes.push(format!("{}: {}", system.system, counts.join(", ")));
    }
    notes
}

/// Each distinct problem once, without its round: a peer failing the same
/// way every round is one note.
pub fn distinct_problems(samples: &[Sample]) -> Vec<String> {
    let mut problems: Vec<String> = Vec::new();
    for problem in samples.iter().flat_map(|s| &s.problems) {
        let without_round = problem
            .split_once(' ')
            .and_then(|(_, rest)| rest.split_once(' '))
            .map_or(problem.as_str(), |(_, rest)| rest);
        if !problems.iter().any(|p| p == without_round) {
            problems.push(without_round.to_owned());
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(system: &str, round: u32, conns: f64, p50: f64) -> Sample {
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
    fn numbers_read_well() {
        assert_eq!(number(42856.7, false), "42857");
        assert_eq!(number(12.345, true), "+12.3");
        assert_eq!(number(-0.5, true), "-0.50");
    }
}
