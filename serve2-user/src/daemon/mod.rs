//! Assembling a configured daemon: listeners, kernel steering, the control
//! socket, the server; and taking them down in the right order.

use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::config::{Config, DEFAULT_CONTROL};
use crate::control::{ReloadRequest, StatusSource};
use crate::reload::{Live, Reloader};
use crate::udp::{UdpRouter, UdpServer};
use crate::{Server, control, listener};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Binding a listening socket failed.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Kernel steering could not start.
    #[cfg(feature = "steer")]
    #[error(transparent)]
    Steer(#[from] crate::steer::SteerError),
    /// The configuration steers, but this build has no eBPF program.
    #[error("this serve2 was built without the `steer` feature; remove \"steer\" from the configuration")]
    SteeringNotBuilt,
    /// The configured control socket could not be created.
    #[error("control socket {path}: {source}")]
    Control {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The privilege drop failed.
    #[error(transparent)]
    Privileges(#[from] crate::privileges::PrivilegeError),
    /// The configuration's policies do not fit the router.
    #[error(transparent)]
    Router(#[from] crate::router::RouterError),
    /// The UDP server's thread could not start.
    #[error("cannot start the UDP thread: {0}")]
    UdpThread(#[source] std::io::Error),
}

mod status;
mod steering;
mod udp;

/// Serves a loaded configuration until `shutdown` completes. SIGHUP and
/// `serve2d reload` re-read the configuration file (see [`crate::reload`]).
///
/// At shutdown, steering is detached first (new connections fail open to
/// the kernel's normal lookup), then accepting stops and open connections get
/// their grace period.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let workers = config.workers;
    // One SO_REUSEPORT group per listening address, one socket per worker.
    let mut groups: Vec<Vec<std::net::TcpListener>> = Vec::new();
    let mut described = Vec::new();
    if let Some(address) = config.listen {
        let bind_error = |source| RunError::Bind { address: address.to_string(), source };
        let group = listener::bind_group(&address, workers).map_err(bind_error)?;
        let local = group[0].local_addr().map_err(bind_error)?;
        tracing::info!(%local, config = %config.file.display(), "listening");
        described.push(local.to_string());
        groups.push(group);
    }
    // Bound before steering attaches: the steered one goes in its map.
    let udp_sockets = udp::bind(&config, &mut described)?;
    let started = match &config.steer {
        Some(steer) => Some(steering::start(&config, steer, &mut groups, udp_sockets.steered(), &mut described)?),
        None => None,
    };
    #[cfg(feature = "steer")]
    let kernel = started.as_ref().map(|s| {
        let counters = s.counters.clone();
        Box::new(move || counters.read()) as crate::metrics::KernelCounterSource
    });
    #[cfg(not(feature = "steer"))]
    let kernel = None;
    let udp_server = udp::server(&config);
    let metrics = crate::metrics::start(&config, kernel, udp_server.clone())?;
    let metrics_handle = metrics.as_ref().map(|m| m.metrics().clone());
    let router = config.router_with(metrics_handle.as_deref())?;
    let server = Server::new(router).with_shutdown_grace(config.shutdown_timeout);
    let shared_steering = started.as_ref().map(|s| s.steering.clone()).unwrap_or_default();
    let live = Arc::new(RwLock::new(Live {
        config: config.clone(),
        #[cfg(feature = "steer")]
        plan: started.as_ref().map(|s| s.plan.clone()),
    }));
    let source = status::source(
        live.clone(),
        described.clone(),
        server.stats(),
        #[cfg(feature = "steer")]
        shared_steering.clone(),
        udp_server.clone(),
    );
    let reloader = Reloader {
        file: config.file.clone(),
        live,
        server: server.clone(),
        steering: shared_steering.clone(),
        own_ports: steering::own_ports(&groups),
        metrics: metrics_handle,
        udp: udp_server.clone(),
    };
    let (reloads, requests) = tokio::sync::mpsc::channel(4);
    let reloading = tokio::spawn(serve_reloads(reloader, requests));
    let control = start_control(&config, source, Some(reloads)).await?;
    if let Some(run_as) = config.run_as {
        drop_privileges(&config, run_as)?;
    }
    let control_path = control.as_ref().and(config.control.as_deref()).map(|p| p.display().to_string());
    let serving = move || {
        tracing::info!(
            listeners = %described.join(", "),
            workers,
            control = control_path.as_deref().unwrap_or("-"),
            "serving"
        );
        crate::notify::ready();
    };
    let heartbeat = steering::start_heartbeat(&shared_steering);
    let udp_running = match &udp_server {
        Some(udp_server) => udp::start(udp_server, udp_sockets)?,
        None => None,
    };
    let shutdown = async move {
        shutdown.await;
        crate::notify::stopping();
        reloading.abort();
        if let Some(heartbeat) = heartbeat {
            heartbeat.abort();
        }
        steering::detach(&shared_steering);
        if let Some(udp_running) = udp_running {
            udp_running.stop().await;
        }
    };
    // Worker i gets socket i of every group.
    let mut per_worker: Vec<Vec<std::net::TcpListener>> = (0..workers).map(|_| Vec::new()).collect();
    for group in groups {
        for (worker, socket) in group.into_iter().enumerate() {
            per_worker[worker % workers].push(socket);
        }
    }
    server.serve_per_core(per_worker, serving, shutdown).await;
    if let Some(control) = control {
        control.abort();
    }
    drop(metrics);
    tracing::info!("stopped");
    Ok(())
}

/// Switches to `user`/`group` with no capabilities, after handing them the
/// control socket file. Before the workers start: they inherit it.
fn drop_privileges(config: &Config, run_as: crate::privileges::RunAs) -> Result<(), RunError> {
    if let Some(path) = &config.control
        && let Err(e) = std::os::unix::fs::chown(path, Some(run_as.uid), Some(run_as.gid))
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot hand the control socket to the service user");
    }
    crate::privileges::drop_to(run_as)?;
    tracing::info!(
        uid = run_as.uid,
        gid = run_as.gid,
        "dropped privileges: no capabilities left; a reload can change protocols, policies and steered ports, \
         not bind new sockets"
    );
    Ok(())
}

/// Applies reloads one at a time, from the control socket and from SIGHUP
/// (logrotate and `systemctl reload` send one: it must never end the
/// daemon).
async fn serve_reloads(reloader: Reloader, requests: tokio::sync::mpsc::Receiver<ReloadRequest>) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangups) => Some(hangups),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP; reload with `serve2d reload`");
            None
        }
    };
    // Without a control socket the request channel closes at once; SIGHUP
    // still reloads.
    let mut requests = Some(requests);
    loop {
        let hangup = async {
            match &mut hangups {
                Some(hangups) => hangups.recv().await,
                None => std::future::pending().await,
            }
        };
        let request = async {
            match &mut requests {
                Some(requests) => requests.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            request = request => match request {
                Some(request) => {
                    let answer = reloader.reload(&request.requester);
                    let _ = request.answer.send(answer);
                }
                None => requests = None,
            },
            Some(()) = hangup => {
                reloader.reload("SIGHUP");
            }
        }
    }
}

/// Serves `config` on listeners the caller bound (any number; each is
/// served by one worker), until `shutdown` completes: the real daemon —
/// policies by local port, protocols, routes, limits, the control socket if
/// configured — without binding `address` and without kernel steering.
/// Tests run the daemon in process this way, on listeners bound to `:0`.
pub async fn run_with(
    config: Config,
    listeners: Vec<std::net::TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    run_with_sockets(config, listeners, Vec::new(), shutdown).await
}

/// Like [`run_with`], also serving UDP flows on `udp_sockets` (bound with
/// [`crate::udp::socket::bind`] or [`crate::udp::group::bind_group`], as
/// `udpAddress` is: not steered); socket i is served by UDP worker
/// i % `workers`.
pub async fn run_with_sockets(
    config: Config,
    listeners: Vec<std::net::TcpListener>,
    udp_sockets: Vec<std::net::UdpSocket>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let mut described: Vec<String> =
        listeners.iter().filter_map(|l| l.local_addr().ok()).map(|a| a.to_string()).collect();
    described.extend(udp_sockets.iter().filter_map(|s| s.local_addr().ok()).map(|a| format!("udp {a}")));
    for listener in &listeners {
        listener.set_nonblocking(true).map_err(|source| RunError::Bind { address: "listener".into(), source })?;
    }
    let udp_server = (!udp_sockets.is_empty()).then(|| UdpServer::new(UdpRouter::new(&config, None)));
    let metrics = crate::metrics::start(&config, None, udp_server.clone())?;
    let router = config.router_with(metrics.as_ref().map(|m| m.metrics().as_ref()))?;
    let server = Server::new(router).with_shutdown_grace(config.shutdown_timeout);
    let live = Arc::new(RwLock::new(Live {
        config: config.clone(),
        #[cfg(feature = "steer")]
        plan: None,
    }));
    let source = status::source(
        live,
        described.clone(),
        server.stats(),
        #[cfg(feature = "steer")]
        crate::reload::SharedSteering::default(),
        udp_server.clone(),
    );
    let control = start_control(&config, source, None).await?;
    let workers = listeners.into_iter().map(|l| vec![l]).collect();
    // Spread like the daemon's groups: socket i to UDP worker i.
    let mut per_worker: Vec<Vec<udp::UdpSocketToServe>> = (0..config.workers).map(|_| Vec::new()).collect();
    for (i, socket) in udp_sockets.into_iter().enumerate() {
        per_worker[i % config.workers.max(1)].push(udp::UdpSocketToServe { socket, steered: false });
    }
    let udp_sockets = udp::UdpSockets { per_worker };
    let udp_running = match &udp_server {
        Some(udp_server) => udp::start(udp_server, udp_sockets)?,
        None => None,
    };
    server.serve_per_core(workers, || tracing::info!(listeners = %described.join(", "), "serving"), shutdown).await;
    if let Some(udp_running) = udp_running {
        udp_running.stop().await;
    }
    if let Some(control) = control {
        control.abort();
    }
    drop(metrics);
    Ok(())
}

/// Starts the control socket. A failure is fatal only when the socket was
/// configured explicitly.
async fn start_control(
    config: &Config,
    source: StatusSource,
    reloads: Option<tokio::sync::mpsc::Sender<ReloadRequest>>,
) -> Result<Option<tokio::task::JoinHandle<()>>, RunError> {
    let Some(path) = config.control.clone() else { return Ok(None) };
    match control::bind(&path).await {
        Ok(listener) => Ok(Some(tokio::spawn(control::serve(listener, path, source, reloads)))),
        Err(e) if path == Path::new(DEFAULT_CONTROL) => {
            tracing::warn!(path = %path.display(), error = %e, "no control socket; `serve2d status` will not work");
            Ok(None)
        }
        Err(source) => Err(RunError::Control { path: path.display().to_string(), source }),
    }
}
