//! Listening sockets as serve2d binds them (`serve2-user/src/listener.rs`):
//! one SO_REUSEPORT socket per worker, TCP_NODELAY inherited by accepted
//! sockets, backlog 4096.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Accept queue length asked for; the kernel caps it at `somaxconn`.
const BACKLOG: i32 = 4096;

/// Binds `count` listening sockets to `addr` with SO_REUSEPORT (port 0:
/// the first socket's port for all), non-blocking.
pub fn bind_group(addr: SocketAddr, count: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let first = bind_one(addr)?;
    let addr = first.local_addr()?;
    let mut group = vec![first];
    for _ in 1..count.max(1) {
        group.push(bind_one(addr)?);
    }
    Ok(group)
}

fn bind_one(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_port(true)?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}
