//! docs/PERFORMANCE.md: the generated section between the markers is
//! replaced by the latest results; everything around it is left as written
//! (a new page starts from the template below).

use std::path::Path;

use anyhow::Context;

use crate::report::Results;
use crate::table::error_notes;

const BEGIN: &str = "<!-- bench:begin -->";
const END: &str = "<!-- bench:end -->";

const INTRO: &str = "# Performance

What serve2d costs in front of a backend, next to the other ways of sharing
one port between protocols: HAProxy (TCP mode, content inspection) and sslh
(its forking and its select() variants). Every system routes the same
traffic to the same origins — an SSH banner to a banner server, HTTP to a
small HTTP server, anything else (iperf3) to iperf3 — on the same machine, in
a network namespace of its own, one system at a time and in turn within each
round. `direct` is the load going straight to the origins: the ratios and the
added latencies are against it, in the same round. The headline compares
serve2d and HAProxy as deployed, each logging every connection to a file.

";

/// Written once, with the page: what to know when reading the peers' rows.
const OUTRO: &str = "
## Reading the tables

- The `-logging` rows log every connection to a file in the run's work
  folder, as deployed: serve2d with default settings and `logFile` (its
  summary line at `info`, written by its log thread); HAProxy with
  `option tcplog` and `log stdout format raw local0`, its standard output
  being that file (HAProxy writes each line itself when the connection ends;
  no syslog daemon runs whose cost would land on neither side). The harness
  counts the connection lines written during the connection-rate and
  latency runs and warns when they are fewer than the connections made.
  HAProxy's descriptor logging gives a line up rather than wait when its two
  threads collide on the descriptor (200 tries of its lock, then the line is
  dropped: `fd_write_frag_line` in its `src/fd.c`; its `show info` counts
  them as `DroppedLogs`), so under load a few of its lines in 10 000 can be
  missing; that is its behaviour as deployed.
- The other rows run with per-connection logging off: serve2d with
  `RUST_LOG=warn`, sslh from a configuration file with `log_level: 0` (its
  command line cannot turn the log line off), HAProxy without a `log` line.
- The syscall counts come from `strace -c -f` attached to the running proxy:
  every thread is counted, background ones included (serve2d's log writer
  and, with steering, its heartbeat; HAProxy's second thread).
- `serve2-kernel-direct` steers one port whose policy forwards every
  connection to the banner origin without detection; it is measured on the
  connection metrics only, against `direct`.
- CPU µs/conn is the proxy's CPU time over the connection-rate run divided
  by the connections it completed: steadier than the rate on cores shared
  with the clients and the origin, it is what the logging-cost targets also
  compare (serve2-logging against serve2).
- CPU comes from a cgroup v2 per proxy (`cpu.stat`), which keeps the time of
  processes that already exited (sslh-fork's per-connection children);
  without cgroup v2, from /proc (live processes and the children they reaped).
- HAProxy's `maxconn` is 20000 or, when the descriptor limit is lower than
  twice that, half the limit less a few: HAProxy 2.6 refuses to start with a
  `maxconn` it has no descriptors for. Splicing is off (its default).
- sslh-fork forks a process per connection: its idle descriptors include each
  child's standard input, output and error.
- sslh-select 1.20 watches its sockets with select(): past FD_SETSIZE (1024
  descriptors, about 500 connections) glibc aborts it (\"bit out of range 0 -
  FD_SETSIZE on fd_set\"), so it has no idle figures with 5000 held
  connections. With several clients connecting and closing at once it also
  sends some connections to its last protocol (a probe read that fails means
  \"connect to the last protocol\" in sslh), here iperf3: those are the errors
  in its connection-rate and HTTP close runs. One client at a time meets none.

## How to reproduce

As root on Debian (it installs HAProxy, sslh, iperf3, wrk and strace if missing):

```sh
cargo xtask bench                          # 3 rounds × 5 s per timed metric, 5000 held connections
cargo xtask bench --quick                  # 1 round × 2 s, 500 held connections: checks the harness
cargo xtask bench --only serve2-logging,haproxy-logging,serve2,haproxy   # the headline (direct is always measured)
```

Raw per-round numbers: `target/bench/results.json`; the report and a chart of
the ratios: `target/bench/report.md`, `target/bench/ratios.svg`. The harness
(`serve2-bench`), the load generator and the origins (`serve2-load`) are the
`bench/` crate.
";

pub fn update(path: &Path, results: &Results) -> anyhow::Result<()> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let text = page(existing.as_deref(), &section(results));
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The generated section, markers included.
fn section(results: &Results) -> String {
    let mut problems = String::new();
    for note in error_notes(&results.summary, &results.samples) {
        problems.push_str(&format!("- errors by tool, {note}\n"));
    }
    for problem in results.problems() {
        problems.push_str(&format!("- {problem}\n"));
    }
    if !problems.is_empty() {
        problems.insert_str(0, "Errors met:\n\n");
        problems.push('\n');
    }
    format!(
        "{BEGIN}\n\nMeasured {}\n\n{}\nCells: median over rounds, (min–max) with several rounds, ×ratio to \
         `direct` (per round, then median). TTFR: connect() to first reply byte, \"added\" over direct. Idle: \
         proxy memory (Pss) and descriptors per held connection. CPU: proxy CPU seconds per 10⁹ bytes moved.\n\n\
         {problems}{END}",
        results.conditions(),
        results.sections()
    )
}

/// `existing` with its generated section replaced by `section`, or a new
/// page from the template.
fn page(existing: Option<&str>, section: &str) -> String {
    match existing {
        Some(text) => match (text.find(BEGIN), text.find(END)) {
            (Some(begin), Some(end)) if begin < end => {
                format!("{}{section}{}", &text[..begin], &text[end + END.len()..])
            }
            // Markers lost: keep the page, append a fresh section.
            _ => format!("{}\n{section}\n", text.trim_end()),
        },
        None => format!("{INTRO}{section}\n{OUTRO}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECTION: &str = "<!-- bench:begin -->\nnew figures\n<!-- bench:end -->";

    #[test]
    fn the_hand_written_text_around_the_markers_survives() {
        let old =
            "# Performance\n\nintro\n\n<!-- bench:begin -->\nold figures\n<!-- bench:end -->\n\n## Notes\n\nkept\n";
        assert_eq!(
            page(Some(old), SECTION),
            "# Performance\n\nintro\n\n<!-- bench:begin -->\nnew figures\n<!-- bench:end -->\n\n## Notes\n\nkept\n"
        );
    }

    #[test]
    fn a_page_without_markers_gets_the_section_appended() {
        assert_eq!(page(Some("# Mine\n\ntext\n"), SECTION), format!("# Mine\n\ntext\n{SECTION}\n"));
    }

    #[test]
    fn a_new_page_starts_from_the_template() {
        let page = page(None, SECTION);
        assert!(page.starts_with("# Performance\n") && page.contains(SECTION) && page.contains("## How to reproduce"));
    }
}
