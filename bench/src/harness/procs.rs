//! Processes the benchmark starts. Each lives behind a guard that kills it,
//! and everything it forked, when dropped — on success, error or panic — so
//! a run never leaves a proxy or origin behind. Readiness is a line on the
//! process's stdout, waited for with a deadline.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cgroup::Cgroup;
use crate::procfs;

#[derive(Debug)]
pub struct Spawned {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Dropped after the process is killed: removing it needs it empty.
    group: Option<Cgroup>,
}

/// A command for `program`, in a cgroup of its own when `grouped` and the
/// machine has cgroup v2 (see [`Cgroup`]). Pass both to [`Spawned::start`].
pub fn command(program: &Path, name: &str, grouped: bool) -> (Command, Option<Cgroup>) {
    let group = if grouped { Cgroup::create(name) } else { None };
    let command = group.as_ref().map_or_else(|| Command::new(program), |group| group.command(program));
    (command, group)
}

impl Spawned {
    /// Starts `command` with stdout read line by line and stderr kept in
    /// `work/NAME.stderr` for diagnosis. Stdin is piped when `stdin` is set.
    pub fn start(
        name: &str,
        command: Command,
        group: Option<Cgroup>,
        stdin: bool,
        work: &Path,
    ) -> anyhow::Result<Self> {
        Self::spawn(name, command, group, stdin, None, work)
    }

    /// Starts `command` like [`Spawned::start`], with its stdout appended
    /// to `file` instead (HAProxy's `log stdout`): no stdout lines to wait for.
    pub fn start_writing_to(
        name: &str,
        command: Command,
        group: Option<Cgroup>,
        file: &Path,
        work: &Path,
    ) -> anyhow::Result<Self> {
        Self::spawn(name, command, group, false, Some(file), work)
    }

    fn spawn(
        name: &str,
        mut command: Command,
        group: Option<Cgroup>,
        stdin: bool,
        stdout_file: Option<&Path>,
        work: &Path,
    ) -> anyhow::Result<Self> {
        let stderr = File::create(work.join(format!("{name}.stderr")))?;
        let stdout = match stdout_file {
            Some(path) => Stdio::from(
                File::options()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?,
            ),
            None => Stdio::piped(),
        };
        command.stdin(if stdin { Stdio::piped() } else { Stdio::null() }).stdout(stdout).stderr(stderr);
        let mut child = command.spawn().with_context(|| format!("cannot start {name} ({command:?})"))?;
        let (sender, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            // Reads to the end even when nobody listens any more, so the
            // process never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let _ = sender.send(line);
                }
            });
        }
        Ok(Spawned { name: name.to_owned(), stdin: child.stdin.take(), child, lines, group })
    }

    /// The process id of the program started (the cgroup wrapper execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits, at most `limit`, for a stdout line satisfying `ready`.
    pub fn wait_for_line(&mut self, limit: Duration, ready: impl Fn(&str) -> bool) -> anyhow::Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if ready(&line) => return Ok(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => bail!("{}: not ready within {limit:?}", self.name),
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.try_wait().ok().flatten();
                    bail!("{} exited before it was ready ({status:?}); see its .stderr in the work folder", self.name)
                }
            }
        }
    }

    /// Whether the process still runs (a crashed proxy must not be measured).
    pub fn is_running(&self) -> bool {
        procfs::is_running(self.child.id())
    }

    /// Every process of this one: the cgroup's, or the live process tree.
    pub fn pids(&self) -> Vec<u32> {
        match &self.group {
            Some(group) => group.pids(),
            None => procfs::process_tree(self.child.id()),
        }
    }

    /// CPU seconds used so far by the process and everything it forked.
    pub fn cpu_seconds(&self) -> f64 {
        match self.group.as_ref().and_then(Cgroup::cpu_seconds) {
            Some(seconds) => seconds,
            None => procfs::tree_cpu_seconds(&self.pids()),
        }
    }

    /// Closes stdin, then waits at most `limit` for the process to exit
    /// (it is killed when the guard drops if it has not).
    pub fn close_and_wait(&mut self, limit: Duration) -> anyhow::Result<ExitStatus> {
        drop(self.stdin.take());
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("{} did not exit within {limit:?} of its stdin closing", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        drop(self.stdin.take());
        // Its forks first (while they can still be found through it), then it.
        match &self.group {
            Some(group) => group.kill(),
            None => {
                let forks: Vec<String> =
                    procfs::process_tree(self.child.id()).iter().skip(1).map(u32::to_string).collect();
                if !forks.is_empty() {
                    let _ = Command::new("kill").arg("-KILL").args(forks).status();
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on now: bound with port 0, then released.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Runs `command`, echoing it first; fails unless it exits 0.
pub fn run(command: &mut Command) -> anyhow::Result<()> {
    eprintln!("+ {command:?}");
    let status = command.status().with_context(|| format!("cannot start {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

/// Runs `command` quietly and returns its stdout, or `None` if it could not
/// run or failed.
pub fn output(command: &mut Command) -> Option<String> {
    let output = command.stderr(Stdio::null()).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}
