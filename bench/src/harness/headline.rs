//! The headline: the targets serve2 is judged on, each a ratio of two
//! systems measured in the same rounds (per round, then the median), with
//! the per-round figures, the target and whether the median meets it; the
//! syscall target from the strace phase; and a warning row for every
//! logging row whose log file came up short.

use serde::Serialize;

use crate::sample::Sample;
use crate::stats::{median, number, paired, ratios};
use crate::syscalls::Profile;

/// Which way a ratio must go.
#[derive(Debug, Clone, Copy, Serialize)]
pub enum Rule {
    AtLeast(f64),
    AtMost(f64),
}

impl Rule {
    pub fn holds(self, ratio: f64) -> bool {
        match self {
            Rule::AtLeast(bound) => ratio >= bound,
            Rule::AtMost(bound) => ratio <= bound,
        }
    }

    pub fn text(self) -> String {
        match self {
            Rule::AtLeast(bound) => format!("≥ {bound:.2}×"),
            Rule::AtMost(bound) => format!("≤ {bound:.2}×"),
        }
    }
}

#[derive(Debug)]
pub struct Target {
    /// A UDP target (`headline_udp`): its own table.
    pub udp: bool,
    pub what: &'static str,
    pub system: &'static str,
    pub peer: &'static str,
    pub value: fn(&Sample) -> Option<f64>,
    pub rule: Rule,
}

pub const fn target(
    what: &'static str,
    system: &'static str,
    peer: &'static str,
    value: fn(&Sample) -> Option<f64>,
    rule: Rule,
) -> Target {
    Target { udp: false, what, system, peer, value, rule }
}

/// The targets, headline first: the short-connection workload with both
/// proxies logging as deployed.
pub const TARGETS: [Target; 11] = [
    target("new conns/s, both logging", "serve2-logging", "haproxy-logging", |s| s.conns_per_sec, Rule::AtLeast(1.15)),
    target(
        "p99 first reply at 16 clients, both logging",
        "serve2-logging",
        "haproxy-logging",
        |s| s.load_ttfr_p99_us,
        Rule::AtMost(1.0),
    ),
    target("new conns/s, both silent", "serve2", "haproxy", |s| s.conns_per_sec, Rule::AtLeast(1.05)),
    target(
        "p99 first reply at 16 clients, both silent",
        "serve2",
        "haproxy",
        |s| s.load_ttfr_p99_us,
        Rule::AtMost(1.0),
    ),
    // What the log line costs: the rate, and the proxy's own CPU per
    // connection (steadier than rates on shared cores).
    target("logging cost, new conns/s", "serve2-logging", "serve2", |s| s.conns_per_sec, Rule::AtLeast(0.95)),
    target("logging cost, CPU per connection", "serve2-logging", "serve2", |s| s.cpu_us_per_conn, Rule::AtMost(1.05)),
    target("bulk up", "serve2", "haproxy", |s| s.bulk_up_gbps, Rule::AtLeast(1.3)),
    target("bulk down", "serve2", "haproxy", |s| s.bulk_down_gbps, Rule::AtLeast(1.3)),
    target("CPU per GB", "serve2", "haproxy", |s| s.cpu_s_per_gb, Rule::AtMost(0.5)),
    target(
        "new conns/s, kernel-direct port",
        "serve2-kernel-direct",
        "direct",
        |s| s.conns_per_sec,
        Rule::AtLeast(0.95),
    ),
    // Ratio to direct ≥ 0.95 read as speed: at most direct's time ÷ 0.95.
    target(
        "p99 first reply at 16 clients, kernel-direct port",
        "serve2-kernel-direct",
        "direct",
        |s| s.load_ttfr_p99_us,
        Rule::AtMost(1.0 / 0.95),
    ),
];

/// Most syscalls per short proxied connection for serve2 (logging).
pub const SYSCALLS_PER_CONNECTION: f64 = 18.0;
/// The profiles the syscall target compares.
const SYSCALL_SYSTEM: &str = "serve2-logging";
const SYSCALL_PEER: &str = "haproxy-logging";

/// One target over the run.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub udp: bool,
    pub what: &'static str,
    pub system: &'static str,
    pub peer: &'static str,
    pub rule: Rule,
    /// (round, system, peer) in every round that measured both.
    pub rounds: Vec<(u32, f64, f64)>,
    pub system_median: f64,
    pub peer_median: f64,
    pub ratio_median: f64,
    pub met: bool,
}

/// Every target whose two systems were measured in some round.
pub fn verdicts(samples: &[Sample]) -> Vec<Verdict> {
    TARGETS
        .iter()
        .chain(&crate::headline_udp::UDP_TARGETS)
        .filter_map(|t| {
            let rounds = paired(samples, t.system, t.peer, t.value);
            let ratio_median = median(ratios(&rounds))?;
            Some(Verdict {
                udp: t.udp,
                what: t.what,
                system: t.system,
                peer: t.peer,
                rule: t.rule,
                system_median: median(rounds.iter().map(|r| r.1).collect())?,
                peer_median: median(rounds.iter().map(|r| r.2).collect())?,
                ratio_median,
                met: t.rule.holds(ratio_median),
                rounds,
            })
        })
        .collect()
}

/// The headline table (markdown), with the rows that warn below it: a
/// logging row whose file has fewer connection lines than connections did
/// not log as its row claims (HAProxy's `log stdout` drops a line when its
/// threads collide on the descriptor; serve2d's queue drops when full).
pub fn table(verdicts: &[Verdict], profiles: &[Profile], samples: &[Sample], rounds: u32) -> String {
    let mut table = String::from(HEADER);
    for v in verdicts.iter().filter(|v| !v.udp) {
        table.push_str(&verdict_row(v));
    }
    let profile = |name: &str| profiles.iter().find(|p| p.system == name && p.problem.is_none());
    if let Some(serve2) = profile(SYSCALL_SYSTEM) {
        let peer = profile(SYSCALL_PEER).map_or_else(|| "—".to_owned(), |p| format!("{:.1}", p.per_connection));
        let met = serve2.per_connection <= SYSCALLS_PER_CONNECTION;
        table.push_str(&format!(
            "| syscalls per short connection (strace, untimed): {SYSCALL_SYSTEM} ≤ {SYSCALLS_PER_CONNECTION:.0} | {:.1} | {peer} ({SYSCALL_PEER}) | {} connections traced | — | {} |\n",
            serve2.per_connection,
            serve2.connections,
            if met { "yes" } else { "**no**" }
        ));
    }
    for warning in log_warnings(samples, profiles) {
        table.push_str(&format!("| ⚠ {warning} | | | | | lines missing |\n"));
    }
    if rounds < 3 {
        table.push_str(&format!(
            "\n{}: the targets are judged on medians of at least 3; these are indicative.\n",
            crate::stats::rounds(rounds)
        ));
    }
    table
}

/// The headline tables' first two lines.
pub const HEADER: &str = "| target | serve2 side (median) | compared with (median) | per round: serve2 side / other = ratio | median ratio | met? |\n\
                          |---|---:|---:|---|---:|---|\n";

/// A verdict as a row of the headline tables.
pub fn verdict_row(v: &Verdict) -> String {
    let per_round: Vec<String> = v
        .rounds
        .iter()
        .map(|&(round, value, peer)| {
            let ratio = if peer == 0.0 { "—".to_owned() } else { format!("{:.2}", value / peer) };
            format!("{}: {} / {} = {ratio}", round + 1, number(value, false), number(peer, false))
        })
        .collect();
    format!(
        "| {}: {} {} {} | {} | {} | {} | **{:.2}** | {} |\n",
        v.what,
        v.system,
        v.rule.text(),
        v.peer,
        number(v.system_median, false),
        number(v.peer_median, false),
        per_round.join("; "),
        v.ratio_median,
        if v.met { "yes" } else { "**no**" }
    )
}

/// One line per logging row: lines counted against connections made.
pub fn log_summary(samples: &[Sample]) -> Option<String> {
    let mut systems: Vec<&str> = Vec::new();
    for sample in samples.iter().filter(|s| s.log_lines.is_some()) {
        if !systems.contains(&sample.system.as_str()) {
            systems.push(&sample.system);
        }
    }
    if systems.is_empty() {
        return None;
    }
    let parts: Vec<String> = systems
        .iter()
        .map(|system| {
            let own = samples.iter().filter(|s| s.system == *system);
            let (lines, made) =
                own.fold((0, 0), |(l, m), s| (l + s.log_lines.unwrap_or(0), m + s.logged_connections.unwrap_or(0)));
            format!("{system} {lines} lines for {made} connections")
        })
        .collect();
    Some(format!(
        "Log files checked (connection lines written during the connection-rate and latency runs, all rounds): {}.",
        parts.join(", ")
    ))
}

/// Every (round, system) — and syscall profile — that logged fewer
/// connection lines than it completed connections.
fn log_warnings(samples: &[Sample], profiles: &[Profile]) -> Vec<String> {
    let mut warnings: Vec<String> = samples
        .iter()
        .filter(|s| s.log_short() == Some(true))
        .map(|s| {
            format!(
                "{} round {}: {} connection lines logged for {} connections",
                s.system,
                s.round + 1,
                s.log_lines.unwrap_or(0),
                s.logged_connections.unwrap_or(0)
            )
        })
        .collect();
    for profile in profiles {
        if let Some(lines) = profile.log_lines.filter(|&lines| lines < profile.connections) {
            warnings.push(format!(
                "{} under strace: {lines} connection lines logged for {} connections",
                profile.system, profile.connections
            ));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(system: &str, round: u32, conns: f64) -> Sample {
        Sample { system: system.into(), round, conns_per_sec: Some(conns), ..Sample::default() }
    }

    #[test]
    fn a_target_is_judged_on_the_median_of_per_round_ratios() {
        let samples = vec![
            sample("serve2-logging", 0, 120.0),
            sample("haproxy-logging", 0, 100.0),
            sample("serve2-logging", 1, 100.0),
            sample("haproxy-logging", 1, 100.0),
            sample("serve2-logging", 2, 240.0),
            sample("haproxy-logging", 2, 200.0),
        ];
        let verdicts = verdicts(&samples);
        // Only the logging pair's connection rate was measured.
        assert_eq!(verdicts.len(), 1);
        let v = &verdicts[0];
        assert_eq!((v.system, v.peer), ("serve2-logging", "haproxy-logging"));
        assert_eq!(v.rounds.len(), 3);
        assert!((v.ratio_median - 1.2).abs() < 1e-9); // 1.2, 1.0, 1.2
        assert!(v.met);
        assert_eq!((v.system_median, v.peer_median), (120.0, 100.0));
        let table = table(&verdicts, &[], &samples, 3);
        assert!(table.contains("1: 120 / 100 = 1.20; 2: 100 / 100 = 1.00; 3: 240 / 200 = 1.20"), "{table}");
        assert!(table.contains("| **1.20** | yes |"), "{table}");
    }

    #[test]
    fn a_short_log_is_a_warning_row() {
        let mut short = sample("serve2-logging", 0, 100.0);
        short.log_lines = Some(10);
        short.logged_connections = Some(500);
        let mut full = sample("haproxy-logging", 0, 100.0);
        full.log_lines = Some(500);
        full.logged_connections = Some(500);
        let samples = vec![short, full];
        let table = table(&verdicts(&samples), &[], &samples, 1);
        assert!(
            table.contains("| ⚠ serve2-logging round 1: 10 connection lines logged for 500 connections |"),
            "{table}"
        );
        assert!(!table.contains("⚠ haproxy-logging"), "{table}");
        assert!(table.contains("1 round: the targets are judged on medians of at least 3"), "{table}");
        let summary = log_summary(&samples).unwrap();
        assert!(
            summary.contains("serve2-logging 10 lines for 500 connections, haproxy-logging 500 lines"),
            "{summary}"
        );
    }

    #[test]
    fn the_syscall_target_reads_the_profiles() {
        let profile = |system: &str, per_connection: f64| Profile {
            system: system.into(),
            connections: 2000,
            per_connection,
            ..Profile::default()
        };
        let table = table(&[], &[profile("serve2-logging", 17.5), profile("haproxy-logging", 21.0)], &[], 3);
        assert!(table.contains("| 17.5 | 21.0 (haproxy-logging) | 2000 connections traced | — | yes |"), "{table}");
        let table = table_with_serve2(19.0);
        assert!(table.contains("| **no** |"), "{table}");
    }

    fn table_with_serve2(per_connection: f64) -> String {
        let profile =
            Profile { system: "serve2-logging".into(), connections: 10, per_connection, ..Profile::default() };
        table(&[], &[profile], &[], 3)
    }
}
