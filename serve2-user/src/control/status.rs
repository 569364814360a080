//! What `serve2d status` shows: a running daemon's listeners, steering and
//! policies.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A running daemon's state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    /// The daemon's process id.
    pub pid: u32,
    /// Its configuration file.
    pub config: String,
    /// Its listening sockets.
    pub listeners: Vec<String>,
    /// Connections accepted since start, and open now.
    pub connections: Connections,
    /// Kernel steering, when configured.
    pub steering: Option<SteeringStatus>,
    /// Protocol sets: per-port policies, then the top level.
    pub policies: Vec<PolicyStatus>,
    /// UDP flows, when the daemon serves UDP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<crate::udp::UdpStatus>,
}

/// Connection counts.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Connections {
    /// Accepted since start.
    pub accepted: u64,
    /// Open now.
    pub open: u64,
}

/// What the kernel program does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SteeringStatus {
    /// Steered ports, as ranges (`22,80,8000-8100`).
    pub ports: String,
    /// How many ports are steered.
    pub steered: usize,
    /// Ports a range named but another socket listened on at start.
    pub skipped: String,
    /// Ports left unsteered because a local target listens there.
    #[serde(default)]
    pub local_targets: String,
    /// Ports excluded by configuration.
    pub excluded: String,
    /// Local prefixes steering is limited to (empty: all).
    pub scope: Vec<String>,
    /// The program's counters.
    pub counters: BTreeMap<String, u64>,
    /// Per-policy kernel counters (refusals, kernel-routed connections), for
    /// policies with any.
    #[serde(default)]
    pub policy_counters: BTreeMap<String, BTreeMap<String, u64>>,
    /// Kernel-direct routes.
    #[serde(default)]
    pub kernel_routes: Vec<KernelRouteStatus>,
    /// Steered UDP ports, as ranges (`-` for none).
    #[serde(default)]
    pub udp_ports: String,
}

/// A kernel-direct route: the ports whose connections the kernel hands to
/// the backend's own listener.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KernelRouteStatus {
    /// The ports, as ranges.
    pub ports: String,
    /// The backend.
    pub target: String,
    /// Whether the backend's listener is in the kernel now (else serve2
    /// forwards these ports' connections itself).
    pub in_kernel: bool,
}

/// One protocol set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PolicyStatus {
    /// Its name (`top level` for the top-level protocols).
    pub name: String,
    /// Its ports (`every other port` for the top level).
    pub ports: String,
    /// Its protocols, in detection order.
    pub protocols: Vec<String>,
    /// Its fallback.
    pub fallback: Option<String>,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "serve2d pid {}, config {}", self.pid, self.config)?;
        writeln!(f, "listeners: {}", self.listeners.join(", "))?;
        writeln!(f, "connections: {} open, {} accepted", self.connections.open, self.connections.accepted)?;
        match &self.steering {
            None => writeln!(f, "steering: off")?,
            Some(steering) => {
                writeln!(f, "steering: {} ports: {}", steering.steered, steering.ports)?;
                if !steering.udp_ports.is_empty() && steering.udp_ports != "-" {
                    writeln!(f, "  udp ports: {}", steering.udp_ports)?;
                }
                writeln!(f, "  skipped (another socket listened at start): {}", steering.skipped)?;
                if !steering.local_targets.is_empty() && steering.local_targets != "-" {
                    writeln!(f, "  not steered (local targets): {}", steering.local_targets)?;
                }
                writeln!(f, "  excluded: {}", steering.excluded)?;
                let scope =
                    if steering.scope.is_empty() { "every local address".into() } else { steering.scope.join(", ") };
                writeln!(f, "  scope: {scope}")?;
                for route in &steering.kernel_routes {
                    let state =
                        if route.in_kernel { "kernel-routed" } else { "forwarded by serve2 (backend not listening)" };
                    writeln!(f, "  ports {} -> {}: {state}", route.ports, route.target)?;
                }
                let counters: Vec<String> = steering.counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
                writeln!(f, "  kernel counters: {}", counters.join(", "))?;
                for (policy, counts) in &steering.policy_counters {
                    let counts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
                    writeln!(f, "  {policy}: {}", counts.join(", "))?;
                }
            }
        }
        writeln!(f, "policies:")?;
        for policy in &self.policies {
            let fallback = policy.fallback.as_deref().map(|p| format!(" (fallback: {p})")).unwrap_or_default();
            writeln!(f, "  {}: {} -> {}{fallback}", policy.name, policy.ports, policy.protocols.join(", "))?;
        }
        if let Some(udp) = &self.udp {
            write!(f, "{udp}")?;
        }
        Ok(())
    }
}
