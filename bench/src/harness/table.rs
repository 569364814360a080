//! The table of every metric: rows = systems, columns = metrics, each cell
//! the median over rounds with its spread and the comparison with `direct`;
//! and the notes on errors below it.

use std::collections::BTreeMap;

use crate::report::Results;
use crate::sample::Sample;
use crate::stats::{Compare, Metric, Stat, SystemSummary, number};

/// Rows = systems, columns = metrics: median (min–max when several
/// rounds) and ×ratio to direct, or what the system adds to direct. Only
/// the systems measured on some of `metrics` have a row; `None` when none is.
pub fn table(results: &Results, metrics: &[Metric]) -> Option<String> {
    let measured = |summary: &&SystemSummary| metrics.iter().any(|m| summary.metrics.contains_key(m.key));
    let rows: Vec<&SystemSummary> = results.summary.iter().filter(measured).collect();
    if rows.is_empty() {
        return None;
    }
    let mut table = String::from("| system |");
    let mut rule = String::from("|---|");
    for metric in metrics {
        table.push_str(&format!(" {} |", metric.title));
        rule.push_str("---:|");
    }
    table.push_str(" errors |\n");
    table.push_str(&rule);
    table.push_str("---:|\n");
    for summary in rows {
        table.push_str(&format!("| {} |", summary.system));
        let is_direct = summary.system == "direct";
        for metric in metrics {
            let cell = summary
                .metrics
                .get(metric.key)
                .map_or_else(|| "—".to_owned(), |stat| cell(results.rounds, stat, metric, is_direct));
            table.push_str(&format!(" {cell} |"));
        }
        let errors = match summary.misroutes {
            0 => summary.errors.to_string(),
            misroutes => format!("{} ({misroutes} misrouted)", summary.errors + misroutes),
        };
        table.push_str(&format!(" {errors} |\n"));
    }
    Some(table)
}

fn cell(rounds: u32, stat: &Stat, metric: &Metric, is_direct: bool) -> String {
    let spread = |min: f64, max: f64, signed: bool| {
        if rounds > 1 { format!(" ({}–{})", number(min, signed), number(max, signed)) } else { String::new() }
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

pub const LEGEND: &str = "
Medians over rounds, (min–max) when there are several, ×ratio to `direct` (computed per round,
then median'ed). TTFR: time from connect() to the first reply byte of an SSH banner exchange, at
16 clients (in the connection-rate run) or one connection at a time; \"added\" is the system's
minus direct's in the same round (direct shows its own as \"base\"). A `—`: not measured (the
kernel-direct row has the connection metrics only).
Idle: the proxy's memory (Pss, all its processes) and descriptors per held connection. CPU s/GB:
the proxy's CPU time (all its processes) per 10⁹ bytes of the two bulk transfers. Errors: failed
connections, requests and tool runs over all rounds (misrouted: reached the wrong origin).
";

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

    #[test]
    fn a_problem_met_every_round_is_noted_once() {
        let problem = |round: u32| Sample {
            system: "sslh-select".into(),
            round,
            problems: vec![format!("round {} sslh-select: hold: the proxy exited", round + 1)],
            ..Sample::default()
        };
        assert_eq!(distinct_problems(&[problem(0), problem(1)]), ["sslh-select: hold: the proxy exited"]);
    }
}
