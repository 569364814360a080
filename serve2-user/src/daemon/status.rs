//! What `serve2d status` reports, read from the configuration in force.

use std::sync::{Arc, RwLock};

use crate::control::{Connections, PolicyStatus, Status, StatusSource};
#[cfg(feature = "steer")]
use crate::control::{KernelRouteStatus, SteeringStatus};
use crate::protocol::ProtocolSet;
use crate::reload::Live;
use crate::server::ServerStats;

/// A status source over the live state.
pub(super) fn source(
    live: Arc<RwLock<Live>>,
    listeners: Vec<String>,
    stats: Arc<ServerStats>,
    #[cfg(feature = "steer")] shared_steering: crate::reload::SharedSteering,
    udp: Option<crate::udp::UdpServer>,
) -> StatusSource {
    Arc::new(move || {
        let Ok(live) = live.read() else {
            return Status {
                pid: std::process::id(),
                config: String::new(),
                listeners: listeners.clone(),
                connections: Connections::default(),
                steering: None,
                policies: Vec::new(),
                udp: udp.as_ref().map(crate::udp::UdpServer::status),
            };
        };
        let config = &live.config;
        let mut policies: Vec<PolicyStatus> = config
            .policies
            .iter()
            .filter(|p| p.serves_tcp())
            .map(|p| policy(&p.name, format!("ports {}", p.ports), &p.protocols))
            .collect();
        policies.push(policy("top level", "every other port".into(), &config.protocols));
        Status {
            pid: std::process::id(),
            config: config.file.display().to_string(),
            listeners: listeners.clone(),
            connections: Connections { accepted: stats.accepted(), open: stats.open() },
            #[cfg(feature = "steer")]
            steering: steering(&live, &shared_steering),
            #[cfg(not(feature = "steer"))]
            steering: None,
            policies,
            udp: udp.as_ref().map(crate::udp::UdpServer::status),
        }
    })
}

#[cfg(feature = "steer")]
fn steering(live: &Live, shared: &crate::reload::SharedSteering) -> Option<SteeringStatus> {
    let (plan, steer) = (live.plan.as_ref()?, live.config.steer.as_ref()?);
    let guard = shared.lock().ok();
    let steering = guard.as_ref().and_then(|g| g.as_ref());
    let counters = steering.map(|s| s.counters());
    let kernel_routes = steering.map(|s| s.routes()).unwrap_or_default();
    Some(SteeringStatus {
        kernel_routes: kernel_routes
            .iter()
            .map(|route| KernelRouteStatus {
                ports: route.ports.to_string(),
                target: route.target.to_string(),
                in_kernel: route.inode.is_some(),
            })
            .collect(),
        policy_counters: counters
            .as_ref()
            .map(|c| {
                c.per_policy()
                    .into_iter()
                    .map(|(name, counts)| (name, counts.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
                    .collect()
            })
            .unwrap_or_default(),
        ports: plan.steered.to_string(),
        udp_ports: plan.udp_steered.to_string(),
        steered: plan.steered.len(),
        skipped: plan.skipped.to_string(),
        local_targets: plan.local_targets.to_string(),
        excluded: steer.exclude.to_string(),
        scope: steer.scope.iter().map(ToString::to_string).collect(),
        counters: counters.map(|c| c.read().into_iter().map(|(k, v)| (k.to_owned(), v)).collect()).unwrap_or_default(),
    })
}

fn policy(name: &str, ports: String, set: &ProtocolSet) -> PolicyStatus {
    PolicyStatus {
        name: name.to_owned(),
        ports,
        protocols: set.protocols().iter().map(|p| p.name().to_owned()).collect(),
        fallback: set.fallback().map(|p| p.name().to_owned()),
    }
}
