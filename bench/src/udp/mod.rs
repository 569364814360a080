//! The UDP side of serve2-load: an echo origin and three load generators,
//! all on plain threads with batched system calls (`batch`).
//!
//! Every flow's first datagram is shaped like a WireGuard handshake
//! initiation (148 bytes, type 1, three zero bytes), so the same load goes
//! through a `forward` block and through one that detects `quic` and
//! `wireguard`; the echo origin answers it like any other.
//!
//! Flows come from many source addresses (127.A.B.1, a new /24 every
//! [`FLOWS_PER_SUBNET`] flows), so serve2's default `maxFlowsPerSource`
//! (1024 per /24) is never what a run measures.

pub mod batch;
pub mod echo;
pub mod flows;
pub mod pingpong;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Duration;

/// Flows opened from one /24 before the next is used.
pub const FLOWS_PER_SUBNET: usize = 500;

/// How long a flow waits for an echo before counting the datagram lost.
pub const ECHO_WAIT: Duration = Duration::from_secs(1);

/// A WireGuard handshake initiation's shape: what serve2-detect's
/// `wireguard` kind matches without `publicKey` (the rest is filler).
pub fn first_datagram() -> [u8; 148] {
    let mut datagram = [0x5a; 148];
    datagram[..4].copy_from_slice(&[1, 0, 0, 0]);
    datagram
}

/// The source address of flow `index`.
pub fn source_of(index: usize) -> Ipv4Addr {
    let subnet = index / FLOWS_PER_SUBNET;
    // 127.1.0.0/24 onwards: 127.0.0.0/24 stays for everything else.
    Ipv4Addr::new(127, (1 + subnet / 256) as u8, (subnet % 256) as u8, 1)
}

/// A socket for flow `index`, connected to `target`, with `wait` as its
/// receive timeout.
pub fn flow_socket(index: usize, target: SocketAddr, wait: Duration) -> std::io::Result<UdpSocket> {
    let socket = UdpSocket::bind(SocketAddrV4::new(source_of(index), 0))?;
    socket.connect(target)?;
    socket.set_read_timeout(Some(wait))?;
    Ok(socket)
}

/// Sends the first datagram and waits for its echo: whether it came back.
pub fn open_flow(socket: &UdpSocket) -> std::io::Result<bool> {
    let first = first_datagram();
    socket.send(&first)?;
    let mut reply = [0u8; 2048];
    match socket.recv(&mut reply) {
        Ok(n) => Ok(reply[..n] == first),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_subnet_gets_more_flows_than_its_share() {
        let mut per_subnet = std::collections::HashMap::new();
        for index in 0..200_000 {
            let [a, b, c, _] = source_of(index).octets();
            assert_eq!(a, 127);
            assert_ne!((b, c), (0, 0), "127.0.0.0/24 is left alone");
            *per_subnet.entry((b, c)).or_insert(0) += 1;
        }
        assert!(per_subnet.values().all(|&n| n <= FLOWS_PER_SUBNET), "{:?}", per_subnet.values().max());
        assert_eq!(per_subnet.len(), 200_000 / FLOWS_PER_SUBNET);
    }

    #[test]
    fn the_first_datagram_is_a_wireguard_initiation() {
        let datagram = first_datagram();
        assert_eq!(datagram.len(), 148);
        assert_eq!(&datagram[..4], &[1, 0, 0, 0]);
    }
}
