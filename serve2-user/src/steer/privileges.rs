//! What loading and attaching the program needs from this process and
//! kernel, checked up front so the error says exactly what is missing.

use super::SteerError;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// sk_lookup programs arrived in Linux 5.9.
const MIN_KERNEL: (u32, u32) = (5, 9);

pub fn check() -> Result<(), SteerError> {
    check_kernel()?;
    let effective = effective_capabilities();
    let has = |cap: u32| effective.is_some_and(|bits| bits & (1u64 << cap) != 0);
    let mut missing = Vec::new();
    // Before CAP_BPF existed (5.8), CAP_SYS_ADMIN covered it.
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if missing.is_empty() { Ok(()) } else { Err(SteerError::MissingCapabilities(missing)) }
}

/// This thread's effective capability set, from `/proc`.
fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
    let hex = status.lines().find_map(|line| line.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

fn check_kernel() -> Result<(), SteerError> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let release = release.trim();
    let mut numbers = release.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse::<u32>().ok());
    let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    if version < MIN_KERNEL {
        return Err(SteerError::KernelTooOld(release.to_owned()));
    }
    Ok(())
}
