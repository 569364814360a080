use super::*;
use crate::testing::{Outcome, judge};

macro_rules! fixture {
    ($path:literal) => {
        ($path, include_bytes!(concat!("../../../tests/fixtures/", $path)).as_slice())
    };
}

/// Real first flights: sendxmpp 1.24 (with an XML declaration) and slixmpp
/// 1.8.3 (without).
const CAPTURES: [(&str, &[u8]); 3] =
    [fixture!("xmpp/sendxmpp-plain.bin"), fixture!("xmpp/sendxmpp-component.bin"), fixture!("xmpp/slixmpp-1.8.3.bin")];

/// How many bytes the detector needed to decide, and what it decided.
fn decided_at(flight: &[u8]) -> (usize, Verdict) {
    let ctx = DetectContext::default();
    (0..=flight.len())
        .map(|end| (end, XmppDetector.detect(&flight[..end], &ctx)))
        .find(|(_, v)| !matches!(v, Verdict::NeedMore(_)))
        .unwrap_or((flight.len(), XmppDetector.detect(flight, &ctx)))
}

#[test]
fn every_captured_client_matches_within_the_default_max_read() {
    for (name, flight) in CAPTURES {
        assert_eq!(judge(&XmppDetector, flight), Outcome::Match, "{name}");
    }
    // `<?xml version='1.0'?>` (21) + `<stream:stream ` (15).
    assert_eq!(decided_at(CAPTURES[0].1), (36, Verdict::MATCH));
    assert_eq!(decided_at(CAPTURES[2].1), (15, Verdict::MATCH));
}

#[test]
fn declarations_in_every_legal_shape_match() {
    for flight in [
        &b"<?xml version=\"1.0\"?><stream:stream xmlns='jabber:client'"[..],
        b"<?xml version='1.0' encoding='UTF-8'?>\n<stream:stream\n",
        b"<?xml version = \"1.1\" encoding=\"utf-8\" standalone='yes' ?>\r\n <stream:stream\t",
        b"<?xml version='1.0' standalone=\"no\"?><stream:stream to='example.test'",
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'",
    ] {
        assert_eq!(judge(&XmppDetector, flight), Outcome::Match, "{}", String::from_utf8_lossy(flight));
    }
}

#[test]
fn other_xml_html_and_jabber_text_are_refused_where_they_depart() {
    let cases: [(&[u8], usize); 16] = [
        (b"<html><body>", 2),
        (b"<!DOCTYPE html>", 2),
        (b"<?xml version='1.0'?><rss version='2.0'>", 23),
        (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodCall>", 41),
        (b"<?xml-stylesheet href='a.xsl'?>", 6),
        (b"<?xml encoding='UTF-8'?>", 7),
        (b"<?xml version='2.0'?><stream:stream ", 16),
        (b"<?xml version='1.0\"?>", 19),
        (b"<?xml version='1.0'encoding='UTF-8'?>", 20),
        (b"<?xml version='1.0' standalone='yes' encoding='x'?>", 38),
        (b"<?xml version='1.0' standalone='maybe'?>", 33),
        (b"<stream:features>", 9),
        (b"<stream:streamx ", 15),
        (b"<stream:stream>", 15),
        (b"jabber:client <stream:stream ", 1),
        (b"GET /jabber HTTP/1.1\r\n", 1),
    ];
    for (flight, at) in cases {
        let text = String::from_utf8_lossy(flight);
        assert_eq!(judge(&XmppDetector, flight), Outcome::No, "{text}");
        assert_eq!(decided_at(flight), (at, Verdict::NoMatch), "{text}");
    }
}

#[test]
fn other_protocols_are_refused_at_the_first_byte_syslog_at_the_second() {
    for (name, flight) in crate::fixtures::foreign("xmpp") {
        let flight = flight.as_slice();
        assert_eq!(judge(&XmppDetector, flight), Outcome::No, "{name}");
        // Non-octet-counted syslog opens with `<` too; its PRI digit departs.
        let at = if flight.starts_with(b"<") { 2 } else { 1 };
        assert_eq!(decided_at(flight), (at, Verdict::NoMatch), "{name}");
    }
}

#[test]
fn junk_zeros_and_random_bytes_are_refused() {
    for flight in [&[0u8; 64][..], b"\x00\x05hello", b"\x05junk", b"get / http/1.1\r\n", b"<1>syslog"] {
        assert_eq!(judge(&XmppDetector, flight), Outcome::No, "{flight:02x?}");
    }
    for seed in 0..2000u64 {
        let flight = crate::testing::xorshift_bytes(0x2545_F491_4F6C_DD1D_u64 ^ seed, 32);
        assert_eq!(judge(&XmppDetector, &flight), Outcome::No, "{flight:02x?}");
    }
}

#[test]
fn whitespace_after_the_declaration_is_only_refused_at_max_read() {
    // Legal XML: any amount of whitespace may precede the root element, so a
    // peer that sends only that stays undecided until the engine's cap.
    let mut flight = b"<?xml version='1.0'?>".to_vec();
    flight.resize(128, b' ');
    assert_eq!(judge(&XmppDetector, &flight), Outcome::Undecided);
    assert_eq!(XmppDetector.detect(&flight, &DetectContext::default()), Verdict::need_up_to(129, usize::MAX));
}

#[test]
fn builds_without_options_and_refuses_unknown_ones() {
    let kind = crate::registry::kind("xmpp").expect("registered");
    assert!(kind.build(serde_json::json!({})).is_ok());
    assert!(kind.build(serde_json::json!({"domain": "x"})).is_err());
}
