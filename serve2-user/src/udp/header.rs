//! The PROXY v2 header a `"proxyProtocol": "v2"` UDP route puts before
//! every datagram it sends to the backend (`ppp` crate): DGRAM over the
//! client's family, the client as source and the dialled address as
//! destination. A backend reads it off each datagram (HAProxy's
//! `proxy-protocol` for UDP, or `ppp` as the tests do).

use std::net::SocketAddr;

/// The header for a flow from `client` to `dialled`; the same bytes
/// prefix every datagram of the flow, so it is built once.
pub fn datagram_header(client: SocketAddr, dialled: SocketAddr) -> Vec<u8> {
    crate::proxy_header::encode_v2(ppp::v2::Protocol::Datagram, client, dialled)
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
