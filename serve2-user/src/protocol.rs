//! The extension point: a [`Protocol`] pairs a [`Detector`] with a
//! [`Handler`], and a [`ProtocolSet`] is what one listener (or one steered
//! port) runs connections through.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::conn::Conn;
use crate::detect::{Detector, NeverDetector};

/// The future a [`Handler`] returns.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Result<Handled, HandlerError>> + Send + 'a>>;

/// Takes over a connection once its protocol is detected.
///
/// The connection's detected bytes are still buffered in the [`Conn`] and
/// are read first, so the handler sees the stream from its first byte.
pub trait Handler: Send + Sync + std::fmt::Debug + 'static {
    /// Serves the connection to its end, or returns a new stream to run
    /// detection on again (as TLS termination does).
    fn handle(&self, conn: Conn) -> HandlerFuture<'_>;
}

/// What a handler did with a connection.
#[derive(Debug)]
pub enum Handled {
    /// The connection is over.
    Done(Report),
    /// The handler produced a transport (for example the decrypted side of
    /// TLS): detect again on it, with the same protocol set.
    Redetect(Conn),
    /// The handler connected a backend: serve2 relays the two until both
    /// close. The relay runs after the handler's own future is gone, so a
    /// long idle connection costs only the relay's small state.
    Relay(RelayJob),
}

/// A client and a backend for serve2 to relay (see [`Handled::Relay`]).
#[derive(Debug)]
pub struct RelayJob {
    /// The client side (any bytes it still owes the backend are already sent).
    pub client: crate::conn::Stream,
    /// The backend side.
    pub backend: crate::conn::Stream,
    /// How to relay raw TCP pairs.
    pub mode: crate::relay::RelayMode,
    /// The backend's name for the summary line.
    pub target: Option<Arc<str>>,
    /// Bytes from the client the handler already sent to the backend.
    pub already_sent: u64,
    /// `stallTimeout` and `idleTimeout`.
    pub limits: crate::relay::RelayLimits,
}

impl RelayJob {
    /// Relays until both sides close; resolves to the connection's report.
    pub fn run(self) -> RelayRun {
        let RelayJob { client, backend, mode, target, already_sent, limits } = self;
        RelayRun { relay: crate::relay::relay_with(mode, limits, client, backend), target, already_sent }
    }
}

/// A [`RelayJob`] running: a future of the connection's [`Report`].
#[derive(Debug)]
pub struct RelayRun {
    relay: crate::relay::Relaying,
    target: Option<Arc<str>>,
    already_sent: u64,
}

impl Future for RelayRun {
    type Output = Report;
    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Report> {
        let this = self.get_mut();
        let relayed = std::task::ready!(Pin::new(&mut this.relay).poll(cx));
        let end = match relayed.end {
            crate::relay::RelayEnd::Closed => End::Closed,
            crate::relay::RelayEnd::ClientReset(_) => End::ClientReset,
            crate::relay::RelayEnd::BackendReset(_) => End::BackendReset,
            crate::relay::RelayEnd::Stalled => End::Stalled,
            crate::relay::RelayEnd::Idle => End::Idle,
        };
        std::task::Poll::Ready(Report {
            target: this.target.take(),
            from_client: this.already_sent + relayed.client_to_backend,
            to_client: relayed.backend_to_client,
            end,
        })
    }
}

/// A finished connection's account, logged in its summary line.
#[derive(Debug, Default)]
pub struct Report {
    /// Where the connection was sent, if anywhere (a proxy target).
    pub target: Option<Arc<str>>,
    /// Bytes received from the client.
    pub from_client: u64,
    /// Bytes sent to the client.
    pub to_client: u64,
    /// How it ended.
    pub end: End,
}

impl Report {
    /// A report of a connection handled in place, with the byte counts of
    /// its [`Conn`].
    pub fn from_conn(conn: &Conn, end: End) -> Self {
        let (from_client, to_client) = conn.byte_counts();
        Self { target: None, from_client, to_client, end }
    }
}

/// How a handled connection ended.
#[derive(Debug, Default)]
pub enum End {
    /// Both sides closed normally.
    #[default]
    Closed,
    /// The client reset the connection (passed on to the backend).
    ClientReset,
    /// The backend reset the connection (passed on to the client).
    BackendReset,
    /// Bytes could not move for `stallTimeout`: both sides were reset.
    Stalled,
    /// Nothing moved for `idleTimeout`: both sides were closed.
    Idle,
    /// The handler gave up.
    Failed(HandlerError),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Closed => f.write_str("closed"),
            End::ClientReset => f.write_str("client-reset"),
            End::BackendReset => f.write_str("backend-reset"),
            End::Stalled => f.write_str("stalled"),
            End::Idle => f.write_str("idle-timeout"),
            End::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

/// Why a handler could not serve a connection.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Reading from or writing to the client failed.
    #[error("client i/o: {0}")]
    Client(#[source] std::io::Error),
    /// The backend refused, was unreachable, or failed.
    #[error("backend {target}: {source}")]
    Backend {
        /// The configured target.
        target: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The backend did not accept the connection in time.
    #[error("backend {target}: no answer within {timeout:?}")]
    BackendTimeout {
        /// The configured target.
        target: String,
        /// The connect timeout.
        timeout: Duration,
    },
    /// A TLS handshake failed or did not finish before the detection deadline.
    #[error("tls: {0}")]
    Tls(#[source] std::io::Error),
    /// The client sent something serve2 refuses (a PROXY header it may not
    /// send, a broken one).
    #[error("{0}")]
    Refused(String),
    /// Anything else a custom handler wants to report.
    #[error("{0}")]
    Other(String),
}

impl HandlerError {
    /// Whether the client caused it (garbage, resets, failed handshakes):
    /// logged at info, as the operator can do nothing about it; backend
    /// failures are logged at warn.
    pub fn is_client_fault(&self) -> bool {
        matches!(self, HandlerError::Client(_) | HandlerError::Tls(_) | HandlerError::Refused(_))
    }
}

/// A protocol: its name (as logged in the chain), detector and handler.
#[derive(Debug, Clone)]
pub struct Protocol {
    name: Arc<str>,
    detector: Arc<dyn Detector>,
    handler: Arc<dyn Handler>,
}

impl Protocol {
    /// A protocol named `name`, detected by `detector`, served by `handler`.
    pub fn new(name: impl Into<Arc<str>>, detector: impl Detector, handler: impl Handler) -> Self {
        Self::from_arcs(name, Arc::new(detector), Arc::new(handler))
    }

    /// Like [`Protocol::new`] with shared parts.
    pub fn from_arcs(name: impl Into<Arc<str>>, detector: Arc<dyn Detector>, handler: Arc<dyn Handler>) -> Self {
        Self { name: name.into(), detector, handler }
    }

    /// A protocol used only as a fallback: it never matches by itself.
    pub fn fallback(name: impl Into<Arc<str>>, handler: impl Handler) -> Self {
        Self::new(name, NeverDetector, handler)
    }

    /// The name logged in the protocol chain (`tls>http`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The detector.
    pub fn detector(&self) -> &dyn Detector {
        &*self.detector
    }

    /// The handler.
    pub fn handler(&self) -> &dyn Handler {
        &*self.handler
    }
}

/// Limits that govern detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectLimits {
    /// Most plaintext bytes buffered for detection (serve2d's `maxRead`).
    pub max_read: usize,
    /// Time from accept after which detection gives up (then the default
    /// protocol gets the connection, or it is closed).
    pub timeout: Duration,
    /// How many transports (TLS in TLS…) may be nested.
    pub max_depth: u8,
}

impl Default for DetectLimits {
    fn default() -> Self {
        Self { max_read: 128, timeout: Duration::from_secs(5), max_depth: 4 }
    }
}

/// The most protocols one set may hold (detection state is a bit mask).
pub const MAX_PROTOCOLS: usize = 64;

/// Protocols tried in order, an optional fallback, and detection limits;
/// or a `forward` route that skips detection.
#[derive(Debug, Clone, Default)]
pub struct ProtocolSet {
    protocols: Vec<Protocol>,
    fallback: Option<Protocol>,
    limits: DetectLimits,
    forward: Option<Protocol>,
    on_timeout: Option<Protocol>,
    accept_proxy: Arc<[ipnet::IpNet]>,
    /// `maxConnections` of a policy, and its open connections (shared with
    /// the set of the same policy after a reload).
    max_connections: Option<u64>,
    open: Arc<std::sync::atomic::AtomicU64>,
    metrics: Option<Arc<crate::metrics::PolicyMetrics>>,
}

/// Why a [`ProtocolSet`] could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolSetError {
    /// More protocols than [`MAX_PROTOCOLS`].
    #[error("at most {MAX_PROTOCOLS} protocols per set, got {0}")]
    TooMany(usize),
}

impl ProtocolSet {
    /// A set trying `protocols` in order, handing unmatched connections to
    /// `fallback` (or closing them when there is none).
    pub fn new(
        protocols: Vec<Protocol>,
        fallback: Option<Protocol>,
        limits: DetectLimits,
    ) -> Result<Self, ProtocolSetError> {
        if protocols.len() > MAX_PROTOCOLS {
            return Err(ProtocolSetError::TooMany(protocols.len()));
        }
        Ok(Self { protocols, fallback, limits, ..Self::default() })
    }

    /// A set that detects nothing: every connection goes to `route` at
    /// accept (for server-first protocols such as SMTP or MySQL).
    pub fn forward(route: Protocol, limits: DetectLimits) -> Self {
        Self { forward: Some(route), limits, ..Self::default() }
    }

    /// Where a client that sent nothing before the detection deadline goes
    /// (bytes that matched nothing still go to the fallback).
    pub fn with_on_timeout(mut self, route: Option<Protocol>) -> Self {
        self.on_timeout = route;
        self
    }

    /// Sources (prefixes) that must start with a PROXY header, which is
    /// read and stripped before detection.
    pub fn with_accept_proxy(mut self, sources: Vec<ipnet::IpNet>) -> Self {
        self.accept_proxy = sources.into();
        self
    }

    /// Counts this set's connections in `metrics` (see
    /// [`crate::metrics::Metrics::instrument`]).
    pub fn with_metrics(mut self, metrics: Option<Arc<crate::metrics::PolicyMetrics>>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The metrics this set's connections count in, if any.
    pub fn metrics(&self) -> Option<&Arc<crate::metrics::PolicyMetrics>> {
        self.metrics.as_ref()
    }

    /// The route taking every connection without detection, if any.
    pub fn forward_route(&self) -> Option<&Protocol> {
        self.forward.as_ref()
    }

    /// The route for silent clients, if any.
    pub fn on_timeout(&self) -> Option<&Protocol> {
        self.on_timeout.as_ref()
    }

    /// Whether connections from `peer` must start with a PROXY header.
    pub fn expects_proxy_header(&self, peer: std::net::IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.accept_proxy.iter().any(|net| net.contains(&peer))
    }

    /// With a cap on this set's open connections (a policy's
    /// `maxConnections`).
    pub fn with_max_connections(mut self, max: Option<u64>) -> Self {
        self.max_connections = max;
        self
    }

    /// Counts open connections with `other`'s counter (the same policy in
    /// the configuration before a reload), so its limit spans both.
    pub fn share_open_count(&mut self, other: &ProtocolSet) {
        self.open = other.open.clone();
    }

    /// Takes a slot for one more open connection of this set, unless the
    /// set is full.
    pub(crate) fn admit(&self) -> Option<crate::admission::Slot> {
        crate::admission::Slot::take(&self.open, self.max_connections)
    }

    /// Whether any source is trusted to send PROXY headers.
    pub fn accepts_proxy_headers(&self) -> bool {
        !self.accept_proxy.is_empty()
    }

    /// The protocols, in detection order.
    pub fn protocols(&self) -> &[Protocol] {
        &self.protocols
    }

    /// The fallback protocol.
    pub fn fallback(&self) -> Option<&Protocol> {
        self.fallback.as_ref()
    }

    /// The detection limits.
    pub fn limits(&self) -> &DetectLimits {
        &self.limits
    }
}
