//! Proving a logging row logs: its log file is counted before and after the
//! connection-rate and latency runs, and the lines must match the
//! connections made. A logging row that logs nothing would be a lie.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How a system writes its per-connection lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// serve2d's summary line: the `serve2::conn` target, text or JSON.
    Serve2,
    /// HAProxy's `option tcplog` line in raw format: it names the frontend
    /// and `backend/server` ("... mux banner/banner 1/0/1 16 -- ...").
    Haproxy,
}

impl LogFormat {
    /// Whether `line` is one connection's line (start-up lines are not).
    pub fn is_connection_line(self, line: &str) -> bool {
        match self {
            LogFormat::Serve2 => line.contains("serve2::conn"),
            LogFormat::Haproxy => line.contains(" mux ") && line.contains('/'),
        }
    }
}

/// A system's log file.
#[derive(Debug, Clone)]
pub struct ConnectionLog {
    pub path: PathBuf,
    pub format: LogFormat,
}

/// How long the line count may stay unchanged, short of the expected
/// count, before it is taken as final: serve2d's lines are written by a
/// background thread, HAProxy's when each connection has closed.
const SETTLE: Duration = Duration::from_millis(500);
/// Longest wait for the lines to arrive at all.
const LIMIT: Duration = Duration::from_secs(10);

impl ConnectionLog {
    /// Connection lines in the file so far (0 before it exists).
    pub fn count(&self) -> u64 {
        let Ok(file) = std::fs::File::open(&self.path) else { return 0 };
        BufReader::new(file).lines().map_while(Result::ok).filter(|line| self.format.is_connection_line(line)).count()
            as u64
    }

    /// The count once nothing has been written for a while: every line of
    /// the connections before is in (serve2d writes from a background
    /// thread, HAProxy when a connection has closed).
    pub fn quiet_count(&self) -> u64 {
        self.settled_count(u64::MAX)
    }

    /// The count once it reaches `expected`, or once it stops growing.
    pub fn settled_count(&self, expected: u64) -> u64 {
        let deadline = Instant::now() + LIMIT;
        let mut last = self.count();
        let mut changed = Instant::now();
        while last < expected && Instant::now() < deadline && changed.elapsed() < SETTLE {
            std::thread::sleep(Duration::from_millis(20));
            let now = self.count();
            if now != last {
                last = now;
                changed = Instant::now();
            }
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines as the two proxies wrote them in a bench run: serve2d's start-up
    // and summary lines, HAProxy's tcplog lines (it writes nothing else to
    // its log target here; any other line must not count).
    const SERVE2: &str = "\
2026-12-02T01:00:19.093320Z  INFO serve2::daemon: serving listeners=127.0.0.1:18353 workers=2 control=\"-\"
2026-12-02T01:00:19.096442Z  INFO conn{peer=127.0.0.1:44354 port=18353}: serve2::conn: connection local=127.0.0.1:18353 chain=proxy fallback=- target=127.0.0.1:19629 up=15 down=16 ms=0.525 end=closed
2026-12-02T01:00:23.140054Z  INFO conn{peer=127.0.0.2:25921 port=18353}: serve2::conn: connection local=127.0.0.1:18353 chain=proxy fallback=- target=127.0.0.1:19629 up=15 down=16 ms=1.278 end=closed
";
    const HAPROXY: &str = "\
[NOTICE]   (8406) : haproxy version is 2.6.12-1+deb12u4
127.0.0.5:13749 [02/Dec/2026:01:00:44.702] mux banner/banner 1/0/7 16 -- 32/32/31/31/0 0/0
";

    #[test]
    fn only_connection_lines_count() {
        let serve2: Vec<bool> = SERVE2.lines().map(|l| LogFormat::Serve2.is_connection_line(l)).collect();
        assert_eq!(serve2, [false, true, true]);
        let haproxy: Vec<bool> = HAPROXY.lines().map(|l| LogFormat::Haproxy.is_connection_line(l)).collect();
        assert_eq!(haproxy, [false, true]);
    }

    #[test]
    fn counts_a_file_and_a_missing_one() {
        let dir = std::env::temp_dir().join(format!("serve2-bench-logcheck-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = ConnectionLog { path: dir.join("serve2.log"), format: LogFormat::Serve2 };
        assert_eq!(log.count(), 0);
        std::fs::write(&log.path, SERVE2).unwrap();
        assert_eq!(log.count(), 2);
        assert_eq!(log.settled_count(2), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
