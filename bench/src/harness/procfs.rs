//! Reading a proxy's cost from /proc: its processes, their CPU time, memory
//! (proportional set size, so pages shared between sslh-fork's children are
//! counted once) and open descriptors.

use std::process::Command;
use std::sync::OnceLock;

use crate::procs::output;

/// Memory and descriptors of a set of processes at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Footprint {
    pub kib: f64,
    pub fds: f64,
}

pub fn footprint(pids: &[u32]) -> Footprint {
    let mut total = Footprint::default();
    for &pid in pids {
        total.kib += memory_kib(pid).unwrap_or(0.0);
        total.fds += std::fs::read_dir(format!("/proc/{pid}/fd")).map(|dir| dir.count() as f64).unwrap_or(0.0);
    }
    total
}

/// Pss from smaps_rollup; VmRSS where that file is missing (old kernels).
fn memory_kib(pid: u32) -> Option<f64> {
    let field = |file: &str, key: &str| -> Option<f64> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
        let line = text.lines().find_map(|line| line.strip_prefix(key))?;
        line.split_whitespace().next()?.parse().ok()
    };
    field("smaps_rollup", "Pss:").or_else(|| field("status", "VmRSS:"))
}

/// `root` and every live process descending from it.
pub fn process_tree(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|pid| Some((pid, stat_fields(pid)?.ppid)))
                .collect()
        })
        .unwrap_or_default();
    let mut tree = vec![root];
    let mut next = 0;
    while next < tree.len() {
        let parent = tree[next];
        tree.extend(parents.iter().filter(|&&(_, ppid)| ppid == parent).map(|&(pid, _)| pid));
        next += 1;
    }
    tree
}

/// CPU seconds of live processes, each with its reaped children
/// (utime + stime + cutime + cstime). Children reaped without a wait (as
/// sslh-fork's are) are lost: the cgroup counter is preferred when present.
pub fn tree_cpu_seconds(pids: &[u32]) -> f64 {
    let ticks: u64 = pids.iter().filter_map(|&pid| stat_fields(pid)).map(|s| s.cpu_ticks).sum();
    ticks as f64 / clock_ticks_per_second()
}

/// Whether `pid` runs (not exited, not a zombie waiting to be reaped).
pub fn is_running(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|stat| !matches!(stat.state, 'Z' | 'X' | 'x'))
}

struct StatFields {
    state: char,
    ppid: u32,
    cpu_ticks: u64,
}

fn stat_fields(pid: u32) -> Option<StatFields> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the name: state(3) ppid(4) … utime(14) stime(15) cutime(16) cstime(17).
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let state = fields.first()?.chars().next()?;
    let ppid = u32::try_from(field(4)?).ok()?;
    let cpu_ticks = field(14)? + field(15)? + field(16)? + field(17)?;
    Some(StatFields { state, ppid, cpu_ticks })
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        output(Command::new("getconf").arg("CLK_TCK")).and_then(|text| text.trim().parse().ok()).unwrap_or(100.0)
    })
}
