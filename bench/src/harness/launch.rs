//! Starting a system in front of the origins, and knowing it is ready — its
//! port answers an SSH banner exchange routed to the banner origin, or for a
//! UDP system a datagram echoed by the UDP origin — within a bounded time.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::configs::{self, Backends, Setup};
use crate::logcheck::{ConnectionLog, LogFormat};
use crate::plan::Plan;
use crate::procs::{self, Spawned, free_port};
use crate::systems::{Metrics, Proxy, System};

/// How long a system may take to start and route its first connection.
const START_LIMIT: Duration = Duration::from_secs(15);

/// A started system: where each kind of load goes, the proxy process (none
/// for `direct`), stopped when this is dropped, and its connection log.
#[derive(Debug)]
pub struct Running {
    pub targets: Backends,
    pub proxy: Option<Spawned>,
    pub log: Option<ConnectionLog>,
}

/// Starts `system` forwarding to `to`; `tag` names its files in the work
/// folder (one log file per start).
pub fn start(system: System, to: Backends, plan: &Plan, tag: &str) -> anyhow::Result<Running> {
    let spec = system.spec();
    let name = spec.name;
    let port = free_port()?;
    let log_file = system.logs(plan.log_connections).then(|| plan.work.join(format!("{name}-{tag}.log")));
    if let Some(file) = &log_file {
        // Counted from empty: a line per connection of this start only.
        let _ = std::fs::remove_file(file);
    }
    let setup = Setup { port, to, log_file: log_file.clone() };
    let (proxy, format) = match spec.proxy {
        Proxy::None => {
            wait_routed(to.banner, START_LIMIT)?;
            return Ok(Running { targets: to, proxy: None, log: None });
        }
        Proxy::Serve2(config) => (start_serve2(name, &config(&setup), &setup, plan)?, Some(LogFormat::Serve2)),
        Proxy::Haproxy => (start_haproxy(name, &setup, plan)?, Some(LogFormat::Haproxy)),
        Proxy::Sslh { program } => {
            let config = write_config(plan, &format!("{name}.cfg"), &configs::peers::sslh(&setup))?;
            let (mut command, group) = procs::command(Path::new(program), name, true);
            // sslh wants the file glued to -F.
            command.arg(format!("-F{}", config.display()));
            // sslh has no logging row: its lines are off in every one.
            (Spawned::start(name, command, group, false, &plan.work)?, None)
        }
        Proxy::NginxUdp => (start_nginx(name, &setup, plan)?, None),
    };
    let ready =
        if spec.metrics == Metrics::Udp { wait_echoed(port, START_LIMIT) } else { wait_routed(port, START_LIMIT) };
    ready.with_context(|| format!("{name} did not start"))?;
    // UDP flows log when they end, not per connection: no log count there.
    let log = log_file.zip(format).filter(|_| spec.metrics != Metrics::Udp);
    let log = log.map(|(path, format)| ConnectionLog { path, format });
    Ok(Running { targets: Backends { banner: port, http: port, iperf: port, udp: port }, proxy: Some(proxy), log })
}

fn start_serve2(name: &str, config: &serde_json::Value, setup: &Setup, plan: &Plan) -> anyhow::Result<Spawned> {
    let path = write_config(plan, &format!("{name}.json"), &config.to_string())?;
    let (mut command, group) = procs::command(&plan.serve2d, name, true);
    command.arg(path);
    if setup.log_file.is_some() {
        // As deployed: the default level, so every connection's summary line.
        command.env_remove("RUST_LOG");
        return Spawned::start(name, command, group, false, &plan.work);
    }
    // Silent: the "serving" line (on stdout) only.
    command.env("RUST_LOG", "warn,serve2::daemon=info");
    let mut serve2d = Spawned::start(name, command, group, false, &plan.work)?;
    serve2d.wait_for_line(START_LIMIT, |line| line.contains("serving"))?;
    Ok(serve2d)
}

fn start_haproxy(name: &str, setup: &Setup, plan: &Plan) -> anyhow::Result<Spawned> {
    // Production would say 20000; here it must fit the descriptor limit
    // (two per connection, a few spare), or HAProxy refuses.
    let maxconn = (crate::netns::open_files_limit()?.saturating_sub(100) / 2).min(20000);
    let config = write_config(plan, &format!("{name}.cfg"), &configs::peers::haproxy(setup, maxconn))?;
    let (mut command, group) = procs::command(Path::new("haproxy"), name, true);
    command.arg("-f").arg(config).arg("-db");
    match &setup.log_file {
        Some(file) => Spawned::start_writing_to(name, command, group, file, &plan.work),
        None => Spawned::start(name, command, group, false, &plan.work),
    }
}

fn start_nginx(name: &str, setup: &Setup, plan: &Plan) -> anyhow::Result<Spawned> {
    // Its sessions' descriptors, a few spare, within the limit.
    let connections = crate::netns::open_files_limit()?.saturating_sub(100).min(200_000);
    let text = configs::nginx::nginx_udp(setup, &plan.work, connections);
    let config = write_config(plan, &format!("{name}.conf"), &text)?;
    let (mut command, group) = procs::command(Path::new("nginx"), name, true);
    // In the foreground, its prefix the work folder (nothing of the host's).
    command.arg("-p").arg(&plan.work).arg("-c").arg(config).args(["-g", "daemon off;"]);
    Spawned::start(name, command, group, false, &plan.work)
}

fn write_config(plan: &Plan, file: &str, text: &str) -> anyhow::Result<PathBuf> {
    let path = plan.work.join(file);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Waits until an SSH banner sent to `port` comes back from the banner
/// origin. Refused connections are retried until `limit`; a wrong answer
/// fails at once (a misconfigured system must not be measured).
fn wait_routed(port: u16, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        match banner_exchange(port) {
            Ok(reply) if reply == b"SSH-2.0-origin\r\n" => return Ok(()),
            Ok(reply) if !reply.is_empty() => {
                bail!("port {port} answered {:?} instead of the banner origin", String::from_utf8_lossy(&reply))
            }
            Ok(_) if Instant::now() >= deadline => bail!("port {port} closes without answering after {limit:?}"),
            Err(e) if Instant::now() >= deadline => bail!("port {port} not routing after {limit:?}: {e}"),
            // Not listening or not forwarding yet: try again shortly.
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn banner_exchange(port: u16) -> std::io::Result<Vec<u8>> {
    let target = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"SSH-2.0-ready\r\n")?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 64];
    while !reply.ends_with(b"\r\n") && reply.len() < 256 {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&chunk[..n]);
    }
    Ok(reply)
}

/// serve2-load's first datagram of a flow: a WireGuard handshake
/// initiation's shape, which the detecting row's `wireguard` entry takes.
fn udp_probe() -> [u8; 148] {
    let mut probe = [0x5a; 148];
    probe[..4].copy_from_slice(&[1, 0, 0, 0]);
    probe
}

/// Waits until a datagram sent to `port` is echoed back. Silence is retried
/// until `limit`; a different answer fails at once.
fn wait_echoed(port: u16, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    socket.connect((Ipv4Addr::LOCALHOST, port))?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let probe = udp_probe();
    let mut reply = [0u8; 512];
    loop {
        // Refused (nothing bound yet) shows up on send or recv: try again.
        let answer = socket.send(&probe).and_then(|_| socket.recv(&mut reply));
        match answer {
            Ok(n) if reply[..n] == probe => return Ok(()),
            Ok(n) => bail!("port {port} answered {n} bytes that are not the echo"),
            Err(e) if Instant::now() >= deadline => bail!("port {port} not echoing after {limit:?}: {e}"),
            // Not bound yet (refused at once) or silent: try again shortly.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}
