//! What the program reports and needs while it runs: its per-CPU counters
//! (global and per policy), and the daemon's heartbeat.

use std::sync::Arc;

use aya::maps::{Array, MapData, PerCpuArray};
use serve2_common::{Counter, HEARTBEAT_INTERVAL_NS, PolicyCounter};

/// The daemon's heartbeat in the program's map: while it beats, steered
/// connections go to the daemon; once it stops beating for a second
/// (process stopped, runtime hung), the program lets the kernel's normal
/// lookup take them instead of queueing them.
pub struct Heartbeat {
    pub(super) map: std::sync::Mutex<Array<MapData, u64>>,
}

impl std::fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heartbeat").finish_non_exhaustive()
    }
}

impl Heartbeat {
    /// How often to beat.
    pub const INTERVAL: std::time::Duration = std::time::Duration::from_nanos(HEARTBEAT_INTERVAL_NS);

    /// Records "alive now" (the clock `bpf_ktime_get_ns` reads).
    pub fn beat(&self) {
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes the struct passed.
        if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) } != 0 {
            return;
        }
        let ns = (now.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(now.tv_nsec as u64);
        if let Ok(mut map) = self.map.lock()
            && let Err(e) = map.set(0, ns, 0)
        {
            tracing::warn!(error = %e, "steering heartbeat");
        }
    }

    /// Beats every [`Heartbeat::INTERVAL`] until the task is dropped.
    pub async fn keep_beating(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(Self::INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.beat();
        }
    }
}

/// The program's per-CPU counters, readable while it runs.
pub struct KernelCounters {
    pub(super) map: PerCpuArray<MapData, u64>,
    pub(super) policies: PerCpuArray<MapData, u64>,
    /// Policy names by kernel index, as of the last configuration applied.
    pub(super) names: std::sync::Mutex<Vec<String>>,
}

impl std::fmt::Debug for KernelCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.read()).finish()
    }
}

impl KernelCounters {
    /// Each counter summed over CPUs, by name.
    pub fn read(&self) -> Vec<(&'static str, u64)> {
        Counter::ALL
            .iter()
            .map(|&counter| {
                let total = self.map.get(&(counter as u32), 0).map_or(0, |per_cpu| per_cpu.iter().sum());
                (counter.name(), total)
            })
            .collect()
    }

    /// Each policy's counters summed over CPUs, by policy name (policies
    /// with all counters zero left out).
    pub fn per_policy(&self) -> Vec<(String, Vec<(&'static str, u64)>)> {
        let names = self.names.lock().map(|n| n.clone()).unwrap_or_default();
        let mut rows = Vec::new();
        for (index, name) in names.into_iter().enumerate() {
            let counts: Vec<(&'static str, u64)> = PolicyCounter::ALL
                .iter()
                .map(|&counter| {
                    let slot = counter.slot(index as u16);
                    (counter.name(), self.policies.get(&slot, 0).map_or(0, |per_cpu| per_cpu.iter().sum()))
                })
                .collect();
            if counts.iter().any(|&(_, n)| n > 0) {
                rows.push((name, counts));
            }
        }
        rows
    }
}
