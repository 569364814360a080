//! The one summary line logged per connection.

use std::net::SocketAddr;
use tokio::time::Instant;

use crate::detect::engine::{LearnedNames, Unmatched};
use crate::protocol::{End, HandlerError, Report};

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
}

impl Summary {
    /// The summary of a connection to `local`, accepted at `accepted`.
    pub fn new(local: SocketAddr, accepted: Instant) -> Self {
        Self {
            local,
            accepted,
            chain: String::new(),
            unmatched: None,
            report: Report::default(),
            unmatched_bytes: 0,
            names: LearnedNames::default(),
            client: None,
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

    pub fn push(&mut self, protocol: &str) {
        if !self.chain.is_empty() {
            self.chain.push('>');
        }
        self.chain.push_str(protocol);
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
    }

    /// Logs the summary at info level, or warn when something failed that
    /// the client did not cause.
    pub fn log(&self) {
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
