//! Every UDP kind against every captured UDP flow: each flow is claimed by
//! its own kind and refused by every other, judged after every datagram
//! (`testing::judge_datagrams` checks monotonicity on the way). Flows no
//! kind may claim live in `tests/fixtures/udp/negative/`, beside junk made
//! here; every TCP capture, sent as one datagram, must be refused too. Then
//! the contract (no panic, monotonic) on a few thousand fixed-seed mutations
//! of the captures, for every sample conf.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::Rng;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use serve2_detect::DatagramDetector;
use serve2_detect::testing::{
    Outcome, judge_datagrams, random_datagrams, sample_datagram_detectors, verdict_datagram_by_datagram, xorshift_bytes,
};
use serve2_detect::udp_registry::UDP_KINDS;

/// The kind a flow belongs to (`None`: no kind may claim it), by folder.
fn expected_kind(name: &str) -> Option<&'static str> {
    let folder = name.strip_prefix("udp/")?.split('/').next()?;
    match folder {
        "negative" => None,
        other => Some(UDP_KINDS.iter().find(|k| k.name == other).unwrap_or_else(|| panic!("folder {other}")).name),
    }
}

/// Every UDP kind with no options, except `regex` (it is whatever its
/// patterns say).
fn detectors() -> Vec<(&'static str, Arc<dyn DatagramDetector>)> {
    UDP_KINDS.iter().filter(|k| k.name != "regex").map(|k| (k.name, k.build(serde_json::json!({})).unwrap())).collect()
}

fn slices(flow: &[Vec<u8>]) -> Vec<&[u8]> {
    flow.iter().map(Vec::as_slice).collect()
}

#[test]
fn every_flow_is_claimed_by_its_kind_alone() {
    let flows = common::captured_udp_flows();
    let detectors = detectors();
    let mut wrong = Vec::new();
    for (name, flow) in &flows {
        let expected = expected_kind(name);
        for (kind, detector) in &detectors {
            let outcome = judge_datagrams(detector.as_ref(), &slices(flow));
            let want = if Some(*kind) == expected { Outcome::Match } else { Outcome::No };
            if outcome != want {
                wrong.push(format!("{name}: {kind} says {outcome:?}, expected {want:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{} wrong verdicts:\n{}", wrong.len(), wrong.join("\n"));
    for (kind, _) in &detectors {
        assert!(flows.iter().any(|(name, _)| expected_kind(name) == Some(*kind)), "no capture for {kind}");
    }
    assert!(flows.iter().any(|(name, _)| expected_kind(name).is_none()), "no negative capture");
}

#[test]
fn junk_and_tcp_first_flights_are_refused_by_every_kind() {
    let mut junk: Vec<(String, Vec<Vec<u8>>)> = random_datagrams(0x9e37_79b9, 300)
        .into_iter()
        .enumerate()
        .map(|(i, datagram)| (format!("random #{i}"), vec![datagram]))
        .collect();
    junk.push(("zeros".into(), vec![vec![0; 1200]]));
    junk.push(("an empty datagram".into(), vec![Vec::new()]));
    junk.push(("two random datagrams".into(), vec![xorshift_bytes(1, 1200), xorshift_bytes(2, 1200)]));
    junk.extend(common::captured_flights().into_iter().map(|(name, flight)| (name, vec![flight])));
    for (name, flow) in &junk {
        for (kind, detector) in detectors() {
            let outcome = judge_datagrams(detector.as_ref(), &slices(flow));
            assert_eq!(outcome, Outcome::No, "{kind} on {name}");
        }
    }
}

/// One to three edits of a flow: a byte flipped or set, a datagram cut,
/// dropped, repeated, swapped with the next or taken from another flow.
fn mutate(rng: &mut Rng, flow: &[Vec<u8>], other: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut flow = flow.to_vec();
    for _ in 0..=rng.below(3) {
        let i = rng.below(flow.len());
        let len = flow[i].len();
        match rng.below(7) {
            0 if len > 0 => flow[i][rng.below(len)] ^= 1 << rng.below(8),
            1 if len > 0 => flow[i][rng.below(len)] = rng.next() as u8,
            2 => flow[i].truncate(rng.below(len + 1)),
            3 if flow.len() > 1 => {
                flow.remove(i);
            }
            4 => flow.insert(i, flow[i].clone()),
            5 if i + 1 < flow.len() => flow.swap(i, i + 1),
            _ => flow.insert(i, other[rng.below(other.len())].clone()),
        }
    }
    flow
}

#[test]
fn verdicts_stay_monotonic_on_mutated_flows() {
    let flows = common::captured_udp_flows();
    let detectors = sample_datagram_detectors();
    let mut rng = Rng(0x5eed_0dd5);
    let mut breaches = Vec::new();
    for round in 0..400 {
        let (name, flow) = &flows[round % flows.len()];
        let other = &flows[rng.below(flows.len())].1;
        let mutant = mutate(&mut rng, flow, other);
        for (detector_name, detector) in &detectors {
            let judged =
                catch_unwind(AssertUnwindSafe(|| verdict_datagram_by_datagram(detector.as_ref(), &slices(&mutant))));
            if let Err(panic) = judged {
                let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
                breaches.push(format!("{detector_name} on a mutant of {name} (round {round}): {message}"));
            }
        }
    }
    assert!(breaches.is_empty(), "{} breaches:\n{}", breaches.len(), breaches.join("\n"));
}
