//! The serve2d binary as a child process, with its log lines collected.

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// A running serve2d and the lines it logs (stdout and stderr merged).
pub struct Serve2d {
    pub child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every line seen so far.
    pub log: Vec<String>,
}

/// The serve2d binary cargo built for these tests.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_serve2d")
}

impl Serve2d {
    /// Starts `prefix... serve2d config` (for example `prlimit --nofile=…`).
    pub fn spawn(prefix: &[&str], config: &Path) -> Serve2d {
        Self::spawn_with(prefix, config, |_| {})
    }

    /// Like [`Serve2d::spawn`], with `configure` adjusting the command
    /// first (environment variables, for example).
    pub fn spawn_with(prefix: &[&str], config: &Path, configure: impl FnOnce(&mut Command)) -> Serve2d {
        let mut command = match prefix.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary());
                command
            }
            None => Command::new(binary()),
        };
        configure(&mut command);
        let mut child = command
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn serve2d");
        let (tx, lines) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for reader in [Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Unpin + Send>, Box::new(stderr)] {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(reader).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Serve2d { child, lines, log: Vec::new() }
    }

    /// Waits (bounded) for a log line containing `needle` and returns it.
    pub async fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + super::WAIT;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no log line with {needle:?}; log so far:\n{}", self.log.join("\n")))
                .unwrap_or_else(|| panic!("serve2d exited before logging {needle:?}:\n{}", self.log.join("\n")));
            self.log.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// Waits for the "listening" line and returns the bound address.
    pub async fn listening_addr(&mut self) -> std::net::SocketAddr {
        let line = self.wait_for_line("listening").await;
        let value = line.split("local=").nth(1).and_then(|rest| rest.split_whitespace().next());
        value.and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no address in {line:?}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }
}
