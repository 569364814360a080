//! One system's UDP metrics in one round, in a fixed order: round trips
//! with small datagrams, with large ones, memory per idle flow; then new
//! flows, in [`FLOW_BURSTS`] bursts of at most `udp_max_flows` each, every
//! burst on a fresh start of the system (flows stay in a proxy until its
//! timeouts, one descriptor each): one burst lasts about a second, too
//! short alone on a shared machine.

use std::time::Duration;

use crate::launch::Running;
use crate::measure::{Held, load_args};
use crate::plan::Plan;
use crate::procs::Spawned;
use crate::sample::Sample;
use crate::tools;

/// The round-trip workload: one flow, this many datagrams in flight.
pub const WINDOW: usize = 32;
/// The small and the large (QUIC-sized) datagram.
pub const SMALL: usize = 64;
pub const LARGE: usize = 1200;
/// Clients opening new flows at once.
pub const FLOW_CLIENTS: usize = 16;
/// Bursts of new flows per round.
pub const FLOW_BURSTS: usize = 3;

pub fn round_trips_and_idle(plan: &Plan, running: &Running, sample: &mut Sample) {
    let port = running.targets.udp;
    let result = pingpong(plan, port, SMALL, sample).map(|r| sample.udp_dgrams_per_sec = Some(r.0));
    sample.check("udp-pingpong-64", result);
    let result = pingpong(plan, port, LARGE, sample).map(|r| sample.udp_bytes_per_sec = Some(r.1));
    sample.check("udp-pingpong-1200", result);
    if let Some(proxy) = &running.proxy {
        let result = idle(plan, port, proxy, sample);
        sample.check("udp-hold", result);
    }
}

/// New flows per second over the bursts (all flows ÷ all their time).
pub fn new_flows(plan: &Plan, start: impl Fn(usize) -> anyhow::Result<Running>, sample: &mut Sample) {
    let (mut flows, mut seconds) = (0.0, 0.0);
    for burst in 0..FLOW_BURSTS {
        let result = start(burst + 1).and_then(|running| burst_of_flows(plan, running.targets.udp, sample));
        match result {
            Ok((ok, took)) => (flows, seconds) = (flows + ok, seconds + took),
            Err(e) => sample.check("udp-flows", Err(e)),
        }
    }
    if seconds > 0.0 {
        sample.udp_flows_per_sec = Some(flows / seconds);
    }
}

/// Returns (round trips/s, payload bytes/s).
fn pingpong(plan: &Plan, port: u16, size: usize, sample: &mut Sample) -> anyhow::Result<(f64, f64)> {
    let args = load_args(
        "udp-pingpong",
        port,
        &["--window", &WINDOW.to_string(), "--size", &size.to_string(), "--seconds", &plan.seconds.to_string()],
    );
    let result = tools::load(&plan.load, &args, Duration::from_secs(plan.seconds))?;
    sample.count_load(&format!("udp-pingpong-{size}"), &result);
    *sample.udp_lost.get_or_insert(0) += result["lost"].as_u64().unwrap_or(0);
    let rate = |key: &str| result[key].as_f64().ok_or_else(|| anyhow::anyhow!("udp-pingpong printed no {key}"));
    Ok((rate("datagrams_per_sec")?, rate("bytes_per_sec")?))
}

/// One run of `udp-flows`: (flows echoed, seconds).
fn burst_of_flows(plan: &Plan, port: u16, sample: &mut Sample) -> anyhow::Result<(f64, f64)> {
    let args = load_args(
        "udp-flows",
        port,
        &[
            "--concurrency",
            &FLOW_CLIENTS.to_string(),
            "--seconds",
            &plan.seconds.to_string(),
            "--max-flows",
            &plan.udp_max_flows.to_string(),
        ],
    );
    let result = tools::load(&plan.load, &args, Duration::from_secs(plan.seconds))?;
    sample.count_load("udp-flows", &result);
    let field = |key: &str| result[key].as_f64().ok_or_else(|| anyhow::anyhow!("udp-flows printed no {key}"));
    Ok((field("ok")?, field("seconds")?))
}

/// The proxy's memory and descriptors per idle flow: before, and while
/// `udp-hold` keeps `plan.udp_held` echoed flows open.
fn idle(plan: &Plan, port: u16, proxy: &Spawned, sample: &mut Sample) -> anyhow::Result<()> {
    // Each flow waits at most a second for its echo.
    let limit = Duration::from_secs(30 + plan.udp_held as u64 / 100);
    let held = Held { tool: "udp-hold", count: plan.udp_held, what: "flows", limit };
    let (count, each) = held.footprint(plan, port, proxy, sample)?;
    sample.udp_held = Some(count);
    (sample.udp_idle_kib_per_flow, sample.udp_idle_fds_per_flow) = each.unzip();
    Ok(())
}
