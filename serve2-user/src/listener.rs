//! Binding listening sockets the way a busy multiplexer wants them.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

use crate::config::ListenAddress;

/// Accept queue length asked for; the kernel caps it at `somaxconn`.
const BACKLOG: i32 = 4096;

/// Binds a TCP listener. `":port"` becomes one dual-stack `[::]` socket
/// taking IPv4 too (IPv4 only if the host has no IPv6). Must run inside a
/// Tokio runtime.
pub fn bind(address: &ListenAddress) -> io::Result<TcpListener> {
    let addr = address.socket_addr();
    match bind_addr(addr, matches!(address, ListenAddress::AllInterfaces(_))) {
        Err(e)
            if matches!(address, ListenAddress::AllInterfaces(_)) && e.raw_os_error() == Some(libc::EAFNOSUPPORT) =>
        {
            bind_addr(SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), addr.port()), false)
        }
        result => result,
    }
}

fn bind_addr(addr: SocketAddr, dual_stack: bool) -> io::Result<TcpListener> {
    TcpListener::from_std(bind_socket(addr, dual_stack, false)?)
}

/// Binds `count` listening sockets to the same address with SO_REUSEPORT,
/// one per worker thread: the kernel spreads new connections over them (and
/// so does kernel steering, which assigns the group's first socket). With
/// port 0, the first socket's port is used for all. Blocking-free std
/// sockets, to be handed to each worker's runtime.
pub fn bind_group(address: &ListenAddress, count: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let dual_stack = matches!(address, ListenAddress::AllInterfaces(_));
    let mut addr = address.socket_addr();
    if addr.port() != 0 {
        // SO_REUSEPORT would quietly join another process's group on this
        // address (a second serve2d, say) and split the load with it: make
        // sure nobody holds it first.
        if let Err(e) = bind_socket(addr, dual_stack, false)
            && e.kind() == io::ErrorKind::AddrInUse
        {
            return Err(e);
        }
    }
    let first = match bind_socket(addr, dual_stack, true) {
        Err(e) if dual_stack && e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
            addr = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), addr.port());
            bind_socket(addr, false, true)?
        }
        result => result?,
    };
    addr.set_port(first.local_addr()?.port());
    let mut group = vec![first];
    for _ in 1..count.max(1) {
        group.push(bind_socket(addr, dual_stack && addr.is_ipv6(), true)?);
    }
    Ok(group)
}

fn bind_socket(addr: SocketAddr, dual_stack: bool, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_reuse_address(true)?;
    // Accepted sockets inherit it: relayed bytes go out at once, with no
    // per-connection setsockopt.
    socket.set_tcp_nodelay(true)?;
    if dual_stack && addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}
