//! The route every dialling kind shares (`proxy`, `tlsmatcher`, `ssh`,
//! `tlsroute`… and `forward` / `onTimeout`): dial the target — from the
//! client's own address with `transparent` — send a PROXY header first with
//! `proxyProtocol`, replay the detected bytes, relay.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::connect::connect_sending;
use crate::conn::{Conn, ConnInfo, Stream};
use crate::protocol::{Handled, Handler, HandlerError, HandlerFuture, RelayJob};
use crate::proxy_header::{self, ProxyVersion};
use crate::relay::{RelayLimits, RelayMode};

/// Forwards connections to a backend address, replaying what detection read.
#[derive(Debug, Clone)]
pub struct ProxyHandler {
    target: Arc<str>,
    connect_timeout: Duration,
    tls: Option<Arc<rustls::ClientConfig>>,
    relay: RelayMode,
    proxy_header: Option<ProxyVersion>,
    transparent: bool,
    limits: RelayLimits,
}

impl ProxyHandler {
    /// Forwards to `target` (`host:port`, resolved at each connection),
    /// giving up on backends that do not answer within `connect_timeout`.
    pub fn new(target: impl Into<String>, connect_timeout: Duration) -> Self {
        Self {
            target: Arc::from(target.into()),
            connect_timeout,
            tls: None,
            relay: RelayMode::default(),
            proxy_header: None,
            transparent: false,
            limits: RelayLimits::default(),
        }
    }

    /// Ends relays that stall or idle (`stallTimeout`, `idleTimeout`).
    pub fn with_limits(mut self, limits: RelayLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sends a PROXY header (`proxyProtocol`) before anything else: the
    /// client's address and the address and port it dialled.
    pub fn with_proxy_header(mut self, version: Option<ProxyVersion>) -> Self {
        self.proxy_header = version;
        self
    }

    /// Connects to the backend from the client's own address
    /// (`transparent`; needs CAP_NET_ADMIN and the routing set-up in the
    /// README).
    pub fn with_transparent(mut self, transparent: bool) -> Self {
        self.transparent = transparent;
        self
    }

    /// Relays raw TCP connections with `mode` (default: splice).
    pub fn with_relay(mut self, mode: RelayMode) -> Self {
        self.relay = mode;
        self
    }

    /// Speaks TLS to the backend with `config`, passing on the client's SNI
    /// and the ALPN protocol negotiated with it (serve2d's `dialTLS`).
    pub fn with_tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// The backend address.
    pub fn target(&self) -> &str {
        &self.target
    }

    fn backend_error(&self, source: std::io::Error) -> HandlerError {
        HandlerError::Backend { target: self.target.to_string(), source }
    }

    /// Runs a step of reaching the backend under the connect timeout.
    async fn bounded<T>(&self, step: impl Future<Output = std::io::Result<T>>) -> Result<T, HandlerError> {
        match tokio::time::timeout(self.connect_timeout, step).await {
            Ok(result) => result.map_err(|source| self.backend_error(source)),
            Err(_) => {
                Err(HandlerError::BackendTimeout { target: self.target.to_string(), timeout: self.connect_timeout })
            }
        }
    }

    /// Connects to the backend (from the client's address with
    /// `transparent`) and writes `first`, which is what says the connection
    /// is up (see `connect.rs`).
    async fn connect(&self, client: &ConnInfo, first: &[u8]) -> Result<TcpStream, HandlerError> {
        let from = self.transparent.then_some(client.peer);
        self.bounded(connect_sending(&self.target, first, from)).await
    }

    async fn originate_tls(
        &self,
        config: &rustls::ClientConfig,
        info: &ConnInfo,
        tcp: TcpStream,
    ) -> Result<Stream, HandlerError> {
        let session = info.tls.as_ref();
        let mut config = config.clone();
        config.alpn_protocols = session.and_then(|s| s.alpn.clone()).into_iter().collect();
        let name = match session.and_then(|s| s.server_name.clone()) {
            Some(sni) => ServerName::try_from(sni),
            None => ServerName::try_from(host_of(&self.target).to_owned()),
        }
        .map_err(|e| self.backend_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
        let tls = self.bounded(TlsConnector::from(Arc::new(config)).connect(name, tcp)).await?;
        Ok(Stream::boxed(tls))
    }
}

/// The host part of `host:port` or `[v6]:port`.
fn host_of(target: &str) -> &str {
    let host = target.rsplit_once(':').map_or(target, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

impl Handler for ProxyHandler {
    fn handle(&self, conn: Conn) -> HandlerFuture<'_> {
        Box::pin(async move {
            // The client socket has TCP_NODELAY from serve2's listener.
            let (client, replay, info) = conn.into_parts();
            let replayed = replay.len() as u64;
            // The header and the replay in one write: one segment, one syscall.
            let first = match self.proxy_header {
                Some(version) => [proxy_header::encode(version, info.peer, info.local), replay].concat(),
                None => replay,
            };
            // Connecting and TLS handshakes are boxed: their state is large
            // and short-lived, while the relay below may idle for hours.
            // Without TLS to originate, the first bytes go out with the connect.
            let with_connect: &[u8] = if self.tls.is_none() { &first } else { &[] };
            let tcp = Box::pin(self.connect(&info, with_connect)).await?;
            let mut backend = match &self.tls {
                Some(config) => Box::pin(self.originate_tls(config, &info, tcp)).await?,
                None => Stream::Tcp(tcp),
            };
            drop(info);
            if self.tls.is_some() && !first.is_empty() {
                let written = backend.write_all(&first).await;
                if let Err(source) = written {
                    return Err(self.backend_error(source));
                }
            }
            Ok(Handled::Relay(RelayJob {
                client,
                backend,
                mode: self.relay,
                target: Some(self.target.clone()),
                already_sent: replayed,
                limits: self.limits,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn host_of_strips_port_and_brackets() {
        assert_eq!(host_of("example.com:22"), "example.com");
        assert_eq!(host_of("[::1]:443"), "::1");
        assert_eq!(host_of("10.0.0.1:80"), "10.0.0.1");
    }
}
