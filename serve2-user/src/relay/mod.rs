//! Moving bytes between a client and a backend until both sides are done.
//!
//! One entry point, [`relay`], whatever the strategy behind it:
//! - TCP to TCP: splice(2) through pooled pipes (`splice.rs`), zero-copy,
//!   with no pipe held while a direction is idle;
//! - anything else (TLS on either side): copying through a stack buffer
//!   (`copy.rs`), with heap memory only under backpressure.
//!
//! The contract is the same for both:
//! - both directions flow independently; one side's FIN becomes a `shutdown`
//!   of the other side's write half while the other direction keeps flowing;
//! - a reset (or a failed write) on one side is passed on to the other side
//!   as a reset (`SO_LINGER` 0), never as a clean close;
//! - both streams are closed when `relay` returns.

mod copy;
mod drive;
mod pipe;
mod splice;
mod watch;

pub use watch::{DEFAULT_STALL, RelayLimits};

use std::io;
use std::task::{Context, Poll};

use std::pin::Pin;

use crate::conn::Stream;
use drive::Drive;

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
    /// A direction with bytes pending moved none for `stallTimeout`: both
    /// sides were reset.
    Stalled,
    /// Nothing moved either way for `idleTimeout`: both sides were closed.
    Idle,
}

/// Which side of a relay failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Backend,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Client => Side::Backend,
            Side::Backend => Side::Client,
        }
    }
}

/// A failed direction: which side broke, and how.
#[derive(Debug)]
struct Failure {
    side: Side,
    error: io::Error,
}

impl Failure {
    fn ready<T>(side: Side, error: io::Error) -> Poll<Result<T, Failure>> {
        Poll::Ready(Err(Failure { side, error }))
    }
}

/// One direction's mover: from one stream to the other until `from` ends
/// (then `to`'s write half is shut down).
trait Pump<S> {
    /// Moves bytes from `from` to `to` until `from` ends. `last`: the other
    /// direction is done, so both streams close as soon as this one ends.
    fn poll_pump(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut S,
        from_side: Side,
        to: &mut S,
        last: bool,
    ) -> Poll<Result<(), Failure>>;
    /// Bytes written to the destination so far.
    fn bytes(&self) -> u64;
    /// Whether bytes read from the source wait for the destination to take
    /// them (the source is then not being read).
    fn backpressured(&self) -> bool;
}

/// Whether closing a stream says all a `shutdown` would: true for raw TCP
/// (with nothing left unread, `close` sends the FIN), false for TLS (whose
/// `close_notify` only a shutdown writes). The last direction of a relay to
/// end skips the shutdown when the close that follows at once says it.
trait FinOnClose {
    fn fin_on_close(&self) -> bool;
}

impl FinOnClose for tokio::net::TcpStream {
    fn fin_on_close(&self) -> bool {
        true
    }
}

impl FinOnClose for crate::conn::Stream {
    fn fin_on_close(&self) -> bool {
        matches!(self, crate::conn::Stream::Tcp(_))
    }
}

/// How TCP-to-TCP connections are relayed (the `relay` setting).
/// Connections with TLS on either side are always copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RelayMode {
    /// splice(2) through pooled pipes (the default).
    #[default]
    Splice,
    /// Copying through userspace buffers.
    Copy,
}

/// Relays between `client` and `backend` with the default mode and limits.
pub fn relay(client: Stream, backend: Stream) -> Relaying {
    relay_with(RelayMode::default(), RelayLimits::default(), client, backend)
}

/// Relays between `client` and `backend` until both directions are closed or
/// one side fails, then closes both (resetting the survivor on failure).
pub fn relay_with(mode: RelayMode, limits: RelayLimits, client: Stream, backend: Stream) -> Relaying {
    let strategy = match (mode, client, backend) {
        (RelayMode::Splice, Stream::Tcp(client), Stream::Tcp(backend)) => {
            Strategy::Splice(Drive::new(client, backend, limits))
        }
        (_, client, backend) => Strategy::Copy(Drive::new(client, backend, limits)),
    };
    Relaying(strategy)
}

/// A relay in progress: a future of the [`RelayReport`]. It is no bigger
/// than the relay's state (a few hundred bytes), which an idle connection
/// holds for its whole life.
pub struct Relaying(Strategy);

impl std::fmt::Debug for Relaying {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Relaying")
    }
}

enum Strategy {
    Splice(Drive<tokio::net::TcpStream, splice::SplicePump>),
    Copy(Drive<Stream, copy::CopyPump>),
}

impl Future for Relaying {
    type Output = RelayReport;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<RelayReport> {
        match &mut self.get_mut().0 {
            Strategy::Splice(drive) => Pin::new(drive).poll(cx),
            Strategy::Copy(drive) => Pin::new(drive).poll(cx),
        }
    }
}
