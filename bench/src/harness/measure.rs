//! One (round, system) measurement: start the system, run its metrics in a
//! fixed order, stop it. A failing metric is recorded as a problem and
//! counted as an error; the other metrics still run.

use std::process::Command;
use std::time::Duration;

use crate::launch;
use crate::origins::{self, Origins};
use crate::plan::Plan;
use crate::procfs::footprint;
use crate::procs::Spawned;
use crate::sample::{Sample, completed};
use crate::systems::{Metrics, System};
use crate::tools;

/// Connections `connrate` keeps in flight: the workload's 16 clients.
pub const CONCURRENCY: u32 = 16;

pub fn system_round(plan: &Plan, origins: &Origins, system: System, round: u32) -> Sample {
    let mut sample = Sample { round, system: system.name().to_owned(), ..Sample::default() };
    let result = measure(plan, origins, system, &mut sample);
    sample.check("start", result);
    sample
}

fn measure(plan: &Plan, origins: &Origins, system: System, sample: &mut Sample) -> anyhow::Result<()> {
    if system.has_tcp() && plan.tcp {
        measure_tcp(plan, origins, system, sample)?;
    }
    if system.has_udp() && plan.udp {
        let round = sample.round + 1;
        let running = launch::start(system, origins.backends(0), plan, &format!("r{round}-udp"))?;
        crate::measure_udp::round_trips_and_idle(plan, &running, sample);
        drop(running);
        // Each burst of new flows on a fresh start: the flows before stay
        // in the proxy's table and descriptors for their timeout.
        let start =
            |burst: usize| launch::start(system, origins.backends(0), plan, &format!("r{round}-udp-flows{burst}"));
        crate::measure_udp::new_flows(plan, start, sample);
    }
    Ok(())
}

fn measure_tcp(plan: &Plan, origins: &Origins, system: System, sample: &mut Sample) -> anyhow::Result<()> {
    let all = system.spec().metrics == Metrics::All;
    let (iperf, _iperf_server) = origins::start_iperf(plan)?;
    let backends = origins.backends(iperf);
    // Dropped (stopped) before the iperf3 server it forwards to.
    let running = launch::start(system, backends, plan, &format!("r{}", sample.round + 1))?;
    let proxy = running.proxy.as_ref();
    let to = running.targets;
    if all {
        let result = bulk(plan, to.iperf, proxy, sample);
        sample.check("iperf3", result);
    }
    // The log is counted around the two runs that make short connections
    // and nothing else, from when the lines of those before are all in.
    let lines_before = running.log.as_ref().map(|log| log.quiet_count());
    let mut made = 0;
    let result = connrate(plan, to.banner, proxy, sample).map(|n| made += n);
    sample.check("connrate", result);
    let result = latency(plan, to.banner, sample).map(|n| made += n);
    sample.check("latency", result);
    if let (Some(log), Some(before)) = (&running.log, lines_before) {
        sample.log_lines = Some(log.settled_count(before + made) - before);
        sample.logged_connections = Some(made);
        if sample.log_short() == Some(true) {
            sample.problems.push(format!(
                "round {} {}: {} connection lines logged for {made} connections (see work/{})",
                sample.round + 1,
                sample.system,
                sample.log_lines.unwrap_or(0),
                log.path.file_name().unwrap_or_default().to_string_lossy()
            ));
        }
    }
    if !all {
        return Ok(());
    }
    for close in [false, true] {
        let result = http(plan, to.http, close, sample);
        sample.check(if close { "wrk-close" } else { "wrk-keepalive" }, result);
    }
    if let Some(proxy) = proxy {
        let result = idle(plan, to.banner, proxy, sample);
        sample.check("hold", result);
    }
    Ok(())
}

fn bulk(plan: &Plan, port: u16, proxy: Option<&Spawned>, sample: &mut Sample) -> anyhow::Result<()> {
    let cpu_before = proxy.map(Spawned::cpu_seconds);
    let up = tools::iperf3(port, plan.seconds, false)?;
    sample.bulk_up_gbps = Some(up.gbps);
    let down = tools::iperf3(port, plan.seconds, true)?;
    sample.bulk_down_gbps = Some(down.gbps);
    if let (Some(before), Some(proxy)) = (cpu_before, proxy) {
        let gigabytes = (up.bytes + down.bytes) / 1e9;
        sample.cpu_s_per_gb = Some((proxy.cpu_seconds() - before) / gigabytes);
    }
    Ok(())
}

/// The headline workload; returns the connections it completed. The
/// proxy's CPU time over the run, per completed connection, is what a log
/// line costs when rates are too noisy to show it.
fn connrate(plan: &Plan, port: u16, proxy: Option<&Spawned>, sample: &mut Sample) -> anyhow::Result<u64> {
    let cpu_before = proxy.map(Spawned::cpu_seconds);
    let args = load_args(
        "connrate",
        port,
        &["--concurrency", &CONCURRENCY.to_string(), "--seconds", &plan.seconds.to_string()],
    );
    let result = tools::load(&plan.load, &args, Duration::from_secs(plan.seconds))?;
    sample.count_load("connrate", &result);
    sample.conns_per_sec = result["conns_per_sec"].as_f64();
    sample.load_ttfr_p50_us = result["ttfr_p50_us"].as_f64();
    sample.load_ttfr_p99_us = result["ttfr_p99_us"].as_f64();
    let made = completed(&result);
    if let (Some(before), Some(proxy), true) = (cpu_before, proxy, made > 0) {
        sample.cpu_us_per_conn = Some((proxy.cpu_seconds() - before) * 1e6 / made as f64);
    }
    Ok(made)
}

/// One connection at a time; returns the connections it completed.
fn latency(plan: &Plan, port: u16, sample: &mut Sample) -> anyhow::Result<u64> {
    let args = load_args("latency", port, &["--count", &plan.latency_count.to_string()]);
    // Sequential connections of well under a millisecond each.
    let result = tools::load(&plan.load, &args, Duration::from_secs(60))?;
    sample.count_load("latency", &result);
    sample.ttfr_p50_us = result["p50_us"].as_f64();
    sample.ttfr_p90_us = result["p90_us"].as_f64();
    sample.ttfr_p99_us = result["p99_us"].as_f64();
    sample.ttfr_mean_us = result["mean_us"].as_f64();
    Ok(completed(&result))
}

fn http(plan: &Plan, port: u16, close: bool, sample: &mut Sample) -> anyhow::Result<()> {
    let result = tools::wrk(port, plan.seconds, close)?;
    sample.count(if close { "wrk-close" } else { "wrk-keepalive" }, result.errors, 0);
    *(if close { &mut sample.http_close_rps } else { &mut sample.http_keepalive_rps }) = Some(result.rps);
    Ok(())
}

/// The proxy's memory and descriptors per idle connection: measured before
/// and while `hold` keeps `plan.held` routed connections open.
fn idle(plan: &Plan, port: u16, proxy: &Spawned, sample: &mut Sample) -> anyhow::Result<()> {
    // Opening is bounded per connection (5 s, 64 at a time).
    let limit = Duration::from_secs(30 + (plan.held as u64 * 5).div_ceil(64));
    // A crash (sslh-select past FD_SETSIZE) leaves no footprint to measure.
    let held = Held { tool: "hold", count: plan.held, what: "connections", limit };
    let (count, each) = held.footprint(plan, port, proxy, sample)?;
    sample.held = Some(count);
    (sample.idle_kib_per_conn, sample.idle_fds_per_conn) = each.unzip();
    Ok(())
}

/// A load tool that opens `count` connections or flows, prints
/// `{"held": N, …}` and keeps them open until its input closes.
pub struct Held {
    pub tool: &'static str,
    pub count: usize,
    pub what: &'static str,
    /// How long opening them may take.
    pub limit: Duration,
}

impl Held {
    /// How many were held, and what each added to the proxy's memory (KiB)
    /// and descriptors, from before to while they are held.
    pub fn footprint(
        &self,
        plan: &Plan,
        port: u16,
        proxy: &Spawned,
        sample: &mut Sample,
    ) -> anyhow::Result<(u64, Option<(f64, f64)>)> {
        let before = footprint(&proxy.pids());
        let mut command = Command::new(&plan.load);
        command.args(load_args(self.tool, port, &["--count", &self.count.to_string()]));
        let mut hold = Spawned::start(self.tool, command, None, true, &plan.work)?;
        let line = hold.wait_for_line(self.limit, |line| line.contains("\"held\""))?;
        let after = footprint(&proxy.pids());
        let result: serde_json::Value = serde_json::from_str(&line)?;
        sample.count_load(self.tool, &result);
        let held = result["held"].as_u64().unwrap_or(0);
        if !proxy.is_running() {
            anyhow::bail!("the proxy exited while {} {} were being opened (see its .stderr)", self.count, self.what);
        }
        let each = (held > 0).then(|| ((after.kib - before.kib) / held as f64, (after.fds - before.fds) / held as f64));
        hold.close_and_wait(Duration::from_secs(30))?;
        Ok((held, each))
    }
}

pub fn load_args(command: &str, port: u16, rest: &[&str]) -> Vec<String> {
    let mut args = vec![command.to_owned(), "--target".to_owned(), format!("127.0.0.1:{port}")];
    args.extend(rest.iter().map(|arg| (*arg).to_owned()));
    args
}
