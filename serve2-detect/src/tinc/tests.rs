use super::*;
use crate::testing::{Outcome, judge};

macro_rules! fixture {
    ($path:literal) => {
        ($path, include_bytes!(concat!("../../../tests/fixtures/", $path)).as_slice())
    };
}

/// tincd 1.0.36's real ID lines, and tinc 1.1's written by hand from its
/// source (tinc 1.1 is not packaged in Debian).
const CAPTURES: [(&str, &[u8]); 5] = [
    fixture!("tinc/tincd-1.0.36.bin"),
    fixture!("tinc/tincd-1.0.36-underscore-name.bin"),
    fixture!("tinc/handmade-tinc-1.1-sptps.bin"),
    fixture!("tinc/handmade-tinc-1.1-upgrade.bin"),
    fixture!("tinc/handmade-tinc-1.1-join.bin"),
];

/// How many bytes the detector needed to decide, and what it decided.
fn decided_at(flight: &[u8]) -> (usize, Verdict) {
    let ctx = DetectContext::default();
    (0..=flight.len())
        .map(|end| (end, TincDetector.detect(&flight[..end], &ctx)))
        .find(|(_, v)| !matches!(v, Verdict::NeedMore(_)))
        .unwrap_or((flight.len(), TincDetector.detect(flight, &ctx)))
}

#[test]
fn tinc_1_0_captures_and_1_1_lines_match_at_their_newline() {
    for (name, flight) in CAPTURES {
        assert_eq!(judge(&TincDetector, flight), Outcome::Match, "{name}");
        assert_eq!(decided_at(flight), (flight.len(), Verdict::MATCH), "{name}");
    }
    assert_eq!(CAPTURES[0].1, b"0 alice 17\n");
    assert_eq!(judge(&TincDetector, b"0 n 17.0\n"), Outcome::Match);
}

#[test]
fn asks_for_the_rest_of_the_line_in_one_read() {
    let ctx = DetectContext::default();
    assert_eq!(TincDetector.detect(b"", &ctx), Verdict::need_up_to(1, MAX_LINE));
    assert_eq!(TincDetector.detect(b"0 alice 1", &ctx), Verdict::need_up_to(10, MAX_LINE));
    // The longest name still fits the line limit, and the default maxRead.
    let mut longest = b"0 ".to_vec();
    longest.extend([b'n'; MAX_NAME]);
    longest.extend(b" 17.255\n");
    assert!(longest.len() <= MAX_LINE && MAX_LINE <= 128);
    assert_eq!(judge(&TincDetector, &longest), Outcome::Match);
}

#[test]
fn lines_that_break_the_grammar_are_refused_at_that_byte() {
    let too_long = [&b"0 "[..], &[b'n'; MAX_NAME + 1]].concat();
    let cases: [(&[u8], usize); 14] = [
        (b"1 alice 17\n", 1),       // not an ID request
        (b"0alice 17\n", 2),        // no space after the request
        (b"0  alice 17\n", 3),      // empty name
        (b"0 ali-ce 17\n", 6),      // `-` is not a name byte
        (b"0 alice\n", 8),          // no version
        (b"0 alice 017\n", 9),      // leading zero
        (b"0 alice 117\n", 11),     // three-digit major
        (b"0 alice 17.\n", 12),     // empty minor
        (b"0 alice 17.1234\n", 15), // four-digit minor
        (b"0 alice 17\r\n", 11),    // tinc ends lines with `\n` only
        (b"0 alice 17 x\n", 11),    // nothing after the version
        (b"0 ^c00k1e 0\n", 3),      // a control connection
        (b"0 ?short 17.1\n", 9),    // an invitation key of the wrong length
        (b"0 ?a?b 17.1\n", 5),      // `?` only opens an invitation
    ];
    for (flight, at) in cases {
        let text = String::from_utf8_lossy(flight);
        assert_eq!(judge(&TincDetector, flight), Outcome::No, "{text}");
        assert_eq!(decided_at(flight), (at, Verdict::NoMatch), "{text}");
    }
    assert_eq!(decided_at(&too_long), (MAX_NAME + 3, Verdict::NoMatch));
    // Without its newline a line is not finished: undecided, not matched.
    assert_eq!(judge(&TincDetector, b"0 alice 17.7"), Outcome::Undecided);
}

#[test]
fn other_protocols_are_refused_at_the_first_byte() {
    for (name, flight) in crate::fixtures::foreign("tinc") {
        let flight = flight.as_slice();
        assert_eq!(judge(&TincDetector, flight), Outcome::No, "{name}");
        assert_eq!(decided_at(flight), (1, Verdict::NoMatch), "{name}");
    }
}

#[test]
fn junk_zeros_and_random_bytes_are_refused() {
    for flight in [&[0u8; 64][..], b"\x00\x05hello", b"\x05junk", b"get / http/1.1\r\n", b"0 0 0 0\n", b"0 \n"] {
        assert_eq!(judge(&TincDetector, flight), Outcome::No, "{flight:02x?}");
    }
    for seed in 0..2000u64 {
        let flight = crate::testing::xorshift_bytes(0xD1B5_4A32_D192_ED03_u64 ^ seed, 32);
        assert_eq!(judge(&TincDetector, &flight), Outcome::No, "{flight:02x?}");
    }
}

#[test]
fn builds_without_options_and_refuses_unknown_ones() {
    let kind = crate::registry::kind("tinc").expect("registered");
    assert!(kind.build(serde_json::json!({})).is_ok());
    assert!(kind.build(serde_json::json!({"name": "alice"})).is_err());
}
