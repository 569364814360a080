//! Checks that a detector's verdict does not depend on how the input was
//! segmented: use them on captured first flights of your own detectors.
//!
//! ```
//! use serve2_detect::testing::assert_segmentation_independent;
//! use serve2_detect::{DetectContext, MagicDetector, Verdict};
//!
//! let ssh = MagicDetector::new(["SSH-"]).expect("non-empty");
//! let verdict = assert_segmentation_independent(&ssh, b"SSH-2.0-OpenSSH_9.2\r\n", &DetectContext::default());
//! assert!(verdict.is_match());
//! ```

use crate::{DetectContext, Detector, Verdict};

/// Runs `detector` over every prefix of `flight`, as the engine would see
/// them when the client sends one byte per write, and returns the verdict
/// reached at the first decisive prefix (or the verdict for the whole
/// flight when none is).
///
/// Panics when the detector breaks its contract: asks for no more than it
/// has, gives a `max` below its `min`, or changes a decided verdict on a
/// longer prefix.
pub fn verdict_byte_by_byte(detector: &dyn Detector, flight: &[u8], ctx: &DetectContext<'_>) -> Verdict {
    let mut last = Verdict::need(1);
    for end in 0..=flight.len() {
        let verdict = detector.detect(&flight[..end], ctx);
        if let Verdict::NeedMore(need) = verdict {
            assert!(need.min > end, "NeedMore(min {}) must exceed the {end} bytes buffered", need.min);
            assert!(need.max >= need.min, "NeedMore max {} below min {}", need.max, need.min);
        } else {
            assert_monotonic_from(detector, flight, end, verdict, ctx);
            return verdict;
        }
        last = verdict;
    }
    last
}

/// Asserts that every prefix of `flight` from `end` bytes on gets `verdict`.
pub fn assert_monotonic_from(
    detector: &dyn Detector,
    flight: &[u8],
    end: usize,
    verdict: Verdict,
    ctx: &DetectContext<'_>,
) {
    for longer in end..=flight.len() {
        assert_eq!(
            detector.detect(&flight[..longer], ctx),
            verdict,
            "verdict changed between {end} and {longer} bytes"
        );
    }
}

/// Asserts the whole flight and the byte-by-byte run agree, and returns the
/// verdict.
pub fn assert_segmentation_independent(detector: &dyn Detector, flight: &[u8], ctx: &DetectContext<'_>) -> Verdict {
    let whole = detector.detect(flight, ctx);
    let split = verdict_byte_by_byte(detector, flight, ctx);
    assert_eq!(whole, split, "whole flight and one byte per write disagree");
    whole
}

/// Like [`assert_segmentation_independent`] with no connection context,
/// reduced to match / no / undecided (what was learned is not compared).
pub fn judge(detector: &dyn Detector, flight: &[u8]) -> Outcome {
    match assert_segmentation_independent(detector, flight, &DetectContext::default()) {
        Verdict::Match(_) => Outcome::Match,
        Verdict::NoMatch => Outcome::No,
        Verdict::NeedMore(_) => Outcome::Undecided,
    }
}

/// A verdict without its details, for tables of expectations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Matched.
    Match,
    /// Refused.
    No,
    /// Still asking for more at the end of the flight.
    Undecided,
}

/// Fixed-seed pseudo-random bytes (xorshift64): junk that is the same on
/// every run, for negative tests.
pub fn xorshift_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Configurations to try each routed kind with: `{}` (except `regex`,
/// which needs patterns) and a few that exercise its options.
pub fn sample_confs(kind: &str) -> Vec<serde_json::Value> {
    use serde_json::json;
    match kind {
        "tlsroute" => vec![
            json!({}),
            json!({"serverNames": ["example.test"]}),
            json!({"serverNames": ["*.example.test", ""]}),
            json!({"alpn": ["h2"]}),
            json!({"serverNames": ["pq.example.test", "localhost"], "alpn": ["h2", "http/1.1"]}),
            json!({"maxHello": 600}),
        ],
        "httproute" => vec![
            json!({}),
            json!({"hosts": ["localhost"]}),
            json!({"hosts": ["*.example.test", "127.0.0.1"]}),
            json!({"hosts": ["*", ""]}),
        ],
        "regex" => vec![
            json!({"patterns": "^SSH-"}),
            json!({"patterns": ["^GET /", "^\\x16\\x03[\\x00-\\x04]"]}),
            json!({"patterns": "HTTP/1\\.[01]\\r\\n"}),
            json!({"patterns": "(?m)^Host: [a-z.]+$"}),
            json!({"patterns": "^(?-u:\\w){3,8}\\b"}),
        ],
        _ => vec![json!({})],
    }
}

/// Every routed kind built with each of its [`sample_confs`], named
/// `kind {conf}`.
pub fn sample_detectors() -> Vec<(String, std::sync::Arc<dyn Detector>)> {
    crate::registry::KINDS
        .iter()
        .flat_map(|kind| {
            sample_confs(kind.name).into_iter().map(move |conf| {
                let name = format!("{} {conf}", kind.name);
                let detector = kind.build(conf).unwrap_or_else(|e| panic!("{name}: {e}"));
                (name, detector)
            })
        })
        .collect()
}

mod udp;
pub use udp::{
    CaptureError, decode_datagrams, encode_datagrams, judge_datagrams, random_datagrams, sample_datagram_detectors,
    sample_udp_confs, verdict_datagram_by_datagram, verdict_in_every_order,
};
