//! One flow: its state (detecting, resolving its target, open), what it
//! has moved, and the task that carries its backend's replies to the
//! client.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::task::AbortHandle;

use super::reply::ReplyPath;
use super::router::UdpPolicy;
use super::set::UdpRoute;
use super::stats::{DropReason, SharedStats};
use super::{MAX_BUFFERED_BYTES, MAX_BUFFERED_DATAGRAMS};

/// A flow: a client address and the address it dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct FlowKey {
    /// The client.
    pub client: SocketAddr,
    /// The address and port it sent to.
    pub dialled: SocketAddr,
}

/// A new flow's datagrams, kept in order until its route is known.
#[derive(Debug, Default)]
pub(super) struct Buffer {
    datagrams: Vec<Vec<u8>>,
    bytes: usize,
}

impl Buffer {
    /// Keeps `data` if it fits ([`MAX_BUFFERED_DATAGRAMS`],
    /// [`MAX_BUFFERED_BYTES`]; the first datagram always fits, so
    /// detection always has one to judge).
    pub fn push(&mut self, data: &[u8]) -> bool {
        let fits = self.datagrams.is_empty()
            || (self.datagrams.len() < MAX_BUFFERED_DATAGRAMS && self.bytes + data.len() <= MAX_BUFFERED_BYTES);
        if fits {
            self.datagrams.push(data.to_vec());
            self.bytes += data.len();
        }
        fits
    }

    /// Whether no further datagram can be kept.
    pub fn is_full(&self) -> bool {
        self.datagrams.len() >= MAX_BUFFERED_DATAGRAMS || self.bytes >= MAX_BUFFERED_BYTES
    }

    /// The datagrams, for the detectors.
    pub fn views(&self) -> Vec<&[u8]> {
        self.datagrams.iter().map(Vec::as_slice).collect()
    }

    /// How many are kept.
    pub fn len(&self) -> usize {
        self.datagrams.len()
    }

    /// The datagrams, in arrival order, to replay.
    pub fn into_datagrams(self) -> Vec<Vec<u8>> {
        self.datagrams
    }
}

/// Where a flow is.
#[derive(Debug)]
pub(super) enum FlowState {
    /// Buffering until the protocols decide.
    Detecting(Buffer),
    /// Decided; the target's name is being resolved.
    Resolving(Buffer, UdpRoute),
    /// Datagrams go straight to the backend.
    Open(OpenFlow),
}

/// An open flow's backend side.
#[derive(Debug)]
pub(super) struct OpenFlow {
    /// Connected to the backend; its local port is the flow's, as the
    /// backend sees it.
    pub upstream: Arc<UdpSocket>,
    /// The PROXY v2 header before every datagram, if the route asks.
    pub header: Option<Vec<u8>>,
    /// The task carrying replies to the client.
    pub replies: AbortHandle,
}

impl Drop for OpenFlow {
    fn drop(&mut self) {
        self.replies.abort();
    }
}

/// What both the dispatcher and the reply task update.
#[derive(Debug, Default)]
pub(super) struct FlowShared {
    /// Milliseconds (since the server's clock start) of the last datagram
    /// either way.
    last_activity: AtomicU64,
    replies: AtomicU64,
    reply_bytes: AtomicU64,
}

impl FlowShared {
    pub fn touch(&self, now_ms: u64) {
        self.last_activity.store(now_ms, Ordering::Relaxed);
    }

    pub fn last_activity(&self) -> u64 {
        self.last_activity.load(Ordering::Relaxed)
    }

    /// Whether the backend ever answered.
    pub fn answered(&self) -> bool {
        self.replies.load(Ordering::Relaxed) > 0
    }

    /// (datagrams, bytes) sent to the client.
    pub fn to_client(&self) -> (u64, u64) {
        (self.replies.load(Ordering::Relaxed), self.reply_bytes.load(Ordering::Relaxed))
    }
}

/// Datagrams and bytes one way.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Traffic {
    pub datagrams: u64,
    pub bytes: u64,
}

impl Traffic {
    pub fn add(&mut self, bytes: usize) {
        self.datagrams += 1;
        self.bytes += bytes as u64;
    }
}

/// One flow in the table.
#[derive(Debug)]
pub(super) struct Flow {
    /// Unique for the server's life: a flow removed and created again under
    /// the same key is another flow.
    pub id: u64,
    pub policy: Arc<UdpPolicy>,
    pub state: FlowState,
    pub started: Instant,
    /// `flow{client, dialled, policy}`: the summary line and the reply
    /// task's errors are logged in it.
    pub span: tracing::Span,
    /// The protocol that took the flow (a kind, the default's kind, or
    /// `forward`), once decided.
    pub protocol: Option<String>,
    /// How it was decided: `match`, `default` (nothing matched), `forward`,
    /// or `-` (not decided: dropped undetected, or still detecting).
    pub via: &'static str,
    pub target: Option<String>,
    pub from_client: Traffic,
    pub shared: Arc<FlowShared>,
}

/// Why a flow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FlowEnd {
    /// `idleTimeout` passed without traffic; the backend never answered.
    Idle,
    /// `establishedTimeout` passed without traffic.
    EstablishedIdle,
    /// Its first datagrams matched nothing and there is no default.
    Undetected,
    /// The target could not be resolved or dialled.
    BackendError,
    /// No socket for replies from the dialled address could be bound.
    ReplySocket,
    /// serve2 stopped.
    Shutdown,
}

impl FlowEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowEnd::Idle => "idle_timeout",
            FlowEnd::EstablishedIdle => "established_timeout",
            FlowEnd::Undetected => "undetected",
            FlowEnd::BackendError => "backend_error",
            FlowEnd::ReplySocket => "reply_socket_error",
            FlowEnd::Shutdown => "shutdown",
        }
    }
}

impl Flow {
    /// Logs the flow's summary line (in its span) and counts its end.
    pub fn finish(&self, end: FlowEnd) {
        let (down_datagrams, down) = self.shared.to_client();
        let (up_datagrams, up) = (self.from_client.datagrams, self.from_client.bytes);
        self.policy.counters.ended(up, down, end == FlowEnd::Undetected);
        let kind = self.protocol.as_deref().unwrap_or("-");
        let target = self.target.as_deref().unwrap_or("-");
        let ms = (self.started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0;
        let end = end.as_str();
        self.span.in_scope(|| {
            tracing::info!(target: "serve2::udp", kind = %kind, via = %self.via, target = %target, up_datagrams, up, down_datagrams, down, ms, end = %end, "udp flow");
        });
    }
}

/// Most reply batches carried per wake-up before other flows get a turn.
const BATCHES_PER_TURN: usize = 4;

/// Carries the backend's datagrams to `client` until aborted (when the
/// flow ends), a batch per system call each way.
pub(super) async fn relay_replies(
    upstream: Arc<UdpSocket>,
    reply: ReplyPath,
    client: SocketAddr,
    shared: Arc<FlowShared>,
    clock: Instant,
    stats: SharedStats,
) {
    let fd = upstream.as_raw_fd();
    loop {
        if upstream.readable().await.is_err() {
            return;
        }
        for _ in 0..BATCHES_PER_TURN {
            let received = upstream.try_io(tokio::io::Interest::READABLE, || {
                let count = super::mmsg::with_reply_batch(fd, |datagrams| {
                    shared.touch(clock.elapsed().as_millis() as u64);
                    let refused = reply.send_batch(datagrams, client);
                    // Bytes offered: a refused datagram (rare) is not told apart.
                    let bytes: usize = datagrams.iter().map(|d| d.len()).sum();
                    shared.replies.fetch_add((datagrams.len() - refused) as u64, Ordering::Relaxed);
                    shared.reply_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                    for _ in 0..refused {
                        stats.dropped.count(DropReason::SendFailed);
                    }
                    datagrams.len()
                })?;
                // A short batch emptied the queue: WouldBlock clears the
                // readiness now (kept if a datagram came since), saving the
                // receive that would only find nothing.
                if count < super::mmsg::MMSG_BATCH { Err(std::io::ErrorKind::WouldBlock.into()) } else { Ok(()) }
            });
            match received {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // The backend's host said "port unreachable" (ICMP): the
                // flow stays until it idles out, as a client would retry.
                Err(e) => tracing::debug!(error = %e, "udp: backend socket"),
            }
        }
        tokio::task::yield_now().await;
    }
}
