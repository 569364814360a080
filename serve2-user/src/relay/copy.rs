//! The copying relay: both directions polled from one future, each through
//! its own buffer.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{RelayEnd, RelayReport, Side};
use crate::conn::Stream;

const BUFFER_SIZE: usize = 16 * 1024;

/// One direction of the relay: reads from one stream, writes to the other.
struct Direction {
    /// Allocated on first use, so a direction that never carries data costs
    /// nothing.
    buf: Vec<u8>,
    pos: usize,
    filled: usize,
    read_closed: bool,
    unflushed: bool,
    done: bool,
    bytes: u64,
}

/// A failed direction: which side broke, and how.
struct Failure {
    side: Side,
    error: io::Error,
}

impl Direction {
    fn new() -> Self {
        Self { buf: Vec::new(), pos: 0, filled: 0, read_closed: false, unflushed: false, done: false, bytes: 0 }
    }

    /// Moves bytes from `from` (the `from_side`) to `to` until `from` is at
    /// end-of-stream and `to`'s write half is shut down.
    fn poll_copy(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut Stream,
        from_side: Side,
        to: &mut Stream,
    ) -> Poll<Result<(), Failure>> {
        let to_side = match from_side {
            Side::Client => Side::Backend,
            Side::Backend => Side::Client,
        };
        let fail = |side, error| Poll::Ready(Err(Failure { side, error }));
        loop {
            if self.pos == self.filled && !self.read_closed {
                if self.buf.is_empty() {
                    self.buf = vec![0; BUFFER_SIZE];
                }
                let mut read_buf = ReadBuf::new(&mut self.buf);
                match Pin::new(&mut *from).poll_read(cx, &mut read_buf) {
                    Poll::Ready(Ok(())) => {
                        let n = read_buf.filled().len();
                        self.pos = 0;
                        self.filled = n;
                        self.read_closed = n == 0;
                    }
                    Poll::Ready(Err(error)) => return fail(from_side, error),
                    Poll::Pending => {
                        // Nothing to read now: push out what a buffering
                        // writer (TLS) may still hold.
                        if self.unflushed {
                            if let Err(error) = ready!(Pin::new(&mut *to).poll_flush(cx)) {
                                return fail(to_side, error);
                            }
                            self.unflushed = false;
                        }
                        return Poll::Pending;
                    }
                }
            }
            while self.pos < self.filled {
                match ready!(Pin::new(&mut *to).poll_write(cx, &self.buf[self.pos..self.filled])) {
                    Ok(0) => return fail(to_side, io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        self.pos += n;
                        self.bytes += n as u64;
                        self.unflushed = true;
                    }
                    Err(error) => return fail(to_side, error),
                }
            }
            if self.read_closed {
                // Half-close: pass the FIN on; the other direction goes on.
                if let Err(error) = ready!(Pin::new(&mut *to).poll_shutdown(cx)) {
                    return fail(to_side, error);
                }
                self.buf = Vec::new();
                return Poll::Ready(Ok(()));
            }
        }
    }
}

/// Copies in both directions until both are closed or one side fails.
/// Returns the streams so the caller decides how to close them.
pub(super) async fn relay(mut client: Stream, mut backend: Stream) -> (Stream, Stream, RelayReport) {
    let mut up = Direction::new();
    let mut down = Direction::new();
    let result = poll_fn(|cx| {
        if !up.done {
            match up.poll_copy(cx, &mut client, Side::Client, &mut backend) {
                Poll::Ready(Ok(())) => up.done = true,
                Poll::Ready(Err(failure)) => return Poll::Ready(Err(failure)),
                Poll::Pending => {}
            }
        }
        if !down.done {
            match down.poll_copy(cx, &mut backend, Side::Backend, &mut client) {
                Poll::Ready(Ok(())) => down.done = true,
                Poll::Ready(Err(failure)) => return Poll::Ready(Err(failure)),
                Poll::Pending => {}
            }
        }
        if up.done && down.done { Poll::Ready(Ok(())) } else { Poll::Pending }
    })
    .await;
    let end = match result {
        Ok(()) => RelayEnd::Closed,
        Err(Failure { side: Side::Client, error }) => RelayEnd::ClientReset(error),
        Err(Failure { side: Side::Backend, error }) => RelayEnd::BackendReset(error),
    };
    let report = RelayReport { client_to_backend: up.bytes, backend_to_client: down.bytes, end };
    (client, backend, report)
}
