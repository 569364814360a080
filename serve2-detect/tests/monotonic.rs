//! Every detector is monotonic and keeps the `NeedMore` contract on every
//! prefix: each registry kind (with a few fixed confs) and the builtin
//! detectors, over every captured first flight and a few thousand
//! pseudo-random mutations of them (fixed seed, so failures reproduce).
//!
//! `testing::verdict_byte_by_byte` judges each prefix until the first
//! decided one (a `NeedMore` must ask for more than it has, `max >= min`),
//! then `assert_monotonic_from` checks every longer prefix gets the same
//! verdict. The fuzz target `detectors` (fuzz/) checks the same table on
//! arbitrary bytes; keep the two tables alike.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::Rng;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use serve2_detect::registry::KINDS;
use serve2_detect::testing::verdict_byte_by_byte;
use serve2_detect::{
    ClientHelloDetector, DetectContext, Detector, HttpDetector, MagicDetector, NeverDetector, TlsInfo, TlsStateMatcher,
};

/// A detector, its name, and the TLS session it runs inside (if any).
struct Subject {
    name: String,
    detector: Arc<dyn Detector>,
    tls: Option<TlsInfo>,
}

fn subject(name: impl Into<String>, detector: Arc<dyn Detector>, tls: Option<TlsInfo>) -> Subject {
    Subject { name: name.into(), detector, tls }
}

fn subjects() -> Vec<Subject> {
    let mut subjects = Vec::new();
    for kind in KINDS {
        for conf in serve2_detect::testing::sample_confs(kind.name) {
            let name = format!("{} {conf}", kind.name);
            let detector = kind.build(conf).unwrap_or_else(|e| panic!("{name}: {e}"));
            subjects.push(subject(name, detector, None));
        }
    }
    let session = |name: Option<&str>, alpn: Option<&[u8]>| {
        Some(TlsInfo { server_name: name.map(str::to_owned), alpn: alpn.map(<[u8]>::to_vec) })
    };
    subjects.extend([
        subject("magic SSH-", Arc::new(MagicDetector::new(["SSH-"]).unwrap()), None),
        subject(
            "magic ECHO DISCARD SSH-2.0-OpenSSH",
            Arc::new(MagicDetector::new(["ECHO", "DISCARD", "SSH-2.0-OpenSSH"]).unwrap()),
            None,
        ),
        subject("http", Arc::new(HttpDetector), None),
        subject("tls", Arc::new(ClientHelloDetector), None),
        subject("tlsmatcher any, in TLS", Arc::new(TlsStateMatcher::new()), session(Some("example.test"), Some(b"h2"))),
        subject(
            "tlsmatcher *.example.test h2|none",
            Arc::new(TlsStateMatcher::new().server_names(["*.example.test"]).negotiated_protocols(["h2", ""])),
            session(Some("a.example.test"), None),
        ),
        subject(
            "tlsmatcher mutual",
            Arc::new(TlsStateMatcher::new().negotiated_protocol_is_mutual(true)),
            session(None, Some(b"http/1.1")),
        ),
        subject("tlsmatcher outside TLS", Arc::new(TlsStateMatcher::new()), None),
        subject("never", Arc::new(NeverDetector), None),
    ]);
    subjects
}

/// Judges `flight` with every subject; returns the breaches as messages.
fn breaches(subjects: &[Subject], label: &str, flight: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for subject in subjects {
        let ctx = DetectContext { tls: subject.tls.as_ref(), depth: u8::from(subject.tls.is_some()) };
        let judged = catch_unwind(AssertUnwindSafe(|| verdict_byte_by_byte(subject.detector.as_ref(), flight, &ctx)));
        if let Err(panic) = judged {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            found.push(format!("{}: {label}: {message}\n    flight: {flight:02x?}", subject.name));
        }
    }
    found
}

/// Bytes that matter to the detectors' grammars.
const INTERESTING: &[u8] = b"\x00\x01\x02\x03\x04\x10\x16\x80\xff\r\n :./-<>?";

/// The longest mutant: every prefix of a flight costs O(n²) detector work.
const MAX_MUTANT: usize = 384;

/// One to four random edits of `base`, sometimes spliced with `other`.
fn mutate(rng: &mut Rng, base: &[u8], other: &[u8]) -> Vec<u8> {
    let mut bytes = base.to_vec();
    // Mostly keep the head, where the detectors decide; sometimes start
    // somewhere inside a long flight.
    if bytes.len() > MAX_MUTANT && rng.below(4) == 0 {
        bytes.drain(..rng.below(bytes.len() - MAX_MUTANT));
    }
    bytes.truncate(MAX_MUTANT);
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(8) {
            0 if at < bytes.len() => bytes[at] ^= 1 << rng.below(8),
            1 if at < bytes.len() => bytes[at] = rng.next() as u8,
            2 if at < bytes.len() => bytes[at] = INTERESTING[rng.below(INTERESTING.len())],
            3 => bytes.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            4 if at < bytes.len() => {
                bytes.remove(at);
            }
            5 => bytes.truncate(at),
            6 => {
                // Repeat a short run (length fields, CRLFs, labels).
                let end = (at + 1 + rng.below(8)).min(bytes.len());
                let run: Vec<u8> = bytes[at.min(end)..end].to_vec();
                bytes.splice(at..at, run);
            }
            _ => {
                let from = rng.below(other.len());
                let tail = &other[from..(from + 1 + rng.below(64)).min(other.len())];
                bytes.truncate(at);
                bytes.extend_from_slice(tail);
            }
        }
    }
    bytes.truncate(MAX_MUTANT);
    bytes
}

#[test]
fn every_detector_is_monotonic_on_every_prefix_of_every_capture() {
    let subjects = subjects();
    let mut found = Vec::new();
    for (name, flight) in common::captured_flights() {
        found.extend(breaches(&subjects, &name, &flight));
    }
    assert!(found.is_empty(), "{} contract breaches:\n{}", found.len(), found.join("\n"));
}

#[test]
fn every_detector_is_monotonic_on_mutated_captures() {
    const MUTANTS: usize = 3000;
    let subjects = subjects();
    let flights = common::captured_flights();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut found = Vec::new();
    for i in 0..MUTANTS {
        let (name, base) = &flights[i % flights.len()];
        let (_, other) = &flights[rng.below(flights.len())];
        let mutant = mutate(&mut rng, base, other);
        found.extend(breaches(&subjects, &format!("mutant #{i} of {name}"), &mutant));
        if found.len() > 20 {
            break;
        }
    }
    assert!(found.is_empty(), "{} contract breaches:\n{}", found.len(), found.join("\n"));
}
