//! # serve2: one port, every protocol
//!
//! serve2 accepts TCP connections, reads the fewest bytes that identify the
//! client's protocol, replays them, and hands the connection to that
//! protocol's handler: proxy to a backend, terminate TLS and detect again on
//! the clear stream, serve files, echo, discard — or anything you register.
//!
//! The `serve2d` daemon is built on this library; embed it the same way:
//!
//! ```no_run
//! use serve2::detect::MagicDetector;
//! use serve2::handler::{EchoHandler, ProxyHandler};
//! use serve2::protocol::{DetectLimits, Protocol, ProtocolSet};
//! use serve2::{Router, Server};
//! use std::time::Duration;
//!
//! # async fn example() -> std::io::Result<()> {
//! let ssh = Protocol::new(
//!     "ssh",
//!     MagicDetector::new(["SSH-"]).expect("non-empty magic"),
//!     ProxyHandler::new("127.0.0.1:22", Duration::from_secs(5)),
//! );
//! let set = ProtocolSet::new(vec![ssh], Some(Protocol::fallback("echo", EchoHandler)), DetectLimits::default())
//!     .expect("few protocols");
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! Server::new(Router::new(set)).serve(vec![listener], std::future::pending()).await;
//! # Ok(())
//! # }
//! ```
//!
//! A custom protocol is a [`detect::Detector`] (a pure function over the
//! bytes buffered so far answering match / no / need more) and a
//! [`protocol::Handler`] (which gets the [`conn::Conn`] with those bytes
//! still to be read, and either serves it or returns a new stream to detect
//! again on, as TLS does). See `examples/custom_protocol.rs`.
//!
//! Where things live: [`config`] (serve2d's JSON), [`detect`] (detectors and
//! the detection engine), [`handler`] (the built-in handlers), [`relay`]
//! (moving bytes between client and backend), [`router`] (per-port protocol
//! sets), [`server`] (accept loop and per-connection flow).

#![warn(missing_docs)]

pub mod config;
pub mod conn;
pub mod detect;
pub mod handler;
pub mod listener;
pub mod logging;
pub mod protocol;
pub mod relay;
pub mod router;
pub mod server;
mod summary;

pub use config::Config;
pub use router::Router;
pub use server::Server;

/// Why [`run`] could not serve.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration has no listening address.
    #[error("nothing to listen on: the configuration has no address")]
    NoListener,
    /// Binding the listening socket failed.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The configured address.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Serves a loaded configuration until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let address = config.listen.ok_or(RunError::NoListener)?;
    let bind_error = |source| RunError::Bind { address: address.to_string(), source };
    let listener = listener::bind(&address).map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    tracing::info!(%local, config = %config.file.display(), "listening");
    Server::new(Router::new(config.protocols)).serve(vec![listener], shutdown).await;
    tracing::info!("stopped");
    Ok(())
}
