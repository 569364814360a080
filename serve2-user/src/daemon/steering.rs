//! Starting kernel steering for the daemon: the steering listener, the plan,
//! the attached program and its heartbeat.

use super::RunError;
use crate::config::Config;
use crate::ports::PortSet;
use crate::reload::SharedSteering;

/// What starting steering produced.
#[derive(Debug)]
pub(super) struct Started {
    /// The program, shared with reload and shutdown.
    pub steering: SharedSteering,
    /// The ports in its map.
    #[cfg(feature = "steer")]
    pub plan: crate::steer::SteerPlan,
    /// The program's counters, for status.
    #[cfg(feature = "steer")]
    pub counters: std::sync::Arc<crate::steer::KernelCounters>,
}

/// Binds the steering listener (one per worker), plans the ports, loads and
/// attaches the program; adds the listeners to `groups`.
#[cfg(feature = "steer")]
pub(super) fn start(
    config: &Config,
    steer: &crate::config::SteerConfig,
    groups: &mut Vec<Vec<std::net::TcpListener>>,
    udp_socket: Option<&std::net::UdpSocket>,
    described: &mut Vec<String>,
) -> Result<Started, RunError> {
    use crate::steer::{DaemonSockets, KernelTable, SteerPlan, Steering, listening_ports};
    use std::os::fd::AsFd;
    let started = std::time::Instant::now();
    let address = crate::config::ListenAddress::AllInterfaces(0);
    let bind_error = |source| RunError::Bind { address: "[::]:0 (steering)".into(), source };
    let group = crate::listener::bind_group(&address, config.workers).map_err(bind_error)?;
    let local = group[0].local_addr().map_err(bind_error)?;
    let in_use = listening_ports().map_err(bind_error)?;
    let mut own = own_ports(groups);
    own.insert(local.port());
    let mut plan = SteerPlan::new(steer, &in_use, &own);
    if let (Some(udp_steer), Some(socket)) = (&config.udp.steer, udp_socket) {
        let bound = crate::steer::bound_udp_ports().map_err(bind_error)?;
        let own: PortSet = socket.local_addr().map(|a| a.port()).into_iter().collect();
        let udp_plan = SteerPlan::new(udp_steer, &bound, &own);
        if !udp_plan.skipped.is_empty() {
            tracing::warn!(ports = %udp_plan.skipped, "not steering UDP ports where another socket is already bound");
        }
        plan.udp_steered = udp_plan.steered;
    }
    // The kernel spreads what the program assigns to the group's first
    // socket over the whole SO_REUSEPORT group.
    let table = KernelTable::new(config, &plan).map_err(crate::steer::SteerError::from)?;
    let sockets = DaemonSockets { tcp: group[0].as_fd(), udp: udp_socket.map(AsFd::as_fd) };
    let steering = Steering::attach(sockets, &table, &steer.scope)?;
    groups.push(group);
    described.push(format!("{local} (steering)"));
    tracing::info!(
        listener = %local,
        steered = plan.steered.len(),
        ports = %plan.steered,
        udp_ports = %plan.udp_steered,
        ms = %format_args!("{:.1}", started.elapsed().as_secs_f64() * 1000.0),
        "steering attached"
    );
    if !plan.local_targets.is_empty() {
        tracing::info!(ports = %plan.local_targets, "not steering ports of local targets (they would loop back)");
    }
    if !plan.skipped.is_empty() {
        tracing::warn!(ports = %plan.skipped, "not steering ports where another socket already listens");
    }
    for policy in table.policies.iter().filter(|p| !p.sources.is_empty()) {
        let sources = &policy.sources;
        tracing::info!(
            policy = %policy.name,
            allow = sources.allow.len(),
            deny = sources.deny.len(),
            rate_limit = ?sources.rate_limit.map(|r| r.per_second),
            "source rules enforced in the kernel"
        );
    }
    let counters = steering.counters();
    Ok(Started { steering: std::sync::Arc::new(std::sync::Mutex::new(Some(steering))), plan, counters })
}

#[cfg(not(feature = "steer"))]
pub(super) fn start(
    _: &Config,
    _: &crate::config::SteerConfig,
    _: &mut Vec<Vec<std::net::TcpListener>>,
    _: Option<&std::net::UdpSocket>,
    _: &mut Vec<String>,
) -> Result<Started, RunError> {
    Err(RunError::SteeringNotBuilt)
}

/// The ports of serve2's own listeners.
pub(super) fn own_ports(groups: &[Vec<std::net::TcpListener>]) -> PortSet {
    groups.iter().flatten().filter_map(|l| l.local_addr().ok()).map(|a| a.port()).collect()
}

/// Keeps the program's heartbeat going on this (the main) runtime, and its
/// kernel-direct routes pointed at their backends' current listeners.
#[cfg(feature = "steer")]
pub(super) fn start_heartbeat(steering: &SharedSteering) -> Option<tokio::task::JoinHandle<()>> {
    let heartbeat = steering.lock().ok()?.as_ref()?.heartbeat();
    let shared = steering.clone();
    let refresh = async move {
        let mut ticks = tokio::time::interval(ROUTE_REFRESH);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match shared.lock() {
                Ok(guard) => match guard.as_ref() {
                    Some(steering) => steering.refresh_routes(),
                    None => return,
                },
                Err(_) => return,
            }
        }
    };
    Some(tokio::spawn(async move {
        tokio::join!(heartbeat.keep_beating(), refresh);
    }))
}

/// How often kernel-direct routes look for a new backend listener.
#[cfg(feature = "steer")]
const ROUTE_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

#[cfg(not(feature = "steer"))]
pub(super) fn start_heartbeat(_: &SharedSteering) -> Option<tokio::task::JoinHandle<()>> {
    None
}

/// Detaches the program (new connections fall back to the kernel's normal
/// lookup at once).
#[cfg(feature = "steer")]
pub(super) fn detach(steering: &SharedSteering) {
    let detached = steering.lock().map(|mut s| s.take()).unwrap_or_default();
    if detached.is_some() {
        drop(detached);
        tracing::info!("steering detached; draining connections");
    }
}

#[cfg(not(feature = "steer"))]
pub(super) fn detach(_: &SharedSteering) {}
