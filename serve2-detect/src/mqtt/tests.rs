use super::*;
use crate::registry;
use crate::testing::{Outcome, judge};

macro_rules! capture {
    ($file:literal) => {
        ($file, include_bytes!(concat!("../../../tests/fixtures/mqtt/", $file)).as_slice())
    };
}

/// Real first flights (tests/fixtures/mqtt/README.md says how each was captured).
const CAPTURES: &[(&str, &[u8])] = &[
    capture!("mosquitto_pub-v31.bin"),
    capture!("mosquitto_pub-v311.bin"),
    capture!("mosquitto_pub-v5.bin"),
    capture!("mosquitto_sub-v5-clientid.bin"),
    capture!("mosquitto_sub-v31-will.bin"),
    capture!("mosquitto_pub-v311-userpass.bin"),
    capture!("mosquitto_pub-v5-userpass.bin"),
    capture!("mosquitto_pub-v5-longwill.bin"),
    capture!("mosquitto-bridge-v31.bin"),
    capture!("mosquitto-bridge-v311.bin"),
    capture!("mosquitto-bridge-v5.bin"),
];

const V311: &[u8] = include_bytes!("../../../tests/fixtures/mqtt/mosquitto_pub-v311.bin");
const V31: &[u8] = include_bytes!("../../../tests/fixtures/mqtt/mosquitto_pub-v31.bin");
const LONG_WILL: &[u8] = include_bytes!("../../../tests/fixtures/mqtt/mosquitto_pub-v5-longwill.bin");

fn detect(prefix: &[u8]) -> Verdict {
    MqttDetector.detect(prefix, &DetectContext::default())
}

/// The length of the shortest prefix of `flight` the detector refuses.
fn refused_after(flight: &[u8]) -> Option<usize> {
    (0..=flight.len()).find(|&n| detect(&flight[..n]) == Verdict::NoMatch)
}

/// The length of the shortest prefix of `flight` the detector matches.
fn matched_after(flight: &[u8]) -> Option<usize> {
    (0..=flight.len()).find(|&n| detect(&flight[..n]).is_match())
}

/// `V311` with byte `at` replaced by `b`.
fn v311_with(at: usize, b: u8) -> Vec<u8> {
    let mut flight = V311.to_vec();
    flight[at] = b;
    flight
}

#[test]
fn real_captures_match_at_the_connect_flags() {
    for (name, flight) in CAPTURES {
        assert_eq!(judge(&MqttDetector, flight), Outcome::Match, "{name}");
    }
    // 1 + 1 (length) + 6 (name) + level + flags; MQIsdp is two bytes longer.
    assert_eq!(matched_after(V311), Some(10));
    assert_eq!(matched_after(V31), Some(12));
    // A two-byte Remaining Length (203), and more than the default maxRead.
    assert!(LONG_WILL.len() > 128);
    assert_eq!(matched_after(LONG_WILL), Some(11));
}

#[test]
fn undecided_asks_for_the_next_byte_and_at_most_the_decision() {
    assert_eq!(detect(b""), Verdict::need_up_to(1, MAX_DECISION));
    assert_eq!(detect(&V311[..2]), Verdict::need_up_to(3, 2 + MQISDP.len() + 2));
    assert_eq!(detect(&V311[..4]), Verdict::need_up_to(5, 2 + MQTT.len() + 2));
}

#[test]
fn remaining_length_encodings() {
    // Overlong: 12 spelled in two bytes.
    let mut overlong = vec![0x10, 0x8c, 0x00];
    overlong.extend_from_slice(&V311[2..]);
    assert_eq!(refused_after(&overlong), Some(3));
    // Five bytes.
    assert_eq!(refused_after(&[0x10, 0xff, 0xff, 0xff, 0xff, 0x7f]), Some(5));
    // The largest length, 268,435,455, in four bytes.
    let mut largest = vec![0x10, 0xff, 0xff, 0xff, 0x7f];
    largest.extend_from_slice(&V311[2..]);
    assert_eq!(judge(&MqttDetector, &largest), Outcome::Match);
    // Too short for any CONNECT: refused on the length.
    assert_eq!(refused_after(&v311_with(1, 11)), Some(2));
    assert_eq!(refused_after(&v311_with(1, 0)), Some(2));
    // Long enough for 3.1.1 but not for MQIsdp, which needs 14: refused on the level.
    let mut short_v31 = V31.to_vec();
    short_v31[1] = 13;
    assert_eq!(refused_after(&short_v31), Some(11));
}

#[test]
fn protocol_names_and_levels() {
    // MQTT 3.1.1 name with the 3.1 level, and the other way round.
    assert_eq!(refused_after(&v311_with(8, 3)), Some(9));
    let mut v31_level4 = V31.to_vec();
    v31_level4[10] = 4;
    assert_eq!(refused_after(&v31_level4), Some(11));
    // Levels 6 and 0, a bridge bit on MQTT 5.
    for level in [6, 0, 0x85] {
        assert_eq!(refused_after(&v311_with(8, level)), Some(9), "{level:#x}");
    }
    // Lower-case name, wrong name length.
    assert_eq!(refused_after(&v311_with(4, b'm')), Some(5));
    assert_eq!(refused_after(&v311_with(3, 5)), Some(4));
    assert_eq!(refused_after(&v311_with(2, 1)), Some(3));
}

#[test]
fn connect_flags() {
    let flags = |f: u8| judge(&MqttDetector, &v311_with(9, f));
    assert_eq!(flags(0x02), Outcome::Match, "clean session");
    assert_eq!(flags(0xc2), Outcome::Match, "user name and password");
    assert_eq!(flags(0x2e), Outcome::Match, "will, QoS 1, retained");
    assert_eq!(flags(0x03), Outcome::No, "reserved bit");
    assert_eq!(flags(0x1e), Outcome::No, "will QoS 3");
    assert_eq!(flags(0x0a), Outcome::No, "will QoS without will");
    assert_eq!(flags(0x22), Outcome::No, "will retain without will");
    assert_eq!(flags(0x42), Outcome::No, "password without user name before MQTT 5");
    assert_eq!(refused_after(&v311_with(9, 0x01)), Some(10));
    // MQTT 5 allows a password without a user name.
    let v5 = include_bytes!("../../../tests/fixtures/mqtt/mosquitto_pub-v5.bin");
    let mut password_only = v5.to_vec();
    password_only[9] = 0x42;
    assert_eq!(judge(&MqttDetector, &password_only), Outcome::Match);
}

#[test]
fn other_packets_junk_and_look_alikes_are_refused() {
    // CONNACK, PUBLISH, PINGREQ, DISCONNECT, CONNECT with flags set.
    for first in [0x20, 0x30, 0xc0, 0xe0, 0x11, 0x18] {
        assert_eq!(refused_after(&v311_with(0, first)), Some(1), "{first:#x}");
    }
    let zeros = [0u8; 128];
    assert_eq!(judge(&MqttDetector, &zeros), Outcome::No);
    assert_eq!(refused_after(&zeros), Some(1));
    assert_eq!(refused_after(b"get / http/1.1\r\n"), Some(1));
    for flight in [&b"\x00\x05hello"[..], b"\x00\x00\x00\x10\x00\x03\x00\x00", b"\x10\x00", b"\x10\x02\x00\x04"] {
        assert_eq!(judge(&MqttDetector, flight), Outcome::No, "{flight:?}");
    }
    for seed in 1..=2000 {
        let flight = crate::testing::xorshift_bytes(seed, 64);
        assert_eq!(judge(&MqttDetector, &flight), Outcome::No, "seed {seed}: {flight:02x?}");
    }
}

#[test]
fn mutated_captures_keep_the_contract() {
    // Every byte of the decisive part of each capture set to a few values:
    // `judge` panics if the detector breaks monotonicity or its NeedMore rules.
    for (_, flight) in CAPTURES {
        for at in 0..flight.len().min(MAX_DECISION + 2) {
            for b in [0x00, 0x01, 0x7f, 0x80, 0xff, flight[at] ^ 0x01] {
                let mut mutated = flight.to_vec();
                mutated[at] = b;
                judge(&MqttDetector, &mutated);
                judge(&MqttDetector, &mutated[..at + 1]);
            }
        }
    }
}

#[test]
fn builds_from_no_keys_and_refuses_unknown_ones() {
    let kind = registry::kind("mqtt").expect("registered");
    assert!(kind.build(serde_json::json!({})).is_ok());
    let e = kind.build(serde_json::json!({"versions": [5]})).expect_err("unknown key");
    assert!(e.message.contains("versions"), "{e}");
}
