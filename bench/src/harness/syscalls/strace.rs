//! Reading `strace -c`'s summary table: calls per syscall, and the total.

use std::collections::BTreeMap;

use anyhow::{Context, bail};

/// What one `strace -c -f` run counted, every traced thread together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls per syscall name.
    pub calls: BTreeMap<String, u64>,
    /// strace's own total row.
    pub total: u64,
}

/// Parses the table strace writes with `-c` (`-o FILE` or stderr):
///
/// ```text
/// % time     seconds  usecs/call     calls    errors syscall
/// ------ ----------- ----------- --------- --------- ----------------
///  45.04    0.001377           9       152           mmap
///  11.25    0.000344           4        69        19 openat
/// ------ ----------- ----------- --------- --------- ----------------
/// 100.00    0.003057           6       494        26 total
/// ```
///
/// The errors column is blank for syscalls that never failed, so the calls
/// are the fourth field and the name the last. Lines that are not table
/// rows (strace's own messages) are skipped.
pub fn parse_summary(text: &str) -> anyhow::Result<Counts> {
    let mut counts = Counts::default();
    let mut total = None;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // A row starts with the share of time, a number.
        if fields.len() < 5 || fields[0].parse::<f64>().is_err() {
            continue;
        }
        let name = fields[fields.len() - 1];
        let calls: u64 = fields[3].parse().with_context(|| format!("strace summary row {line:?}"))?;
        if name == "total" {
            total = Some(calls);
        } else {
            *counts.calls.entry(name.to_owned()).or_default() += calls;
        }
    }
    let Some(total) = total else { bail!("no total row in strace's summary:\n{text}") };
    let summed: u64 = counts.calls.values().sum();
    if summed != total {
        bail!("strace's rows add up to {summed} calls, its total says {total}");
    }
    counts.total = total;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    // `strace -c -f -o FILE -p PID` on each proxy (logging, as deployed)
    // while 2000 connections went through it, in a bench run.
    const SERVE2: &str = include_str!("fixtures/strace-serve2-logging.txt");
    const HAPROXY: &str = include_str!("fixtures/strace-haproxy-logging.txt");

    #[test]
    fn reads_real_summaries() {
        let serve2 = parse_summary(SERVE2).unwrap();
        assert_eq!(serve2.total, 52374);
        assert_eq!((serve2.calls["accept4"], serve2.calls["sched_yield"], serve2.calls.len()), (2701, 4460, 16));
        let haproxy = parse_summary(HAPROXY).unwrap();
        assert_eq!(haproxy.total, 41992);
        assert_eq!((haproxy.calls["writev"], haproxy.calls["recvfrom"]), (2000, 8006));
    }

    #[test]
    fn blank_error_columns_and_error_counts_alike() {
        let text = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 45.04    0.001377           9       152           mmap
 11.25    0.000344           4        69        19 openat
------ ----------- ----------- --------- --------- ----------------
100.00    0.001721           7       221        19 total
";
        let counts = parse_summary(text).unwrap();
        assert_eq!(counts.total, 221);
        assert_eq!(counts.calls["mmap"], 152);
        assert_eq!(counts.calls["openat"], 69);
    }

    #[test]
    fn a_table_without_its_total_or_with_a_wrong_one_is_refused() {
        assert!(parse_summary("strace: Process 12 attached\n").is_err());
        let wrong = " 50.00 0.1 1 10 mmap\n100.00 0.2 1 11 total\n";
        assert!(parse_summary(wrong).unwrap_err().to_string().contains("add up to 10"));
    }
}
