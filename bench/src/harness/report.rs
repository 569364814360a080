//! The run's results: figures per system, the headline verdicts, the
//! syscall profiles and every sample, written as results.json, report.md
//! and ratios.svg; the same markdown sections go to the docs page.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

use crate::headline::{self, Verdict};
use crate::headline_udp;
use crate::plan::Plan;
use crate::sample::Sample;
use crate::stats::{METRICS, SystemSummary, UDP_METRICS, rounds, summarise};
use crate::syscalls::{self, Profile};
use crate::table::{self, distinct_problems, error_notes};

#[derive(Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub kernel: String,
    /// The load average when the run ended (1, 5, 15 minutes): the machine
    /// may be shared.
    pub load_average: String,
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
    /// Flows held for the UDP idle cost, when UDP was measured.
    pub udp_held: Option<usize>,
    /// Most new flows per burst, when UDP was measured.
    pub udp_max_flows: Option<usize>,
    pub summary: Vec<SystemSummary>,
    pub headline: Vec<Verdict>,
    pub syscalls: Vec<Profile>,
    pub samples: Vec<Sample>,
}

impl Results {
    pub fn new(plan: &Plan, samples: Vec<Sample>, syscalls: Vec<Profile>) -> Self {
        let summary = plan.systems.iter().map(|system| summarise(system.name(), &samples)).collect();
        Results {
            date: first_line(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
            machine: Machine::describe(),
            rounds: plan.rounds,
            seconds: plan.seconds,
            held: plan.held,
            latency_count: plan.latency_count,
            udp_held: plan.udp.then_some(plan.udp_held),
            udp_max_flows: plan.udp.then_some(plan.udp_max_flows),
            summary,
            headline: headline::verdicts(&samples),
            syscalls,
            samples,
        }
    }

    /// Writes results.json, report.md and ratios.svg into `out`; returns the
    /// markdown sections (headline, syscalls, every metric).
    pub fn write(&self, out: &Path) -> anyhow::Result<String> {
        std::fs::create_dir_all(out)?;
        std::fs::write(out.join("results.json"), serde_json::to_string_pretty(self)?)?;
        let sections = self.sections();
        let mut report = format!("# serve2 benchmark\n\n{}\n\n{sections}\n{}", self.conditions(), table::LEGEND);
        let notes = error_notes(&self.summary, &self.samples);
        if !notes.is_empty() {
            report.push_str("\n## Errors by tool\n\n");
            for note in notes {
                report.push_str(&format!("- {note}\n"));
            }
        }
        let problems = self.problems();
        if !problems.is_empty() {
            report.push_str("\n## Problems\n\n");
            for problem in problems {
                report.push_str(&format!("- {problem}\n"));
            }
        }
        std::fs::write(out.join("report.md"), report)?;
        std::fs::write(out.join("ratios.svg"), crate::svg::ratios(self))?;
        Ok(sections)
    }

    /// The headline table, the syscall table and the table of every metric,
    /// then the UDP headline and table: each kind when it was measured.
    pub fn sections(&self) -> String {
        let mut text = self.tcp_sections().unwrap_or_default();
        if let Some(udp) = self.udp_sections() {
            text.push('\n');
            text.push_str(&udp);
        }
        text
    }

    /// The UDP headline and the table of every UDP metric, if UDP was measured.
    pub fn udp_sections(&self) -> Option<String> {
        let udp = headline_udp::table(&self.headline, self.rounds)?;
        let mut text = String::from("### Headline: UDP flows, both proxies as deployed\n\n");
        text.push_str(&self.udp_legend());
        text.push('\n');
        text.push_str(&udp);
        if let Some(table) = table::table(self, &UDP_METRICS) {
            text.push_str("\n### Every UDP metric\n\n");
            text.push_str(&table);
        }
        Some(text)
    }

    /// What the UDP workloads are, with this run's counts.
    fn udp_legend(&self) -> String {
        use crate::measure_udp::{FLOW_BURSTS, FLOW_CLIENTS, LARGE, SMALL, WINDOW};
        format!(
            "Through an echo origin (one thread, `recvmmsg`/`sendmmsg`), from serve2-load on plain threads: \
             **round trips/s** — one flow keeps {WINDOW} datagrams of {SMALL} bytes in flight and answers every echo \
             at once with a new datagram (a round trip is one datagram each way through the proxy); **MB/s** — the \
             same with {LARGE}-byte (QUIC-sized) datagrams, payload bytes echoed per second; **new flows/s** — \
             {FLOW_CLIENTS} clients, each flow from a new source port sending one 148-byte datagram (a WireGuard \
             initiation's shape) and waiting for its echo, in {FLOW_BURSTS} bursts of at most {} flows (one \
             descriptor each in the proxy, under the descriptor limit and serve2's default `maxFlows`), each on a \
             fresh start; **idle** — the proxy's memory (Pss) and descriptors per flow while {} flows, each echoed \
             once, sit idle. Flows come from 127.A.B.1 sources, 500 per /24 (under the default \
             `maxFlowsPerSource`). serve2d: `udpAddress` with `udp.forward` (`serve2-udp`) or `udp.protocols` \
             quic then wireguard (`serve2-udp-detect`), default settings, a line per flow to `logFile`. nginx \
             stream module: Debian's `worker_processes auto`, `listen … udp reuseport`, stream defaults, \
             `access_log` per session.\n",
            self.udp_max_flows.unwrap_or(0),
            self.udp_held.unwrap_or(0),
        )
    }

    /// The TCP headline, syscall and metric tables, if TCP was measured.
    pub fn tcp_sections(&self) -> Option<String> {
        let every_metric = table::table(self, &METRICS)?;
        let mut text = String::from("### Headline: short connections, both proxies as deployed\n\n");
        text.push_str(HEADLINE_LEGEND);
        text.push('\n');
        text.push_str(&headline::table(&self.headline, &self.syscalls, &self.samples, self.rounds));
        if let Some(summary) = headline::log_summary(&self.samples) {
            text.push_str(&format!("\n{summary}\n"));
        }
        if let Some(table) = syscalls::table(&self.syscalls) {
            text.push_str("\n### Syscalls per short proxied connection\n\n");
            text.push_str(&format!(
                "strace -c -f on the running proxy (every thread, background ones — serve2d's log writer, \
                 HAProxy's second thread — included), logging as deployed, while {} connections of the \
                 headline workload went through it after {} of warm-up; untimed (strace slows the process \
                 several times over). Syscalls under {} per connection are left out of the rows, not the total.\n\n",
                self.syscalls.iter().map(|p| p.connections).max().unwrap_or(0),
                syscalls::WARM_UP,
                syscalls::SHOWN_FROM
            ));
            text.push_str(&table);
        }
        text.push_str("\n### Every metric\n\n");
        text.push_str(&every_metric);
        Some(text)
    }

    /// Every problem met, samples' and syscall profiles', each once.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = distinct_problems(&self.samples);
        for profile in &self.syscalls {
            if let Some(problem) = &profile.problem {
                problems.push(format!("{} syscalls: {problem}", profile.system));
            }
        }
        problems
    }

    /// One line: when, on what, how long.
    pub fn conditions(&self) -> String {
        let m = &self.machine;
        let udp = self.udp_held.map_or_else(String::new, |held| format!(", {held} held UDP flows"));
        format!(
            "{}: {} cores ({}), Linux {}, load average {} at the end; {} × {} s per timed metric, {} held \
             connections, {} latency samples{udp}; {}.",
            self.date,
            m.nproc,
            m.cpu,
            m.kernel,
            m.load_average,
            rounds(self.rounds),
            self.seconds,
            self.held,
            self.latency_count,
            m.peers.join(", ")
        )
    }
}

const HEADLINE_LEGEND: &str =
    "16 clients each connect, send an SSH banner, read the origin's reply and close, through \
a single-threaded origin, for the connection-rate run's length; first reply: from just before connect() to the first \
reply byte, in that run. The `-logging` rows log every connection to a file as deployed (serve2d: default settings, \
`logFile`; HAProxy: `option tcplog`, `log stdout format raw` into a file). Ratios are taken per round (same round, \
same conditions), then the median; \"met?\" judges the median.
";

impl Machine {
    fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu =
            cpuinfo.lines().find_map(|line| line.strip_prefix("model name")?.split_once(':')).map(|(_, name)| name);
        let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, usize::from),
            cpu: cpu.unwrap_or("unknown CPU").trim().to_owned(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned(),
            load_average: loadavg.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
            peers: vec![
                name_and_version(first_line(Command::new("haproxy").arg("-v"))),
                name_and_version(first_line(Command::new("sslh").arg("-V"))),
                // "nginx version: nginx/1.22.1"
                first_line(Command::new("nginx").arg("-v")).replace("nginx version: nginx/", "nginx "),
                name_and_version(first_line(Command::new("iperf3").arg("--version"))),
                name_and_version(first_line(Command::new("wrk").arg("-v"))),
                name_and_version(first_line(Command::new("strace").arg("-V"))),
            ],
        }
    }
}

/// The first line a command prints (on stdout or stderr), whatever its exit code.
fn first_line(command: &mut Command) -> String {
    let output = command.output().map(|o| [o.stdout, o.stderr].concat()).unwrap_or_default();
    String::from_utf8_lossy(&output).lines().next().unwrap_or("?").trim().to_owned()
}

/// "HAProxy version 2.6.12-1 2026/10/17 - https://…" → "HAProxy 2.6.12-1";
/// "strace -- version 6.1" → "strace 6.1".
fn name_and_version(line: String) -> String {
    line.split_whitespace().filter(|word| !matches!(*word, "version" | "--")).take(2).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_short() {
        assert_eq!(
            name_and_version("HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/".into()),
            "HAProxy 2.6.12-1+deb12u4"
        );
        assert_eq!(name_and_version("strace -- version 6.1".into()), "strace 6.1");
    }
}
