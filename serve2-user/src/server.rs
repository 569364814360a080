//! Accepting connections and running each through detection to its handler.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::accept::{Backoff, is_per_connection, queued_tasks_first};
use crate::admission::{self, Slot};
use crate::conn::{Conn, ConnInfo, canonical_addr};
use crate::detect::engine::{Detected, Detection, Unmatched, detect};
use crate::protocol::{Handled, HandlerError, Protocol, ProtocolSet, RelayJob, RelayRun};
use crate::router::Router;
use crate::summary::Summary;

/// Serves connections from any number of listeners through a [`Router`].
#[derive(Debug, Clone)]
pub struct Server {
    /// Swapped whole on reload: a connection keeps the router it was
    /// accepted under for its whole life.
    router: Arc<arc_swap::ArcSwap<Router>>,
    shutdown_grace: Duration,
    stats: Arc<ServerStats>,
    /// Connections in detection now (for `maxDetecting`).
    detecting: Arc<AtomicU64>,
}

/// Connection counts, updated as the server runs.
#[derive(Debug, Default)]
pub struct ServerStats {
    accepted: AtomicU64,
    open: AtomicU64,
}

impl ServerStats {
    /// Connections accepted since start.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }
}

/// Counts a connection as open for as long as it lives.
struct OpenConnection(Arc<ServerStats>);

impl OpenConnection {
    fn new(stats: &Arc<ServerStats>) -> Self {
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats.open.fetch_add(1, Ordering::Relaxed);
        Self(stats.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Server {
    /// A server routing connections with `router`.
    pub fn new(router: Router) -> Self {
        Self {
            router: Arc::new(arc_swap::ArcSwap::from_pointee(router)),
            shutdown_grace: Duration::from_secs(5),
            stats: Arc::default(),
            detecting: Arc::default(),
        }
    }

    /// Routes connections accepted from now on with `router`; open ones
    /// keep theirs.
    pub fn replace_router(&self, router: Router) {
        self.router.store(Arc::new(router));
    }

    /// Live connection counts.
    pub fn stats(&self) -> Arc<ServerStats> {
        self.stats.clone()
    }

    /// How long [`Server::serve`] waits for open connections after shutdown
    /// before dropping them (default 5 s).
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Accepts on every listener until `shutdown` completes, then stops
    /// accepting and gives open connections the grace period to finish.
    ///
    /// Accept errors never end the loop: running out of file descriptors or
    /// memory backs off and retries, per-connection errors are skipped.
    ///
    /// Bind listeners with [`crate::listener::bind`] (or set `TCP_NODELAY`
    /// on yours): accepted sockets inherit it, and relayed bytes should not
    /// wait for Nagle's algorithm.
    pub async fn serve(&self, listeners: Vec<TcpListener>, shutdown: impl Future<Output = ()>) {
        let tracker = TaskTracker::new();
        let stop = CancellationToken::new();
        for listener in listeners {
            tracker.spawn(accept_loop(listener, self.clone(), tracker.clone(), stop.clone()));
        }
        shutdown.await;
        stop.cancel();
        tracker.close();
        if tokio::time::timeout(self.shutdown_grace, tracker.wait()).await.is_err() {
            tracing::warn!(open = tracker.len(), "closing connections still open after the shutdown grace period");
        }
    }

    /// Serves with one thread per worker, each running its own single-thread
    /// runtime over its own listeners (`workers[i]`, typically one socket of
    /// each SO_REUSEPORT group from [`crate::listener::bind_group`]). A
    /// connection lives on the thread that accepted it: no work stealing,
    /// no cross-thread wake-ups. `on_ready` runs once every worker accepts.
    /// Returns when `shutdown` completes and every worker has drained (each
    /// with the grace period).
    pub async fn serve_per_core(
        &self,
        workers: Vec<Vec<std::net::TcpListener>>,
        on_ready: impl FnOnce(),
        shutdown: impl Future<Output = ()>,
    ) {
        let stop = CancellationToken::new();
        let mut threads = Vec::new();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let count = workers.len();
        for (index, listeners) in workers.into_iter().enumerate() {
            let (server, stop, ready) = (self.clone(), stop.clone(), ready_tx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("serve2-worker-{index}"))
                .spawn(move || server.run_worker(listeners, stop, ready));
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(e) => tracing::error!(worker = index, error = %e, "cannot start worker thread"),
            }
        }
        drop(ready_tx);
        // Every worker accepts once this returns (a worker that failed to
        // start dropped its sender and logged why).
        let all_ready = tokio::task::spawn_blocking(move || (0..count).all(|_| ready_rx.recv().is_ok()));
        let _ = all_ready.await;
        on_ready();
        shutdown.await;
        stop.cancel();
        let joined = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        });
        let _ = joined.await;
    }

    fn run_worker(
        &self,
        listeners: Vec<std::net::TcpListener>,
        stop: CancellationToken,
        ready: std::sync::mpsc::Sender<()>,
    ) {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => return tracing::error!(error = %e, "cannot start a worker runtime"),
        };
        runtime.block_on(async {
            let listeners = listeners
                .into_iter()
                .filter_map(|l| TcpListener::from_std(l).map_err(|e| tracing::error!(error = %e, "listener")).ok())
                .collect();
            let _ = ready.send(());
            self.serve(listeners, stop.cancelled_owned()).await;
        });
    }
}

async fn accept_loop(listener: TcpListener, server: Server, tracker: TaskTracker, stop: CancellationToken) {
    let mut backoff = Backoff::new("listener");
    let local = fixed_local(&listener);
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => return drain_queue(&listener, &server, &tracker, local),
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff.reset();
                admit(&server, &tracker, Accepted { stream, peer, local });
                queued_tasks_first().await;
            }
            Err(e) if is_per_connection(&e) => tracing::debug!(error = %e, "accept: connection lost before accept"),
            Err(e) => tokio::select! {
                () = stop.cancelled() => return drain_queue(&listener, &server, &tracker, local),
                () = backoff.wait(&e) => {}
            },
        }
    }
}

/// At shutdown: accepts what is already in the listen queue (a client the
/// kernel completed a handshake for is served, not reset), then the
/// listener closes. Asks the kernel directly, without waiting: the runtime
/// may not have seen the latest arrivals yet.
fn drain_queue(listener: &TcpListener, server: &Server, tracker: &TaskTracker, local: Option<SocketAddr>) {
    use std::os::fd::{AsRawFd, FromRawFd};
    loop {
        // SAFETY: accept4 on our listening descriptor; a descriptor it
        // returns is new and ours, owned by the std stream built from it.
        let fd = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            let error = io::Error::last_os_error();
            if is_per_connection(&error) {
                continue;
            }
            return;
        }
        // SAFETY: see above.
        let stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
        let (Ok(peer), Ok(stream)) = (stream.peer_addr(), TcpStream::from_std(stream)) else { continue };
        admit(server, tracker, Accepted { stream, peer, local });
    }
}

/// The local address of every connection `listener` accepts, when its own
/// address already says it (bound to one address, not steered to): then no
/// connection needs a `getsockname`.
fn fixed_local(listener: &TcpListener) -> Option<SocketAddr> {
    listener.local_addr().ok().filter(|local| !local.ip().is_unspecified())
}

/// An accepted connection: the socket, its peer, and its local address if
/// the listener already gave it.
struct Accepted {
    stream: TcpStream,
    peer: SocketAddr,
    local: Option<SocketAddr>,
}

/// Starts a connection's task, unless a top-level limit is reached.
fn admit(server: &Server, tracker: &TaskTracker, accepted: Accepted) {
    let Accepted { stream, peer, local } = accepted;
    let router = server.router.load_full();
    let limits = router.limits();
    let open = OpenConnection::new(&server.stats);
    // Counted under the policy of the port it dialled (a getsockname only
    // on this refusal path).
    let policy = |stream: &TcpStream| {
        let port = local.or_else(|| stream.local_addr().ok()).map_or(0, |a| a.port());
        router.for_port(port).metrics().cloned()
    };
    if limits.max_connections.is_some_and(|max| server.stats.open() > max) {
        let metrics = policy(&stream);
        return admission::refuse(stream, "maxConnections", metrics.as_deref());
    }
    let Some(detecting) = Slot::take(&server.detecting, limits.max_detecting) else {
        let metrics = policy(&stream);
        return admission::refuse(stream, "maxDetecting", metrics.as_deref());
    };
    let accepted = Accepted { stream, peer, local };
    tracker.spawn(ConnectionTask::new(router, accepted, Instant::now(), open, detecting));
}

/// One accepted connection's task. Detection and the handlers' set-up run
/// in a boxed future that is freed when done; a relay a handler hands back
/// then runs from `Tail`, so an idle proxied connection holds only the relay
/// state, its span and its summary.
struct ConnectionTask {
    phase: Phase,
    _open: OpenConnection,
}

// Tail inline on purpose: the task is one allocation either way, and Tail
// is the state that lives on.
#[allow(clippy::large_enum_variant)]
enum Phase {
    Setup(Pin<Box<dyn Future<Output = Option<Tail>> + Send>>),
    Relay(Tail),
    Done,
}

/// What a relayed connection keeps while its bytes flow.
struct Tail {
    span: tracing::Span,
    summary: Summary,
    run: RelayRun,
    /// Counted against the policy's `maxConnections` while it lives.
    _policy_slot: Slot,
}

impl ConnectionTask {
    fn new(router: Arc<Router>, accepted: Accepted, at: Instant, open: OpenConnection, detecting: Slot) -> Self {
        Self { phase: Phase::Setup(Box::pin(set_up(router, accepted, at, detecting))), _open: open }
    }
}

impl Future for ConnectionTask {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            match &mut this.phase {
                Phase::Setup(setup) => match ready!(setup.as_mut().poll(cx)) {
                    Some(tail) => this.phase = Phase::Relay(tail),
                    None => this.phase = Phase::Done,
                },
                Phase::Relay(tail) => {
                    let entered = tail.span.enter();
                    let report = ready!(Pin::new(&mut tail.run).poll(cx));
                    tail.summary.finish(report);
                    tail.summary.log();
                    drop(entered);
                    this.phase = Phase::Done;
                }
                Phase::Done => return Poll::Ready(()),
            }
        }
    }
}

/// Detection and hand-over; logs the summary unless a relay remains to run.
async fn set_up(router: Arc<Router>, accepted: Accepted, at: Instant, detecting: Slot) -> Option<Tail> {
    let Accepted { stream, peer, local } = accepted;
    let peer = canonical_addr(peer);
    let local = match local.map_or_else(|| stream.local_addr(), Ok) {
        Ok(local) => canonical_addr(local),
        Err(e) => {
            tracing::debug!(%peer, error = %e, "connection gone before it was served");
            return None;
        }
    };
    let span = tracing::info_span!("conn", %peer, port = local.port());
    let set = router.for_port(local.port());
    let Some(policy_slot) = set.admit() else {
        admission::refuse(stream, "policy maxConnections", set.metrics().map(|m| m.as_ref()));
        return None;
    };
    let info = ConnInfo { peer, local, tls: None, depth: 0, detect_deadline: at + set.limits().timeout };
    let mut summary = Summary::new(local, at, set.metrics());
    let mut conn = Conn::new(stream, info);
    let relay = async {
        if set.expects_proxy_header(peer.ip()) && !receive_proxy_header(&mut conn, &mut summary).await {
            return None;
        }
        dispatch(conn, set, &mut summary, detecting).await
    }
    .instrument(span.clone())
    .await;
    match relay {
        Some(job) => Some(Tail { span, summary, run: job.run(), _policy_slot: policy_slot }),
        None => {
            span.in_scope(|| summary.log());
            None
        }
    }
}

/// Reads and strips the PROXY header a trusted source must send first;
/// its addresses replace the connection's. False (and logged) when there is
/// none or it is broken: the connection is then closed.
async fn receive_proxy_header(conn: &mut Conn, summary: &mut Summary) -> bool {
    use crate::proxy_header::{Received, receive};
    loop {
        let failure = match receive(conn.buffered()) {
            Received::Complete { len, addresses } => {
                conn.discard_front(len);
                if let Some((peer, local)) = addresses {
                    conn.set_addresses(peer, local);
                    summary.proxied_from(conn.info().peer);
                }
                return true;
            }
            Received::Incomplete(need) => {
                let more = need.saturating_sub(conn.buffered().len()).max(1);
                match conn.buffer_before_deadline(more).await {
                    Ok(Some(0)) => "client closed before its PROXY header ended".to_owned(),
                    Ok(Some(_)) => continue,
                    Ok(None) => "no PROXY header before the detection deadline".to_owned(),
                    Err(e) => e.to_string(),
                }
            }
            Received::Invalid(why) => why,
        };
        summary.push_proxy_header();
        summary.finish_failed(HandlerError::Refused(format!("acceptProxy: {failure}")));
        return false;
    }
}

/// Detects, hands over, and detects again on the transports handlers return,
/// until a handler is done with the connection or hands back a relay.
async fn dispatch(mut conn: Conn, set: &ProtocolSet, summary: &mut Summary, detecting: Slot) -> Option<RelayJob> {
    let mut detecting = Some(detecting);
    loop {
        let protocol = match set.forward_route() {
            // Server-first ports: dial at accept, before the client says anything.
            Some(forward) if conn.info().depth == 0 => forward,
            _ => choose(&mut conn, set, summary).await?,
        };
        summary.push_protocol(set, protocol);
        // Detection is over: the connection no longer counts as detecting.
        drop(detecting.take());
        match protocol.handler().handle(conn).await {
            Ok(Handled::Done(report)) => summary.finish(report),
            Ok(Handled::Relay(relay)) => return Some(relay),
            Ok(Handled::Redetect(next)) if next.info().depth > set.limits().max_depth => {
                let depth = set.limits().max_depth;
                summary.finish_failed(HandlerError::Other(format!("more than {depth} nested transports")));
            }
            Ok(Handled::Redetect(next)) => {
                summary.unmatched = None;
                conn = next;
                continue;
            }
            Err(e) => summary.finish_failed(e),
        }
        return None;
    }
}

/// Runs detection and picks the protocol: the match, the `onTimeout` route
/// for a client that sent nothing, the fallback, or none (then the
/// connection is closed and `summary` says why).
async fn choose<'s>(conn: &mut Conn, set: &'s ProtocolSet, summary: &mut Summary) -> Option<&'s Protocol> {
    match summary.timed_detection(detect(conn, set)).await {
        Ok(Detection { detected: Detected::Matched { index, .. }, names, .. }) => {
            summary.learned(names);
            set.protocols().get(index)
        }
        Ok(Detection { detected: Detected::Unmatched(reason), seen, .. }) => {
            summary.unmatched = Some(reason);
            let route = match (reason, seen) {
                (Unmatched::Timeout, 0) => set.on_timeout().or(set.fallback()),
                _ => set.fallback(),
            };
            if route.is_none() {
                summary.closed_unmatched(seen);
            }
            route
        }
        Err(e) => {
            summary.finish_failed(HandlerError::Client(e));
            None
        }
    }
}
