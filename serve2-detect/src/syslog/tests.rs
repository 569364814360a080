use super::*;
use crate::testing::{Outcome, judge};

macro_rules! fixture {
    ($path:literal) => {
        ($path, include_bytes!(concat!("../../../tests/fixtures/", $path)).as_slice())
    };
}

/// Real messages from util-linux 2.38.1 `logger --tcp`, with the byte count
/// the decision takes.
const CAPTURES: [((&str, &[u8]), usize); 7] = [
    (fixture!("syslog/logger-rfc3164.bin"), 5),
    (fixture!("syslog/logger-rfc3164-octet-count.bin"), 8),
    (fixture!("syslog/logger-rfc3164-local7-debug.bin"), 6),
    (fixture!("syslog/logger-rfc5424.bin"), 5),
    (fixture!("syslog/logger-rfc5424-octet-count.bin"), 9),
    (fixture!("syslog/logger-rfc5424-notq-notime-nohost.bin"), 5),
    (fixture!("syslog/logger-rfc5424-user-emerg.bin"), 4),
];

/// How many bytes the detector needed to decide, and what it decided.
fn decided_at(flight: &[u8]) -> (usize, Verdict) {
    let ctx = DetectContext::default();
    (0..=flight.len())
        .map(|end| (end, SyslogDetector.detect(&flight[..end], &ctx)))
        .find(|(_, v)| !matches!(v, Verdict::NeedMore(_)))
        .unwrap_or((flight.len(), SyslogDetector.detect(flight, &ctx)))
}

#[test]
fn every_logger_capture_matches_at_the_byte_after_its_pri() {
    for ((name, flight), at) in CAPTURES {
        assert_eq!(judge(&SyslogDetector, flight), Outcome::Match, "{name}");
        assert_eq!(decided_at(flight), (at, Verdict::MATCH), "{name}");
    }
}

#[test]
fn pri_bounds_and_loose_bsd_forms_match() {
    for flight in [
        &b"<0>1 - - - - - -\n"[..],
        b"<191>Dec 31 23:59:59 host tag: x\n",
        b"<189>123: *Mar  1 00:00:00.000: %SYS-5-CONFIG_I: Configured\n",
        b"<13> leading space\n",
        b"5 <13>x",
        b"99999 <13>1 ",
    ] {
        assert_eq!(judge(&SyslogDetector, flight), Outcome::Match, "{}", String::from_utf8_lossy(flight));
    }
}

#[test]
fn asks_for_at_most_the_longest_decisive_prefix() {
    let ctx = DetectContext::default();
    assert_eq!(SyslogDetector.detect(b"", &ctx), Verdict::need_up_to(1, 12));
    assert_eq!(SyslogDetector.detect(b"99999 <191", &ctx), Verdict::need_up_to(11, 12));
    assert_eq!(judge(&SyslogDetector, b"99999 <191>x"), Outcome::Match);
}

#[test]
fn look_alikes_are_refused_where_they_depart() {
    let cases: [(&[u8], usize); 16] = [
        (b"<html><body>", 2),
        (b"<?xml version='1.0'?>", 2),
        (b"<stream:stream ", 2),
        (b"12 abc", 4),
        (b"<>x", 2),          // empty PRI
        (b"<01>x", 3),        // leading zero
        (b"<192>x", 4),       // above local7.debug
        (b"<1234>x", 5),      // four digits
        (b"<13x", 4),         // PRI not closed
        (b"<13>\x00", 5),     // a control byte after the PRI
        (b"<13>\xc3\xa9", 5), // non-ASCII after the PRI
        (b"0 <13>x", 1),      // MSG-LEN has no leading zero
        (b"123456 <13>x", 6), // six-digit MSG-LEN
        (b"12<13>x", 3),      // MSG-LEN without its space
        (b"12  <13>x", 4),    // two spaces
        (b" <13>x", 1),
    ];
    for (flight, at) in cases {
        let text = String::from_utf8_lossy(flight);
        assert_eq!(judge(&SyslogDetector, flight), Outcome::No, "{text}");
        assert_eq!(decided_at(flight), (at, Verdict::NoMatch), "{text}");
    }
}

#[test]
fn other_protocols_are_refused_at_the_first_byte() {
    for (name, flight) in crate::fixtures::foreign("syslog") {
        let flight = flight.as_slice();
        assert_eq!(judge(&SyslogDetector, flight), Outcome::No, "{name}");
        // XMPP's `<` fits; its next byte does not.
        let at = if flight.starts_with(b"<") { 2 } else { 1 };
        assert_eq!(decided_at(flight), (at, Verdict::NoMatch), "{name}");
    }
}

#[test]
fn junk_zeros_and_random_bytes_are_refused() {
    for flight in [&[0u8; 64][..], b"\x00\x05hello", b"\x05junk", b"get / http/1.1\r\n", b"\x03\x00\x00\x0b"] {
        assert_eq!(judge(&SyslogDetector, flight), Outcome::No, "{flight:02x?}");
    }
    for seed in 0..2000u64 {
        let flight = crate::testing::xorshift_bytes(0x8CB9_2BA7_2F3D_8DD7_u64 ^ seed, 32);
        assert_eq!(judge(&SyslogDetector, &flight), Outcome::No, "{flight:02x?}");
    }
}

#[test]
fn builds_without_options_and_refuses_unknown_ones() {
    let kind = crate::registry::kind("syslog").expect("registered");
    assert!(kind.build(serde_json::json!({})).is_ok());
    assert!(kind.build(serde_json::json!({"octetCounting": true})).is_err());
}
