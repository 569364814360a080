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
/// one accepts) with TCP_NODELAY, and writes `first` on it. With `from`
/// (`transparent`), connects from that client's address (any port), with
/// IP_TRANSPARENT so the kernel lets serve2 use an address it does not own,
/// and only to addresses of its family.
pub(super) async fn connect_sending(target: &str, first: &[u8], from: Option<SocketAddr>) -> io::Result<TcpStream> {
    let source = from.map(|client| SocketAddr::new(client.ip().to_canonical(), 0));
    let mut last_error = None;
    // The source must be of the backend's family: sniproxy's bug was to mix them.
    let same_family = |addr: &SocketAddr| source.is_none_or(|source| source.is_ipv4() == addr.is_ipv4());
    for addr in tokio::net::lookup_host(target).await?.filter(same_family) {
        match connect_one(addr, first, source).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| match from {
        Some(client) => {
            let family = if client.ip().to_canonical().is_ipv4() { "IPv4" } else { "IPv6" };
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!("transparent: {target} has no {family} address for the client {client} to connect from"),
            )
        }
        None => io::Error::new(io::ErrorKind::NotFound, format!("{target}: no address")),
    }))
}

async fn connect_one(addr: SocketAddr, first: &[u8], source: Option<SocketAddr>) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking(), Some(Protocol::TCP))?;
    socket.set_tcp_nodelay(true)?;
    if let Some(source) = source {
        if addr.is_ipv4() {
            socket.set_ip_transparent_v4(true)?;
        } else {
            socket.set_ip_transparent_v6(true)?;
        }
        socket.bind(&source.into())?;
    }
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
