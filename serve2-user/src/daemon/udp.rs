//! Starting the UDP server for the daemon: its sockets (a SO_REUSEPORT
//! group per address, one socket per worker), and the threads serving them
//! (one per worker, each with its own current-thread runtime, so a datagram
//! flood never delays signals, the control socket or TCP workers).

use super::RunError;
use crate::config::Config;
use crate::udp::{UdpRouter, UdpServer};

/// A UDP socket to serve, and whether the kernel steers to it.
#[derive(Debug)]
pub(super) struct UdpSocketToServe {
    pub socket: std::net::UdpSocket,
    pub steered: bool,
}

/// The daemon's UDP sockets, by worker.
#[derive(Debug, Default)]
pub(super) struct UdpSockets {
    pub per_worker: Vec<Vec<UdpSocketToServe>>,
}

impl UdpSockets {
    /// The steered socket steering puts in its map: one of its group (the
    /// kernel picks within the group for each datagram).
    pub fn steered(&self) -> Option<&std::net::UdpSocket> {
        self.per_worker.iter().flatten().find(|s| s.steered).map(|s| &s.socket)
    }

    fn add(&mut self, group: Vec<std::net::UdpSocket>, steered: bool) {
        for (worker, socket) in group.into_iter().enumerate() {
            if self.per_worker.len() <= worker {
                self.per_worker.resize_with(worker + 1, Vec::new);
            }
            self.per_worker[worker].push(UdpSocketToServe { socket, steered });
        }
    }
}

/// Binds `udpAddress`, and the sockets steering sends `steer.udpPorts` to
/// (`[::]:0`, dual-stack), `config.workers` of each; describes them in
/// `described`.
pub(super) fn bind(config: &Config, described: &mut Vec<String>) -> Result<UdpSockets, RunError> {
    let mut sockets = UdpSockets::default();
    if let Some(address) = &config.udp.listen {
        let bind_error = |source| RunError::Bind { address: format!("{address} (udp)"), source };
        let group = crate::udp::group::bind_group(address, config.workers).map_err(bind_error)?;
        let local = group.first().map(std::net::UdpSocket::local_addr).transpose().map_err(bind_error)?;
        if let Some(local) = local {
            tracing::info!(%local, sockets = group.len(), "udp listening");
            described.push(format!("udp {local}"));
        }
        sockets.add(group, false);
    }
    if config.udp.steered_ports().is_some_and(|ports| !ports.is_empty()) {
        let bind_error = |source| RunError::Bind { address: "[::]:0 (udp steering)".into(), source };
        let any = std::net::SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0));
        let group = crate::udp::group::bind_steered_group(any, config.workers).map_err(bind_error)?;
        let local = group.first().map(std::net::UdpSocket::local_addr).transpose().map_err(bind_error)?;
        if let Some(local) = local {
            described.push(format!("udp {local} (steering)"));
        }
        sockets.add(group, true);
    }
    Ok(sockets)
}

/// The UDP server of a configuration that has UDP.
pub(super) fn server(config: &Config) -> Option<UdpServer> {
    config.udp.enabled().then(|| UdpServer::new(UdpRouter::new(config, None)))
}

/// The running UDP threads.
#[derive(Debug)]
pub(super) struct Running {
    stop: tokio_util::sync::CancellationToken,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Serves each worker's sockets with `server` on a thread of its own
/// (`serve2-udp-N`).
pub(super) fn start(server: &UdpServer, sockets: UdpSockets) -> Result<Option<Running>, RunError> {
    let stop = tokio_util::sync::CancellationToken::new();
    let mut running = Running { stop: stop.clone(), threads: Vec::new() };
    for (worker, sockets) in sockets.per_worker.into_iter().enumerate().filter(|(_, s)| !s.is_empty()) {
        let (server, stopped) = (server.clone(), stop.clone());
        let spawned = std::thread::Builder::new().name(format!("serve2-udp-{worker}")).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(e) => return tracing::error!(error = %e, "cannot start a UDP runtime"),
            };
            runtime.block_on(async {
                let mut serving = tokio::task::JoinSet::new();
                for UdpSocketToServe { socket, steered } in sockets {
                    let (server, stopped) = (server.clone(), stopped.clone());
                    serving.spawn(async move { server.serve(socket, steered, stopped.cancelled_owned()).await });
                }
                serving.join_all().await;
            });
        });
        match spawned {
            Ok(thread) => running.threads.push(thread),
            Err(e) => {
                // The ones started stop with the token, not at process exit.
                stop.cancel();
                return Err(RunError::UdpThread(e));
            }
        }
    }
    Ok((!running.threads.is_empty()).then_some(running))
}

impl Running {
    /// Ends every flow (each logs its summary) and waits for the threads.
    pub async fn stop(self) {
        self.stop.cancel();
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}
