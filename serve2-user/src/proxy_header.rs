//! The PROXY protocol (HAProxy's v1 text and v2 binary headers), with the
//! `ppp` crate: written before the first byte a route sends to its backend
//! (`proxyProtocol`), and read from trusted sources (`acceptProxy`).

use std::net::{IpAddr, SocketAddr};

/// Which header a route sends first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyVersion {
    /// `PROXY TCP4 src dst sport dport\r\n`.
    V1,
    /// The binary header with the v2 signature.
    V2,
}

/// The header announcing a connection from `source` to `destination`.
///
/// Both addresses are given the same family, as the format requires: an
/// IPv4 address beside an IPv6 one is written IPv4-mapped.
pub fn encode(version: ProxyVersion, source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    match version {
        ProxyVersion::V1 => {
            let (source, destination) = same_family(source, destination);
            ppp::v1::Addresses::from((source, destination)).to_string().into_bytes()
        }
        ProxyVersion::V2 => encode_v2(ppp::v2::Protocol::Stream, source, destination),
    }
}

/// The v2 header for `protocol` (stream for TCP, datagram for UDP) from
/// `source` to `destination`, both in one family.
pub(crate) fn encode_v2(protocol: ppp::v2::Protocol, source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (source, destination) = same_family(source, destination);
    let version_command = ppp::v2::Version::Two as u8 | ppp::v2::Command::Proxy as u8;
    let built = ppp::v2::Builder::with_addresses(version_command, protocol, (source, destination)).build();
    // Writing addresses into a Vec cannot fail; fall back to LOCAL (the
    // backend then uses the connection's or datagram's own addresses).
    built.unwrap_or_else(|_| V2_LOCAL.to_vec())
}

const V2_LOCAL: [u8; 16] =
    [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x20, 0x00, 0x00, 0x00];

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

/// The v2 signature, which no other protocol starts with.
pub const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header (the spec's 107 bytes).
pub const V1_MAX: usize = 107;
/// The longest v2 header we accept (16-byte fixed part plus addresses and
/// TLVs; HAProxy's own limit is similar).
pub const V2_MAX: usize = 16 + 1024;

/// What the bytes at the start of a connection say about a PROXY header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A whole header of `len` bytes. `addresses` is `None` for `LOCAL` or
    /// `UNKNOWN` headers (health checks): keep the connection's own.
    Complete {
        /// Header length: the client's own bytes start after it.
        len: usize,
        /// (source, destination) as announced.
        addresses: Option<(SocketAddr, SocketAddr)>,
    },
    /// A header so far; at least this many bytes are needed in all.
    Incomplete(usize),
    /// Not a PROXY header, or a malformed one.
    Invalid(String),
}

/// Parses a PROXY header at the start of `input`.
pub fn receive(input: &[u8]) -> Received {
    if input.is_empty() {
        return Received::Incomplete(1);
    }
    if serve2_detect::starts_like(input, V2_SIGNATURE).is_some() {
        if input.len() < 16 {
            return Received::Incomplete(16);
        }
        let len = 16 + usize::from(u16::from_be_bytes([input[14], input[15]]));
        if len > V2_MAX {
            return Received::Invalid(format!("v2 header of {len} bytes is too long"));
        }
        if input.len() < len {
            return Received::Incomplete(len);
        }
        return match ppp::v2::Header::try_from(&input[..len]) {
            Ok(header) => Received::Complete { len, addresses: v2_addresses(&header) },
            Err(e) => Received::Invalid(format!("v2 header: {e}")),
        };
    }
    if serve2_detect::starts_like(input, b"PROXY ").is_some() {
        // The CRLF must come within the spec's 107 bytes, whole or split.
        let window = &input[..input.len().min(V1_MAX)];
        let Some(end) = window.windows(2).position(|w| w == b"\r\n").map(|i| i + 2) else {
            return if input.len() >= V1_MAX {
                Received::Invalid(format!("v1 header without CRLF in {V1_MAX} bytes"))
            } else {
                Received::Incomplete(input.len() + 1)
            };
        };
        return match ppp::v1::Header::try_from(&input[..end]) {
            Ok(header) => Received::Complete { len: end, addresses: v1_addresses(&header.addresses) },
            Err(e) => Received::Invalid(format!("v1 header: {e}")),
        };
    }
    Received::Invalid("the connection does not start with a PROXY header".into())
}

/// Whether `input` could be the start of a PROXY header (v1 or v2): what a
/// source not trusted to send one must not be let through with.
pub fn looks_like_header(input: &[u8]) -> Option<bool> {
    let v1 = serve2_detect::starts_like(input, b"PROXY ");
    let v2 = serve2_detect::starts_like(input, V2_SIGNATURE);
    match (v1, v2) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (None, None) => None,
        _ => Some(false),
    }
}

fn v1_addresses(addresses: &ppp::v1::Addresses) -> Option<(SocketAddr, SocketAddr)> {
    match addresses {
        ppp::v1::Addresses::Tcp4(a) => Some((
            SocketAddr::new(a.source_address.into(), a.source_port),
            SocketAddr::new(a.destination_address.into(), a.destination_port),
        )),
        ppp::v1::Addresses::Tcp6(a) => Some((
            SocketAddr::new(a.source_address.into(), a.source_port),
            SocketAddr::new(a.destination_address.into(), a.destination_port),
        )),
        ppp::v1::Addresses::Unknown => None,
    }
}

fn v2_addresses(header: &ppp::v2::Header<'_>) -> Option<(SocketAddr, SocketAddr)> {
    if header.command == ppp::v2::Command::Local {
        return None;
    }
    match header.addresses {
        ppp::v2::Addresses::IPv4(a) => Some((
            SocketAddr::new(a.source_address.into(), a.source_port),
            SocketAddr::new(a.destination_address.into(), a.destination_port),
        )),
        ppp::v2::Addresses::IPv6(a) => Some((
            SocketAddr::new(a.source_address.into(), a.source_port),
            SocketAddr::new(a.destination_address.into(), a.destination_port),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_and_v2_round_trip_through_the_parser() {
        for (src, dst) in [("192.0.2.7:40000", "198.51.100.1:2222"), ("[2001:db8::7]:40000", "[2001:db8::1]:443")] {
            for version in [ProxyVersion::V1, ProxyVersion::V2] {
                let header = encode(version, addr(src), addr(dst));
                let mut stream = header.clone();
                stream.extend_from_slice(b"SSH-2.0-x\r\n");
                assert_eq!(
                    receive(&stream),
                    Received::Complete { len: header.len(), addresses: Some((addr(src), addr(dst))) },
                    "{version:?}"
                );
                // Every proper prefix is incomplete, never a wrong verdict.
                for end in 0..header.len() {
                    assert!(matches!(receive(&header[..end]), Received::Incomplete(n) if n > end), "{version:?} {end}");
                }
            }
        }
        assert_eq!(
            encode(ProxyVersion::V1, addr("192.0.2.7:1"), addr("198.51.100.1:2")),
            b"PROXY TCP4 192.0.2.7 198.51.100.1 1 2\r\n"
        );
    }

    #[test]
    fn mixed_families_are_written_ipv4_mapped() {
        let header = encode(ProxyVersion::V1, addr("192.0.2.7:1"), addr("[2001:db8::1]:2"));
        assert_eq!(header, b"PROXY TCP6 ::ffff:192.0.2.7 2001:db8::1 1 2\r\n");
    }

    #[test]
    fn local_and_unknown_keep_the_connection_addresses() {
        assert_eq!(receive(b"PROXY UNKNOWN\r\nrest"), Received::Complete { len: 15, addresses: None });
        assert_eq!(receive(&V2_LOCAL), Received::Complete { len: 16, addresses: None });
    }

    #[test]
    fn other_bytes_and_broken_headers_are_refused() {
        assert!(matches!(receive(b"SSH-2.0-x\r\n"), Received::Invalid(_)));
        assert!(matches!(receive(b"PROXY TCP4 nonsense\r\n"), Received::Invalid(_)));
        assert!(matches!(receive(&[b'P'; 1][..]), Received::Incomplete(_)));
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
        assert!(matches!(receive(&long), Received::Invalid(_)));
        // Found by fuzzing: a CRLF past 107 bytes made a too-long header
        // Complete while its 107-byte prefix was Invalid.
        let late_crlf = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 100], b"\r\n"].concat();
        assert!(matches!(receive(&late_crlf), Received::Invalid(_)));
        assert!(matches!(receive(&late_crlf[..V1_MAX]), Received::Invalid(_)));
        assert_eq!(looks_like_header(b"PROXY TCP4"), Some(true));
        assert_eq!(looks_like_header(b"PRO"), Some(false));
        assert_eq!(looks_like_header(b"GET /"), None);
        assert_eq!(looks_like_header(&V2_SIGNATURE[..12]), Some(true));
    }
}
