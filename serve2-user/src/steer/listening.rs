//! The sockets that receive in this network namespace: listening TCP
//! sockets (which ports `"all"` must leave alone, and which socket a
//! kernel-direct route hands connections to) and unconnected UDP sockets
//! (which UDP ports `"all"` must leave alone).
//!
//! Asked of the kernel over netlink (`sock_diag`, filtered by state in the
//! kernel), not read from `/proc/net/tcp`: that file lists every socket,
//! and a busy daemon's namespace holds tens of thousands in TIME_WAIT,
//! which made reading it take long enough to stall the thread.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A listening TCP socket, or an unconnected UDP socket, of this namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listening {
    pub local: SocketAddr,
    pub inode: u64,
}

const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const TCP_LISTEN: u32 = 10;
/// The state `sock_diag` gives an unconnected UDP socket (TCP_CLOSE);
/// connected ones are clients (serve2's backend sockets among them).
const UDP_UNCONNECTED: u32 = 7;
/// `struct nlmsghdr`.
const HEADER: usize = 16;
/// `struct inet_diag_req_v2`.
const REQUEST: usize = 56;
/// `struct inet_diag_msg`.
const MESSAGE: usize = 72;

/// Every listening TCP socket of the calling thread's network namespace.
pub fn listening_sockets() -> io::Result<Vec<Listening>> {
    sockets(libc::IPPROTO_TCP, TCP_LISTEN)
}

/// Every unconnected UDP socket of the calling thread's network namespace:
/// where another program receives.
pub fn unconnected_udp_sockets() -> io::Result<Vec<Listening>> {
    sockets(libc::IPPROTO_UDP, UDP_UNCONNECTED)
}

/// The sockets of `protocol` in `state`, IPv4 and IPv6.
fn sockets(protocol: i32, state: u32) -> io::Result<Vec<Listening>> {
    // SAFETY: a plain socket call; the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, NETLINK_SOCK_DIAG) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut sockets = Vec::new();
    for family in [libc::AF_INET, libc::AF_INET6] {
        request(&socket, family as u8, protocol as u8, state)?;
        receive(&socket, &mut sockets)?;
    }
    Ok(sockets)
}

/// Asks for the sockets of `family` and `protocol` in `state`.
fn request(socket: &OwnedFd, family: u8, protocol: u8, state: u32) -> io::Result<()> {
    let mut message = [0u8; HEADER + REQUEST];
    message[0..4].copy_from_slice(&((HEADER + REQUEST) as u32).to_ne_bytes());
    message[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    message[6..8].copy_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    message[HEADER] = family;
    message[HEADER + 1] = protocol;
    message[HEADER + 4..HEADER + 8].copy_from_slice(&(1u32 << state).to_ne_bytes());
    // SAFETY: sends the buffer of the length given on our socket; an
    // unaddressed netlink send goes to the kernel.
    let sent = unsafe { libc::send(socket.as_raw_fd(), message.as_ptr().cast(), message.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads the dump's answers until its end.
fn receive(socket: &OwnedFd, sockets: &mut Vec<Listening>) -> io::Result<()> {
    let mut buffer = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: receives into the buffer of the length given.
        let n = unsafe { libc::recv(socket.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len(), 0) };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        let mut at = 0;
        while at + HEADER <= n {
            let word = |i: usize| u32::from_ne_bytes([buffer[i], buffer[i + 1], buffer[i + 2], buffer[i + 3]]);
            let len = word(at) as usize;
            let kind = u16::from_ne_bytes([buffer[at + 4], buffer[at + 5]]);
            if len < HEADER || at + len > n {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "sock_diag: a truncated message"));
            }
            match kind {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let code = i32::from_ne_bytes([buffer[at + 16], buffer[at + 17], buffer[at + 18], buffer[at + 19]]);
                    return Err(io::Error::from_raw_os_error(-code));
                }
                SOCK_DIAG_BY_FAMILY if len >= HEADER + MESSAGE => {
                    sockets.extend(parse_message(&buffer[at + HEADER..at + len]));
                }
                _ => {}
            }
            // Messages are aligned to 4 bytes.
            at += (len + 3) & !3;
        }
    }
}

/// One `inet_diag_msg`: family, state, timer, retrans, then the socket id
/// (ports and addresses in network order), timers and queues, uid, inode.
fn parse_message(message: &[u8]) -> Option<Listening> {
    let family = i32::from(*message.first()?);
    let port = u16::from_be_bytes([*message.get(4)?, *message.get(5)?]);
    let source = message.get(8..24)?;
    let ip = match family {
        libc::AF_INET => IpAddr::V4(Ipv4Addr::new(source[0], source[1], source[2], source[3])),
        libc::AF_INET6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(source).ok()?)),
        _ => return None,
    };
    let inode = message.get(68..72)?;
    let inode = u32::from_ne_bytes([inode[0], inode[1], inode[2], inode[3]]);
    Some(Listening { local: SocketAddr::new(ip, port), inode: u64::from(inode) })
}

/// The listener that takes connections to `target`: bound to it exactly,
/// else to the wildcard address of its port.
pub fn listener_for(target: SocketAddr, sockets: &[Listening]) -> Option<Listening> {
    let on_port = || sockets.iter().filter(|s| s.local.port() == target.port());
    let exact = on_port().find(|s| s.local.ip().to_canonical() == target.ip().to_canonical());
    exact.or_else(|| on_port().find(|s| s.local.ip().is_unspecified())).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(family: u8, port: u16, address: &[u8], inode: u32) -> Vec<u8> {
        let mut m = vec![0u8; MESSAGE];
        m[0] = family;
        m[1] = TCP_LISTEN as u8;
        m[4..6].copy_from_slice(&port.to_be_bytes());
        m[8..8 + address.len()].copy_from_slice(address);
        m[68..72].copy_from_slice(&inode.to_ne_bytes());
        m
    }

    #[test]
    fn diag_messages_parse_in_both_families() {
        let v4 = message(libc::AF_INET as u8, 8080, &[127, 0, 0, 1], 4242);
        assert_eq!(parse_message(&v4), Some(Listening { local: "127.0.0.1:8080".parse().expect("addr"), inode: 4242 }));
        let mut loopback = [0u8; 16];
        loopback[15] = 1;
        let v6 = message(libc::AF_INET6 as u8, 22, &loopback, 77);
        assert_eq!(parse_message(&v6), Some(Listening { local: "[::1]:22".parse().expect("addr"), inode: 77 }));
        assert_eq!(parse_message(&v4[..40]), None, "truncated");
    }

    #[test]
    fn this_namespace_lists_a_listener_of_ours() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let local = listener.local_addr().expect("addr");
        let sockets = listening_sockets().expect("sock_diag answers");
        assert!(sockets.iter().any(|s| s.local == local && s.inode != 0), "{local} not in {sockets:?}");
    }

    #[test]
    fn only_unconnected_udp_sockets_hold_a_port() {
        let unconnected = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let connected = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        connected.connect(unconnected.local_addr().expect("addr")).expect("connect");
        let sockets = unconnected_udp_sockets().expect("sock_diag answers");
        let (held, client) = (unconnected.local_addr().expect("addr"), connected.local_addr().expect("addr"));
        assert!(sockets.iter().any(|s| s.local == held), "{held} not in {sockets:?}");
        assert!(!sockets.iter().any(|s| s.local == client), "connected {client} in {sockets:?}");
    }

    #[test]
    fn the_exact_address_wins_over_the_wildcard() {
        let sockets = [
            Listening { local: "0.0.0.0:25".parse().expect("addr"), inode: 1 },
            Listening { local: "127.0.0.1:25".parse().expect("addr"), inode: 2 },
            Listening { local: "127.0.0.1:26".parse().expect("addr"), inode: 3 },
        ];
        assert_eq!(listener_for("127.0.0.1:25".parse().expect("addr"), &sockets).map(|s| s.inode), Some(2));
        assert_eq!(listener_for("10.0.0.1:25".parse().expect("addr"), &sockets).map(|s| s.inode), Some(1));
        assert_eq!(listener_for("127.0.0.1:27".parse().expect("addr"), &sockets), None);
    }
}
