//! The benchmark's own network namespace: nothing it starts can touch, or
//! be disturbed by, the host's network (and kernel steering of "all" ports
//! only sees the namespace's sockets).

use std::process::Command;

use anyhow::Context;

use crate::procs::run;

/// Set in the environment of the re-executed serve2-bench, inside the namespace.
const MARKER: &str = "SERVE2_BENCH_NETNS";

pub fn inside() -> bool {
    std::env::var_os(MARKER).is_some()
}

/// Runs this same command again in a new network namespace.
pub fn reexec() -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the serve2-bench executable")?;
    run(Command::new("unshare").arg("--net").arg("--").arg(exe).args(std::env::args_os().skip(1)).env(MARKER, "1"))
}

/// Readies the fresh namespace and this process's limits, which every
/// process the benchmark starts inherits.
pub fn prepare() -> anyhow::Result<()> {
    run(Command::new("ip").args(["link", "set", "lo", "up"]))?;
    // Thousands of held connections need as many descriptors in the client,
    // the origin and (twice) the proxy: take the whole hard limit.
    let hard = open_files_limit()?;
    run(Command::new("prlimit").arg(format!("--pid={}", std::process::id())).arg(format!("--nofile={hard}:{hard}")))?;
    // The namespace's own setting: proxies open one backend connection per
    // client connection from 127.0.0.1, so the connection-rate test must not
    // be bounded by the default 28k ephemeral ports.
    std::fs::write("/proc/sys/net/ipv4/ip_local_port_range", "1024 65535")
        .context("widening the namespace's ephemeral port range")?;
    Ok(())
}

/// This process's hard limit on open files (after [`prepare`], also the
/// soft limit every started process inherits).
pub fn open_files_limit() -> anyhow::Result<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let line = limits.lines().find(|l| l.starts_with("Max open files")).context("no open-files limit")?;
    // "Max open files  <soft>  <hard>  files"
    let hard = line.split_whitespace().nth(4).context("malformed open-files limit")?;
    // "unlimited" cannot be: the kernel caps it at fs.nr_open.
    hard.parse().with_context(|| format!("open-files limit {hard}"))
}
