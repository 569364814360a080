//! `tlsroute` on real captured first flights: ClientHellos from OpenSSL,
//! curl, rustls and Chromium, as captured and re-framed into small records,
//! and the other protocols' captures as negatives.

use super::*;
use crate::registry::{ConfKey, kind};
use crate::testing::{Outcome, assert_segmentation_independent, judge};

pub(super) const OPENSSL: &[u8] = include_bytes!("../../../tests/fixtures/openssl3-s_client-clienthello.bin");
const CURL: &[u8] = include_bytes!("../../../tests/fixtures/curl-openssl3-clienthello.bin");
const RUSTLS_PQ: &[u8] = include_bytes!("../../../tests/fixtures/rustls-aws-lc-rs-x25519mlkem768-clienthello.bin");
const CHROMIUM_PQ: &[u8] = include_bytes!("../../../tests/fixtures/chromium-156-x25519mlkem768-clienthello.bin");
pub(super) const TLS13_ALPN: &[u8] = include_bytes!("../../../tests/fixtures/tls/openssl3-s_client-tls13-alpn.bin");
const TLS12: &[u8] = include_bytes!("../../../tests/fixtures/tls/openssl3-s_client-tls12.bin");
const LONG_NAME: &[u8] = include_bytes!("../../../tests/fixtures/tls/openssl3-s_client-no-tls13-longname.bin");
const NO_SNI: &[u8] = include_bytes!("../../../tests/fixtures/tls/openssl3-s_client-noservername.bin");
const CURL_H2: &[u8] = include_bytes!("../../../tests/fixtures/tls/curl-openssl3-h2.bin");

const SERVER_HELLO: &[u8] = include_bytes!("../../../tests/fixtures/negative/tls-openssl3-serverhello.bin");
const SSH: &[u8] = include_bytes!("../../../tests/fixtures/openssh-client-banner.bin");
const H2_PRIOR_KNOWLEDGE: &[u8] = include_bytes!("../../../tests/fixtures/curl-h2-prior-knowledge.bin");
const HTTP: [&[u8]; 9] = [
    include_bytes!("../../../tests/fixtures/http/curl-CONNECT.bin"),
    include_bytes!("../../../tests/fixtures/http/curl-DELETE.bin"),
    include_bytes!("../../../tests/fixtures/http/curl-GET.bin"),
    include_bytes!("../../../tests/fixtures/http/curl-HEAD.bin"),
    include_bytes!("../../../tests/fixtures/http/curl-OPTIONS.bin"),
    include_bytes!("../../../tests/fixtures/http/curl-PATCH.bin"),
    include_bytes!("../../../tests/fixtures/http/curl-POST.bin"),
    include_bytes!("../../../tests/fixtures/http/curl-PUT.bin"),
    include_bytes!("../../../tests/fixtures/http/curl-TRACE.bin"),
];

const LONG: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.\
    bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.\
    ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc.\
    dddddddddddddddddddddddddddddddddddddddddddddddd.example.test";

/// A capture: what to call it, its bytes, its SNI name and offered ALPN.
type Capture = (&'static str, &'static [u8], Option<&'static str>, &'static [&'static str]);

/// Every captured ClientHello.
const HELLOS: [Capture; 9] = [
    ("openssl", OPENSSL, Some("example.test"), &["h2", "http/1.1"]),
    ("curl", CURL, Some("localhost"), &["h2", "http/1.1"]),
    ("rustls pq", RUSTLS_PQ, Some("pq.example.test"), &["h2", "http/1.1"]),
    ("chromium pq", CHROMIUM_PQ, Some("pq.example.test"), &["h2", "http/1.1"]),
    ("openssl tls1.3 alpn", TLS13_ALPN, Some("alpn.example.test"), &["h2", "http/1.1"]),
    ("openssl tls1.2", TLS12, Some("tls12.example.test"), &["http/1.1"]),
    ("openssl long name", LONG_NAME, Some(LONG), &[]),
    ("openssl no sni", NO_SNI, None, &[]),
    ("curl h2", CURL_H2, Some("h2.example.test"), &["h2", "http/1.1"]),
];

pub(super) fn route(conf: serde_json::Value) -> TlsRouteDetector {
    TlsRouteDetector::from_conf(serde_json::from_value(conf).unwrap()).unwrap()
}

pub(super) fn verdict(detector: &TlsRouteDetector, flight: &[u8]) -> Verdict {
    assert_segmentation_independent(detector, flight, &DetectContext::default())
}

/// The number of bytes after which `detector` first says no.
pub(super) fn refused_after(detector: &TlsRouteDetector, flight: &[u8]) -> Option<usize> {
    (0..=flight.len()).find(|&end| detector.detect(&flight[..end], &DetectContext::default()) == Verdict::NoMatch)
}

/// Re-frames a single-record ClientHello into records of at most `chunk`
/// handshake bytes each (as in `tls/tests.rs`).
pub(super) fn split_into_records(hello: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for part in hello[RECORD_HEADER..].chunks(chunk) {
        out.extend_from_slice(&[CONTENT_TYPE_HANDSHAKE, hello[1], hello[2]]);
        out.extend_from_slice(&u16::try_from(part.len()).unwrap().to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

#[test]
fn every_captured_hello_matches_whole_byte_by_byte_and_at_every_prefix() {
    let any = TlsRouteDetector::default();
    for (name, hello, sni, _) in HELLOS {
        let Verdict::Match(learned) = verdict(&any, hello) else { panic!("{name}: no match") };
        assert_eq!(learned.server_name.map(|span| span.of(hello)), sni.map(str::as_bytes), "{name}");
        assert_eq!(learned.host, None);
        // Undecided up to the last byte: the whole hello is read.
        assert!(!any.detect(&hello[..hello.len() - 1], &DetectContext::default()).is_match());
    }
}

#[test]
fn server_names_route_by_sni_case_insensitively_with_wildcards_and_empty_for_none() {
    // (serverNames, names of the HELLOS entries that match)
    let table: &[(&[&str], &[&str])] = &[
        (&["example.test"], &["openssl"]),
        (&["EXAMPLE.Test."], &["openssl"]),
        (&["localhost", "h2.example.test"], &["curl", "curl h2"]),
        (&["*.example.test"], &["rustls pq", "chromium pq", "openssl tls1.3 alpn", "openssl tls1.2", "curl h2"]),
        (&["*.test"], &["openssl"]),
        (
            &["*"],
            &[
                "openssl",
                "curl",
                "rustls pq",
                "chromium pq",
                "openssl tls1.3 alpn",
                "openssl tls1.2",
                "curl h2",
                "openssl long name",
            ],
        ),
        (&[""], &["openssl no sni"]),
        (&["", "localhost"], &["curl", "openssl no sni"]),
        (&[LONG], &["openssl long name"]),
        (&["*.dddddddddddddddddddddddddddddddddddddddddddddddd.example.test"], &[]),
        (&["other.test", "*.other.test"], &[]),
    ];
    for (patterns, matching) in table {
        let detector = route(serde_json::json!({ "serverNames": patterns }));
        for (name, hello, _, _) in HELLOS {
            let outcome = if matching.contains(&name) { Outcome::Match } else { Outcome::No };
            assert_eq!(judge(&detector, hello), outcome, "{patterns:?} on {name}");
        }
    }
}

#[test]
fn alpn_matches_any_offered_protocol_and_never_a_hello_without_alpn() {
    for wanted in [&["h2"][..], &["http/1.1"], &["acme-tls/1", "h2"], &["h3"], &["H2"]] {
        let detector = route(serde_json::json!({ "alpn": wanted }));
        for (name, hello, _, offered) in HELLOS {
            let expected = wanted.iter().any(|w| offered.contains(w));
            let outcome = if expected { Outcome::Match } else { Outcome::No };
            assert_eq!(judge(&detector, hello), outcome, "{wanted:?} on {name}");
        }
    }
}

#[test]
fn server_names_and_alpn_must_both_match() {
    let detector = route(serde_json::json!({ "serverNames": ["*.example.test"], "alpn": ["h2"] }));
    assert_eq!(judge(&detector, TLS13_ALPN), Outcome::Match);
    assert_eq!(judge(&detector, CHROMIUM_PQ), Outcome::Match);
    assert_eq!(judge(&detector, TLS12), Outcome::No, "offers http/1.1 only");
    assert_eq!(judge(&detector, OPENSSL), Outcome::No, "example.test is not under example.test");
    assert_eq!(judge(&detector, LONG_NAME), Outcome::No, "no ALPN");
}

#[test]
fn hellos_reframed_into_small_records_get_the_same_verdicts() {
    let confs = [
        serde_json::json!({}),
        serde_json::json!({ "serverNames": ["*.example.test", LONG], "alpn": ["http/1.1"] }),
        serde_json::json!({ "serverNames": ["example.test", ""] }),
    ];
    for conf in confs {
        let detector = route(conf.clone());
        for (name, hello, sni, _) in HELLOS {
            let whole = judge(&detector, hello);
            for chunk in [1, 3, 100] {
                let split = split_into_records(hello, chunk);
                assert_eq!(judge(&detector, &split), whole, "{conf} on {name} in {chunk}-byte records");
                // The learned name is its span when one record holds it.
                if let Verdict::Match(learned) = detector.detect(&split, &DetectContext::default()) {
                    match learned.server_name {
                        Some(span) => assert_eq!(Some(span.of(&split)), sni.map(str::as_bytes), "{name}"),
                        // Absent only when the name is absent or split.
                        None => assert!(
                            sni.is_none_or(|sni| !split.windows(sni.len()).any(|w| w == sni.as_bytes())),
                            "{name} in {chunk}-byte records"
                        ),
                    }
                }
            }
        }
    }
}

#[test]
fn other_captured_protocols_are_refused_on_their_first_bytes() {
    let detector = route(serde_json::json!({}));
    for flight in HTTP.into_iter().chain([SSH, H2_PRIOR_KNOWLEDGE, b"get / http/1.1\r\n".as_slice()]) {
        assert_eq!(judge(&detector, flight), Outcome::No);
        assert_eq!(refused_after(&detector, flight), Some(1));
    }
    // OpenSSL's ServerHello: a valid handshake record, but message type 2.
    assert_eq!(judge(&detector, SERVER_HELLO), Outcome::No);
    assert_eq!(refused_after(&detector, SERVER_HELLO), Some(6));
}

#[test]
fn zeros_random_bytes_and_short_junk_are_refused() {
    let detector = route(serde_json::json!({}));
    assert_eq!(refused_after(&detector, &[0; 64]), Some(1));
    assert_eq!(refused_after(&detector, b"\x00\x05hello"), Some(1));
    assert_eq!(refused_after(&detector, b"\x00\x00\x00\x08\x04\xd2\x16\x2f"), Some(1));
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..64 {
        let flight: Vec<u8> = (0..256)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        assert_eq!(judge(&detector, &flight), Outcome::No, "{:02x?}", &flight[..12]);
        // Random bytes fail the record or SSLv2 header within its 11 bytes.
        assert!(refused_after(&detector, &flight).is_some_and(|n| n <= 11), "{:02x?}", &flight[..12]);
    }
}

#[test]
fn trailing_bytes_after_the_hello_do_not_change_the_verdict() {
    let mut flight = RUSTLS_PQ.to_vec();
    flight.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x01, 0xaa]);
    let detector = route(serde_json::json!({ "serverNames": ["pq.example.test"] }));
    assert_eq!(verdict(&detector, &flight), verdict(&detector, RUSTLS_PQ));
    assert!(verdict(&detector, &flight).is_match());
}

#[test]
fn conf_is_checked_with_paths_to_the_offending_value() {
    let tlsroute = kind("tlsroute").unwrap();
    assert!(tlsroute.build(serde_json::json!({})).is_ok());
    let error = |conf| tlsroute.build(conf).unwrap_err();
    let key = |k: &str| ConfKey::Key(k.to_owned());
    assert!(error(serde_json::json!({ "bogus": 1 })).message.contains("bogus"));
    assert!(error(serde_json::json!({ "server_names": ["a.test"] })).message.contains("server_names"));
    let e = error(serde_json::json!({ "serverNames": ["ok.test", "a.*.test"] }));
    assert_eq!(e.path, vec![key("serverNames"), ConfKey::Index(1)]);
    assert_eq!(error(serde_json::json!({ "serverNames": [] })).path, vec![key("serverNames")]);
    let e = error(serde_json::json!({ "alpn": ["h2", ""] }));
    assert_eq!(e.path, vec![key("alpn"), ConfKey::Index(1)]);
    assert_eq!(error(serde_json::json!({ "alpn": ["x".repeat(256)] })).path, vec![key("alpn"), ConfKey::Index(0)]);
    assert_eq!(error(serde_json::json!({ "alpn": [] })).path, vec![key("alpn")]);
    assert_eq!(error(serde_json::json!({ "maxHello": 0 })).path, vec![key("maxHello")]);
    assert_eq!(error(serde_json::json!({ "maxHello": MAX_MAX_HELLO + 1 })).path, vec![key("maxHello")]);
    assert_eq!(error(serde_json::json!({ "maxHello": -1 })).path, vec![key("maxHello")]);
    assert!(tlsroute.build(serde_json::json!({ "maxHello": MAX_MAX_HELLO })).is_ok());
}

#[test]
fn byte_limit_covers_max_hello_and_its_record_headers() {
    let limit = |d: TlsRouteDetector| match d.byte_limit() {
        ByteLimit::AtLeast(n) => n,
        ByteLimit::MaxRead => panic!("tlsroute must not be capped at maxRead"),
    };
    assert_eq!(limit(TlsRouteDetector::default()), 65536 + 5 * 5);
    assert_eq!(limit(route(serde_json::json!({ "maxHello": 16384 }))), 16384 + 2 * 5);
    assert!(limit(route(serde_json::json!({ "maxHello": MAX_MAX_HELLO }))) > MAX_MAX_HELLO + 1024 * 5);
}
