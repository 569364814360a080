//! What the UDP engine counts, for `serve2d status` and the metrics:
//! per-policy flow counts (carried over a reload by policy name) and the
//! datagrams dropped, by reason.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// One policy's flow counters.
#[derive(Debug, Default)]
pub struct PolicyCounters {
    active: AtomicU64,
    created: AtomicU64,
    undetected: AtomicU64,
    from_client: AtomicU64,
    to_client: AtomicU64,
}

impl PolicyCounters {
    /// Counts a new flow, active until [`PolicyCounters::ended`].
    pub(super) fn created(&self) {
        self.created.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a flow's end, with its bytes each way.
    pub(super) fn ended(&self, from_client: u64, to_client: u64, undetected: bool) {
        self.active.fetch_sub(1, Ordering::Relaxed);
        self.from_client.fetch_add(from_client, Ordering::Relaxed);
        self.to_client.fetch_add(to_client, Ordering::Relaxed);
        if undetected {
            self.undetected.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Flows open now.
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Flows created since start.
    pub fn total_created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }

    /// Flows whose first datagrams matched nothing, dropped without a default.
    pub fn total_undetected(&self) -> u64 {
        self.undetected.load(Ordering::Relaxed)
    }

    /// Bytes of ended flows: (from clients, to clients).
    pub fn bytes(&self) -> (u64, u64) {
        (self.from_client.load(Ordering::Relaxed), self.to_client.load(Ordering::Relaxed))
    }
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A new flow past `maxFlows`.
    TableFull,
    /// A new flow past `maxFlowsPerSource`.
    SourceFull,
    /// A new flow's buffer (datagrams or bytes) was full.
    BufferFull,
    /// Larger than serve2 receives whole.
    Truncated,
    /// No `udp` block serves the dialled port.
    NoPolicy,
    /// The backend or client socket refused it (buffer full, unreachable).
    SendFailed,
    /// A datagram of a flow that matched nothing (the flow is dropped too).
    Undetected,
}

impl DropReason {
    /// Every reason, in label order.
    pub const ALL: [DropReason; 7] = [
        DropReason::TableFull,
        DropReason::SourceFull,
        DropReason::BufferFull,
        DropReason::Truncated,
        DropReason::NoPolicy,
        DropReason::SendFailed,
        DropReason::Undetected,
    ];

    /// The status key and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::TableFull => "table_full",
            DropReason::SourceFull => "source_full",
            DropReason::BufferFull => "buffer_full",
            DropReason::Truncated => "truncated",
            DropReason::NoPolicy => "no_policy",
            DropReason::SendFailed => "send_failed",
            DropReason::Undetected => "undetected",
        }
    }
}

/// Datagrams dropped since start, by reason.
#[derive(Debug, Default)]
pub struct DropCounters([AtomicU64; DropReason::ALL.len()]);

impl DropCounters {
    /// Counts one dropped datagram; returns the new total for its reason.
    pub(super) fn count(&self, reason: DropReason) -> u64 {
        self.0[reason as usize].fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The count for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason as usize].load(Ordering::Relaxed)
    }
}

/// The UDP part of `serve2d status` (`udp` in `--json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct UdpStatus {
    /// The UDP sockets (`127.0.0.1:5353`, `[::]:40001 (steering)`).
    pub listeners: Vec<String>,
    /// Each socket's open flows and the thread serving it (a
    /// SO_REUSEPORT group has one socket per worker).
    #[serde(default)]
    pub sockets: Vec<UdpSocketStatus>,
    /// Flows open now, all policies.
    pub flows: u64,
    /// `maxFlows`.
    pub max_flows: u64,
    /// `maxFlowsPerSource`.
    pub max_flows_per_source: u64,
    /// Datagrams dropped since start, by reason (`table_full`, …).
    pub dropped: std::collections::BTreeMap<String, u64>,
    /// Per policy, then the top level.
    pub policies: Vec<UdpPolicyStatus>,
}

/// One UDP socket's share of the flows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct UdpSocketStatus {
    /// Its address, as in [`UdpStatus::listeners`].
    pub address: String,
    /// The thread serving it (`serve2-udp-0`, …).
    pub thread: String,
    /// Flows in its table now.
    pub flows: u64,
}

/// A socket being served, for status.
#[derive(Debug)]
pub(super) struct ServedSocket {
    /// `127.0.0.1:5353`, `[::]:40001 (steering)`.
    pub label: String,
    /// The thread serving it.
    pub thread: String,
    /// Flows in its table now.
    pub flows: Arc<AtomicU64>,
}

impl ServedSocket {
    /// Status's listeners (a SO_REUSEPORT group's address once) and
    /// sockets.
    pub(super) fn status(served: &[ServedSocket]) -> (Vec<String>, Vec<UdpSocketStatus>) {
        let (mut listeners, mut sockets) = (Vec::new(), Vec::new());
        for socket in served {
            if !listeners.contains(&socket.label) {
                listeners.push(socket.label.clone());
            }
            let flows = socket.flows.load(Ordering::Relaxed);
            sockets.push(UdpSocketStatus { address: socket.label.clone(), thread: socket.thread.clone(), flows });
        }
        (listeners, sockets)
    }
}

/// One `udp` block's flows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct UdpPolicyStatus {
    /// The policy's name (`top level` for the top-level block).
    pub name: String,
    /// Its ports (`every other port` for the top level).
    pub ports: String,
    /// Its protocols in detection order, or `forward`.
    pub protocols: Vec<String>,
    /// Its default protocol.
    pub fallback: Option<String>,
    /// Flows open now.
    pub flows: u64,
    /// Flows created since start.
    pub created: u64,
    /// Flows dropped undetected since start.
    pub undetected: u64,
}

impl std::fmt::Display for UdpStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "udp: {} flows (max {}, {} per source), sockets: {}",
            self.flows,
            self.max_flows,
            self.max_flows_per_source,
            self.listeners.join(", ")
        )?;
        let dropped: Vec<String> = self.dropped.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(f, "  dropped datagrams: {}", dropped.join(", "))?;
        if self.sockets.len() > 1 {
            // A thread serves a socket of each group: name the group when
            // there are several.
            let shares: Vec<String> = self
                .sockets
                .iter()
                .map(|s| match self.listeners.len() {
                    1 => format!("{} {}", s.thread, s.flows),
                    _ => format!("{} {} {}", s.thread, s.address, s.flows),
                })
                .collect();
            writeln!(f, "  flows per thread: {}", shares.join(", "))?;
        }
        for policy in &self.policies {
            let fallback = policy.fallback.as_deref().map(|p| format!(" (default: {p})")).unwrap_or_default();
            writeln!(
                f,
                "  {}: {} -> {}{fallback}: {} flows, {} created, {} undetected",
                policy.name,
                policy.ports,
                policy.protocols.join(", "),
                policy.flows,
                policy.created,
                policy.undetected
            )?;
        }
        Ok(())
    }
}

/// The engine's counters, shared by the dispatcher, status and metrics.
#[derive(Debug, Default)]
pub struct UdpStats {
    /// Datagrams dropped, by reason.
    pub dropped: DropCounters,
    /// Flows open now, all policies.
    pub(super) flows: AtomicU64,
}

impl UdpStats {
    /// Flows open now.
    pub fn flows(&self) -> u64 {
        self.flows.load(Ordering::Relaxed)
    }
}

/// Shared handle.
pub type SharedStats = Arc<UdpStats>;
