//! docs/PERFORMANCE.md: the generated sections between the markers — TCP
//! (`bench:begin`/`bench:end`) and UDP (`bench:udp:begin`/`bench:udp:end`)
//! — are replaced by the latest results of the kinds a run measured (an
//! `--only udp` run leaves the TCP figures as they were); everything around
//! them is left as written (a new page starts from the template below).

use std::path::Path;

use anyhow::Context;

use crate::report::Results;
use crate::table::error_notes;

const BEGIN: &str = "<!-- bench:begin -->";
const END: &str = "<!-- bench:end -->";
const UDP_BEGIN: &str = "<!-- bench:udp:begin -->";
const UDP_END: &str = "<!-- bench:udp:end -->";

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
UDP flows have their own section: serve2d against nginx's stream module
(Debian 12's sslh 1.20 has no UDP), through a UDP echo origin.

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

As root on Debian (it installs HAProxy, sslh, iperf3, wrk, strace, nginx and
its stream module if missing):

```sh
cargo xtask bench                          # 3 rounds × 5 s per timed metric, 5000 held connections
cargo xtask bench --quick                  # 1 round × 2 s, 500 held connections: checks the harness
cargo xtask bench --only serve2-logging,haproxy-logging,serve2,haproxy   # the headline (direct is always measured)
cargo xtask bench --only udp               # the UDP rows only (serve2-udp, serve2-udp-detect, nginx-udp)
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
    let tcp = results.tcp_sections();
    // The errors go with the TCP figures when there are some, else the UDP ones.
    let udp = results.udp_sections().map(|udp| section(results, (UDP_BEGIN, UDP_END), &udp, tcp.is_none()));
    let tcp = tcp.map(|tcp| section(results, (BEGIN, END), &tcp, true));
    let mut text = existing.unwrap_or_else(new_page);
    if let Some(tcp) = tcp {
        text = page(&text, (BEGIN, END), &tcp, None);
    }
    if let Some(udp) = udp {
        text = page(&text, (UDP_BEGIN, UDP_END), &udp, Some(END));
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The template: the intro, both sections empty, the notes.
fn new_page() -> String {
    format!("{INTRO}{BEGIN}\n{END}\n\n{UDP_BEGIN}\n{UDP_END}\n{OUTRO}")
}

/// A generated section, markers included.
fn section(results: &Results, (begin, end): (&str, &str), tables: &str, with_errors: bool) -> String {
    let mut problems = String::new();
    if with_errors {
        for note in error_notes(&results.summary, &results.samples) {
            problems.push_str(&format!("- errors by tool, {note}\n"));
        }
        for problem in results.problems() {
            problems.push_str(&format!("- {problem}\n"));
        }
    }
    if !problems.is_empty() {
        problems.insert_str(0, "Errors met:\n\n");
        problems.push('\n');
    }
    format!(
        "{begin}\n\nMeasured {}\n\n{tables}\nCells: median over rounds, (min–max) with several rounds, ×ratio to \
         `direct` (per round, then median). TTFR: connect() to first reply byte, \"added\" over direct. Idle: \
         proxy memory (Pss) and descriptors per held connection or flow. CPU: proxy CPU seconds per 10⁹ bytes \
         moved.\n\n{problems}{end}",
        results.conditions(),
    )
}

/// `text` with the section between `begin` and `end` replaced by
/// `section`; without those markers, the section goes after `after` (a
/// marker) if the page has it, else at the end.
fn page(text: &str, (begin, end): (&str, &str), section: &str, after: Option<&str>) -> String {
    if let (Some(at), Some(until)) = (text.find(begin), text.find(end))
        && at < until
    {
        return format!("{}{section}{}", &text[..at], &text[until + end.len()..]);
    }
    match after.and_then(|marker| text.find(marker).map(|at| at + marker.len())) {
        Some(at) => format!("{}\n\n{section}{}", &text[..at], &text[at..]),
        // Markers lost: keep the page, append a fresh section.
        None => format!("{}\n{section}\n", text.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECTION: &str = "<!-- bench:begin -->\nnew figures\n<!-- bench:end -->";
    const UDP: &str = "<!-- bench:udp:begin -->\nnew udp\n<!-- bench:udp:end -->";
    const TCP_ONLY: (&str, &str) = (BEGIN, END);
    const UDP_ONLY: (&str, &str) = (UDP_BEGIN, UDP_END);

    #[test]
    fn the_hand_written_text_around_the_markers_survives() {
        let old =
            "# Performance\n\nintro\n\n<!-- bench:begin -->\nold figures\n<!-- bench:end -->\n\n## Notes\n\nkept\n";
        assert_eq!(
            page(old, TCP_ONLY, SECTION, None),
            "# Performance\n\nintro\n\n<!-- bench:begin -->\nnew figures\n<!-- bench:end -->\n\n## Notes\n\nkept\n"
        );
    }

    #[test]
    fn a_page_without_markers_gets_the_section_appended() {
        assert_eq!(page("# Mine\n\ntext\n", TCP_ONLY, SECTION, None), format!("# Mine\n\ntext\n{SECTION}\n"));
    }

    #[test]
    fn the_udp_section_goes_after_the_tcp_one_and_leaves_it_alone() {
        let old = "intro\n\n<!-- bench:begin -->\nold figures\n<!-- bench:end -->\n\n## Notes\n";
        let first = page(old, UDP_ONLY, UDP, Some(END));
        assert_eq!(
            first,
            format!("intro\n\n<!-- bench:begin -->\nold figures\n<!-- bench:end -->\n\n{UDP}\n\n## Notes\n")
        );
        // The next UDP run replaces only its own section.
        let again = page(&first, UDP_ONLY, &UDP.replace("new udp", "newer udp"), Some(END));
        assert!(again.contains("old figures") && again.contains("newer udp") && !again.contains("new udp\n"));
    }

    #[test]
    fn a_new_page_starts_from_the_template() {
        let page = page(&new_page(), UDP_ONLY, UDP, Some(END));
        assert!(page.starts_with("# Performance\n") && page.contains("## How to reproduce"), "{page}");
        let (tcp, udp) = (page.find(END).unwrap(), page.find("new udp").unwrap());
        assert!(tcp < udp && page.matches(UDP_BEGIN).count() == 1, "{page}");
    }
}
