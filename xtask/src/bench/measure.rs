//! One (round, system) measurement: start the system, run every metric
//! against it in a fixed order, stop it. A failing metric is recorded as a
//! problem and counted as an error; the other metrics still run.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

use super::Plan;
use super::configs::Backends;
use super::origins::{self, Origins};
use super::procs::Spawned;
use super::sample::footprint;
use super::systems::{self, System};
use super::tools;

/// Connections `connrate` keeps in flight.
const CONCURRENCY: u32 = 16;

/// Everything measured for one system in one round.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    pub round: u32,
    pub system: String,
    pub bulk_up_gbps: Option<f64>,
    pub bulk_down_gbps: Option<f64>,
    /// Proxy CPU seconds (all its processes) per 10⁹ bytes moved by both transfers.
    pub cpu_s_per_gb: Option<f64>,
    pub conns_per_sec: Option<f64>,
    /// Time to first reply byte, from just before connect().
    pub ttfr_p50_us: Option<f64>,
    pub ttfr_p90_us: Option<f64>,
    pub ttfr_p99_us: Option<f64>,
    pub ttfr_mean_us: Option<f64>,
    pub http_keepalive_rps: Option<f64>,
    pub http_close_rps: Option<f64>,
    pub idle_kib_per_conn: Option<f64>,
    pub idle_fds_per_conn: Option<f64>,
    pub held: Option<u64>,
    pub errors: u64,
    pub misroutes: u64,
    /// Errors and misroutes per tool.
    pub by_tool: BTreeMap<String, [u64; 2]>,
    /// serve2-load's errors by tool and kind ("connrate TimedOut").
    pub error_kinds: BTreeMap<String, u64>,
    pub problems: Vec<String>,
}

impl Sample {
    fn count(&mut self, tool: &str, errors: u64, misroutes: u64) {
        self.errors += errors;
        self.misroutes += misroutes;
        let entry = self.by_tool.entry(tool.to_owned()).or_default();
        entry[0] += errors;
        entry[1] += misroutes;
    }

    /// Counts serve2-load's `errors` and `misroutes`.
    fn count_load(&mut self, tool: &str, result: &serde_json::Value) {
        let field = |key: &str| result[key].as_u64().unwrap_or(0);
        self.count(tool, field("errors"), field("misroutes"));
        for (kind, count) in result["error_kinds"].as_object().into_iter().flatten() {
            *self.error_kinds.entry(format!("{tool} {kind}")).or_default() += count.as_u64().unwrap_or(0);
        }
    }

    /// Records a metric that could not be measured.
    fn check(&mut self, tool: &str, result: anyhow::Result<()>) {
        if let Err(e) = result {
            self.count(tool, 1, 0);
            self.problems.push(format!("round {} {}: {tool}: {e:#}", self.round + 1, self.system));
        }
    }
}

pub fn system_round(plan: &Plan, origins: &Origins, system: System, round: u32) -> Sample {
    let mut sample = Sample { round, system: system.name().to_owned(), ..Sample::default() };
    let result = measure(plan, origins, system, &mut sample);
    sample.check("start", result);
    sample
}

fn measure(plan: &Plan, origins: &Origins, system: System, sample: &mut Sample) -> anyhow::Result<()> {
    let (iperf, _iperf_server) = origins::start_iperf(plan)?;
    let backends = Backends { banner: origins.banner, http: origins.http, iperf };
    // Dropped (stopped) before the iperf3 server it forwards to.
    let running = systems::start(system, backends, plan)?;
    let proxy = running.proxy.as_ref();
    let to = running.targets;
    let result = bulk(plan, to.iperf, proxy, sample);
    sample.check("iperf3", result);
    let result = connrate(plan, to.banner, sample);
    sample.check("connrate", result);
    let result = latency(plan, to.banner, sample);
    sample.check("latency", result);
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

fn connrate(plan: &Plan, port: u16, sample: &mut Sample) -> anyhow::Result<()> {
    let args = load_args(
        "connrate",
        port,
        &["--concurrency", &CONCURRENCY.to_string(), "--seconds", &plan.seconds.to_string()],
    );
    let result = tools::load(&plan.load, &args, Duration::from_secs(plan.seconds))?;
    sample.count_load("connrate", &result);
    sample.conns_per_sec = result["conns_per_sec"].as_f64();
    Ok(())
}

fn latency(plan: &Plan, port: u16, sample: &mut Sample) -> anyhow::Result<()> {
    let args = load_args("latency", port, &["--count", &plan.latency_count.to_string()]);
    // Sequential connections of well under a millisecond each.
    let result = tools::load(&plan.load, &args, Duration::from_secs(60))?;
    sample.count_load("latency", &result);
    sample.ttfr_p50_us = result["p50_us"].as_f64();
    sample.ttfr_p90_us = result["p90_us"].as_f64();
    sample.ttfr_p99_us = result["p99_us"].as_f64();
    sample.ttfr_mean_us = result["mean_us"].as_f64();
    Ok(())
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
    let before = footprint(&proxy.pids());
    let mut command = Command::new(&plan.load);
    command.args(load_args("hold", port, &["--count", &plan.held.to_string()]));
    let mut hold = Spawned::start("hold", command, None, true, &plan.work)?;
    // Opening is bounded per connection (5 s, 64 at a time).
    let limit = Duration::from_secs(30 + (plan.held as u64 * 5).div_ceil(64));
    let line = hold.wait_for_line(limit, |line| line.contains("\"held\""))?;
    let after = footprint(&proxy.pids());
    let result: serde_json::Value = serde_json::from_str(&line)?;
    sample.count_load("hold", &result);
    let held = result["held"].as_u64().unwrap_or(0);
    sample.held = Some(held);
    if !proxy.is_running() {
        // Crashed (sslh-select past FD_SETSIZE): what is left is not its footprint.
        anyhow::bail!("the proxy exited while {} connections were being opened (see its .stderr)", plan.held);
    }
    if held > 0 {
        sample.idle_kib_per_conn = Some((after.kib - before.kib) / held as f64);
        sample.idle_fds_per_conn = Some((after.fds - before.fds) / held as f64);
    }
    hold.close_and_wait(Duration::from_secs(30))?;
    Ok(())
}

fn load_args(command: &str, port: u16, rest: &[&str]) -> Vec<String> {
    let mut args = vec![command.to_owned(), "--target".to_owned(), format!("127.0.0.1:{port}")];
    args.extend(rest.iter().map(|arg| (*arg).to_owned()));
    args
}
