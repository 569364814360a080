//! What a relay watches besides its two pumps: a source whose bytes cannot
//! move (its destination does not read) is still watched for a reset, and
//! `stallTimeout` / `idleTimeout` end connections that make no progress.
//!
//! A back-pressured direction stops reading its source, so nothing would
//! notice the source resetting: the watch registers a duplicate of the
//! source's descriptor with the runtime (a readiness slot of its own, so the
//! pump's own readiness is never disturbed) for as long as the back-pressure
//! lasts. Idle and flowing connections pay nothing: no descriptor, no timer.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::time::{Instant, Sleep};

/// Time limits of a relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayLimits {
    /// A direction with bytes pending that moves none for this long ends the
    /// connection with a reset to both sides (`stallTimeout`).
    pub stall: Option<Duration>,
    /// A connection with no bytes moving either way for this long is closed
    /// (`idleTimeout`; off by default, so idle SSH sessions live).
    pub idle: Option<Duration>,
}

/// `stallTimeout`'s default.
pub const DEFAULT_STALL: Duration = Duration::from_secs(120);

impl Default for RelayLimits {
    fn default() -> Self {
        Self { stall: Some(DEFAULT_STALL), idle: None }
    }
}

/// A source watched for a reset while its direction is back-pressured.
#[derive(Debug)]
pub(super) struct ResetWatch {
    fd: AsyncFd<OwnedFd>,
}

impl ResetWatch {
    /// Watches the TCP socket `socket`; `None` when its descriptor cannot be
    /// duplicated or registered (out of descriptors: the stall timer still
    /// ends the connection).
    pub fn new(socket: BorrowedFd<'_>) -> Option<Self> {
        let fd = socket.try_clone_to_owned().ok()?;
        // SAFETY: the descriptor is owned by the AsyncFd and stays open, the
        // same file, until it is dropped.
        let registered = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) };
        registered.ok().map(|fd| Self { fd })
    }

    /// Ready with the error once the socket is reset or broken; pending
    /// otherwise (data waiting to be read and a clean end-of-stream are
    /// left to the pump).
    pub fn poll_reset(&self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            let mut guard = match self.fd.poll_read_ready(cx) {
                Poll::Ready(Ok(guard)) => guard,
                Poll::Ready(Err(error)) => return Poll::Ready(error),
                Poll::Pending => return Poll::Pending,
            };
            let socket = socket2::SockRef::from(self.fd.get_ref());
            match socket.take_error() {
                Ok(Some(error)) => return Poll::Ready(error),
                Err(error) => return Poll::Ready(error),
                Ok(None) => {}
            }
            if let Err(error) = peek_one(self.fd.get_ref().as_raw_fd())
                && error.kind() != io::ErrorKind::WouldBlock
            {
                return Poll::Ready(error);
            }
            // Data or end-of-stream: the pump's business. Wait for the next
            // event on the socket (a reset is one).
            guard.clear_ready();
        }
    }
}

/// Peeks at one byte without waiting: how a reset that `SO_ERROR` already
/// reported once shows again.
fn peek_one(fd: std::os::fd::RawFd) -> io::Result<usize> {
    let mut byte = 0u8;
    // SAFETY: reads at most one byte into a local; the descriptor is open
    // for as long as the watch lives.
    let n = unsafe { libc::recv(fd, (&raw mut byte).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// A deadline that moves whenever the relay makes progress.
#[derive(Debug)]
pub(super) struct ProgressTimer {
    sleep: Pin<Box<Sleep>>,
    limit: Duration,
    progress: u64,
}

impl ProgressTimer {
    pub fn new(limit: Duration, progress: u64) -> Self {
        Self { sleep: Box::pin(tokio::time::sleep(limit)), limit, progress }
    }

    /// Ready when `limit` passed without `progress` changing.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>, progress: u64) -> Poll<()> {
        if progress != self.progress {
            self.progress = progress;
            self.sleep.as_mut().reset(Instant::now() + self.limit);
        }
        self.sleep.as_mut().poll(cx)
    }
}
