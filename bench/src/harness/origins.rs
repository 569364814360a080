//! The backends every system forwards to: serve2-load's banner and HTTP
//! origins for the whole run (and its UDP echo when UDP is measured), and an iperf3 server per system (it serves one
//! test at a time, and a fresh one per system keeps an aborted test from
//! leaking into the next system's numbers).

use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use crate::configs::Backends;
use crate::plan::Plan;
use crate::procs::{Spawned, free_port};

/// How long a freshly started origin may take to listen.
const START_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Origins {
    pub banner: u16,
    pub http: u16,
    /// The UDP echo origin's port; 0 when no UDP system is measured.
    pub udp: u16,
    _processes: Vec<Spawned>,
}

impl Origins {
    pub fn start(plan: &Plan) -> anyhow::Result<Self> {
        let (banner_port, banner) = start_load_origin(plan, "banner")?;
        let (http_port, http) = start_load_origin(plan, "http")?;
        let mut processes = vec![banner, http];
        let mut udp_port = 0;
        if plan.udp {
            let (port, echo) = start_origin(plan, "udp-echo", &["udp-echo", "--listen", "127.0.0.1:0"])?;
            udp_port = port;
            processes.push(echo);
        }
        Ok(Origins { banner: banner_port, http: http_port, udp: udp_port, _processes: processes })
    }

    /// The TCP origins and this system's iperf3 server, and the UDP echo.
    pub fn backends(&self, iperf: u16) -> Backends {
        Backends { banner: self.banner, http: self.http, iperf, udp: self.udp }
    }
}

/// `serve2-load origin --mode MODE` on a port of its choosing.
fn start_load_origin(plan: &Plan, mode: &str) -> anyhow::Result<(u16, Spawned)> {
    start_origin(plan, mode, &["origin", "--listen", "127.0.0.1:0", "--mode", mode])
}

/// `serve2-load ARGS`, an origin that prints its ready line.
fn start_origin(plan: &Plan, mode: &str, args: &[&str]) -> anyhow::Result<(u16, Spawned)> {
    let mut command = Command::new(&plan.load);
    command.args(args);
    let mut origin = Spawned::start(&format!("origin-{mode}"), command, None, false, &plan.work)?;
    let line = origin.wait_for_line(START_LIMIT, |line| line.contains("\"ready\""))?;
    let ready: serde_json::Value = serde_json::from_str(&line)?;
    let port = ready["ready"]
        .as_str()
        .and_then(|addr| addr.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .with_context(|| format!("origin {mode}: bad ready line {line}"))?;
    Ok((port, origin))
}

/// `iperf3 -s` on a free port; returns the port and the server.
pub fn start_iperf(plan: &Plan) -> anyhow::Result<(u16, Spawned)> {
    let port = free_port()?;
    let mut command = Command::new("iperf3");
    // --forceflush: the "listening" line must not sit in a pipe buffer.
    command.args(["-s", "-B", "127.0.0.1", "-p", &port.to_string(), "--forceflush"]);
    let mut server = Spawned::start("iperf3-server", command, None, false, &plan.work)?;
    server.wait_for_line(START_LIMIT, |line| line.contains("Server listening"))?;
    Ok((port, server))
}
