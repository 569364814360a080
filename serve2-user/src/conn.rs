//! A client connection as handlers see it: a byte stream (raw TCP or a
//! transport such as TLS), the bytes detection already read (replayed before
//! anything else), and what is known about the peer.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// What a raw TCP connection's first read takes at most: a whole short
/// first flight (an SSH banner, an HTTP request, most TLS ClientHellos).
const FIRST_READ: usize = 4096;

/// A byte stream a connection can run over.
///
/// Beyond `AsyncRead + AsyncWrite`, a stream exposes the TCP socket under it
/// (if any) so serve2 can pass resets on and set socket options.
pub trait IoStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// The TCP socket at the bottom of this stream, if there is one.
    fn tcp_socket(&self) -> Option<BorrowedFd<'_>>;
}

impl IoStream for TcpStream {
    fn tcp_socket(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }
}

impl IoStream for Box<dyn IoStream> {
    fn tcp_socket(&self) -> Option<BorrowedFd<'_>> {
        (**self).tcp_socket()
    }
}

impl<S: IoStream> IoStream for tokio_rustls::server::TlsStream<S> {
    fn tcp_socket(&self) -> Option<BorrowedFd<'_>> {
        self.get_ref().0.tcp_socket()
    }
}

impl<S: IoStream> IoStream for tokio_rustls::client::TlsStream<S> {
    fn tcp_socket(&self) -> Option<BorrowedFd<'_>> {
        self.get_ref().0.tcp_socket()
    }
}

/// The stream under a [`Conn`]: raw TCP (which the relay can splice) or any
/// other transport.
#[derive(Debug)]
pub enum Stream {
    /// The accepted TCP socket itself.
    Tcp(TcpStream),
    /// A transport layered on top of it, such as a decrypted TLS stream.
    Boxed(Box<dyn IoStream>),
}

impl std::fmt::Debug for dyn IoStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IoStream")
    }
}

impl From<TcpStream> for Stream {
    fn from(stream: TcpStream) -> Self {
        Stream::Tcp(stream)
    }
}

impl Stream {
    /// Wraps any transport.
    pub fn boxed(stream: impl IoStream) -> Self {
        Stream::Boxed(Box::new(stream))
    }

    /// Makes the next close of the underlying TCP socket send a reset
    /// (`SO_LINGER` 0), to pass on a reset received from the other side.
    pub fn set_reset_on_close(&self) {
        if let Some(fd) = self.tcp_socket() {
            // Best effort: the socket may already be gone.
            let _ = socket2::SockRef::from(&fd).set_linger(Some(std::time::Duration::ZERO));
        }
    }
}

macro_rules! delegate_stream {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Tcp($s) => {
                let $s = Pin::new($s);
                $e
            }
            Stream::Boxed($s) => {
                let $s = Pin::new($s);
                $e
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        delegate_stream!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        delegate_stream!(self, s => s.poll_write(cx, buf))
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate_stream!(self, s => s.poll_write_vectored(cx, bufs))
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Boxed(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate_stream!(self, s => s.poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate_stream!(self, s => s.poll_shutdown(cx))
    }
}

impl IoStream for Stream {
    fn tcp_socket(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Stream::Tcp(s) => Some(s.as_fd()),
            Stream::Boxed(s) => s.tcp_socket(),
        }
    }
}

pub use serve2_detect::TlsInfo;

/// Facts about a connection that outlive its layers.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The address the client connected to (with kernel steering, the port it
    /// dialled), IPv4-mapped IPv6 addresses canonicalised to IPv4.
    pub local: SocketAddr,
    /// The TLS session this layer was decrypted from, when the nearest
    /// transport is TLS terminated by serve2.
    pub tls: Option<TlsInfo>,
    /// Transports this layer is nested in: 0 for the raw TCP connection.
    pub depth: u8,
    /// When detection (including TLS handshakes on the way) must be over.
    pub detect_deadline: Instant,
}

/// A client connection: its stream, the bytes detection buffered (served
/// first to whoever reads), and its [`ConnInfo`].
///
/// `Conn` is itself an [`IoStream`], so a handler can read and write it
/// directly; handlers that want the raw stream (the proxy's relay) take it
/// apart with [`Conn::into_parts`].
#[derive(Debug)]
pub struct Conn {
    stream: Stream,
    buffered: Vec<u8>,
    replayed: usize,
    info: ConnInfo,
    bytes_read: u64,
    bytes_written: u64,
}

impl Conn {
    /// A connection over `stream` with nothing buffered yet.
    pub fn new(stream: impl Into<Stream>, info: ConnInfo) -> Self {
        Self::with_buffered(stream, Vec::new(), info)
    }

    /// A connection whose first bytes were already read from `stream`; they
    /// are detected on and replayed before anything else.
    pub fn with_buffered(stream: impl Into<Stream>, buffered: Vec<u8>, info: ConnInfo) -> Self {
        Self { stream: stream.into(), buffered, replayed: 0, info, bytes_read: 0, bytes_written: 0 }
    }

    /// Facts about the connection.
    pub fn info(&self) -> &ConnInfo {
        &self.info
    }

    /// The bytes read from the stream during detection that no one has
    /// consumed yet: what a handler taking the stream apart must deliver
    /// first (reading the `Conn` itself replays them).
    pub fn buffered(&self) -> &[u8] {
        &self.buffered[self.replayed..]
    }

    /// Bytes handed to readers of this `Conn` (replayed ones included) and
    /// bytes written through it.
    pub fn byte_counts(&self) -> (u64, u64) {
        (self.bytes_read, self.bytes_written)
    }

    /// The underlying stream.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Splits the connection into its stream, the unconsumed buffered bytes
    /// (which the new owner must deliver first) and its info.
    pub fn into_parts(mut self) -> (Stream, Vec<u8>, ConnInfo) {
        self.buffered.drain(..self.replayed);
        (self.stream, self.buffered, self.info)
    }

    /// Gets more bytes for detection: at least one unless the peer closed
    /// (then `Ok(0)`); at most `max` more, except on a raw TCP socket's
    /// first read, which takes up to [`FIRST_READ`] bytes at once (the
    /// engine shows each detector no more than its limit).
    ///
    /// That first read waits for readiness before it takes any memory, so
    /// a client that sends nothing holds no buffer; and a short first flight
    /// arrives in one `recv`, to be replayed from the buffer (no peek, no
    /// second read of the same bytes).
    pub(crate) async fn buffer_more(&mut self, max: usize) -> io::Result<usize> {
        use bytes::BufMut;
        use tokio::io::AsyncReadExt;
        if self.replayed > 0 {
            self.buffered.drain(..self.replayed);
            self.replayed = 0;
        }
        if let Stream::Tcp(tcp) = &mut self.stream
            && self.buffered.is_empty()
        {
            tcp.readable().await?;
            // Through `AsyncRead`: a short read clears the readiness, so the
            // relay's next read waits for new bytes instead of trying.
            let mut first = Vec::with_capacity(max.max(FIRST_READ));
            let n = tcp.read_buf(&mut first).await?;
            self.buffered = first;
            return Ok(n);
        }
        self.buffered.reserve_exact(max);
        // `read_buf` only extends the buffer once bytes arrived, so a read
        // cancelled by the detection deadline leaves it as it was.
        self.stream.read_buf(&mut (&mut self.buffered).limit(max)).await
    }

    /// [`Conn::buffer_more`] bounded by the detection deadline: `Ok(None)`
    /// once it has passed with nothing more to read.
    ///
    /// At the deadline the kernel's queue is read directly: if the process
    /// could not run for a while (stopped, paused), bytes may have arrived
    /// that the runtime has not seen yet, and they count as arrived in time.
    pub(crate) async fn buffer_before_deadline(&mut self, max: usize) -> io::Result<Option<usize>> {
        let deadline = self.info.detect_deadline;
        match tokio::time::timeout_at(deadline, self.buffer_more(max)).await {
            Ok(read) => read.map(Some),
            Err(_elapsed) => match self.buffer_queued(max)? {
                0 => Ok(None),
                n => Ok(Some(n)),
            },
        }
    }

    /// Gets what the kernel holds for this connection right now, without
    /// waiting (at most `max` more bytes; `Ok(0)` when nothing is queued).
    /// A raw TCP socket is asked directly, whatever the runtime has seen.
    fn buffer_queued(&mut self, max: usize) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        if self.replayed > 0 {
            self.buffered.drain(..self.replayed);
            self.replayed = 0;
        }
        match &mut self.stream {
            Stream::Tcp(tcp) => {
                let fd = tcp.as_raw_fd();
                let mut chunk = vec![0u8; if self.buffered.is_empty() { max.max(FIRST_READ) } else { max }];
                // SAFETY: receives into a buffer of the length given, on a
                // descriptor the stream keeps open.
                let n = unsafe { libc::recv(fd, chunk.as_mut_ptr().cast(), chunk.len(), libc::MSG_DONTWAIT) };
                let n = match usize::try_from(n) {
                    Ok(n) => n,
                    Err(_) => {
                        let error = io::Error::last_os_error();
                        return if error.kind() == io::ErrorKind::WouldBlock { Ok(0) } else { Err(error) };
                    }
                };
                self.buffered.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Stream::Boxed(_) => {
                // A transport (TLS) decides itself what its socket holds:
                // poll one read, and drop it if it would wait.
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                let mut read = std::pin::pin!(self.buffer_more(max));
                match read.as_mut().poll(&mut cx) {
                    Poll::Ready(result) => result,
                    Poll::Pending => Ok(0),
                }
            }
        }
    }

    /// Drops the first `len` buffered bytes for good (a PROXY header read
    /// before detection).
    pub(crate) fn discard_front(&mut self, len: usize) {
        let len = len.min(self.buffered().len());
        let start = self.replayed;
        self.buffered.drain(start..start + len);
    }

    /// Replaces the addresses the connection is known by (those a trusted
    /// PROXY header announced).
    pub(crate) fn set_addresses(&mut self, peer: SocketAddr, local: SocketAddr) {
        self.info.peer = canonical_addr(peer);
        self.info.local = canonical_addr(local);
    }

    /// Ends detection. Returns how many bytes detection saw.
    pub(crate) fn end_detection(&mut self) -> usize {
        self.buffered().len()
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let pending = &this.buffered[this.replayed..];
        if !pending.is_empty() {
            let n = pending.len().min(buf.remaining());
            buf.put_slice(&pending[..n]);
            this.replayed += n;
            this.bytes_read += n as u64;
            if this.replayed == this.buffered.len() {
                // Replay done: give the memory back for the connection's life.
                this.buffered = Vec::new();
                this.replayed = 0;
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        this.bytes_read += (buf.filled().len() - before) as u64;
        result
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            this.bytes_written += n as u64;
        }
        result
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl IoStream for Conn {
    fn tcp_socket(&self) -> Option<BorrowedFd<'_>> {
        self.stream.tcp_socket()
    }
}

/// Maps IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack
/// socket reports for IPv4 peers) to plain IPv4.
pub fn canonical_addr(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

#[cfg(test)]
pub(crate) mod testing {
    //! In-memory connections for unit tests.
    use super::*;

    impl IoStream for tokio::io::DuplexStream {
        fn tcp_socket(&self) -> Option<BorrowedFd<'_>> {
            None
        }
    }

    /// Info for a connection from 192.0.2.1 to 198.51.100.1:80.
    pub fn info() -> ConnInfo {
        ConnInfo {
            peer: "192.0.2.1:40000".parse().expect("literal"),
            local: "198.51.100.1:80".parse().expect("literal"),
            tls: None,
            depth: 0,
            detect_deadline: Instant::now() + std::time::Duration::from_secs(5),
        }
    }

    /// A `Conn` over one end of an in-memory pipe, and the client's end.
    pub fn pipe() -> (Conn, tokio::io::DuplexStream) {
        let (server, client) = tokio::io::duplex(64 * 1024);
        (Conn::new(Stream::boxed(server), info()), client)
    }
}
