//! `tlsroute` on built hellos: a real hello padded past 16 KiB, SSLv2-format
//! compatibility hellos (no client on this machine still sends one) and
//! malformed structures.

use super::tests::{OPENSSL, TLS13_ALPN, refused_after, route, split_into_records, verdict};
use super::*;
use crate::testing::{Outcome, judge};

fn u16_be(n: usize) -> [u8; 2] {
    u16::try_from(n).unwrap().to_be_bytes()
}

/// Frames a handshake message into records of at most `chunk` bytes.
fn records(message: &[u8], chunk: usize) -> Vec<u8> {
    let mut single = vec![CONTENT_TYPE_HANDSHAKE, 3, 1, 0, 0];
    single.extend_from_slice(message);
    split_into_records(&single, chunk)
}

/// Wraps a ClientHello body into a handshake message.
fn message(body: &[u8]) -> Vec<u8> {
    let mut out = vec![1];
    out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
    out.extend_from_slice(body);
    out
}

/// A one-record ClientHello with one cipher suite and these extensions.
fn client_hello(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[0x5a; 32]);
    body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
    let mut block = Vec::new();
    for (kind, data) in extensions {
        block.extend_from_slice(&kind.to_be_bytes());
        block.extend_from_slice(&u16_be(data.len()));
        block.extend_from_slice(data);
    }
    body.extend_from_slice(&u16_be(block.len()));
    body.extend_from_slice(&block);
    records(&message(&body), 1 << 14)
}

fn sni_entries(entries: &[(u8, &[u8])]) -> (u16, Vec<u8>) {
    let mut list = Vec::new();
    for (name_type, name) in entries {
        list.push(*name_type);
        list.extend_from_slice(&u16_be(name.len()));
        list.extend_from_slice(name);
    }
    let mut data = u16_be(list.len()).to_vec();
    data.extend_from_slice(&list);
    (0, data)
}

fn sni(name: &[u8]) -> (u16, Vec<u8>) {
    sni_entries(&[(0, name)])
}

fn alpn(protocols: &[&[u8]]) -> (u16, Vec<u8>) {
    let mut list = Vec::new();
    for p in protocols {
        list.push(u8::try_from(p.len()).unwrap());
        list.extend_from_slice(p);
    }
    let mut data = u16_be(list.len()).to_vec();
    data.extend_from_slice(&list);
    (16, data)
}

/// The captured one-record `hello`'s handshake message with a padding
/// extension (type 21) of `pad` zero bytes inserted before its other
/// extensions, so SNI and ALPN land in its last records.
fn padded(hello: &[u8], pad: usize) -> Vec<u8> {
    let body = &hello[RECORD_HEADER + HANDSHAKE_HEADER..];
    let mut at = 2 + 32;
    at += 1 + usize::from(body[at]);
    at += 2 + usize::from(u16::from_be_bytes([body[at], body[at + 1]]));
    at += 1 + usize::from(body[at]);
    let extensions_len = usize::from(u16::from_be_bytes([body[at], body[at + 1]]));
    let mut out = body[..at].to_vec();
    out.extend_from_slice(&u16_be(extensions_len + 4 + pad));
    out.extend_from_slice(&[0, 21]);
    out.extend_from_slice(&u16_be(pad));
    out.resize(out.len() + pad, 0);
    out.extend_from_slice(&body[at + 2..]);
    message(&out)
}

#[test]
fn hello_over_16_kib_in_two_and_three_records_matches_up_to_max_hello() {
    let big = padded(TLS13_ALPN, 20_000);
    assert!(big.len() > 1 << 14);
    let routed = route(serde_json::json!({ "serverNames": ["alpn.example.test"], "alpn": ["h2"] }));
    let other = route(serde_json::json!({ "serverNames": ["other.example.test"] }));
    let small = route(serde_json::json!({ "maxHello": 16384 }));
    for (chunk, count) in [(1 << 14, 2), (8192, 3)] {
        let flight = records(&big, chunk);
        assert_eq!(flight.len(), big.len() + count * RECORD_HEADER);
        assert_eq!(judge(&TlsRouteDetector::default(), &flight), Outcome::Match, "{count} records");
        let Verdict::Match(learned) = verdict(&routed, &flight) else { panic!("{count} records") };
        assert_eq!(learned.server_name.map(|s| s.of(&flight)), Some(&b"alpn.example.test"[..]));
        assert_eq!(judge(&other, &flight), Outcome::No);
        // Refused as soon as the handshake length field says 20,340 bytes.
        assert_eq!(judge(&small, &flight), Outcome::No);
        assert_eq!(refused_after(&small, &flight), Some(RECORD_HEADER + HANDSHAKE_HEADER));
    }
    // One record cannot carry it: fragments stop at 16384 bytes.
    assert_eq!(refused_after(&TlsRouteDetector::default(), &records(&big, big.len())), Some(RECORD_HEADER));
}

#[test]
fn records_must_all_be_nonempty_handshake_records_of_tls_versions() {
    let detector = TlsRouteDetector::default();
    let split = split_into_records(OPENSSL, 100);
    for (at, byte) in [(105, 0x17), (106, 0x02), (107, 0x05)] {
        let mut bad = split.clone();
        bad[at] = byte;
        assert_eq!(refused_after(&detector, &bad), Some(at + 1), "byte {at} = {byte:#x}");
    }
    let mut empty_record = split[..105].to_vec();
    empty_record.extend_from_slice(&[0x16, 3, 1, 0, 0]);
    empty_record.extend_from_slice(&split[105..]);
    assert_eq!(refused_after(&detector, &empty_record), Some(110));
}

fn sslv2_hello(version: [u8; 2], cipher_specs: &[u8], session_id: &[u8], challenge: &[u8]) -> Vec<u8> {
    let body_len = 9 + cipher_specs.len() + session_id.len() + challenge.len();
    let mut out = vec![0x80 | u8::try_from(body_len >> 8).unwrap(), body_len.to_be_bytes()[7], 1];
    out.extend_from_slice(&version);
    for part in [cipher_specs, session_id, challenge] {
        out.extend_from_slice(&u16_be(part.len()));
    }
    for part in [cipher_specs, session_id, challenge] {
        out.extend_from_slice(part);
    }
    out
}

/// TLS suites as 00 xx yy, SSL 2.0 ones as kk 00 80/c0, and the
/// renegotiation SCSV, as OpenSSL 0.9.8 and 1.0 listed them.
const V2_SPECS: &[u8] = &[
    0x00, 0x00, 0x39, 0x00, 0x00, 0x38, 0x00, 0x00, 0x35, 0x00, 0x00, 0x16, 0x00, 0x00, 0x13, 0x00, 0x00, 0x0a, 0x07,
    0x00, 0xc0, 0x00, 0x00, 0x33, 0x00, 0x00, 0x32, 0x00, 0x00, 0x2f, 0x03, 0x00, 0x80, 0x00, 0x00, 0x05, 0x00, 0x00,
    0x04, 0x01, 0x00, 0x80, 0x00, 0x00, 0xff,
];

#[test]
fn sslv2_compat_hellos_match_only_where_no_name_or_protocol_is_required() {
    let hello = sslv2_hello([3, 1], V2_SPECS, &[], &[0xc3; 16]);
    for variant in [
        hello.clone(),
        sslv2_hello([3, 0], V2_SPECS, &[], &[0xc3; 32]),
        sslv2_hello([3, 3], V2_SPECS, &[0x11; 16], &[0xc3; 32]),
    ] {
        assert_eq!(judge(&TlsRouteDetector::default(), &variant), Outcome::Match);
        for names in [&[""][..], &["", "a.test"]] {
            assert_eq!(judge(&route(serde_json::json!({ "serverNames": names })), &variant), Outcome::Match);
        }
    }
    let total = hello.len();
    assert_eq!(
        TlsRouteDetector::default().detect(&hello[..2], &DetectContext::default()),
        Verdict::need_up_to(3, total)
    );
    assert_eq!(TlsRouteDetector::default().detect(&hello[..11], &DetectContext::default()), Verdict::need(total));
    for conf in [
        serde_json::json!({ "serverNames": ["*"] }),
        serde_json::json!({ "alpn": ["http/1.1"] }),
        serde_json::json!({ "serverNames": [""], "alpn": ["h2"] }),
    ] {
        assert_eq!(refused_after(&route(conf.clone()), &hello), Some(1), "{conf}");
    }
}

#[test]
fn sslv2_format_look_alikes_are_refused_at_the_first_wrong_field() {
    let detector = TlsRouteDetector::default();
    let good = sslv2_hello([3, 1], V2_SPECS, &[], &[0xc3; 16]);
    let edit = |at: usize, byte: u8| {
        let mut bad = good.clone();
        bad[at] = byte;
        bad
    };
    let cases: [(&str, Vec<u8>, usize); 10] = [
        ("an SSL 2.0 client's own hello, version 00 02", sslv2_hello([0, 2], V2_SPECS, &[], &[1; 16]), 4),
        ("3-byte header (high bit clear)", edit(0, 0x00), 1),
        ("length below the smallest hello", vec![0x80, 27, 1, 3, 1], 2),
        ("not a client hello", edit(2, 4), 3),
        ("TLS 1.3 never sends this format", edit(4, 4), 5),
        ("cipher specs not in 3-byte units", edit(6, 44), 7),
        ("session id neither 0 nor 16 bytes", edit(8, 8), 9),
        ("challenge shorter than 16 bytes", sslv2_hello([3, 1], V2_SPECS, &[], &[1; 15]), 11),
        ("challenge longer than 32 bytes", sslv2_hello([3, 1], V2_SPECS, &[], &[1; 33]), 11),
        ("lengths disagree with the header", edit(1, good[1] + 1), 11),
    ];
    for (why, flight, at) in cases {
        assert_eq!(judge(&detector, &flight), Outcome::No, "{why}");
        assert_eq!(refused_after(&detector, &flight), Some(at), "{why}");
    }
    assert_eq!(refused_after(&route(serde_json::json!({ "maxHello": 40 })), &good), Some(2), "over maxHello");
}

#[test]
fn sni_is_the_first_host_name_and_long_names_match_no_pattern() {
    let routed = |names: &[&str], flight: &[u8]| judge(&route(serde_json::json!({ "serverNames": names })), flight);
    let other_type_first = client_hello(&[sni_entries(&[(1, b"not-a-host"), (0, b"a.test"), (0, b"b.test")])]);
    assert_eq!(routed(&["a.test"], &other_type_first), Outcome::Match);
    assert_eq!(routed(&["b.test"], &other_type_first), Outcome::No);
    let only_other_type = client_hello(&[sni_entries(&[(1, b"a.test")])]);
    assert_eq!(routed(&[""], &only_other_type), Outcome::Match);
    let long = client_hello(&[sni(&[b'a'; 300])]);
    let Verdict::Match(learned) = verdict(&TlsRouteDetector::default(), &long) else { panic!() };
    assert_eq!(learned.server_name.map(|s| s.of(&long)), Some(&[b'a'; 300][..]));
    assert_eq!(routed(&["*"], &long), Outcome::No);
    assert_eq!(routed(&["*"], &split_into_records(&long, 7)), Outcome::No);
    let max = [b'b'; 255];
    let at_max = split_into_records(&client_hello(&[sni(&max)]), 3);
    assert_eq!(routed(&[std::str::from_utf8(&max).unwrap()], &at_max), Outcome::Match);
}

/// A TLS 1.0-style ClientHello body: no extensions block at all.
fn bare_body() -> Vec<u8> {
    let mut body = vec![3, 1];
    body.extend_from_slice(&[7; 32]);
    body.extend_from_slice(&[0, 0, 2, 0, 0x2f, 1, 0]);
    body
}

#[test]
fn hellos_without_extensions_match_only_without_names_or_alpn() {
    let bare = records(&message(&bare_body()), 1 << 14);
    assert_eq!(judge(&TlsRouteDetector::default(), &bare), Outcome::Match);
    assert_eq!(judge(&route(serde_json::json!({ "serverNames": [""] })), &bare), Outcome::Match);
    assert_eq!(judge(&route(serde_json::json!({ "alpn": ["h2"] })), &bare), Outcome::No);
    let alpn_only = client_hello(&[alpn(&[b"imap", b"h2"])]);
    assert_eq!(judge(&route(serde_json::json!({ "alpn": ["h2"] })), &alpn_only), Outcome::Match);
    assert_eq!(judge(&route(serde_json::json!({ "alpn": ["h"] })), &alpn_only), Outcome::No);
}

#[test]
fn malformed_client_hellos_are_refused() {
    let detector = TlsRouteDetector::default();
    let good = client_hello(&[sni(b"a.test"), alpn(&[b"h2"])]);
    assert_eq!(judge(&detector, &good), Outcome::Match);
    let edit = |at: usize, byte: u8| {
        let mut bad = good.clone();
        bad[at] = byte;
        bad
    };
    // Header fields are refused as soon as they arrive.
    assert_eq!(refused_after(&detector, &edit(9, 2)), Some(10), "legacy_version 02 xx");
    assert_eq!(refused_after(&detector, &edit(43, 33)), Some(44), "33-byte session id");
    assert_eq!(refused_after(&detector, &edit(45, 3)), Some(46), "odd cipher_suites length");
    assert_eq!(refused_after(&detector, &edit(48, 0)), Some(49), "no compression method");
    assert_eq!(refused_after(&detector, &edit(51, 0xff)), Some(52), "extensions overrun the message");
    for (why, bad) in [
        ("two server_name extensions", client_hello(&[sni(b"a.test"), sni(b"b.test")])),
        ("two ALPN extensions", client_hello(&[alpn(&[b"h2"]), alpn(&[b"h3"])])),
        ("name list shorter than the extension", client_hello(&[(0, vec![0, 4, 0, 0, 1, b'a', 0])])),
        ("name overruns its list", client_hello(&[(0, vec![0, 4, 0, 0, 2, b'a'])])),
        ("ALPN name overruns its list", client_hello(&[(16, vec![0, 2, 3, b'h'])])),
        ("extension header cut by the message end", records(&message(&[bare_body(), vec![0, 2, 0, 0]].concat()), 99)),
    ] {
        assert_eq!(judge(&detector, &bad), Outcome::No, "{why}");
    }
}

#[test]
fn mutated_hellos_never_panic_and_stay_monotonic() {
    let detectors = [
        TlsRouteDetector::default(),
        route(serde_json::json!({ "serverNames": ["alpn.example.test", ""], "alpn": ["h2"] })),
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let originals = [split_into_records(TLS13_ALPN, 50), sslv2_hello([3, 1], V2_SPECS, &[], &[0xc3; 16])];
    for round in 0..400 {
        let mut flight = originals[round % 2].clone();
        for _ in 0..1 + next() % 3 {
            let at = usize::try_from(next()).unwrap() % flight.len();
            flight[at] = next().to_le_bytes()[0];
        }
        for detector in &detectors {
            // Panics on a broken contract (see `testing`), as on a panic.
            let _ = judge(detector, &flight);
        }
    }
}
