use super::*;
use crate::registry;
use crate::testing::{Outcome, judge};

/// `adb connect` from adb 1.0.41 (tests/fixtures/adb/README.md).
const ADB_CONNECT: &[u8] = include_bytes!("../../../tests/fixtures/adb/adb-connect.bin");

fn detect(prefix: &[u8]) -> Verdict {
    AdbDetector.detect(prefix, &DetectContext::default())
}

/// The length of the shortest prefix of `flight` the detector refuses.
fn refused_after(flight: &[u8]) -> Option<usize> {
    (0..=flight.len()).find(|&n| detect(&flight[..n]) == Verdict::NoMatch)
}

/// The length of the shortest prefix of `flight` the detector matches.
fn matched_after(flight: &[u8]) -> Option<usize> {
    (0..=flight.len()).find(|&n| detect(&flight[..n]).is_match())
}

/// A CNXN header with these fields and the right magic, then `payload`.
fn cnxn(version: u32, max_payload: u32, payload: &[u8]) -> Vec<u8> {
    let mut msg = Vec::new();
    msg.extend_from_slice(CNXN);
    for field in [version, max_payload, payload.len() as u32, 0] {
        msg.extend_from_slice(&field.to_le_bytes());
    }
    msg.extend_from_slice(&CNXN_MAGIC);
    msg.extend_from_slice(payload);
    msg
}

/// What adb 26.0.0 rc1 sent: the empty message, then its CNXN (adb of that
/// time: version 0x01000000, 4096-byte payloads, `host::\0`).
fn quirky_flight() -> Vec<u8> {
    let mut flight = EMPTY_MESSAGE.to_vec();
    flight.extend_from_slice(&cnxn(0x0100_0000, 4096, b"host::\0"));
    flight
}

/// `ADB_CONNECT` with byte `at` replaced by `b`.
fn connect_with(at: usize, b: u8) -> Vec<u8> {
    let mut flight = ADB_CONNECT.to_vec();
    flight[at] = b;
    flight
}

#[test]
fn real_adb_connect_matches_on_header_and_host() {
    assert_eq!(judge(&AdbDetector, ADB_CONNECT), Outcome::Match);
    assert_eq!(matched_after(ADB_CONNECT), Some(CNXN_DECISION));
    // 143 bytes with the feature list: more than the default maxRead.
    assert!(ADB_CONNECT.len() > 128);
}

#[test]
fn the_empty_message_quirk_is_accepted_before_a_cnxn_only() {
    let quirky = quirky_flight();
    assert_eq!(judge(&AdbDetector, &quirky), Outcome::Match);
    assert_eq!(matched_after(&quirky), Some(HEADER_LEN + CNXN_DECISION));
    // The empty message alone is not enough; followed by anything else it is refused.
    assert!(matches!(detect(&EMPTY_MESSAGE), Verdict::NeedMore(_)));
    let mut then_junk = EMPTY_MESSAGE.to_vec();
    then_junk.extend_from_slice(b"GET / HTTP/1.1\r\n");
    assert_eq!(refused_after(&then_junk), Some(HEADER_LEN + 1));
    // Two empty messages: the second is not a CNXN.
    let mut twice = EMPTY_MESSAGE.to_vec();
    twice.extend_from_slice(&quirky);
    assert_eq!(refused_after(&twice), Some(HEADER_LEN + 1));
    // All zeros look like the empty message up to its magic.
    let zeros = [0u8; 128];
    assert_eq!(judge(&AdbDetector, &zeros), Outcome::No);
    assert_eq!(refused_after(&zeros), Some(MAGIC_AT + 1));
}

#[test]
fn undecided_asks_for_the_next_byte_and_at_most_the_decision() {
    assert_eq!(detect(b""), Verdict::need_up_to(1, HEADER_LEN + CNXN_DECISION));
    assert_eq!(detect(b"C"), Verdict::need_up_to(2, CNXN_DECISION));
    assert_eq!(detect(&EMPTY_MESSAGE), Verdict::need_up_to(HEADER_LEN + 1, HEADER_LEN + CNXN_DECISION));
}

#[test]
fn header_fields_are_checked_where_they_are() {
    // Old version, banner with serial and a trailing NUL: fine.
    assert_eq!(judge(&AdbDetector, &cnxn(0x0100_0000, 4096, b"host:0123:banner\0")), Outcome::Match);
    // Versions 0x01000002 and 0x02000001.
    assert_eq!(refused_after(&cnxn(0x0100_0002, 4096, b"host::\0")), Some(5));
    assert_eq!(refused_after(&cnxn(0x0200_0001, 4096, b"host::\0")), Some(8));
    // No payload limit.
    assert_eq!(refused_after(&cnxn(0x0100_0001, 0, b"host::\0")), Some(12));
    // data_length 4 and 4097.
    assert_eq!(refused_after(&cnxn(0x0100_0001, 4096, b"host")), Some(16));
    let mut too_long = cnxn(0x0100_0001, 4096, b"host::\0");
    too_long[12..16].copy_from_slice(&4097u32.to_le_bytes());
    assert_eq!(refused_after(&too_long), Some(16));
    // Wrong magic.
    assert_eq!(refused_after(&connect_with(MAGIC_AT + 3, 0xb2)), Some(MAGIC_AT + 4));
    // The device's CNXN (`device::`), and an AUTH message.
    assert_eq!(refused_after(&cnxn(0x0100_0001, 4096, b"device::ro.product.name=x;")), Some(HEADER_LEN + 1));
    let mut auth = ADB_CONNECT.to_vec();
    auth[..4].copy_from_slice(b"AUTH");
    assert_eq!(refused_after(&auth), Some(1));
    // `host:` matched case-sensitively.
    assert_eq!(refused_after(&connect_with(HEADER_LEN + 4, b';')), Some(HEADER_LEN + 5));
}

#[test]
fn junk_and_look_alikes_are_refused() {
    let connect = include_bytes!("../../../tests/fixtures/http/curl-CONNECT.bin");
    assert_eq!(refused_after(connect), Some(2));
    assert_eq!(refused_after(b"cnxn"), Some(1));
    assert_eq!(refused_after(b"get / http/1.1\r\n"), Some(1));
    assert_eq!(judge(&AdbDetector, b"get / http/1.1\r\n"), Outcome::No);
    // Length-prefixed junk: zero high bytes look like the empty message for a while.
    for flight in [&b"\x00\x05hello"[..], b"\x00\x00\x00\x08\x04\xd2\x16\x2f\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"] {
        assert_eq!(judge(&AdbDetector, flight), Outcome::No, "{flight:?}");
    }
    for seed in 1..=2000 {
        let flight = crate::testing::xorshift_bytes(seed, 64);
        assert_eq!(judge(&AdbDetector, &flight), Outcome::No, "seed {seed}: {flight:02x?}");
    }
}

#[test]
fn mutated_flights_keep_the_contract() {
    // Every byte of the decisive part set to a few values: `judge` panics if
    // the detector breaks monotonicity or its NeedMore rules.
    for flight in [ADB_CONNECT.to_vec(), quirky_flight()] {
        for at in 0..flight.len().min(HEADER_LEN + CNXN_DECISION + 2) {
            for b in [0x00, 0x01, 0x7f, 0x80, 0xff, flight[at] ^ 0x01] {
                let mut mutated = flight.clone();
                mutated[at] = b;
                judge(&AdbDetector, &mutated);
                judge(&AdbDetector, &mutated[..at + 1]);
            }
        }
    }
}

#[test]
fn builds_from_no_keys_and_refuses_unknown_ones() {
    let kind = registry::kind("adb").expect("registered");
    assert!(kind.build(serde_json::json!({})).is_ok());
    let e = kind.build(serde_json::json!({"quirk": false})).expect_err("unknown key");
    assert!(e.message.contains("quirk"), "{e}");
}
