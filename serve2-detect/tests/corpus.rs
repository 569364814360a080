//! Every kind against every captured first flight: each flight is claimed
//! by its own kind and refused by every other, whole and one byte per write
//! (`testing::judge` checks every prefix too). Flights no kind may claim
//! live in `tests/fixtures/negative/`, beside synthetic junk made here.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use serve2_detect::Detector;
use serve2_detect::registry::KINDS;
use serve2_detect::testing::{Outcome, judge, xorshift_bytes};

/// The kind a fixture belongs to (`None`: no kind may claim it), by folder;
/// the oldest captures lie at the top level.
fn expected_kind(path: &Path) -> Option<&'static str> {
    let folder = path.parent()?.file_name()?.to_str()?;
    let name = path.file_name()?.to_str()?;
    match folder {
        "fixtures" if name.contains("clienthello") => Some("tlsroute"),
        "fixtures" if name.starts_with("openssh") => Some("ssh"),
        "fixtures" if name.contains("h2-prior-knowledge") => Some("h2c"),
        "http" | "httproute" => Some("httproute"),
        "tls" => Some("tlsroute"),
        "negative" => None,
        other => Some(KINDS.iter().find(|k| k.name == other).unwrap_or_else(|| panic!("folder {other}")).name),
    }
}

fn flights() -> Vec<(String, Option<&'static str>, Vec<u8>)> {
    common::captured_flights()
        .into_iter()
        .map(|(name, flight)| {
            let expected = expected_kind(&common::fixtures().join(&name));
            (name, expected, flight)
        })
        .collect()
}

/// Junk no kind may claim.
fn synthetic_negatives() -> Vec<(String, Vec<u8>)> {
    let mut junk: Vec<(String, Vec<u8>)> = (0..200u64)
        .map(|i| (format!("random #{i}"), xorshift_bytes(0x9e37_79b9_7f4a_7c15 ^ i, (i as usize * 37) % 300 + 1)))
        .collect();
    junk.push(("zeros".into(), vec![0; 200]));
    junk.push(("length-prefixed junk".into(), b"\x00\x05hello".to_vec()));
    junk.push(("lower-case HTTP".into(), b"get / http/1.1\r\nhost: x\r\n\r\n".to_vec()));
    junk.push(("SOCKS4".into(), b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00".to_vec()));
    junk.push((
        "DNS over TCP".into(),
        b"\x00\x1d\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x04test\x00\x00\x01\x00\x01".to_vec(),
    ));
    junk
}

/// Every registry kind with no options, except `regex` (it is whatever its
/// patterns say).
fn detectors() -> Vec<(&'static str, Arc<dyn Detector>)> {
    KINDS.iter().filter(|k| k.name != "regex").map(|k| (k.name, k.build(serde_json::json!({})).unwrap())).collect()
}

#[test]
fn every_flight_is_claimed_by_its_kind_alone() {
    let flights = flights();
    let detectors = detectors();
    let mut wrong = Vec::new();
    for (name, expected, flight) in &flights {
        for (kind, detector) in &detectors {
            let outcome = judge(detector.as_ref(), flight);
            let want = if Some(*kind) == *expected { Outcome::Match } else { Outcome::No };
            if outcome != want {
                wrong.push(format!("{name}: {kind} says {outcome:?}, expected {want:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{} wrong verdicts:\n{}", wrong.len(), wrong.join("\n"));
    // Every kind but regex has real captures.
    for (kind, _) in &detectors {
        assert!(flights.iter().any(|(_, expected, _)| expected == &Some(*kind)), "no capture for {kind}");
    }
}

#[test]
fn junk_is_refused_by_every_kind() {
    for (name, flight) in synthetic_negatives() {
        for (kind, detector) in detectors() {
            let outcome = judge(detector.as_ref(), &flight);
            // Random bytes may stay undecided only within a kind's cap; a
            // claim is always wrong.
            assert_ne!(outcome, Outcome::Match, "{kind} claims {name}: {flight:02x?}");
        }
    }
}
