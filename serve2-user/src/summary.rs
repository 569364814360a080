//! The one summary line logged per connection.

use std::net::SocketAddr;
use tokio::time::Instant;

use crate::detect::engine::{LearnedNames, Unmatched};
use crate::metrics::{ActiveConnection, ChainKey, Outcome, PolicyMetrics, Slot};
use crate::protocol::{End, HandlerError, Protocol, ProtocolSet, Report};

/// What happened to a connection, filled in as it moves through layers.
#[derive(Debug)]
pub(crate) struct Summary {
    /// The address the client dialled.
    local: SocketAddr,
    accepted: Instant,
    /// Protocols in order, `>`-separated (`tls>http`).
    chain: String,
    /// Why detection fell back (or closed), on the current layer.
    pub unmatched: Option<Unmatched>,
    report: Report,
    /// Bytes buffered when a connection was closed unmatched.
    unmatched_bytes: usize,
    /// Names detection learned (SNI, Host), escaped.
    names: LearnedNames,
    /// The client as a trusted PROXY header announced it.
    client: Option<SocketAddr>,
    /// The chain as slots of the protocol set, for the metrics.
    chain_key: ChainKey,
    /// Whether the last layer was closed unmatched.
    closed: bool,
    /// The policy's metrics; counts the connection active while it lives.
    metrics: Option<ActiveConnection>,
}

impl Summary {
    /// The summary of a connection to `local`, accepted at `accepted`,
    /// counted in `metrics` (its policy's) if given.
    pub fn new(local: SocketAddr, accepted: Instant, metrics: Option<&std::sync::Arc<PolicyMetrics>>) -> Self {
        Self {
            local,
            accepted,
            chain: String::new(),
            unmatched: None,
            report: Report::default(),
            unmatched_bytes: 0,
            names: LearnedNames::default(),
            client: None,
            chain_key: ChainKey::default(),
            closed: false,
            metrics: metrics.map(PolicyMetrics::open),
        }
    }

    /// Records the names the matching detector learned (the last layer's
    /// win when several layers learn one).
    pub fn learned(&mut self, names: LearnedNames) {
        if names.server_name.is_some() {
            self.names.server_name = names.server_name;
        }
        if names.host.is_some() {
            self.names.host = names.host;
        }
    }

    /// Records the client address a trusted PROXY header announced.
    pub fn proxied_from(&mut self, client: SocketAddr) {
        self.client = Some(client);
    }

    fn push_slot(&mut self, protocol: &str, slot: Option<Slot>) {
        if !self.chain.is_empty() {
            self.chain.push('>');
        }
        self.chain.push_str(protocol);
        if self.metrics.is_some() {
            self.chain_key.push(slot);
        }
    }

    /// Appends `protocol`, one of `set`'s, to the chain.
    pub fn push_protocol(&mut self, set: &ProtocolSet, protocol: &Protocol) {
        let slot = self.metrics.as_ref().and_then(|_| Slot::of(set, protocol));
        self.push_slot(protocol.name(), slot);
    }

    /// Appends a protocol by name only (tests of the log line).
    #[cfg(test)]
    pub fn push(&mut self, protocol: &str) {
        self.push_slot(protocol, None);
    }

    /// Appends the PROXY header `acceptProxy` reads to the chain.
    pub fn push_proxy_header(&mut self) {
        self.push_slot("proxy-header", Some(Slot::PROXY_HEADER));
    }

    /// Runs one detection, timing it for the metrics.
    pub async fn timed_detection<T>(&mut self, detection: impl Future<Output = T>) -> T {
        let Some(metrics) = &self.metrics else { return detection.await };
        let started = Instant::now();
        let result = detection.await;
        metrics.detected_in(started.elapsed());
        result
    }

    /// Records how the connection ended.
    pub fn finish(&mut self, report: Report) {
        self.report = report;
    }

    /// Records a handler's failure.
    pub fn finish_failed(&mut self, error: HandlerError) {
        let target = match &error {
            HandlerError::Backend { target, .. } | HandlerError::BackendTimeout { target, .. } => {
                Some(target.as_str().into())
            }
            _ => None,
        };
        self.finish(Report { target, end: End::Failed(error), ..Report::default() });
    }

    /// Records that no protocol matched and the connection was closed.
    pub fn closed_unmatched(&mut self, buffered: usize) {
        self.unmatched_bytes = buffered;
        self.closed = true;
    }

    /// How the connection ended, for `serve2_connections_total`.
    pub fn outcome(&self) -> Outcome {
        match &self.report.end {
            End::Failed(HandlerError::Refused(_)) => Outcome::Rejected,
            End::Failed(HandlerError::Backend { .. } | HandlerError::BackendTimeout { .. }) => Outcome::BackendError,
            _ => match self.unmatched {
                Some(Unmatched::Timeout) => Outcome::Timeout,
                Some(_) if self.closed => Outcome::ClosedUnmatched,
                Some(_) => Outcome::Default,
                // Detection failed (the client's I/O) before any protocol.
                None if self.chain.is_empty() => Outcome::ClosedUnmatched,
                None => Outcome::Matched,
            },
        }
    }

    /// The bytes the summary line reports: (from the client, to the client).
    fn bytes(&self) -> (u64, u64) {
        if self.chain.is_empty() {
            (self.unmatched_bytes as u64, 0)
        } else {
            (self.report.from_client, self.report.to_client)
        }
    }

    /// Counts the ended connection in its policy's metrics.
    fn record(&self) {
        let Some(metrics) = &self.metrics else { return };
        metrics.count(self.chain_key, &self.chain, self.outcome());
        let (from_client, to_client) = self.bytes();
        metrics.add_bytes(from_client, to_client);
        if matches!(self.report.end, End::Failed(HandlerError::Tls(_))) {
            metrics.tls_error();
        }
    }

    /// Logs the summary at info level, or warn when something failed that
    /// the client did not cause; and counts it in the metrics.
    pub fn log(&self) {
        self.record();
        let local = self.local;
        let elapsed = self.accepted.elapsed();
        let chain = if self.chain.is_empty() { "-" } else { self.chain.as_str() };
        // Every line has the stable fields (peer and port come from the
        // span): `-` where there is nothing to say.
        let fallback = self.unmatched.map_or("-", Unmatched::as_str);
        let target = self.report.target.as_deref().unwrap_or("-");
        // Milliseconds, to the microsecond: a number in JSON lines too.
        let ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0;
        let (up, down) = (self.report.from_client, self.report.to_client);
        let sni = self.names.server_name.as_deref();
        let host = self.names.host.as_deref();
        let client = self.client.map(tracing::field::display);
        // One field list for every line but the unmatched one.
        macro_rules! line {
            ($level:ident, $end:expr, $message:literal) => {
                tracing::$level!(target: "serve2::conn", %local, client, %chain, %fallback, sni, host, %target, up, down, ms, end = %$end, $message)
            };
        }
        match &self.report.end {
            _ if self.chain.is_empty() => {
                let reason = self.unmatched.map_or("no-match", Unmatched::as_str);
                tracing::info!(target: "serve2::conn", %local, %chain, fallback = %reason, %target, up = self.unmatched_bytes, down = 0, ms, end = %reason, "closed: no protocol matched");
            }
            End::Failed(error) if error.is_client_fault() => line!(info, error, "connection failed"),
            End::Failed(error) => line!(warn, error, "connection failed"),
            end => line!(info, end, "connection"),
        }
    }
}
