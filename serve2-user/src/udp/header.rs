//! The PROXY v2 header a `"proxyProtocol": "v2"` UDP route puts before
//! every datagram it sends to the backend (`ppp` crate): DGRAM over the
//! client's family, the client as source and the dialled address as
//! destination. A backend reads it off each datagram (HAProxy's
//! `proxy-protocol` for UDP, or `ppp` as the tests do).

use std::net::{IpAddr, SocketAddr};

/// The header for a flow from `client` to `dialled`; the same bytes
/// prefix every datagram of the flow, so it is built once.
pub fn datagram_header(client: SocketAddr, dialled: SocketAddr) -> Vec<u8> {
    let (source, destination) = same_family(client, dialled);
    let version_command = ppp::v2::Version::Two as u8 | ppp::v2::Command::Proxy as u8;
    let built =
        ppp::v2::Builder::with_addresses(version_command, ppp::v2::Protocol::Datagram, (source, destination)).build();
    // Writing addresses into a Vec cannot fail; fall back to LOCAL (the
    // backend then uses the datagram's own addresses).
    built.unwrap_or_else(|_| LOCAL.to_vec())
}

const LOCAL: [u8; 16] =
    [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x20, 0x00, 0x00, 0x00];

/// Both addresses in one family, as the format requires (IPv4-mapped when
/// they differ).
fn same_family(source: SocketAddr, destination: SocketAddr) -> (SocketAddr, SocketAddr) {
    let mapped = |a: SocketAddr| match a.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    };
    if source.is_ipv4() == destination.is_ipv4() {
        (source, destination)
    } else {
        (mapped(source), mapped(destination))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_parses_back_to_a_datagram_header_with_both_addresses() {
        let (client, dialled): (SocketAddr, SocketAddr) =
            ("192.0.2.7:40000".parse().unwrap(), "198.51.100.1:51820".parse().unwrap());
        let header = datagram_header(client, dialled);
        let parsed = ppp::v2::Header::try_from(header.as_slice()).unwrap();
        assert_eq!(parsed.protocol, ppp::v2::Protocol::Datagram);
        assert_eq!(parsed.command, ppp::v2::Command::Proxy);
        match parsed.addresses {
            ppp::v2::Addresses::IPv4(a) => {
                assert_eq!(SocketAddr::new(a.source_address.into(), a.source_port), client);
                assert_eq!(SocketAddr::new(a.destination_address.into(), a.destination_port), dialled);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parsed.len(), header.len());
    }
}
