//! Syscalls per short proxied connection: an untimed phase after the rounds
//! (strace slows a traced process many times over). Each logging proxy is
//! started afresh, warmed up, then traced with `strace -c -f -p PID` —
//! every thread, its background ones (serve2d's log writer, HAProxy's
//! second thread) included — while a fixed number of the headline
//! workload's connections go through it; strace's summary gives the calls.

mod strace;
mod table;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::launch::{self, Running};
use crate::measure::{CONCURRENCY, load_args};
use crate::origins::{self, Origins};
use crate::plan::Plan;
use crate::procs::Spawned;
use crate::sample::completed;
use crate::systems::System;
use crate::tools;

pub use strace::parse_summary;
pub use table::{SHOWN_FROM, table};

/// Connections made before tracing starts: pools, caches and allocator
/// arenas are warm, as on a daemon that has been running.
pub const WARM_UP: usize = 500;
/// Longest wait for strace to have seized every thread.
const ATTACH_LIMIT: Duration = Duration::from_secs(10);

/// One proxy's syscalls over the traced connections.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Profile {
    pub system: String,
    /// Connections completed while traced.
    pub connections: u64,
    /// Every syscall of every thread while traced.
    pub total: u64,
    pub per_connection: f64,
    /// Calls per syscall name while traced.
    pub calls: BTreeMap<String, u64>,
    /// Connection lines the proxy logged while traced.
    pub log_lines: Option<u64>,
    /// Why there are no figures, if there are none.
    pub problem: Option<String>,
}

impl Profile {
    /// Calls per connection of one syscall (0 when it was not called).
    pub fn per_connection_of(&self, syscall: &str) -> f64 {
        let calls = self.calls.get(syscall).copied().unwrap_or(0);
        if self.connections == 0 { 0.0 } else { calls as f64 / self.connections as f64 }
    }
}

/// Profiles every system of the plan that asks for it.
pub fn profile_all(plan: &Plan, origins: &Origins) -> Vec<Profile> {
    let mut profiles = Vec::new();
    for &system in plan.systems.iter().filter(|system| system.spec().syscalls) {
        eprintln!("bench: syscalls: {} ({} connections under strace)", system.name(), plan.syscall_connections);
        let profile = profile(plan, origins, system).unwrap_or_else(|e| {
            eprintln!("bench:   problem: {e:#}");
            Profile { system: system.name().to_owned(), problem: Some(format!("{e:#}")), ..Profile::default() }
        });
        profiles.push(profile);
    }
    profiles
}

fn profile(plan: &Plan, origins: &Origins, system: System) -> anyhow::Result<Profile> {
    let (iperf, _iperf_server) = origins::start_iperf(plan)?;
    let backends = origins.backends(iperf);
    let running = launch::start(system, backends, plan, "syscalls")?;
    let proxy = running.proxy.as_ref().context("nothing to trace")?;
    drive(plan, &running, WARM_UP)?;
    // The warm-up's lines all written, so none of their writes is traced.
    let lines_before = running.log.as_ref().map(|log| log.quiet_count());
    let output = plan.work.join(format!("strace-{}.txt", system.name()));
    let mut command = Command::new("strace");
    command.args(["-c", "-f", "-o"]).arg(&output).arg("-p").arg(proxy.pid().to_string());
    let mut tracer = Spawned::start(&format!("strace-{}", system.name()), command, None, false, &plan.work)?;
    wait_attached(proxy.pid(), tracer.pid())?;
    let connections = drive(plan, &running, plan.syscall_connections)?;
    let log_lines = match (&running.log, lines_before) {
        (Some(log), Some(before)) => Some(log.settled_count(before + connections) - before),
        _ => None,
    };
    // strace detaches and writes its summary on SIGINT.
    crate::procs::run(Command::new("kill").arg("-INT").arg(tracer.pid().to_string()))?;
    tracer.close_and_wait(Duration::from_secs(30))?;
    let text = std::fs::read_to_string(&output).with_context(|| format!("reading {}", output.display()))?;
    let counts = parse_summary(&text)?;
    if connections == 0 {
        bail!("no connection completed under strace");
    }
    Ok(Profile {
        system: system.name().to_owned(),
        connections,
        total: counts.total,
        per_connection: counts.total as f64 / connections as f64,
        calls: counts.calls,
        log_lines,
        problem: None,
    })
}

/// Makes `count` connections of the headline workload through the system;
/// returns those completed.
fn drive(plan: &Plan, running: &Running, count: usize) -> anyhow::Result<u64> {
    let rest = ["--concurrency", &CONCURRENCY.to_string(), "--seconds", "120", "--connections", &count.to_string()];
    let result =
        tools::load(&plan.load, &load_args("connrate", running.targets.banner, &rest), Duration::from_secs(120))?;
    let errors = result["errors"].as_u64().unwrap_or(0) + result["misroutes"].as_u64().unwrap_or(0);
    if errors > 0 {
        bail!("{errors} of {count} connections failed or were misrouted: {result}");
    }
    Ok(completed(&result))
}

/// Waits until every thread of `pid` is traced by `tracer`.
fn wait_attached(pid: u32, tracer: u32) -> anyhow::Result<()> {
    let deadline = Instant::now() + ATTACH_LIMIT;
    loop {
        let threads = std::fs::read_dir(format!("/proc/{pid}/task"))?
            .filter_map(Result::ok)
            .map(|task| std::fs::read_to_string(task.path().join("status")).unwrap_or_default())
            .collect::<Vec<_>>();
        let traced = threads.iter().filter(|status| tracer_of(status) == Some(tracer)).count();
        if !threads.is_empty() && traced == threads.len() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("strace attached to {traced} of {} threads of {pid} within {ATTACH_LIMIT:?}", threads.len());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The `TracerPid:` of a /proc status file.
fn tracer_of(status: &str) -> Option<u32> {
    status.lines().find_map(|line| line.strip_prefix("TracerPid:")).and_then(|pid| pid.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracer_pid_is_read_from_the_status_file() {
        assert_eq!(tracer_of("Name:\tserve2d\nState:\tS (sleeping)\nTracerPid:\t4242\nUid:\t0\n"), Some(4242));
        assert_eq!(tracer_of("Name:\tserve2d\nTracerPid:\t0\n"), Some(0));
        assert_eq!(tracer_of("Name:\tserve2d\n"), None);
    }

    #[test]
    fn calls_per_connection() {
        let profile = Profile {
            connections: 2000,
            calls: BTreeMap::from([("accept4".to_owned(), 2000), ("write".to_owned(), 6000)]),
            ..Profile::default()
        };
        assert_eq!(profile.per_connection_of("write"), 3.0);
        assert_eq!(profile.per_connection_of("splice"), 0.0);
    }
}
