//! Zero-copy relaying between two TCP sockets with splice(2): bytes go
//! socket → pipe → socket without entering userspace.
//!
//! A direction starts by copying through a stack buffer: short exchanges
//! (banners, requests) never touch a pipe. Once a read fills a whole buffer,
//! bulk data is flowing and the direction switches to splicing. It then
//! borrows a pipe from the pool only while bytes are in flight and gives it
//! back, empty, as soon as its source has nothing more to read, so an idle
//! connection holds its two sockets and nothing else. If no pipe can be had
//! (descriptor exhaustion), the direction keeps copying.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::task::{Context, Poll, ready};

use tokio::io::Interest;
use tokio::net::TcpStream;

use super::copy::{CopyExit, CopyPump};
use super::pipe::{self, Pipe, PoolUser};
use super::{Failure, Pump, Side};

/// Moves up to `len` bytes from `from` to `to`, without blocking.
fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: plain syscall on descriptors the caller keeps open; null
    // offsets mean "current position", as required for sockets and pipes.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// One direction of a splicing relay.
#[derive(Debug, Default)]
pub(super) struct SplicePump {
    pipe: Option<Pipe>,
    /// Held from the switch to splicing on: keeps the pipe pool alive.
    /// Declared after `pipe`, and the pipe goes back first (see `Drop`).
    pool_user: Option<PoolUser>,
    /// Bytes sitting in `pipe`.
    in_pipe: usize,
    read_closed: bool,
    bytes: u64,
    /// Copies until bulk data shows up (or for good, without pipes).
    copy: CopyPump,
    copying: Copying,
}

/// Whether a direction copies or splices.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Copying {
    /// Until a read fills a whole buffer.
    #[default]
    UntilBulk,
    /// Splicing.
    No,
    /// No pipe could be had: copying to the end.
    Always,
}

impl SplicePump {
    /// Returns the pipe (empty) to the pool.
    fn release_pipe(&mut self) {
        if let Some(pipe) = self.pipe.take() {
            pipe::give_back(pipe);
        }
    }

    /// Splices what the pipe holds into `to`.
    fn poll_drain(&mut self, cx: &mut Context<'_>, to: &TcpStream, to_side: Side) -> Poll<Result<(), Failure>> {
        while self.in_pipe > 0 {
            let Some(pipe) = &self.pipe else { break };
            if let Err(error) = ready!(to.poll_write_ready(cx)) {
                return Failure::ready(to_side, error);
            }
            match to.try_io(Interest::WRITABLE, || splice(pipe.read_fd(), to.as_raw_fd(), self.in_pipe)) {
                Ok(n) => {
                    self.in_pipe -= n;
                    self.bytes += n as u64;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Failure::ready(to_side, error),
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for SplicePump {
    fn drop(&mut self) {
        // Only an empty pipe may go back to the pool.
        if self.in_pipe == 0 {
            self.release_pipe();
        }
    }
}

impl Pump<TcpStream> for SplicePump {
    fn poll_pump(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut TcpStream,
        from_side: Side,
        to: &mut TcpStream,
        last: bool,
    ) -> Poll<Result<(), Failure>> {
        match self.copying {
            Copying::Always => return self.copy.poll_pump(cx, from, from_side, to, last),
            Copying::UntilBulk => match ready!(self.copy.poll_copy(cx, from, from_side, to, true, last))? {
                CopyExit::Finished => return Poll::Ready(Ok(())),
                CopyExit::Bulk => {
                    self.copying = Copying::No;
                    self.pool_user = Some(PoolUser::new());
                }
            },
            Copying::No => {}
        }
        let to_side = from_side.other();
        loop {
            ready!(self.poll_drain(cx, to, to_side))?;
            if self.read_closed {
                self.release_pipe();
                // Half-close: pass the FIN on; the other direction goes on.
                // (Unless the close that follows at once sends it.)
                if !last && let Err(error) = socket2::SockRef::from(&*to).shutdown(Shutdown::Write) {
                    return Failure::ready(to_side, error);
                }
                return Poll::Ready(Ok(()));
            }
            match from.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => return Failure::ready(from_side, error),
                Poll::Pending => {
                    self.release_pipe();
                    return Poll::Pending;
                }
            }
            if self.pipe.is_none() {
                match pipe::take() {
                    Ok(pipe) => self.pipe = Some(pipe),
                    Err(error) => {
                        tracing::debug!(%error, "no pipe for splice; copying instead");
                        self.copying = Copying::Always;
                        return self.copy.poll_pump(cx, from, from_side, to, last);
                    }
                }
            }
            let Some(pipe) = &self.pipe else { continue };
            match from.try_io(Interest::READABLE, || splice(from.as_raw_fd(), pipe.write_fd(), pipe.size())) {
                Ok(0) => self.read_closed = true,
                Ok(n) => self.in_pipe = n,
                // Readiness is cleared; the next poll_read_ready waits.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Failure::ready(from_side, error),
            }
        }
    }

    fn bytes(&self) -> u64 {
        self.bytes + Pump::<TcpStream>::bytes(&self.copy)
    }

    fn backpressured(&self) -> bool {
        self.in_pipe > 0 || Pump::<TcpStream>::backpressured(&self.copy)
    }
}
