//! The handlers behind serve2d's protocol kinds.

mod connect;
mod http;
mod proxy;
mod simple;
mod tls;
mod tls_certs;

pub use http::{FileServer, NotFound};
pub use proxy::ProxyHandler;
pub use simple::{DiscardHandler, EchoHandler};
pub use tls::{
    BackendVerification, TlsConfigError, TlsTerminator, client_config, load_certificates, load_private_key,
    server_config,
};
