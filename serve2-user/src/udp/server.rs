//! The UDP server: one task owns a socket and the flow table. It takes
//! datagrams in batches, finds or creates each one's flow, buffers a new
//! flow's datagrams until its protocols decide, then replays them to the
//! backend and sends every later one straight on; a task per open flow
//! carries the backend's replies to the client. Timers end undecided
//! detections (`detectTimeout`) and idle flows.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::flow::{Buffer, Flow, FlowEnd, FlowKey, FlowShared, FlowState, OpenFlow, Traffic};
use super::reply::{ReplyPath, ReplySockets, Stray};
use super::router::UdpRouter;
use super::set::{Decision, UdpRoute};
use super::socket::{BATCH, RecvBatch};
use super::stats::{DropReason, SharedStats, UdpStats, UdpStatus};

/// Batches taken in a row before timers and reply tasks get a turn.
const BATCHES_PER_TURN: usize = 8;

/// Serves UDP flows on sockets given to [`UdpServer::serve`]; cheap to
/// clone (the router and counters are shared).
#[derive(Debug, Clone)]
pub struct UdpServer {
    router: Arc<ArcSwap<UdpRouter>>,
    stats: SharedStats,
    listeners: Arc<Mutex<Vec<String>>>,
}

impl UdpServer {
    /// A server routing new flows with `router`.
    pub fn new(router: UdpRouter) -> Self {
        Self {
            router: Arc::new(ArcSwap::from_pointee(router)),
            stats: Arc::new(UdpStats::default()),
            listeners: Arc::default(),
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
        UdpStatus {
            listeners: self.listeners.lock().map(|l| l.clone()).unwrap_or_default(),
            flows: self.stats.flows(),
            max_flows: router.limits.max_flows as u64,
            max_flows_per_source: router.limits.max_flows_per_source as u64,
            dropped: DropReason::ALL.iter().map(|&r| (r.as_str().to_owned(), self.stats.dropped.get(r))).collect(),
            policies: router.all().map(|p| p.status()).collect(),
        }
    }

    /// Serves flows on `socket` until `shutdown` completes, then ends every
    /// flow. `steered` says the kernel's steering program delivers to it
    /// (bound to port 0: replies need sockets of their own, see
    /// [`super::reply`]); otherwise it is bound to the port clients dial.
    /// Either way each datagram's dialled address comes from its header
    /// (bind with [`super::socket::bind`] or [`super::socket::bind_steered`]).
    pub async fn serve(&self, socket: std::net::UdpSocket, steered: bool, shutdown: impl Future<Output = ()>) {
        let local = socket.local_addr().ok();
        let socket = match UdpSocket::from_std(socket) {
            Ok(socket) => Arc::new(socket),
            Err(e) => return tracing::error!(error = %e, "udp: cannot serve the socket"),
        };
        if let (Some(local), Ok(mut listeners)) = (local, self.listeners.lock()) {
            listeners.push(if steered { format!("{local} (steering)") } else { local.to_string() });
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
            table: super::table::FlowTable::default(),
            deadlines: BinaryHeap::new(),
            replies: ReplySockets::new(strays_tx),
            resolved_tx,
            clock: Instant::now(),
            next_id: 0,
            scratch: Vec::new(),
            warned_at: [u64::MAX; DropReason::ALL.len()],
        };
        dispatcher.run(strays, resolved, shutdown).await;
    }
}

/// A resolved target: (flow key, flow id, first address or the error).
type Resolved = (FlowKey, u64, std::io::Result<SocketAddr>);

struct Dispatcher {
    socket: Arc<UdpSocket>,
    ipv6_socket: bool,
    /// The socket's own address: the dialled address of a datagram whose
    /// header did not say (never seen in practice).
    fallback_dialled: Option<SocketAddr>,
    steered: bool,
    router: Arc<ArcSwap<UdpRouter>>,
    stats: SharedStats,
    table: super::table::FlowTable,
    /// Detection deadlines, earliest first (stale entries skipped).
    deadlines: BinaryHeap<Reverse<(tokio::time::Instant, u64, FlowKey)>>,
    replies: ReplySockets,
    resolved_tx: mpsc::UnboundedSender<Resolved>,
    clock: Instant,
    next_id: u64,
    /// Header plus datagram, for routes with `proxyProtocol`.
    scratch: Vec<u8>,
    /// The second of the last warning, per drop reason.
    warned_at: [u64; DropReason::ALL.len()],
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
                Some((data, client, dialled)) = strays.recv() => self.datagram(&data, client, dialled),
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
            let count = match self.socket.try_io(tokio::io::Interest::READABLE, || batch.receive(fd)) {
                Ok(count) => count,
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
            if count < BATCH {
                return;
            }
        }
        // Still more queued: let timers and reply tasks run first.
        tokio::task::yield_now().await;
    }

    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    /// Counts a dropped datagram; warns at most once a second per reason
    /// for the limits.
    fn dropped(&mut self, reason: DropReason) {
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
            FlowState::Open(open) => {
                if open.send(data, &mut self.scratch).is_err() {
                    self.dropped(DropReason::SendFailed);
                }
            }
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
        if let Err(reason) = self.table.admits(&key, router.limits) {
            return self.dropped(reason);
        }
        drop(router);
        policy.counters.created();
        self.stats.flows.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
            target: None,
            from_client,
            shared,
        };
        let full = matches!(&flow.state, FlowState::Detecting(b) if b.is_full());
        self.table.insert(key, flow);
        self.deadlines.push(Reverse((deadline, self.next_id, key)));
        self.judge(&key, full, None);
    }

    /// Asks the flow's protocols about its buffered datagrams (`last`: no
    /// more will be buffered); routes or drops it once they decide.
    /// `overflow` is a datagram that did not fit: sent after the buffered
    /// ones if the flow is routed.
    fn judge(&mut self, key: &FlowKey, last: bool, overflow: Option<&[u8]>) {
        let Some(flow) = self.table.get(key) else { return };
        let FlowState::Detecting(buffer) = &flow.state else { return };
        let decision = flow.policy.set.decide(&buffer.views(), last);
        let policy = flow.policy.clone();
        match policy.set.route_of(decision) {
            Some((protocol, route)) => self.route(key, protocol, route.clone(), overflow),
            None if decision == Decision::Undetected => self.end(key, FlowEnd::Undetected),
            None => {}
        }
    }

    /// Routes a decided flow: at once for an address, after resolving a name.
    fn route(&mut self, key: &FlowKey, protocol: &str, route: UdpRoute, overflow: Option<&[u8]>) {
        let Some(flow) = self.table.get_mut(key) else { return };
        flow.protocol = Some(protocol.to_owned());
        flow.target = Some(route.target.clone());
        let FlowState::Detecting(buffer) = std::mem::replace(&mut flow.state, FlowState::Detecting(Buffer::default()))
        else {
            return;
        };
        let mut datagrams = buffer.into_datagrams();
        datagrams.extend(overflow.map(<[u8]>::to_vec));
        if let Ok(address) = route.target.parse::<SocketAddr>() {
            return self.open(key, address, &route, datagrams);
        }
        let mut buffer = Buffer::default();
        for datagram in &datagrams {
            buffer.push(datagram);
        }
        flow.state = FlowState::Resolving(buffer, route.clone());
        let (id, tx, key) = (flow.id, self.resolved_tx.clone(), *key);
        tokio::spawn(async move {
            let address = match tokio::net::lookup_host(&route.target).await {
                Ok(mut addresses) => addresses.next().ok_or_else(|| std::io::Error::other("no address")),
                Err(e) => Err(e),
            };
            let _ = tx.send((key, id, address));
        });
    }

    fn resolved(&mut self, key: FlowKey, id: u64, address: std::io::Result<SocketAddr>) {
        let Some(flow) = self.table.get_mut(&key).filter(|f| f.id == id) else { return };
        let FlowState::Resolving(..) = &flow.state else { return };
        let FlowState::Resolving(buffer, route) =
            std::mem::replace(&mut flow.state, FlowState::Detecting(Buffer::default()))
        else {
            return;
        };
        match address {
            Ok(address) => self.open(&key, address, &route, buffer.into_datagrams()),
            Err(e) => {
                flow.span.in_scope(|| tracing::warn!(target = %route.target, error = %e, "udp: cannot resolve target"));
                self.end(&key, FlowEnd::BackendError);
            }
        }
    }

    /// Connects the flow's backend socket, starts its replies, and sends
    /// `datagrams` (the buffered ones, in order).
    fn open(&mut self, key: &FlowKey, backend: SocketAddr, route: &UdpRoute, datagrams: Vec<Vec<u8>>) {
        let reply = if self.steered {
            match self.replies.for_dialled(key.dialled) {
                Ok(socket) => ReplyPath::Bound(socket),
                Err(e) => {
                    self.in_span(
                        key,
                        |dialled| tracing::warn!(%dialled, error = %e, "udp: cannot bind a reply socket"),
                    );
                    return self.end(key, FlowEnd::ReplySocket);
                }
            }
        } else {
            ReplyPath::Main { socket: self.socket.clone(), ipv6_socket: self.ipv6_socket, from: key.dialled.ip() }
        };
        let upstream = match upstream_socket(backend).and_then(UdpSocket::from_std) {
            Ok(upstream) => Arc::new(upstream),
            Err(e) => {
                self.in_span(key, |_| tracing::warn!(%backend, error = %e, "udp: cannot reach the backend"));
                return self.end(key, FlowEnd::BackendError);
            }
        };
        let Some(flow) = self.table.get_mut(key) else { return };
        let replies = super::flow::relay_replies(
            upstream.clone(),
            reply,
            key.client,
            flow.shared.clone(),
            self.clock,
            self.stats.clone(),
        );
        let replies = tokio::spawn(tracing::Instrument::instrument(replies, flow.span.clone())).abort_handle();
        let header = route.proxy_header.then(|| super::header::datagram_header(key.client, key.dialled));
        let open = OpenFlow { upstream, header, replies };
        let mut failed = 0;
        for datagram in &datagrams {
            if open.send(datagram, &mut self.scratch).is_err() {
                failed += 1;
            }
        }
        flow.state = FlowState::Open(open);
        for _ in 0..failed {
            self.dropped(DropReason::SendFailed);
        }
    }

    fn in_span(&self, key: &FlowKey, log: impl FnOnce(SocketAddr)) {
        match self.table.get(key) {
            Some(flow) => flow.span.in_scope(|| log(key.dialled)),
            None => log(key.dialled),
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
    fn end(&mut self, key: &FlowKey, end: FlowEnd) {
        let Some(flow) = self.table.remove(key) else { return };
        if end == FlowEnd::Undetected
            && let FlowState::Detecting(buffer) = &flow.state
        {
            for _ in 0..buffer.len() {
                self.stats.dropped.count(DropReason::Undetected);
            }
        }
        flow.finish(end);
        self.stats.flows.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A socket connected to `backend` from an ephemeral port.
///
/// SO_REUSEADDR is set only after the port is taken: set before, two
/// backend sockets could be given the same ephemeral port and, to one
/// backend, share a 4-tuple; set after, a reply socket may still bind the
/// same port for a client that dialled it (see [`super::reply`]).
pub(super) fn upstream_socket(backend: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let any: SocketAddr =
        if backend.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
    let socket = std::net::UdpSocket::bind(any)?;
    socket.connect(backend)?;
    socket.set_nonblocking(true)?;
    socket2::SockRef::from(&socket).set_reuse_address(true)?;
    Ok(socket)
}
