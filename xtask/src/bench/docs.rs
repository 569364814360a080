//! docs/PERFORMANCE.md: the generated section between the markers is
//! replaced by the latest results; everything around it is left as written.

use std::path::Path;

use anyhow::Context;

use super::report::{Results, distinct_problems, error_notes};

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
added latencies are against it, in the same round.

";

/// Written once, with the page: what to know when reading the peers' rows.
const OUTRO: &str = "
## Reading the table

- Each proxy runs with its own per-connection logging off: serve2d with
  `RUST_LOG=warn`, sslh from a configuration file with `log_level: 0` (its
  command line cannot turn the log line off), HAProxy without a `log` line.
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

As root on Debian (it installs HAProxy, sslh, iperf3 and wrk if missing):

```sh
cargo xtask bench                          # 3 rounds × 5 s per timed metric, 5000 held connections
cargo xtask bench --quick                  # 1 round × 2 s, 500 held connections: checks the harness
cargo xtask bench --only serve2,haproxy    # some systems (direct is always measured)
```

Raw per-round numbers: `target/bench/results.json`; the report and a chart of
the ratios: `target/bench/report.md`, `target/bench/ratios.svg`. The load
generator and origins are `serve2-load` (`bench/`).
";

pub fn update(path: &Path, results: &Results, table: &str) -> anyhow::Result<()> {
    let mut problems = String::new();
    for note in error_notes(&results.summary, &results.samples) {
        problems.push_str(&format!("- errors by tool, {note}\n"));
    }
    for problem in distinct_problems(&results.samples) {
        problems.push_str(&format!("- {problem}\n"));
    }
    if !problems.is_empty() {
        problems.insert_str(0, "Errors met:\n\n");
        problems.push('\n');
    }
    let section = format!(
        "{BEGIN}\n\nMeasured {}\n\n{table}\nCells: median over rounds, (min–max) with several rounds, ×ratio to \
         `direct` (per round, then median). TTFR: connect() to first reply byte, \"added\" over direct. Idle: \
         proxy memory (Pss) and descriptors per held connection. CPU: proxy CPU seconds per 10⁹ bytes moved.\n\n\
         {problems}{END}",
        results.conditions()
    );
    let text = match std::fs::read_to_string(path) {
        Ok(text) => match (text.find(BEGIN), text.find(END)) {
            (Some(begin), Some(end)) if begin < end => {
                format!("{}{section}{}", &text[..begin], &text[end + END.len()..])
            }
            // Markers lost: keep the page, append a fresh section.
            _ => format!("{}\n{section}\n", text.trim_end()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!("{INTRO}{section}\n{OUTRO}"),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
