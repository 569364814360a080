//! Copying through userspace, for streams splice cannot reach (TLS).
//!
//! Reads land in a buffer on the stack and are written straight on; only
//! bytes the destination cannot take yet are kept on the heap. An idle
//! direction therefore holds no buffer at all.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Failure, FinOnClose, Pump, Side};

const CHUNK: usize = 16 * 1024;

/// One direction of a copying relay.
#[derive(Debug, Default)]
pub(super) struct CopyPump {
    /// Bytes read but not yet written (only under backpressure).
    pending: Vec<u8>,
    written: usize,
    read_closed: bool,
    unflushed: bool,
    bytes: u64,
}

impl CopyPump {
    /// Writes as much of `pending` as `to` takes now.
    fn poll_write_pending<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        to: &mut W,
        to_side: Side,
    ) -> Poll<Result<(), Failure>> {
        while self.written < self.pending.len() {
            match ready!(Pin::new(&mut *to).poll_write(cx, &self.pending[self.written..])) {
                Ok(0) => return Failure::ready(to_side, io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.written += n;
                    self.bytes += n as u64;
                    self.unflushed = true;
                }
                Err(error) => return Failure::ready(to_side, error),
            }
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

/// Why [`CopyPump::poll_copy`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CopyExit {
    /// `from` ended and `to` is shut down.
    Finished,
    /// A read filled a whole chunk and everything read is written: bulk
    /// data is flowing (only with `stop_on_bulk`).
    Bulk,
}

impl CopyPump {
    /// Copies until `from` ends, or, with `stop_on_bulk`, until a read fills
    /// a whole chunk (the caller may then switch to splicing).
    /// `last` as for [`Pump::poll_pump`].
    pub(super) fn poll_copy<S: AsyncRead + AsyncWrite + FinOnClose + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut S,
        from_side: Side,
        to: &mut S,
        stop_on_bulk: bool,
        last: bool,
    ) -> Poll<Result<CopyExit, Failure>> {
        let to_side = from_side.other();
        loop {
            ready!(self.poll_write_pending(cx, to, to_side))?;
            if self.read_closed {
                // Half-close: pass the FIN on; the other direction goes on.
                // (Unless the close that follows at once sends it.)
                if !(last && to.fin_on_close())
                    && let Err(error) = ready!(Pin::new(&mut *to).poll_shutdown(cx))
                {
                    return Failure::ready(to_side, error);
                }
                return Poll::Ready(Ok(CopyExit::Finished));
            }
            let mut chunk = [MaybeUninit::<u8>::uninit(); CHUNK];
            let mut read = ReadBuf::uninit(&mut chunk);
            match Pin::new(&mut *from).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => return Failure::ready(from_side, error),
                Poll::Pending => {
                    // Idle: push out what a buffering writer (TLS) holds, and
                    // keep no memory while waiting.
                    if self.unflushed {
                        if let Err(error) = ready!(Pin::new(&mut *to).poll_flush(cx)) {
                            return Failure::ready(to_side, error);
                        }
                        self.unflushed = false;
                    }
                    self.pending = Vec::new();
                    return Poll::Pending;
                }
            }
            let data = read.filled();
            if data.is_empty() {
                self.read_closed = true;
                continue;
            }
            let full = data.len() == CHUNK;
            let mut offset = 0;
            while offset < data.len() {
                match Pin::new(&mut *to).poll_write(cx, &data[offset..]) {
                    Poll::Ready(Ok(0)) => return Failure::ready(to_side, io::ErrorKind::WriteZero.into()),
                    Poll::Ready(Ok(n)) => {
                        offset += n;
                        self.bytes += n as u64;
                        self.unflushed = true;
                    }
                    Poll::Ready(Err(error)) => return Failure::ready(to_side, error),
                    Poll::Pending => {
                        // Backpressure: keep the rest until `to` is writable.
                        self.pending.extend_from_slice(&data[offset..]);
                        return Poll::Pending;
                    }
                }
            }
            if full && stop_on_bulk {
                return Poll::Ready(Ok(CopyExit::Bulk));
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + FinOnClose + Unpin> Pump<S> for CopyPump {
    fn poll_pump(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut S,
        from_side: Side,
        to: &mut S,
        last: bool,
    ) -> Poll<Result<(), Failure>> {
        ready!(self.poll_copy(cx, from, from_side, to, false, last))?;
        Poll::Ready(Ok(()))
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }

    fn backpressured(&self) -> bool {
        self.written < self.pending.len()
    }
}
