//! Moving bytes between a client and a backend until both sides are done.
//!
//! One entry point, [`relay`], so the strategy behind it (copying through
//! userspace buffers today; splice or an in-kernel redirect for raw TCP
//! later) can change without touching handlers. Whatever the strategy, the
//! contract is the same:
//! - both directions flow independently; one side's FIN becomes a `shutdown`
//!   of the other side's write half while the other direction keeps flowing;
//! - a reset (or a failed write) on one side is passed on to the other side
//!   as a reset (`SO_LINGER` 0), never as a clean close;
//! - both streams are closed when `relay` returns.

mod copy;

use std::io;

use crate::conn::Stream;

/// What happened on a relayed connection.
#[derive(Debug)]
pub struct RelayReport {
    /// Bytes moved from the client to the backend.
    pub client_to_backend: u64,
    /// Bytes moved from the backend to the client.
    pub backend_to_client: u64,
    /// How it ended.
    pub end: RelayEnd,
}

/// How a relay ended.
#[derive(Debug)]
pub enum RelayEnd {
    /// Both directions reached end-of-stream.
    Closed,
    /// The client reset (or broke) the connection; the backend was reset.
    ClientReset(io::Error),
    /// The backend reset (or broke) the connection; the client was reset.
    BackendReset(io::Error),
}

/// Which side of a relay failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Backend,
}

/// Relays between `client` and `backend` until both directions are closed or
/// one side fails, then closes both (resetting the survivor on failure).
pub async fn relay(client: Stream, backend: Stream) -> RelayReport {
    let (client, backend, report) = copy::relay(client, backend).await;
    match report.end {
        RelayEnd::Closed => {}
        RelayEnd::ClientReset(_) => backend.set_reset_on_close(),
        RelayEnd::BackendReset(_) => client.set_reset_on_close(),
    }
    report
}
