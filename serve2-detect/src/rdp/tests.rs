use super::*;
use crate::testing::{Outcome, judge};

macro_rules! fixture {
    ($path:literal) => {
        ($path, include_bytes!(concat!("../../../tests/fixtures/", $path)).as_slice())
    };
}

/// Real first flights of xfreerdp 2.11.7.
const CAPTURES: [(&str, &[u8]); 5] = [
    fixture!("rdp/xfreerdp-user.bin"),
    fixture!("rdp/xfreerdp-auth-only.bin"),
    fixture!("rdp/xfreerdp-no-user.bin"),
    fixture!("rdp/xfreerdp-sec-rdp.bin"),
    fixture!("rdp/xfreerdp-load-balance-info.bin"),
];

/// A Siemens S7 (ISO-on-TCP) connection request: the same TPKT + X.224 CR
/// header as RDP, then X.224 parameters (TSAPs, TPDU size).
const S7_COTP_CR: &[u8] = b"\x03\x00\x00\x16\x11\xe0\x00\x00\x00\x01\x00\xc1\x02\x01\x00\xc2\x02\x01\x02\xc0\x01\x0a";

/// How many bytes the detector needed to decide, and what it decided.
fn decided_at(flight: &[u8]) -> (usize, Verdict) {
    let ctx = DetectContext::default();
    (0..=flight.len())
        .map(|end| (end, RdpDetector.detect(&flight[..end], &ctx)))
        .find(|(_, v)| !matches!(v, Verdict::NeedMore(_)))
        .unwrap_or((flight.len(), RdpDetector.detect(flight, &ctx)))
}

#[test]
fn every_xfreerdp_capture_matches_on_its_fixed_header_plus_one_byte() {
    for (name, flight) in CAPTURES {
        assert_eq!(judge(&RdpDetector, flight), Outcome::Match, "{name}");
        assert_eq!(decided_at(flight), (12, Verdict::MATCH), "{name}");
    }
}

#[test]
fn a_request_without_cookie_or_negotiation_matches_at_11_bytes() {
    let bare = b"\x03\x00\x00\x0b\x06\xe0\x00\x00\x12\x34\x00";
    assert_eq!(judge(&RdpDetector, bare), Outcome::Match);
    assert_eq!(decided_at(bare), (11, Verdict::MATCH));
    // Negotiation request only, no cookie (what mstsc sends without a user).
    let neg_only = b"\x03\x00\x00\x13\x0e\xe0\x00\x00\x00\x00\x00\x01\x00\x08\x00\x0b\x00\x00\x00";
    assert_eq!(judge(&RdpDetector, neg_only), Outcome::Match);
    assert_eq!(decided_at(neg_only), (12, Verdict::MATCH));
}

#[test]
fn asks_for_the_fixed_header_then_one_more_byte() {
    let ctx = DetectContext::default();
    let flight = CAPTURES[0].1;
    assert_eq!(RdpDetector.detect(b"", &ctx), Verdict::need(11));
    assert_eq!(RdpDetector.detect(&flight[..10], &ctx), Verdict::need(11));
    assert_eq!(RdpDetector.detect(&flight[..11], &ctx), Verdict::need(12));
}

#[test]
fn other_protocols_are_refused_at_the_first_byte() {
    for (name, flight) in crate::fixtures::foreign("rdp") {
        let flight = flight.as_slice();
        assert_eq!(judge(&RdpDetector, flight), Outcome::No, "{name}");
        assert_eq!(decided_at(flight), (1, Verdict::NoMatch), "{name}");
    }
}

#[test]
fn iso_on_tcp_look_alikes_are_refused_where_they_depart() {
    let cases: [(&[u8], usize); 9] = [
        (S7_COTP_CR, 12),                                         // X.224 parameter, not RDP data
        (b"\x03\x01\x00\x0b\x06\xe0\x00\x00\x00\x00\x00", 2),     // TPKT reserved byte set
        (b"\x03\x00\x02\x00\x06\xe0", 3),                         // length high byte too big
        (b"\x03\x00\x00\x0a\x05\xe0\x00\x00\x00\x00", 4),         // length below 11
        (b"\x03\x00\x01\x04\xff\xe0\x00\x00\x00\x00\x00", 4),     // length above 259
        (b"\x03\x00\x00\x2b\x25\xe0\x00\x00\x00\x00\x00", 5),     // LI != length - 5
        (b"\x03\x00\x00\x0b\x06\xd0\x00\x00\x00\x00\x00", 6),     // X.224 CC, a server's answer
        (b"\x03\x00\x00\x0c\x02\xf0\x80\x7f\x65\x82\x01\x94", 5), // X.224 DT (MCS data)
        (b"\x03\x00\x00\x0b\x06\xe0\x00\x01\x00\x00\x00", 8),     // dst-ref set
    ];
    for (flight, at) in cases {
        assert_eq!(judge(&RdpDetector, flight), Outcome::No, "{flight:02x?}");
        assert_eq!(decided_at(flight), (at, Verdict::NoMatch), "{flight:02x?}");
    }
    let class_2 = b"\x03\x00\x00\x0b\x06\xe0\x00\x00\x00\x00\x20";
    assert_eq!(decided_at(class_2), (11, Verdict::NoMatch));
}

#[test]
fn junk_zeros_and_random_bytes_are_refused() {
    for flight in [&[0u8; 64][..], b"\x00\x05hello", b"\x05junk", b"\x03", b"\xff\xff\xff\xff"] {
        let outcome = judge(&RdpDetector, flight);
        // A lone 03 could still become a TPKT: undecided, not refused.
        let expected = if flight == b"\x03" { Outcome::Undecided } else { Outcome::No };
        assert_eq!(outcome, expected, "{flight:02x?}");
    }
    for seed in 0..2000u64 {
        let flight = crate::testing::xorshift_bytes(0x9E37_79B9_7F4A_7C15_u64 ^ seed, 32);
        assert_eq!(judge(&RdpDetector, &flight), Outcome::No, "{flight:02x?}");
    }
}

#[test]
fn builds_without_options_and_refuses_unknown_ones() {
    let kind = crate::registry::kind("rdp").expect("registered");
    assert!(kind.build(serde_json::json!({})).is_ok());
    assert!(kind.build(serde_json::json!({"cookie": "x"})).is_err());
}
