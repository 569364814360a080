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
//! the detection engine), [`handler`] (the built-in handlers), [`metrics`]
//! (Prometheus metrics and their endpoint), [`relay`]
//! (moving bytes between client and backend), [`router`] (per-port protocol
//! sets), [`server`] (accept loop and per-connection flow).

#![warn(missing_docs)]

mod accept;
pub mod admission;
pub mod config;
pub mod conn;
pub mod control;
pub mod daemon;
pub mod detect;
pub mod handler;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod ports;
pub mod privileges;
pub mod protocol;
pub mod proxy_header;
pub mod relay;
mod reload;
pub mod router;
pub mod server;
#[cfg(feature = "steer")]
pub mod steer;
mod summary;
pub mod udp;

pub use config::Config;
pub use daemon::{RunError, run, run_with};
pub use router::Router;
pub use server::Server;
