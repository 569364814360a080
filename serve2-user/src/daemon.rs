//! Assembling a configured daemon: listeners, kernel steering, the control
//! socket, the server; and taking them down in the right order.

use std::path::Path;
use std::sync::Arc;

use crate::config::{Config, DEFAULT_CONTROL};
use crate::control::{Connections, PolicyStatus, Status, StatusSource, SteeringStatus};
use crate::protocol::ProtocolSet;
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
    /// The in-kernel relay could not be loaded.
    #[error("loading the in-kernel relay (\"relay\": \"sockmap\"): {0}")]
    KernelRelay(String),
    /// The configured control socket could not be created.
    #[error("control socket {path}: {source}")]
    Control {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configuration's policies do not fit the router.
    #[error(transparent)]
    Router(#[from] crate::router::RouterError),
}

/// Serves a loaded configuration until `shutdown` completes.
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
    start_kernel_relay(&config)?;
    let steering = match &config.steer {
        Some(steer) => Some(start_steering(&config, steer, &mut groups, &mut described)?),
        None => None,
    };
    let metrics = crate::metrics::start(&config, kernel_counters(steering.as_ref()))?;
    let router = config.router_with(metrics.as_ref().map(|m| m.metrics().as_ref()))?;
    let server = Server::new(router).with_shutdown_grace(config.shutdown_timeout);
    let source = status_source(&config, described.clone(), server.stats(), steering.as_ref());
    let control = start_control(&config, source).await?;
    let control_path = control.as_ref().and(config.control.as_deref()).map(|p| p.display().to_string());
    let serving = move || {
        tracing::info!(
            listeners = %described.join(", "),
            workers,
            control = control_path.as_deref().unwrap_or("-"),
            "serving"
        );
    };
    let heartbeat = start_heartbeat(steering.as_ref());
    let shutdown = async move {
        shutdown.await;
        if let Some(heartbeat) = heartbeat {
            heartbeat.abort();
        }
        if let Some(steering) = steering {
            drop(steering);
            tracing::info!("steering detached; draining connections");
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
    tracing::info!("stopped");
    Ok(())
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
    let described: Vec<String> = listeners.iter().filter_map(|l| l.local_addr().ok()).map(|a| a.to_string()).collect();
    for listener in &listeners {
        listener.set_nonblocking(true).map_err(|source| RunError::Bind { address: "listener".into(), source })?;
    }
    let metrics = crate::metrics::start(&config, None)?;
    let router = config.router_with(metrics.as_ref().map(|m| m.metrics().as_ref()))?;
    let server = Server::new(router).with_shutdown_grace(config.shutdown_timeout);
    let source = status_source(&config, described.clone(), server.stats(), None);
    let control = start_control(&config, source).await?;
    let workers = listeners.into_iter().map(|l| vec![l]).collect();
    server.serve_per_core(workers, || tracing::info!(listeners = %described.join(", "), "serving"), shutdown).await;
    if let Some(control) = control {
        control.abort();
    }
    Ok(())
}

/// Loads the in-kernel relay when the configuration asks for it.
fn start_kernel_relay(config: &Config) -> Result<(), RunError> {
    if config.relay != crate::relay::RelayMode::Sockmap {
        return Ok(());
    }
    #[cfg(feature = "steer")]
    {
        crate::relay::kernel::init().map_err(RunError::KernelRelay)?;
        tracing::info!("in-kernel relay (sockmap) loaded");
        Ok(())
    }
    #[cfg(not(feature = "steer"))]
    Err(RunError::SteeringNotBuilt)
}

#[cfg(feature = "steer")]
type Steering = (crate::steer::Steering, crate::steer::SteerPlan);
/// Stands in for steering in builds without it (never constructed).
#[cfg(not(feature = "steer"))]
#[derive(Debug)]
struct Steering;

#[cfg(feature = "steer")]
fn start_steering(
    config: &Config,
    steer: &crate::config::SteerConfig,
    groups: &mut Vec<Vec<std::net::TcpListener>>,
    described: &mut Vec<String>,
) -> Result<Steering, RunError> {
    use crate::steer::{SteerPlan, Steering, listening_ports};
    let started = std::time::Instant::now();
    let address = crate::config::ListenAddress::AllInterfaces(0);
    let bind_error = |source| RunError::Bind { address: "[::]:0 (steering)".into(), source };
    let group = listener::bind_group(&address, config.workers).map_err(bind_error)?;
    let local = group[0].local_addr().map_err(bind_error)?;
    let own: crate::ports::PortSet =
        groups.iter().flatten().chain(&group).filter_map(|l| l.local_addr().ok()).map(|a| a.port()).collect();
    let in_use = listening_ports().map_err(bind_error)?;
    let plan = SteerPlan::new(steer, &in_use, &own);
    // The kernel spreads what the program assigns to the group's first
    // socket over the whole SO_REUSEPORT group.
    let steering = Steering::attach(&group[0], &plan, &config.policies, &steer.scope)?;
    groups.push(group);
    described.push(format!("{local} (steering)"));
    tracing::info!(
        listener = %local,
        steered = plan.steered.len(),
        ports = %plan.steered,
        ms = %format_args!("{:.1}", started.elapsed().as_secs_f64() * 1000.0),
        "steering attached"
    );
    if !plan.local_targets.is_empty() {
        tracing::info!(ports = %plan.local_targets, "not steering ports of local targets (they would loop back)");
    }
    if !plan.skipped.is_empty() {
        tracing::warn!(ports = %plan.skipped, "not steering ports where another socket already listens");
    }
    Ok((steering, plan))
}

/// The program's counters for the metrics endpoint.
#[cfg(feature = "steer")]
fn kernel_counters(steering: Option<&Steering>) -> Option<crate::metrics::KernelCounterSource> {
    let counters = steering?.0.counters();
    Some(Box::new(move || counters.read()))
}

#[cfg(not(feature = "steer"))]
fn kernel_counters(_: Option<&Steering>) -> Option<crate::metrics::KernelCounterSource> {
    None
}

/// Keeps the program's heartbeat going on this (the main) runtime.
#[cfg(feature = "steer")]
fn start_heartbeat(steering: Option<&Steering>) -> Option<tokio::task::JoinHandle<()>> {
    steering.map(|(steering, _)| tokio::spawn(steering.heartbeat().keep_beating()))
}

#[cfg(not(feature = "steer"))]
fn start_heartbeat(_: Option<&Steering>) -> Option<tokio::task::JoinHandle<()>> {
    None
}

#[cfg(not(feature = "steer"))]
fn start_steering(
    _: &Config,
    _: &crate::config::SteerConfig,
    _: &mut Vec<Vec<std::net::TcpListener>>,
    _: &mut Vec<String>,
) -> Result<Steering, RunError> {
    Err(RunError::SteeringNotBuilt)
}

fn status_source(
    config: &Config,
    listeners: Vec<String>,
    stats: Arc<crate::server::ServerStats>,
    steering: Option<&Steering>,
) -> StatusSource {
    let mut policies: Vec<PolicyStatus> =
        config.policies.iter().map(|p| policy_status(&p.name, format!("ports {}", p.ports), &p.protocols)).collect();
    policies.push(policy_status("top level", "every other port".into(), &config.protocols));
    let steering = steering_status(config, steering);
    let file = config.file.display().to_string();
    Arc::new(move || Status {
        pid: std::process::id(),
        config: file.clone(),
        listeners: listeners.clone(),
        connections: Connections { accepted: stats.accepted(), open: stats.open() },
        steering: steering.as_ref().map(|f| f()),
        policies: policies.clone(),
    })
}

type SteeringSnapshot = Box<dyn Fn() -> SteeringStatus + Send + Sync>;

#[cfg(feature = "steer")]
fn steering_status(config: &Config, steering: Option<&Steering>) -> Option<SteeringSnapshot> {
    let (steering, plan) = steering?;
    let steer = config.steer.as_ref()?;
    let counters = steering.counters();
    let fixed = SteeringStatus {
        ports: plan.steered.to_string(),
        steered: plan.steered.len(),
        skipped: plan.skipped.to_string(),
        local_targets: plan.local_targets.to_string(),
        excluded: steer.exclude.to_string(),
        scope: steer.scope.iter().map(ToString::to_string).collect(),
        counters: Default::default(),
    };
    Some(Box::new(move || SteeringStatus {
        counters: counters.read().into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        ..fixed.clone()
    }))
}

#[cfg(not(feature = "steer"))]
fn steering_status(_: &Config, _: Option<&Steering>) -> Option<SteeringSnapshot> {
    None
}

fn policy_status(name: &str, ports: String, set: &ProtocolSet) -> PolicyStatus {
    PolicyStatus {
        name: name.to_owned(),
        ports,
        protocols: set.protocols().iter().map(|p| p.name().to_owned()).collect(),
        fallback: set.fallback().map(|p| p.name().to_owned()),
    }
}

/// Starts the control socket. A failure is fatal only when the socket was
/// configured explicitly.
async fn start_control(config: &Config, source: StatusSource) -> Result<Option<tokio::task::JoinHandle<()>>, RunError> {
    let Some(path) = config.control.clone() else { return Ok(None) };
    match control::bind(&path).await {
        Ok(listener) => Ok(Some(tokio::spawn(control::serve(listener, path, source)))),
        Err(e) if path == Path::new(DEFAULT_CONTROL) => {
            tracing::warn!(path = %path.display(), error = %e, "no control socket; `serve2d status` will not work");
            Ok(None)
        }
        Err(source) => Err(RunError::Control { path: path.display().to_string(), source }),
    }
}
