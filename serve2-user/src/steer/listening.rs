//! The TCP sockets listening in this network namespace, from
//! `/proc/thread-self/net/tcp{,6}`: which ports `"all"` must leave alone,
//! and which socket a kernel-direct route hands connections to.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A listening TCP socket of this namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listening {
    pub local: SocketAddr,
    pub inode: u64,
}

/// Every listening TCP socket of the calling thread's network namespace.
pub fn listening_sockets() -> io::Result<Vec<Listening>> {
    let mut sockets = Vec::new();
    for (table, v6) in [("/proc/thread-self/net/tcp", false), ("/proc/thread-self/net/tcp6", true)] {
        match std::fs::read_to_string(table) {
            Ok(text) => sockets.extend(text.lines().skip(1).filter_map(|row| parse_row(row, v6))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(sockets)
}

/// A LISTEN (0A) row of `/proc/net/tcp{,6}`: the address words are printed
/// as native-endian hex of network-order bytes.
fn parse_row(row: &str, v6: bool) -> Option<Listening> {
    let fields: Vec<&str> = row.split_whitespace().collect();
    if fields.get(3) != Some(&"0A") {
        return None;
    }
    let (address, port) = fields.get(1)?.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| address.get(i * 8..i * 8 + 8).and_then(|hex| u32::from_str_radix(hex, 16).ok());
    let ip = if v6 {
        let mut bytes = [0u8; 16];
        for i in 0..4 {
            bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?.to_ne_bytes());
        }
        IpAddr::V6(Ipv6Addr::from(bytes))
    } else {
        IpAddr::V4(Ipv4Addr::from(word(0)?.to_ne_bytes()))
    };
    let inode = fields.get(9)?.parse().ok()?;
    Some(Listening { local: SocketAddr::new(ip, port), inode })
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

    #[test]
    fn listening_rows_parse_in_both_families() {
        let v4 = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1";
        assert_eq!(
            parse_row(v4, false),
            Some(Listening { local: "127.0.0.1:8080".parse().expect("addr"), inode: 4242 })
        );
        let v6 = "   1: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 \
                  00:00000000 00000000     0        0 77 1";
        assert_eq!(parse_row(v6, true), Some(Listening { local: "[::1]:22".parse().expect("addr"), inode: 77 }));
        let established = v4.replace(" 0A ", " 01 ");
        assert_eq!(parse_row(&established, false), None);
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
