//! The same checks for [`DatagramDetector`]s, over a captured list of
//! datagrams, and the fixture format UDP captures are stored in.
//!
//! ```
//! use serve2_detect::testing::{Outcome, judge_datagrams};
//! use serve2_detect::udp_registry::udp_kind;
//!
//! let wireguard = udp_kind("wireguard").unwrap().build(serde_json::json!({})).unwrap();
//! let keepalive = [4, 0, 0, 0].into_iter().chain([0x5a; 28]).collect::<Vec<u8>>();
//! assert_eq!(judge_datagrams(wireguard.as_ref(), &[&keepalive]), Outcome::Match);
//! ```

use super::Outcome;
use crate::{DatagramDetector, DatagramVerdict};

/// Judges every prefix of `datagrams` (from the empty list, which must be
/// `NeedMore`, to the whole list) as the engine would see them arrive, and
/// returns the verdict for the whole list.
///
/// Panics when the detector breaks its contract: decides on no datagram at
/// all, or changes a decided verdict on a longer list.
pub fn verdict_datagram_by_datagram(detector: &dyn DatagramDetector, datagrams: &[&[u8]]) -> DatagramVerdict {
    assert_eq!(detector.detect(&[]), DatagramVerdict::NeedMore, "decided on no datagram");
    let mut decided: Option<(usize, DatagramVerdict)> = None;
    let mut last = DatagramVerdict::NeedMore;
    for end in 1..=datagrams.len() {
        last = detector.detect(&datagrams[..end]);
        match decided {
            Some((at, verdict)) => assert_eq!(last, verdict, "verdict changed between {at} and {end} datagrams"),
            None if last.is_decided() => decided = Some((end, last)),
            None => {}
        }
    }
    last
}

/// [`verdict_datagram_by_datagram`] reduced to match / no / undecided.
pub fn judge_datagrams(detector: &dyn DatagramDetector, datagrams: &[&[u8]]) -> Outcome {
    match verdict_datagram_by_datagram(detector, datagrams) {
        DatagramVerdict::Match => Outcome::Match,
        DatagramVerdict::NoMatch => Outcome::No,
        DatagramVerdict::NeedMore => Outcome::Undecided,
    }
}

/// Judges `datagrams` in every order (each prefix checked as in
/// [`verdict_datagram_by_datagram`]), asserts every order reaches the same
/// verdict, and returns it: for the Initials of a QUIC ClientHello, which
/// the network may reorder. At most 6 datagrams (720 orders).
pub fn verdict_in_every_order(detector: &dyn DatagramDetector, datagrams: &[&[u8]]) -> DatagramVerdict {
    assert!(datagrams.len() <= 6, "{} datagrams: too many orders", datagrams.len());
    let expected = verdict_datagram_by_datagram(detector, datagrams);
    let mut order: Vec<&[u8]> = datagrams.to_vec();
    // Heap's algorithm, iteratively: every permutation once.
    let mut counters = vec![0; order.len()];
    let mut i = 1;
    while i < order.len() {
        if counters[i] < i {
            order.swap(if i % 2 == 0 { 0 } else { counters[i] }, i);
            let verdict = verdict_datagram_by_datagram(detector, &order);
            assert_eq!(verdict, expected, "another order of the datagrams, another verdict");
            counters[i] += 1;
            i = 1;
        } else {
            counters[i] = 0;
            i += 1;
        }
    }
    expected
}

/// Why a UDP capture file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// The file ends inside a length field or a datagram.
    #[error("truncated at byte {0}: a length field or datagram runs past the end")]
    Truncated(usize),
    /// A datagram does not fit the 16-bit length field.
    #[error("a datagram of {0} bytes does not fit a u16 length")]
    TooLong(usize),
}

/// Reads a UDP capture (`tests/fixtures/udp/**.udp`): each datagram as a
/// big-endian `u16` length followed by that many bytes, in arrival order,
/// nothing else.
pub fn decode_datagrams(file: &[u8]) -> Result<Vec<Vec<u8>>, CaptureError> {
    let mut datagrams = Vec::new();
    let mut pos = 0;
    while pos < file.len() {
        let len = file.get(pos..pos + 2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
        let datagram = len.and_then(|len| file.get(pos + 2..pos + 2 + len)).ok_or(CaptureError::Truncated(pos))?;
        datagrams.push(datagram.to_vec());
        pos += 2 + datagram.len();
    }
    Ok(datagrams)
}

/// Writes datagrams in the capture format [`decode_datagrams`] reads.
pub fn encode_datagrams(datagrams: &[&[u8]]) -> Result<Vec<u8>, CaptureError> {
    let mut file = Vec::new();
    for datagram in datagrams {
        let len = u16::try_from(datagram.len()).map_err(|_| CaptureError::TooLong(datagram.len()))?;
        file.extend_from_slice(&len.to_be_bytes());
        file.extend_from_slice(datagram);
    }
    Ok(file)
}

/// Fixed-seed pseudo-random datagrams of assorted lengths (1 to 1500
/// bytes, some of them 148, 32 and 1200, the sizes UDP kinds look for), for
/// negative tests.
pub fn random_datagrams(seed: u64, count: usize) -> Vec<Vec<u8>> {
    const SIZES: [usize; 6] = [148, 32, 1200, 1252, 14, 54];
    (0..count)
        .map(|i| {
            let len = SIZES.get(i % 9).copied().unwrap_or((i * 97) % 1500 + 1);
            super::xorshift_bytes(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15), len)
        })
        .collect()
}

/// Configurations to try each UDP kind with: `{}` (except `regex`, which
/// needs patterns) and a few that exercise its options.
pub fn sample_udp_confs(kind: &str) -> Vec<serde_json::Value> {
    use serde_json::json;
    match kind {
        "quic" => vec![
            json!({}),
            json!({"serverNames": ["*.example.test"]}),
            json!({"alpn": ["h3"]}),
            json!({"serverNames": ["pq.example.test", ""], "alpn": ["h3", "hq-interop"]}),
        ],
        "wireguard" => vec![
            json!({}), // server1 of tests/fixtures/udp/wireguard/public-keys.txt.
            json!({"publicKey": "Yu9Ix/jALBzY9KX6LL04YipJg85b6BzkOC2xAPMWki0="}),
        ],
        "dtls" => vec![json!({}), json!({"serverNames": ["dtls.example.test"]}), json!({"alpn": ["coap"]})],
        "regex" => vec![json!({"patterns": "^\\x01\\x00"}), json!({"patterns": ["(?-u:\\x16\\xfe)", "^GET "]})],
        _ => vec![json!({})],
    }
}

/// Every UDP kind built with each of its [`sample_udp_confs`], named
/// `kind {conf}`.
pub fn sample_datagram_detectors() -> Vec<(String, std::sync::Arc<dyn DatagramDetector>)> {
    crate::udp_registry::UDP_KINDS
        .iter()
        .flat_map(|kind| {
            sample_udp_confs(kind.name).into_iter().map(move |conf| {
                let name = format!("{} {conf}", kind.name);
                let detector = kind.build(conf).unwrap_or_else(|e| panic!("{name}: {e}"));
                (name, detector)
            })
        })
        .collect()
}
