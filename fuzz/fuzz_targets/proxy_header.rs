//! The PROXY protocol v1/v2 parser on arbitrary bytes, and encode → receive
//! round trips with arbitrary addresses (decoded from the same input).

#![no_main]

use std::net::{IpAddr, SocketAddr};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use serve2::proxy_header::{ProxyVersion, Received, V2_MAX, encode, looks_like_header, receive};

#[derive(Debug, Arbitrary)]
struct RoundTrip {
    v2: bool,
    source: (IpAddr, u16),
    destination: (IpAddr, u16),
    rest: Vec<u8>,
}

/// What `encode` promises to write: both addresses in one family, an IPv4
/// one beside an IPv6 one IPv4-mapped.
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

fn check_receive(data: &[u8]) {
    let received = receive(data);
    match &received {
        Received::Complete { len, .. } => {
            assert!(*len <= data.len(), "Complete len {len} past the {} bytes", data.len());
            assert_eq!(looks_like_header(data), Some(true));
            // The header alone says the same, and every proper prefix of it
            // is incomplete (never a wrong verdict).
            assert_eq!(receive(&data[..*len]), received);
            for end in 0..*len {
                match receive(&data[..end]) {
                    Received::Incomplete(n) => {
                        assert!(n > end && n <= *len, "{end} bytes: Incomplete({n}), header {len}")
                    }
                    other => panic!("{end} bytes of a {len}-byte header: {other:?}"),
                }
            }
        }
        Received::Incomplete(n) => {
            assert!(*n > data.len(), "Incomplete({n}) with {} bytes", data.len());
            assert!(*n <= V2_MAX, "Incomplete({n}): more than any header");
        }
        Received::Invalid(_) => {}
    }
    if looks_like_header(data).is_none() {
        assert!(matches!(received, Received::Invalid(_)), "not a header start, yet {received:?}");
    }
}

fn check_round_trip(trip: RoundTrip) {
    let source = SocketAddr::new(trip.source.0, trip.source.1);
    let destination = SocketAddr::new(trip.destination.0, trip.destination.1);
    let version = if trip.v2 { ProxyVersion::V2 } else { ProxyVersion::V1 };
    let header = encode(version, source, destination);
    let mut stream = header.clone();
    stream.extend_from_slice(&trip.rest);
    let expected = Received::Complete { len: header.len(), addresses: Some(same_family(source, destination)) };
    assert_eq!(receive(&stream), expected, "{version:?} {source} -> {destination}: {header:02x?}");
}

fuzz_target!(|data: &[u8]| {
    check_receive(data);
    if let Ok(trip) = RoundTrip::arbitrary_take_rest(Unstructured::new(data)) {
        check_round_trip(trip);
    }
});
