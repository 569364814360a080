use super::*;
use crate::testing::assert_segmentation_independent;

const OPENSSL: &[u8] = include_bytes!("../../../tests/fixtures/openssl3-s_client-clienthello.bin");
const CURL: &[u8] = include_bytes!("../../../tests/fixtures/curl-openssl3-clienthello.bin");
const RUSTLS_PQ: &[u8] = include_bytes!("../../../tests/fixtures/rustls-aws-lc-rs-x25519mlkem768-clienthello.bin");
const CHROMIUM_PQ: &[u8] = include_bytes!("../../../tests/fixtures/chromium-156-x25519mlkem768-clienthello.bin");
const SSH: &[u8] = include_bytes!("../../../tests/fixtures/openssh-client-banner.bin");
const HTTP_GET: &[u8] = include_bytes!("../../../tests/fixtures/http/curl-GET.bin");

fn verdict(flight: &[u8]) -> Verdict {
    assert_segmentation_independent(&ClientHelloDetector, flight, &DetectContext::default())
}

/// Re-frames a single-record ClientHello into records of at most `chunk`
/// handshake bytes each, as some clients and middleboxes do.
fn split_into_records(hello: &[u8], chunk: usize) -> Vec<u8> {
    let version = [hello[1], hello[2]];
    let message = &hello[RECORD_HEADER..];
    let mut out = Vec::new();
    for part in message.chunks(chunk) {
        out.extend_from_slice(&[CONTENT_TYPE_HANDSHAKE, version[0], version[1]]);
        out.extend_from_slice(&u16::try_from(part.len()).unwrap().to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

#[test]
fn real_client_hellos_match_whole_and_byte_by_byte() {
    for (name, hello) in [("openssl", OPENSSL), ("curl", CURL), ("rustls pq", RUSTLS_PQ), ("chromium pq", CHROMIUM_PQ)]
    {
        assert_eq!(verdict(hello), Verdict::MATCH, "{name}");
        assert_eq!(scan_client_hello(hello), ClientHelloScan::Complete { end: hello.len() }, "{name}");
    }
}

#[test]
fn post_quantum_hellos_are_larger_than_common_caps() {
    assert!(RUSTLS_PQ.len() > 1400 && CHROMIUM_PQ.len() > 1900);
    // Every proper prefix is undecided, never a premature match or a refusal.
    for end in 0..CHROMIUM_PQ.len() {
        assert!(matches!(
            ClientHelloDetector.detect(&CHROMIUM_PQ[..end], &DetectContext::default()),
            Verdict::NeedMore(need) if need.min > end && need.min <= CHROMIUM_PQ.len()
        ));
    }
}

#[test]
fn client_hello_split_over_several_records_matches_and_parses() {
    for chunk in [1, 3, 100, 1000] {
        let split = split_into_records(CHROMIUM_PQ, chunk);
        assert_eq!(verdict(&split), Verdict::MATCH, "chunk {chunk}");
        let info = parse_client_hello(&split).unwrap();
        assert_eq!(info.server_name.as_deref(), Some("pq.example.test"), "chunk {chunk}");
    }
}

#[test]
fn trailing_bytes_after_the_hello_do_not_change_the_verdict() {
    let mut flight = RUSTLS_PQ.to_vec();
    flight.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x01, 0xaa]);
    assert_eq!(verdict(&flight), Verdict::MATCH);
    assert_eq!(scan_client_hello(&flight), ClientHelloScan::Complete { end: RUSTLS_PQ.len() });
}

#[test]
fn other_protocols_are_refused_on_their_first_byte() {
    for flight in [SSH, HTTP_GET, b"ECHO".as_slice(), b"\x00\x00\x00\x08\x04\xd2\x16\x2f".as_slice()] {
        assert_eq!(verdict(flight), Verdict::NoMatch);
        assert_eq!(ClientHelloDetector.detect(&flight[..1], &DetectContext::default()), Verdict::NoMatch);
    }
}

#[test]
fn malformed_headers_are_refused() {
    let ctx = DetectContext::default();
    let cases: [&[u8]; 6] = [
        b"\x16\x02\x01\x00\x10",         // record major version 2
        b"\x16\x03\x05\x00\x10",         // unknown minor version
        b"\x16\x03\x01\x00\x00",         // empty record
        b"\x16\x03\x01\x40\x01",         // record larger than 16 KiB
        b"\x16\x03\x01\x00\x10\x02",     // ServerHello, not ClientHello
        b"\x16\x03\x01\x00\x10\x01\x00", // handshake body far too short
    ];
    for case in cases.iter().take(5) {
        assert_eq!(ClientHelloDetector.detect(case, &ctx), Verdict::NoMatch, "{case:02x?}");
    }
    let short_body = b"\x16\x03\x01\x00\x10\x01\x00\x00\x05";
    assert_eq!(ClientHelloDetector.detect(short_body, &ctx), Verdict::NoMatch);
    // A record after the first that is not a handshake record.
    let mut interleaved = split_into_records(CURL, 100);
    interleaved[105] = 0x17;
    assert_eq!(ClientHelloDetector.detect(&interleaved, &ctx), Verdict::NoMatch);
    assert_eq!(ClientHelloDetector.detect(cases[5], &ctx), Verdict::need(9));
}

#[test]
fn oversized_client_hello_is_refused_up_front() {
    // Declares a 70,000-byte handshake body.
    let header = b"\x16\x03\x01\x40\x00\x01\x01\x11\x70";
    assert_eq!(ClientHelloDetector.detect(header, &DetectContext::default()), Verdict::NoMatch);
}

#[test]
fn sni_and_alpn_are_extracted() {
    let openssl = parse_client_hello(OPENSSL).unwrap();
    assert_eq!(openssl.server_name.as_deref(), Some("example.test"));
    assert_eq!(openssl.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    let rustls = parse_client_hello(RUSTLS_PQ).unwrap();
    assert_eq!(rustls.server_name.as_deref(), Some("pq.example.test"));
    assert_eq!(rustls.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    let chromium = parse_client_hello(CHROMIUM_PQ).unwrap();
    assert_eq!(chromium.server_name.as_deref(), Some("pq.example.test"));
    assert!(chromium.alpn.contains(&b"h2".to_vec()));
    let curl = parse_client_hello(CURL).unwrap();
    assert_eq!(curl.server_name.as_deref(), Some("localhost"));
    assert!(parse_client_hello(&CURL[..CURL.len() - 1]).is_none());
}

#[test]
fn new_captures_match_and_parse_and_a_server_hello_does_not() {
    type Capture = (&'static [u8], Option<&'static str>, &'static [&'static [u8]]);
    let captures: [Capture; 5] = [
        (
            include_bytes!("../../../tests/fixtures/tls/openssl3-s_client-tls13-alpn.bin"),
            Some("alpn.example.test"),
            &[b"h2", b"http/1.1"],
        ),
        (
            include_bytes!("../../../tests/fixtures/tls/openssl3-s_client-tls12.bin"),
            Some("tls12.example.test"),
            &[b"http/1.1"],
        ),
        (include_bytes!("../../../tests/fixtures/tls/openssl3-s_client-no-tls13-longname.bin"), None, &[]),
        (include_bytes!("../../../tests/fixtures/tls/openssl3-s_client-noservername.bin"), None, &[]),
        (
            include_bytes!("../../../tests/fixtures/tls/curl-openssl3-h2.bin"),
            Some("h2.example.test"),
            &[b"h2", b"http/1.1"],
        ),
    ];
    for (hello, sni, alpn) in captures {
        assert_eq!(verdict(hello), Verdict::MATCH);
        let info = parse_client_hello(hello).unwrap();
        if sni.is_some() {
            assert_eq!(info.server_name.as_deref(), sni);
        }
        assert_eq!(info.alpn, alpn.iter().map(|p| p.to_vec()).collect::<Vec<_>>());
    }
    let server_hello = include_bytes!("../../../tests/fixtures/negative/tls-openssl3-serverhello.bin");
    assert_eq!(verdict(server_hello), Verdict::NoMatch);
    assert_eq!(ClientHelloDetector.detect(&server_hello[..6], &DetectContext::default()), Verdict::NoMatch);
}

#[test]
fn a_smaller_limit_refuses_a_hello_at_its_length_field() {
    assert_eq!(scan_client_hello_up_to(&OPENSSL[..9], 330), ClientHelloScan::Invalid);
    assert_eq!(scan_client_hello_up_to(&OPENSSL[..9], 331), ClientHelloScan::Incomplete { need: OPENSSL.len() });
}
