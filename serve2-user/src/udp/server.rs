//! The UDP server: one task per socket owns it and its flow table (the
//! limits are shared by every socket's table). It takes
//! datagrams in batches, finds or creates each one's flow, buffers a new
//! flow's datagrams until its protocols decide, then replays them to the
//! backend and sends every later one straight on; a task per open flow
//! carries the backend's replies to the client. Timers end undecided
//! detections (`detectTimeout`) and idle flows.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::admission::Admission;
use super::flow::{Buffer, Flow, FlowEnd, FlowKey, FlowShared, FlowState, Traffic};
use super::mmsg::Outbox;
use super::reply::{ReplySockets, Stray};
use super::router::UdpRouter;
use super::set::Decision;
use super::socket::RecvBatch;
use super::stats::{DropReason, ServedSocket, SharedStats, UdpStats, UdpStatus};

/// Batches taken in a row before timers and reply tasks get a turn.
const BATCHES_PER_TURN: usize = 8;

/// Serves UDP flows on sockets given to [`UdpServer::serve`], from any
/// number of threads; cheap to clone (the router, the limits and the
/// counters are shared).
#[derive(Debug, Clone)]
pub struct UdpServer {
    router: Arc<ArcSwap<UdpRouter>>,
    stats: SharedStats,
    admission: Arc<Admission>,
    sockets: Arc<Mutex<Vec<ServedSocket>>>,
}

impl UdpServer {
    /// A server routing new flows with `router`.
    pub fn new(router: UdpRouter) -> Self {
        Self {
            router: Arc::new(ArcSwap::from_pointee(router)),
            stats: Arc::new(UdpStats::default()),
            admission: Arc::default(),
            sockets: Arc::default(),
        }
    }

    /// Routes new flows with `router` from now on; open flows keep theirs.
    pub fn replace_router(&self, router: UdpRouter) {
        self.router.store(Arc::new(router));
    }

    /// The router in force.
    pub fn router(&self) -> Arc<UdpRouter> {
        self.router.load_full()
    }

    /// The counters.
    pub fn stats(&self) -> &SharedStats {
        &self.stats
    }

    /// What `serve2d status` shows.
    pub fn status(&self) -> UdpStatus {
        let router = self.router.load();
        let (listeners, sockets) = self.sockets.lock().map(|s| ServedSocket::status(&s)).unwrap_or_default();
        UdpStatus {
            listeners,
            sockets,
            flows: self.stats.flows(),
            max_flows: router.limits.max_flows as u64,
            max_flows_per_source: router.limits.max_flows_per_source as u64,
            dropped: DropReason::ALL.iter().map(|&r| (r.as_str().to_owned(), self.stats.dropped.get(r))).collect(),
            policies: router.all().map(|p| p.status()).collect(),
        }
    }

    /// Serves flows on `socket` until `shutdown` completes, then ends every
    /// flow. `steered` says the kernel's steering program delivers to it
    /// (bound to port 0: replies leave through sockets bound to each
    /// dialled address and port); otherwise it is bound to the port clients
    /// dial.
    /// Either way each datagram's dialled address comes from its header
    /// (bind with [`super::socket::bind`] or [`super::socket::bind_steered`]).
    pub async fn serve(&self, socket: std::net::UdpSocket, steered: bool, shutdown: impl Future<Output = ()>) {
        let local = socket.local_addr().ok();
        let socket = match UdpSocket::from_std(socket) {
            Ok(socket) => Arc::new(socket),
            Err(e) => return tracing::error!(error = %e, "udp: cannot serve the socket"),
        };
        let flows = Arc::new(AtomicU64::new(0));
        if let (Some(local), Ok(mut sockets)) = (local, self.sockets.lock()) {
            let label = if steered { format!("{local} (steering)") } else { local.to_string() };
            let thread = std::thread::current().name().unwrap_or("-").to_owned();
            sockets.push(ServedSocket { label, thread, flows: flows.clone() });
        }
        let (strays_tx, strays) = mpsc::channel(1024);
        let (resolved_tx, resolved) = mpsc::unbounded_channel();
        let mut dispatcher = Dispatcher {
            ipv6_socket: local.is_some_and(|l| l.is_ipv6()),
            fallback_dialled: local,
            socket,
            steered,
            router: self.router.clone(),
            stats: self.stats.clone(),
            table: super::table::FlowTable::new(self.admission.clone()),
            socket_flows: flows,
            deadlines: BinaryHeap::new(),
            replies: ReplySockets::new(strays_tx),
            resolved_tx,
            clock: Instant::now(),
            next_id: 0,
            outbox: Outbox::default(),
            warned_at: [u64::MAX; DropReason::ALL.len()],
        };
        dispatcher.run(strays, resolved, shutdown).await;
    }
}

/// A resolved target: (flow key, flow id, first address or the error).
pub(super) type Resolved = (FlowKey, u64, std::io::Result<SocketAddr>);

pub(super) struct Dispatcher {
    pub(super) socket: Arc<UdpSocket>,
    pub(super) ipv6_socket: bool,
    /// The socket's own address: the dialled address of a datagram whose
    /// header did not say (never seen in practice).
    pub(super) fallback_dialled: Option<SocketAddr>,
    pub(super) steered: bool,
    pub(super) router: Arc<ArcSwap<UdpRouter>>,
    pub(super) stats: SharedStats,
    pub(super) table: super::table::FlowTable,
    /// This table's flow count, for status.
    pub(super) socket_flows: Arc<AtomicU64>,
    /// Detection deadlines, earliest first (stale entries skipped).
    pub(super) deadlines: BinaryHeap<Reverse<(tokio::time::Instant, u64, FlowKey)>>,
    pub(super) replies: ReplySockets,
    pub(super) resolved_tx: mpsc::UnboundedSender<Resolved>,
    pub(super) clock: Instant,
    pub(super) next_id: u64,
    /// Datagrams for open flows' backends, sent at the end of each batch.
    pub(super) outbox: Outbox,
    /// The second of the last warning, per drop reason.
    pub(super) warned_at: [u64; DropReason::ALL.len()],
}

impl Dispatcher {
    async fn run(
        &mut self,
        mut strays: mpsc::Receiver<Stray>,
        mut resolved: mpsc::UnboundedReceiver<Resolved>,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut batch = RecvBatch::new();
        let mut next_reap = tokio::time::Instant::now() + self.router.load().reap_period();
        tokio::pin!(shutdown);
        loop {
            let next_deadline = self.deadlines.peek().map(|Reverse((at, _, _))| *at);
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                ready = self.socket.readable() => {
                    if let Err(e) = ready {
                        tracing::error!(error = %e, "udp: socket failed");
                        break;
                    }
                    self.receive_batches(&mut batch).await;
                }
                Some((data, client, dialled)) = strays.recv() => {
                    self.datagram(&data, client, dialled);
                    self.flush();
                }
                Some((key, id, address)) = resolved.recv() => self.resolved(key, id, address),
                () = sleep_until(next_deadline) => self.detection_deadlines(),
                () = tokio::time::sleep_until(next_reap) => {
                    self.reap();
                    next_reap = tokio::time::Instant::now() + self.router.load().reap_period();
                }
            }
        }
        for key in self.table.keys() {
            self.end(&key, FlowEnd::Shutdown);
        }
    }

    /// Takes what the socket has, a few batches at a time.
    async fn receive_batches(&mut self, batch: &mut RecvBatch) {
        for _ in 0..BATCHES_PER_TURN {
            let fd = self.socket.as_raw_fd();
            // A short batch left the queue empty: saying WouldBlock clears the
            // socket's readiness now (tokio keeps it if a datagram came since),
            // which saves the receive that would only find nothing.
            let mut drained = false;
            let received = self.socket.try_io(tokio::io::Interest::READABLE, || {
                let count = batch.receive(fd)?;
                drained = batch.drained();
                if drained { Err(std::io::ErrorKind::WouldBlock.into()) } else { Ok(count) }
            });
            let count = match received {
                Ok(count) => count,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && drained => batch.len(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!(error = %e, "udp: receive");
                    return;
                }
            };
            for i in 0..count {
                let Some((data, addresses, truncated)) = batch.datagram(i) else { continue };
                if truncated {
                    self.dropped(DropReason::Truncated);
                    continue;
                }
                let Some(dialled) = addresses.dialled.or(self.fallback_dialled) else { continue };
                self.datagram(data, addresses.source, dialled);
            }
            self.flush();
            if drained {
                return;
            }
        }
        // Still more queued: let timers and reply tasks run first.
        tokio::task::yield_now().await;
    }

    /// Sends what this batch forwarded to open flows' backends.
    pub(super) fn flush(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        for _ in 0..self.outbox.flush() {
            self.dropped(DropReason::SendFailed);
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    /// Counts a dropped datagram; warns at most once a second per reason
    /// for the limits.
    pub(super) fn dropped(&mut self, reason: DropReason) {
        let total = self.stats.dropped.count(reason);
        if matches!(reason, DropReason::TableFull | DropReason::SourceFull | DropReason::NoPolicy) {
            let second = self.clock.elapsed().as_secs();
            if std::mem::replace(&mut self.warned_at[reason as usize], second) != second {
                let limit = match reason {
                    DropReason::TableFull => "maxFlows",
                    DropReason::SourceFull => "maxFlowsPerSource",
                    _ => "no udp block for the dialled port",
                };
                tracing::warn!(target: "serve2::udp", reason = reason.as_str(), limit, total, "udp datagrams of new flows dropped");
            }
        }
    }

    /// One datagram from `client` to `dialled`.
    fn datagram(&mut self, data: &[u8], client: SocketAddr, dialled: SocketAddr) {
        let key = FlowKey { client, dialled };
        let now_ms = self.now_ms();
        let Some(flow) = self.table.get_mut(&key) else { return self.new_flow(key, data, now_ms) };
        flow.from_client.add(data.len());
        flow.shared.touch(now_ms);
        match &mut flow.state {
            // Sent when the batch is done, with the flow's others (`flush`).
            FlowState::Open(open) => self.outbox.push(&open.upstream, open.header.as_deref(), data),
            FlowState::Resolving(buffer, _) => {
                if !buffer.push(data) {
                    self.dropped(DropReason::BufferFull);
                }
            }
            FlowState::Detecting(buffer) => {
                let kept = buffer.push(data);
                let last = !kept || buffer.is_full();
                self.judge(&key, last, (!kept).then_some(data));
            }
        }
    }

    fn new_flow(&mut self, key: FlowKey, data: &[u8], now_ms: u64) {
        let router = self.router.load();
        let Some(policy) = router.for_port(key.dialled.port()).cloned() else {
            return self.dropped(DropReason::NoPolicy);
        };
        if let Err(reason) = self.table.admit(&key, router.limits) {
            return self.dropped(reason);
        }
        drop(router);
        policy.counters.created();
        self.stats.flows.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(FlowShared::default());
        shared.touch(now_ms);
        let mut buffer = Buffer::default();
        buffer.push(data);
        let mut from_client = Traffic::default();
        from_client.add(data.len());
        let span = tracing::info_span!(target: "serve2::udp", "flow", client = %key.client, dialled = %key.dialled, policy = %policy.name);
        let deadline = tokio::time::Instant::now() + policy.set.timeouts.detect;
        self.next_id += 1;
        let flow = Flow {
            id: self.next_id,
            policy,
            state: FlowState::Detecting(buffer),
            started: Instant::now(),
            span,
            protocol: None,
            via: "-",
            target: None,
            from_client,
            shared,
        };
        let full = matches!(&flow.state, FlowState::Detecting(b) if b.is_full());
        self.table.insert(key, flow);
        self.socket_flows.store(self.table.len() as u64, Ordering::Relaxed);
        self.judge(&key, full, None);
        // Most flows are decided by their first datagram: only the others
        // wait on a deadline.
        if self.table.get(&key).is_some_and(|f| matches!(f.state, FlowState::Detecting(_))) {
            self.deadlines.push(Reverse((deadline, self.next_id, key)));
        }
    }

    /// Asks the flow's protocols about its buffered datagrams (`last`: no
    /// more will be buffered); routes or drops it once they decide.
    /// `overflow` is a datagram that did not fit: sent after the buffered
    /// ones if the flow is routed.
    pub(super) fn judge(&mut self, key: &FlowKey, last: bool, overflow: Option<&[u8]>) {
        let Some(flow) = self.table.get(key) else { return };
        let FlowState::Detecting(buffer) = &flow.state else { return };
        let decision = flow.policy.set.decide(&buffer.views(), last);
        let policy = flow.policy.clone();
        match policy.set.route_of(decision) {
            Some((protocol, route)) => {
                let via = match decision {
                    Decision::Protocol(_) => "match",
                    _ if policy.set.forward.is_some() => "forward",
                    _ => "default",
                };
                self.route(key, protocol, via, route.clone(), overflow);
            }
            None if decision == Decision::Undetected => {
                if overflow.is_some() {
                    self.stats.dropped.count(DropReason::Undetected);
                }
                self.end(key, FlowEnd::Undetected);
            }
            None => {}
        }
    }

    /// Decides the flows whose detection deadline passed.
    fn detection_deadlines(&mut self) {
        let now = tokio::time::Instant::now();
        while let Some(Reverse((at, id, key))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            if self.table.get(&key).is_some_and(|f| f.id == id) {
                self.judge(&key, true, None);
            }
        }
    }

    /// Ends the flows idle past their timeout.
    fn reap(&mut self) {
        let now_ms = self.now_ms();
        for key in self.table.idle(now_ms) {
            let answered = self.table.get(&key).is_some_and(|f| f.shared.answered());
            self.end(&key, if answered { FlowEnd::EstablishedIdle } else { FlowEnd::Idle });
        }
        self.replies.prune();
    }

    /// Removes a flow: its summary line, its counts, its sockets closed.
    pub(super) fn end(&mut self, key: &FlowKey, end: FlowEnd) {
        let Some(flow) = self.table.remove(key) else { return };
        if end == FlowEnd::Undetected
            && let FlowState::Detecting(buffer) = &flow.state
        {
            for _ in 0..buffer.len() {
                self.stats.dropped.count(DropReason::Undetected);
            }
        }
        flow.finish(end);
        self.stats.flows.fetch_sub(1, Ordering::Relaxed);
        self.socket_flows.store(self.table.len() as u64, Ordering::Relaxed);
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
