//! Starting the UDP server for the daemon: its sockets, and the thread it
//! runs on (its own current-thread runtime, so a datagram flood never
//! delays signals, the control socket or TCP workers).

use super::RunError;
use crate::config::Config;
use crate::udp::{UdpRouter, UdpServer};

/// A UDP socket to serve, and whether the kernel steers to it.
#[derive(Debug)]
pub(super) struct UdpSocketToServe {
    pub socket: std::net::UdpSocket,
    pub steered: bool,
}

/// Binds `udpAddress`, and the socket steering sends `steer.udpPorts` to
/// (`[::]:0`, dual-stack); describes them in `described`.
pub(super) fn bind(config: &Config, described: &mut Vec<String>) -> Result<Vec<UdpSocketToServe>, RunError> {
    let mut sockets = Vec::new();
    if let Some(address) = &config.udp.listen {
        let bind_error = |source| RunError::Bind { address: format!("{address} (udp)"), source };
        let socket = crate::udp::socket::bind(address).map_err(bind_error)?;
        let local = socket.local_addr().map_err(bind_error)?;
        tracing::info!(%local, "udp listening");
        described.push(format!("udp {local}"));
        sockets.push(UdpSocketToServe { socket, steered: false });
    }
    if config.udp.steered_ports().is_some_and(|ports| !ports.is_empty()) {
        let bind_error = |source| RunError::Bind { address: "[::]:0 (udp steering)".into(), source };
        let any = std::net::SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0));
        let socket = crate::udp::socket::bind_steered(any).map_err(bind_error)?;
        let local = socket.local_addr().map_err(bind_error)?;
        described.push(format!("udp {local} (steering)"));
        sockets.push(UdpSocketToServe { socket, steered: true });
    }
    Ok(sockets)
}

/// The UDP server of a configuration that has UDP.
pub(super) fn server(config: &Config) -> Option<UdpServer> {
    config.udp.enabled().then(|| UdpServer::new(UdpRouter::new(config, None)))
}

/// The running UDP thread.
#[derive(Debug)]
pub(super) struct Running {
    stop: tokio_util::sync::CancellationToken,
    thread: std::thread::JoinHandle<()>,
}

/// Serves `sockets` with `server` on a thread of its own.
pub(super) fn start(server: &UdpServer, sockets: Vec<UdpSocketToServe>) -> Result<Option<Running>, RunError> {
    if sockets.is_empty() {
        return Ok(None);
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let (server, stopped) = (server.clone(), stop.clone());
    let thread = std::thread::Builder::new()
        .name("serve2-udp".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(e) => return tracing::error!(error = %e, "cannot start the UDP runtime"),
            };
            runtime.block_on(async {
                let mut serving = tokio::task::JoinSet::new();
                for UdpSocketToServe { socket, steered } in sockets {
                    let (server, stopped) = (server.clone(), stopped.clone());
                    serving.spawn(async move { server.serve(socket, steered, stopped.cancelled_owned()).await });
                }
                serving.join_all().await;
            });
        })
        .map_err(RunError::UdpThread)?;
    Ok(Some(Running { stop, thread }))
}

impl Running {
    /// Ends every flow (each logs its summary) and waits for the thread.
    pub async fn stop(self) {
        self.stop.cancel();
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}
