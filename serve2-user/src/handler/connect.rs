//! Dialling a backend with the first bytes in the same breath.
//!
//! A short proxied connection is dominated by its syscalls, so the connect
//! is written for the common case: on loopback or a fast network the
//! handshake is often done by the time `connect` returns, so the first
//! write (PROXY header and replayed bytes) is tried at once. If it goes
//! through, no readiness wait, no timer and no `SO_ERROR` probe are needed:
//! the write itself says the connection is up. Otherwise the socket waits
//! for writability and the write (or, with nothing to write, `SO_ERROR`)
//! says whether the connect worked.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Connects to `target` (`host:port`; each resolved address in turn until
/// one accepts) with TCP_NODELAY, and writes `first` on it.
pub(super) async fn connect_sending(target: &str, first: &[u8]) -> io::Result<TcpStream> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host(target).await? {
        match connect_one(addr, first).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{target}: no address"))))
}

async fn connect_one(addr: SocketAddr, first: &[u8]) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking(), Some(Protocol::TCP))?;
    socket.set_tcp_nodelay(true)?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(error) => return Err(error),
    }
    let mut sent = 0;
    if !first.is_empty() {
        // Still connecting: EAGAIN. Refused already: that error.
        match socket.send(first) {
            Ok(n) => sent = n,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    let mut stream = TcpStream::from_std(socket.into())?;
    if first.is_empty() {
        stream.writable().await?;
        if let Some(error) = stream.take_error()? {
            return Err(error);
        }
    } else if sent < first.len() {
        stream.write_all(&first[sent..]).await?;
    }
    Ok(stream)
}
