use super::*;
use crate::registry;
use crate::testing::{Outcome, judge};

macro_rules! capture {
    ($file:literal) => {
        ($file, include_bytes!(concat!("../../../tests/fixtures/postgres/", $file)).as_slice())
    };
}

/// Real first flights (tests/fixtures/postgres/README.md says how each was captured).
const CAPTURES: &[(&str, &[u8])] = &[
    capture!("psql-sslmode-require.bin"),
    capture!("pg_isready.bin"),
    capture!("psql-gssencmode-require.bin"),
    capture!("psql-sslmode-disable.bin"),
    capture!("psql-sslmode-disable-long.bin"),
    capture!("pg_isready-sslmode-disable.bin"),
];

const STARTUP_LONG: &[u8] = include_bytes!("../../../tests/fixtures/postgres/psql-sslmode-disable-long.bin");

fn detect(prefix: &[u8]) -> Verdict {
    PostgresDetector.detect(prefix, &DetectContext::default())
}

/// The length of the shortest prefix of `flight` the detector refuses.
fn refused_after(flight: &[u8]) -> Option<usize> {
    (0..=flight.len()).find(|&n| detect(&flight[..n]) == Verdict::NoMatch)
}

#[test]
fn real_captures_match_on_their_8_byte_header() {
    for (name, flight) in CAPTURES {
        assert_eq!(judge(&PostgresDetector, flight), Outcome::Match, "{name}");
        assert_eq!(detect(&flight[..HEADER_LEN]), Verdict::MATCH, "{name}");
        assert!(matches!(detect(&flight[..HEADER_LEN - 1]), Verdict::NeedMore(_)), "{name}");
    }
    // 178 bytes, more than the default maxRead: decided long before the end.
    assert!(STARTUP_LONG.len() > 128);
}

#[test]
fn undecided_asks_for_the_next_byte_and_at_most_the_header() {
    assert_eq!(detect(b""), Verdict::need_up_to(1, HEADER_LEN));
    assert_eq!(detect(&[0, 0, 0, 8, 4]), Verdict::need_up_to(6, HEADER_LEN));
}

#[test]
fn later_protocol_3_minors_match_and_others_do_not() {
    // PostgreSQL 18 clients may ask for 3.2; the server negotiates down.
    assert_eq!(judge(&PostgresDetector, &[0, 0, 0, 0x10, 0, 3, 0, 2]), Outcome::Match);
    assert_eq!(judge(&PostgresDetector, &[0, 0, 0, 0x10, 0, 3, 0, 0xff]), Outcome::Match);
    // Major 3, minor 256: no such thing.
    assert_eq!(refused_after(&[0, 0, 0, 0x10, 0, 3, 1, 0]), Some(7));
    // Protocol 2.0 StartupMessage (296 bytes), gone from servers since PostgreSQL 14.
    assert_eq!(refused_after(&[0, 0, 1, 0x28, 0, 2, 0, 0]), Some(6));
}

#[test]
fn cancel_request_is_refused_at_its_code() {
    let cancel = [0, 0, 0, 0x10, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0x30, 0x39, 0xde, 0xad, 0xbe, 0xef];
    assert_eq!(judge(&PostgresDetector, &cancel), Outcome::No);
    assert_eq!(refused_after(&cancel), Some(5));
}

#[test]
fn lengths_out_of_range_are_refused_at_the_length() {
    // 10001: one over the server's limit.
    assert_eq!(refused_after(&[0, 0, 0x27, 0x11, 0, 3, 0, 0]), Some(4));
    // 10240 and up: the third byte is enough.
    assert_eq!(refused_after(&[0, 0, 0x28, 0, 0, 3, 0, 0]), Some(3));
    // 65536 and up: the second byte is.
    assert_eq!(refused_after(&[0, 1, 0, 0, 0, 3, 0, 0]), Some(2));
    // 9..=15: between the requests and the shortest StartupMessage.
    for length in 9..16 {
        assert_eq!(refused_after(&[0, 0, 0, length, 0, 3, 0, 0]), Some(4), "{length}");
    }
    // An SSLRequest code with a StartupMessage length, and the other way round.
    assert_eq!(refused_after(&[0, 0, 0, 0x10, 0x04, 0xd2, 0x16, 0x2f]), Some(5));
    assert_eq!(refused_after(&[0, 0, 0, 8, 0, 3, 0, 0]), Some(5));
}

#[test]
fn the_8_byte_requests_need_their_exact_code() {
    assert_eq!(judge(&PostgresDetector, &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]), Outcome::Match);
    assert_eq!(judge(&PostgresDetector, &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]), Outcome::Match);
    assert_eq!(refused_after(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x31]), Some(8));
    assert_eq!(refused_after(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2e]), Some(8));
    assert_eq!(refused_after(&[0, 0, 0, 8, 0, 0, 0, 0]), Some(5));
}

#[test]
fn junk_and_look_alikes_are_refused() {
    let zeros = [0u8; 128];
    assert_eq!(judge(&PostgresDetector, &zeros), Outcome::No);
    assert_eq!(refused_after(&zeros), Some(4));
    assert_eq!(refused_after(b"get / http/1.1\r\n"), Some(1));
    assert_eq!(judge(&PostgresDetector, b"get / http/1.1\r\n"), Outcome::No);
    // Length-prefixed junk: a 2-byte length (DNS over TCP, OpenVPN), a 4-byte one.
    for flight in
        [&b"\x00\x05hello"[..], b"\x00\x00\x00\x05abcd", b"\x00\x00\x00\x20\xff\xff\xff\xff", b"\xff\xff\xff\xff"]
    {
        assert_eq!(judge(&PostgresDetector, flight), Outcome::No, "{flight:?}");
    }
    // DNS over TCP from `dig +tcp`: length 0x0034, then the query id.
    assert_eq!(refused_after(b"\x00\x34\xab\xcd\x01\x20\x00\x01"), Some(2));
    for seed in 1..=2000 {
        let flight = crate::testing::xorshift_bytes(seed, 64);
        assert_eq!(judge(&PostgresDetector, &flight), Outcome::No, "seed {seed}: {flight:02x?}");
    }
}

#[test]
fn mutated_captures_keep_the_contract() {
    // Every byte of the decisive part of each capture set to a few values:
    // `judge` panics if the detector breaks monotonicity or its NeedMore rules.
    for (_, flight) in CAPTURES {
        for at in 0..flight.len().min(HEADER_LEN + 2) {
            for b in [0x00, 0x01, 0x7f, 0x80, 0xff, flight[at] ^ 0x01] {
                let mut mutated = flight.to_vec();
                mutated[at] = b;
                judge(&PostgresDetector, &mutated);
                judge(&PostgresDetector, &mutated[..at + 1]);
            }
        }
    }
}

#[test]
fn builds_from_no_keys_and_refuses_unknown_ones() {
    let kind = registry::kind("postgres").expect("registered");
    assert!(kind.build(serde_json::json!({})).is_ok());
    let e = kind.build(serde_json::json!({"sslOnly": true})).expect_err("unknown key");
    assert!(e.message.contains("sslOnly"), "{e}");
}
