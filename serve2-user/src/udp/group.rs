//! The daemon's UDP sockets as SO_REUSEPORT groups: one socket per worker
//! thread on the same address, the kernel hashing each datagram's 4-tuple
//! to one of them, so a client's flow always reaches the same worker. The
//! same holds for steered datagrams: after the sk_lookup program assigns
//! one socket of the group, the kernel still selects within its group
//! (`udp4_lookup_run_bpf` → `lookup_reuseport`; the program never passes
//! `BPF_SK_LOOKUP_F_NO_REUSEPORT`).

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::ListenAddress;

/// Tries at finding a free port for a group bound to port 0.
const PORT_TRIES: usize = 8;

/// Binds `count` sockets for `udpAddress` (as [`super::socket::bind`]
/// does, `":port"` dual-stack) in one SO_REUSEPORT group.
pub fn bind_group(address: &ListenAddress, count: usize) -> io::Result<Vec<std::net::UdpSocket>> {
    let at = address.socket_addr();
    let only_v6 = at.is_ipv6().then_some(matches!(address, ListenAddress::Addr(_)));
    bind_reuseport_group(at, only_v6, count)
}

/// Binds `count` sockets for steering (as [`super::socket::bind_steered`]:
/// `[::]:0` dual-stack in the daemon) in one SO_REUSEPORT group.
pub fn bind_steered_group(at: SocketAddr, count: usize) -> io::Result<Vec<std::net::UdpSocket>> {
    bind_reuseport_group(at, at.is_ipv6().then_some(false), count)
}

fn bind_reuseport_group(at: SocketAddr, only_v6: Option<bool>, count: usize) -> io::Result<Vec<std::net::UdpSocket>> {
    let mut last_error = None;
    for _ in 0..PORT_TRIES {
        // SO_REUSEPORT would quietly join another process's group on this
        // port (a second serve2d, say, or nginx: same user), and the
        // kernel's choice of a free port for port 0 does not avoid groups
        // it could join. A socket without it finds out whether the port
        // is free, and picks a free one for port 0.
        let mut port = at;
        let probe = bind_one(at, only_v6, false)?;
        port.set_port(probe.local_addr()?.port());
        drop(probe);
        match (0..count.max(1)).map(|_| bind_one(port, only_v6, true)).collect() {
            Ok(group) => return Ok(group),
            // Taken between the probe and the group: for port 0, another.
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && at.port() == 0 => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| io::ErrorKind::AddrInUse.into()))
}

fn bind_one(at: SocketAddr, only_v6: Option<bool>, reuse_port: bool) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(at), Type::DGRAM, Some(Protocol::UDP))?;
    if let Some(only_v6) = only_v6 {
        socket.set_only_v6(only_v6)?;
    }
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    super::socket::prepare(&socket, at.is_ipv6())?;
    socket.bind(&at.into())?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_shares_one_port_and_refuses_a_port_another_socket_holds() {
        let group = bind_steered_group(SocketAddr::from(([127, 0, 0, 1], 0)), 3).unwrap();
        let ports: Vec<u16> = group.iter().map(|s| s.local_addr().unwrap().port()).collect();
        assert_eq!(ports.len(), 3);
        assert!(ports.iter().all(|&p| p == ports[0] && p != 0), "{ports:?}");
        let held = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = ListenAddress::Addr(held.local_addr().unwrap());
        let refused = bind_group(&address, 2).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::AddrInUse);
    }
}
