//! A cgroup v2 per proxy, when the machine has one: its CPU counter keeps
//! the time of processes that already exited, which /proc cannot give
//! (sslh-fork's per-connection children are reaped without adding to any
//! parent's cutime), and it lists and kills every process the proxy forked.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Our cgroups' names: PREFIX, the benchmark's pid, the system.
const PREFIX: &str = "serve2-bench-";

#[derive(Debug)]
pub struct Cgroup {
    path: PathBuf,
}

impl Cgroup {
    /// A new empty cgroup named after `name`, or `None` without a writable
    /// cgroup v2 hierarchy (the caller then falls back to /proc).
    pub fn create(name: &str) -> Option<Self> {
        let root = cgroup2_mount()?;
        remove_leftovers(&root);
        let path = root.join(format!("{PREFIX}{}-{name}", std::process::id()));
        std::fs::create_dir(&path).ok()?;
        let group = Cgroup { path };
        group.cpu_seconds().map(|_| group)
    }

    /// A command that moves itself into this cgroup, then runs `program`
    /// (add its arguments to the result): the move happens before the
    /// program starts, so nothing it forks can escape.
    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new("sh");
        command.arg("-c").arg(r#"echo 0 > "$0/cgroup.procs" && exec "$@""#).arg(&self.path).arg(program);
        command
    }

    /// Processes in the cgroup.
    pub fn pids(&self) -> Vec<u32> {
        std::fs::read_to_string(self.path.join("cgroup.procs"))
            .map(|text| text.lines().filter_map(|line| line.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// CPU time (user + system) of every process that ever ran in it.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(self.path.join("cpu.stat")).ok()?;
        let usec: f64 = stat.lines().find_map(|line| line.strip_prefix("usage_usec "))?.trim().parse().ok()?;
        Some(usec / 1e6)
    }

    /// SIGKILLs every process in the cgroup.
    pub fn kill(&self) {
        if std::fs::write(self.path.join("cgroup.kill"), "1").is_err() {
            // Kernels before 5.14 have no cgroup.kill.
            let pids: Vec<String> = self.pids().iter().map(u32::to_string).collect();
            if !pids.is_empty() {
                let _ = Command::new("kill").arg("-KILL").args(pids).status();
            }
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.kill();
        // Killed processes leave asynchronously; a cgroup can only be removed
        // once empty. Bounded: a stuck removal leaves an empty cgroup behind.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.path).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Empty cgroups of earlier runs that were killed before cleaning up (a
/// cgroup with processes left in it cannot be removed, and is left alone).
fn remove_leftovers(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)?.split('-').next()?.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{owner}")).exists() || owner == std::process::id() {
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

fn cgroup2_mount() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, path, kind) = (fields.next()?, fields.next()?, fields.next()?);
        (kind == "cgroup2").then(|| PathBuf::from(path))
    })
}
