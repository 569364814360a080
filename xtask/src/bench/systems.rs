//! The systems under test: starting one in front of the origins, and
//! knowing it is ready — its port answers an SSH banner exchange routed to
//! the banner origin — within a bounded time.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::Plan;
use super::configs::{self, Backends, Serve2Listen};
use super::procs::{self, Spawned, free_port};

/// How long a system may take to start and route its first connection.
const START_LIMIT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    Direct,
    Serve2,
    Serve2SteeredOne,
    Serve2SteeredAll,
    Serve2Catalogue,
    Haproxy,
    SslhFork,
    SslhSelect,
}

impl System {
    pub const ALL: [System; 8] = [
        System::Direct,
        System::Serve2,
        System::Serve2SteeredOne,
        System::Serve2SteeredAll,
        System::Serve2Catalogue,
        System::Haproxy,
        System::SslhFork,
        System::SslhSelect,
    ];

    /// What a run without `--only` measures: everything.
    pub const DEFAULT: [System; 8] = System::ALL;

    pub fn name(self) -> &'static str {
        match self {
            System::Direct => "direct",
            System::Serve2 => "serve2",
            System::Serve2SteeredOne => "serve2-steered-1",
            System::Serve2SteeredAll => "serve2-steered-all",
            System::Serve2Catalogue => "serve2-catalogue",
            System::Haproxy => "haproxy",
            System::SslhFork => "sslh-fork",
            System::SslhSelect => "sslh-select",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        System::ALL.into_iter().find(|system| system.name() == name.trim())
    }
}

/// A started system: where each kind of load goes, and the proxy process
/// (none for `direct`), stopped when this is dropped.
#[derive(Debug)]
pub struct Running {
    pub targets: Backends,
    pub proxy: Option<Spawned>,
}

pub fn start(system: System, to: Backends, plan: &Plan) -> anyhow::Result<Running> {
    let port = free_port()?;
    let proxy = match system {
        System::Direct => {
            wait_routed(to.banner, START_LIMIT)?;
            return Ok(Running { targets: to, proxy: None });
        }
        System::Serve2 => start_serve2(Serve2Listen::Address, port, to, plan)?,
        System::Serve2SteeredOne => start_serve2(Serve2Listen::SteerOne, port, to, plan)?,
        System::Serve2SteeredAll => start_serve2(Serve2Listen::SteerAll, port, to, plan)?,
        System::Serve2Catalogue => start_serve2(Serve2Listen::AddressCatalogue, port, to, plan)?,
        System::Haproxy => {
            // Production would say 20000; here it must fit the descriptor
            // limit (two per connection, a few spare), or HAProxy refuses.
            let maxconn = (super::netns::open_files_limit()?.saturating_sub(100) / 2).min(20000);
            let config = write_config(plan, "haproxy.cfg", &configs::haproxy(port, to, maxconn))?;
            let (mut command, group) = procs::command(Path::new("haproxy"), system.name(), true);
            command.arg("-f").arg(config).arg("-db");
            Spawned::start(system.name(), command, group, false, &plan.work)?
        }
        System::SslhFork | System::SslhSelect => {
            let config = write_config(plan, "sslh.cfg", &configs::sslh(port, to))?;
            let program = if system == System::SslhFork { "sslh" } else { "sslh-select" };
            let (mut command, group) = procs::command(Path::new(program), system.name(), true);
            // sslh wants the file glued to -F.
            command.arg(format!("-F{}", config.display()));
            Spawned::start(system.name(), command, group, false, &plan.work)?
        }
    };
    wait_routed(port, START_LIMIT).with_context(|| format!("{} did not start", system.name()))?;
    Ok(Running { targets: Backends { banner: port, http: port, iperf: port }, proxy: Some(proxy) })
}

fn start_serve2(listen: Serve2Listen, port: u16, to: Backends, plan: &Plan) -> anyhow::Result<Spawned> {
    let name = match listen {
        Serve2Listen::Address => System::Serve2.name(),
        Serve2Listen::SteerOne => System::Serve2SteeredOne.name(),
        Serve2Listen::SteerAll => System::Serve2SteeredAll.name(),
        Serve2Listen::AddressCatalogue => System::Serve2Catalogue.name(),
    };
    let config = write_config(plan, &format!("{name}.json"), &configs::serve2(listen, port, to))?;
    let (mut command, group) = procs::command(&plan.serve2d, name, true);
    // As deployed with --log-connections; otherwise the "serving" line only.
    let log = if plan.log_connections { "info" } else { "warn,serve2::daemon=info" };
    command.arg(config).env("RUST_LOG", log);
    let mut serve2d = Spawned::start(name, command, group, false, &plan.work)?;
    serve2d.wait_for_line(START_LIMIT, |line| line.contains("serving"))?;
    Ok(serve2d)
}

fn write_config(plan: &Plan, file: &str, text: &str) -> anyhow::Result<std::path::PathBuf> {
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
