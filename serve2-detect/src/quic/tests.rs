//! `quic` on real first flights: aioquic v1 and v2 Initials, and quinn's
//! post-quantum ClientHello over two Initials (tests/fixtures/udp/quic/).

use std::sync::Arc;

use super::*;
use crate::fixtures::{slices, udp_foreign, udp_own};
use crate::testing::{
    Outcome, judge_datagrams, random_datagrams, verdict_datagram_by_datagram, verdict_in_every_order,
};
use crate::udp_registry::udp_kind;
use DatagramVerdict::{Match, NeedMore, NoMatch};

fn quic(conf: serde_json::Value) -> Arc<dyn DatagramDetector> {
    udp_kind("quic").unwrap().build(conf).unwrap()
}

fn capture(name: &str) -> Vec<Vec<u8>> {
    let path = format!("udp/quic/{name}.udp");
    udp_own("quic").into_iter().find(|(n, _)| *n == path).unwrap_or_else(|| panic!("no {path}")).1
}

const AIOQUIC_V1: &str = "aioquic-1.7.2-v1-h3";
const AIOQUIC_V2: &str = "aioquic-1.7.2-v2-h3";
const AIOQUIC_RETRANSMITTED: &str = "aioquic-1.7.2-v1-h3-retransmitted";
const QUINN_PQ: &str = "quinn-0.11-rustls-x25519mlkem768-h3";

/// Every capture, the SNI it sends and the ALPN protocols it offers.
const CAPTURES: &[(&str, &str, &[&str])] = &[
    (AIOQUIC_V1, "quic.example.test", &["h3"]),
    (AIOQUIC_V2, "quic.example.test", &["h3"]),
    (AIOQUIC_RETRANSMITTED, "quic.example.test", &["h3", "hq-interop"]),
    (QUINN_PQ, "pq.example.test", &["h3"]),
];

/// Confs that read the ClientHello.
fn decrypting_confs() -> Vec<serde_json::Value> {
    vec![
        serde_json::json!({ "serverNames": ["*.example.test"] }),
        serde_json::json!({ "alpn": ["h3"] }),
        serde_json::json!({ "serverNames": ["quic.example.test", "pq.example.test"], "alpn": ["h3", "h2"] }),
    ]
}

#[test]
fn every_capture_is_known_and_matches_with_and_without_decryption() {
    let own: Vec<String> = udp_own("quic").into_iter().map(|(name, _)| name).collect();
    assert_eq!(own.len(), CAPTURES.len(), "{own:?}");
    for conf in [serde_json::json!({})].into_iter().chain(decrypting_confs()) {
        let detector = quic(conf.clone());
        for (name, _, _) in CAPTURES {
            assert_eq!(judge_datagrams(detector.as_ref(), &slices(&capture(name))), Outcome::Match, "{conf} on {name}");
        }
    }
}

#[test]
fn server_names_route_by_the_decrypted_sni() {
    let table: &[(&[&str], &[&str])] = &[
        (&["quic.example.test"], &[AIOQUIC_V1, AIOQUIC_V2, AIOQUIC_RETRANSMITTED]),
        (&["PQ.Example.Test."], &[QUINN_PQ]),
        (&["*.example.test"], &[AIOQUIC_V1, AIOQUIC_V2, AIOQUIC_RETRANSMITTED, QUINN_PQ]),
        (&["example.test", "other.test"], &[]),
        (&[""], &[]),
    ];
    for (patterns, matching) in table {
        let detector = quic(serde_json::json!({ "serverNames": patterns }));
        for (name, sni, _) in CAPTURES {
            let expected = if matching.contains(name) { Outcome::Match } else { Outcome::No };
            let got = judge_datagrams(detector.as_ref(), &slices(&capture(name)));
            assert_eq!(got, expected, "{patterns:?} on {name} (SNI {sni})");
        }
    }
}

#[test]
fn alpn_matches_any_offered_protocol() {
    for wanted in [&["h3"][..], &["hq-interop"], &["h2", "hq-interop"], &["h2"], &["H3"]] {
        let detector = quic(serde_json::json!({ "alpn": wanted }));
        for (name, _, offered) in CAPTURES {
            let expected = if wanted.iter().any(|w| offered.contains(w)) { Outcome::Match } else { Outcome::No };
            assert_eq!(judge_datagrams(detector.as_ref(), &slices(&capture(name))), expected, "{wanted:?} on {name}");
        }
    }
    let both = quic(serde_json::json!({ "serverNames": ["pq.example.test"], "alpn": ["h2"] }));
    assert_eq!(
        judge_datagrams(both.as_ref(), &slices(&capture(QUINN_PQ))),
        Outcome::No,
        "the name alone is not enough"
    );
}

#[test]
fn a_post_quantum_hello_over_two_initials_needs_both_in_either_order() {
    let flow = capture(QUINN_PQ);
    let [first, second] = [flow[0].as_slice(), flow[1].as_slice()];
    for conf in decrypting_confs() {
        let detector = quic(conf.clone());
        assert_eq!(detector.detect(&[first]), NeedMore, "{conf}");
        assert_eq!(detector.detect(&[second]), NeedMore, "{conf}: the second half alone");
        assert_eq!(detector.detect(&[first, second]), Match, "{conf}");
        assert_eq!(detector.detect(&[second, first]), Match, "{conf}: swapped");
        assert_eq!(verdict_in_every_order(detector.as_ref(), &[first, second]), Match);
        // A retransmission of either half changes nothing.
        assert_eq!(verdict_in_every_order(detector.as_ref(), &[first, first, second]), Match);
    }
    let elsewhere = quic(serde_json::json!({ "serverNames": ["elsewhere.test"] }));
    assert_eq!(elsewhere.detect(&[first]), NeedMore, "the name is in the second half");
    assert_eq!(verdict_in_every_order(elsewhere.as_ref(), &[first, second]), NoMatch);
    // Without decryption the first datagram decides.
    assert_eq!(quic(serde_json::json!({})).detect(&[first]), Match);
}

#[test]
fn an_incomplete_hello_is_refused_after_max_datagrams() {
    let flow = capture(QUINN_PQ);
    let detector = quic(serde_json::json!({ "alpn": ["h3"] }));
    let repeated = vec![flow[0].as_slice(); MAX_DATAGRAMS];
    assert_eq!(detector.detect(&repeated[..MAX_DATAGRAMS - 1]), NeedMore);
    assert_eq!(verdict_datagram_by_datagram(detector.as_ref(), &repeated), NoMatch);
}

#[test]
fn other_captures_random_and_zero_datagrams_are_refused() {
    let mut flows: Vec<(String, Vec<Vec<u8>>)> = udp_foreign("quic");
    flows.extend(random_datagrams(0x51c, 60).into_iter().enumerate().map(|(i, d)| (format!("random #{i}"), vec![d])));
    flows.push(("zeros".into(), vec![vec![0; 1200]]));
    flows.push(("zeros after a long-header byte".into(), vec![[0xc0].into_iter().chain([0; 1250]).collect()]));
    for conf in [serde_json::json!({})].into_iter().chain(decrypting_confs()) {
        let detector = quic(conf.clone());
        for (name, flow) in &flows {
            assert_eq!(judge_datagrams(detector.as_ref(), &slices(flow)), Outcome::No, "{conf} on {name}");
        }
    }
}

#[test]
fn every_truncation_is_refused_never_matched() {
    for conf in [serde_json::json!({})].into_iter().chain(decrypting_confs()) {
        let detector = quic(conf.clone());
        for (name, _, _) in CAPTURES {
            let flow = capture(name);
            for (i, datagram) in flow.iter().enumerate() {
                for len in 0..datagram.len() {
                    let mut cut: Vec<&[u8]> = slices(&flow);
                    cut[i] = &datagram[..len];
                    // Only the first datagram decides without decryption.
                    let verdict = detector.detect(&cut);
                    let decided_before = i > 0 && detector.detect(&cut[..i]) == Match;
                    assert!(decided_before || verdict == NoMatch, "{conf} on {name} #{i} cut to {len}: {verdict:?}");
                }
            }
        }
    }
}

#[test]
fn header_checks_refuse_look_alikes_before_any_decryption() {
    let flow = capture(AIOQUIC_V1);
    let header_only = quic(serde_json::json!({}));
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut d = flow[0].clone();
        edit(&mut d);
        header_only.detect(&[&d])
    };
    assert_eq!(with(&|_| {}), Match);
    assert_eq!(with(&|d| d[0] &= !0x40), Match, "a greased fixed bit (RFC 9287)");
    assert_eq!(with(&|d| d[1..5].copy_from_slice(&[0; 4])), NoMatch, "Version Negotiation");
    assert_eq!(with(&|d| d[1..5].copy_from_slice(&[0xff, 0, 0, 0x1d])), NoMatch, "draft-29");
    assert_eq!(with(&|d| d[1..5].copy_from_slice(&[0x0a, 0x1a, 0x2a, 0x3a])), NoMatch, "a greased version");
    assert_eq!(with(&|d| d[0] = 0x40 | d[0] & 0x3f), NoMatch, "a short header");
    assert_eq!(with(&|d| d[0] = d[0] & !0x30 | 0x20), NoMatch, "a v1 Handshake packet");
    assert_eq!(with(&|d| d[0] = d[0] & !0x30 | 0x10), NoMatch, "a v1 0-RTT packet first");
    // aioquic pads with zeros after its Initial: zeros are padding, anything else is not.
    assert_eq!(with(&|d| d.extend([0; 100])), Match, "more zero padding");
    assert_eq!(with(&|d| *d.last_mut().unwrap() = 1), NoMatch, "a non-zero byte past the last packet");
    assert_eq!(with(&|d| d[5] = 7), NoMatch, "a 7-byte Destination Connection ID");
    assert_eq!(with(&|d| d[5] = 21), NoMatch, "a 21-byte Destination Connection ID");
    // The v2 capture's type bits are 01; 00 (v1's Initial) is a v2 Retry.
    let v2 = capture(AIOQUIC_V2);
    assert_eq!(v2[0][1..5], [0x6b, 0x33, 0x43, 0xcf]);
    assert_eq!(header_only.detect(&[&v2[0]]), Match);
    let mut retry = v2[0].clone();
    retry[0] &= !0x30;
    assert_eq!(header_only.detect(&[&retry]), NoMatch);
}

#[test]
fn a_damaged_or_foreign_initial_does_not_decrypt() {
    let flow = capture(QUINN_PQ);
    let detector = quic(serde_json::json!({ "alpn": ["h3"] }));
    let mut flipped = flow[1].clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert_eq!(detector.detect(&[&flow[0], &flipped]), NoMatch, "bad tag");
    // The other half of another connection: another DCID.
    let other = capture(AIOQUIC_V1);
    assert_eq!(detector.detect(&[&flow[0], &other[0]]), NoMatch);
    // The same DCID in a v2 header: v2 keys do not open a v1 packet.
    let mut relabelled = flow[0].clone();
    relabelled[1..5].copy_from_slice(&[0x6b, 0x33, 0x43, 0xcf]);
    relabelled[0] = relabelled[0] & !0x30 | 0x10;
    assert_eq!(detector.detect(&[&relabelled]), NoMatch);
}

#[test]
fn conf_is_checked_like_tlsroute() {
    let kind = udp_kind("quic").unwrap();
    let error = |conf| kind.build(conf).unwrap_err();
    assert_eq!(
        error(serde_json::json!({ "serverNames": [] })).message,
        "an empty list matches nothing; leave it out for any name"
    );
    assert!(error(serde_json::json!({ "alpn": ["h3", ""] })).message.contains("1 to 255 bytes"));
    assert!(error(serde_json::json!({ "maxHello": 1 })).message.contains("maxHello"));
}

#[test]
fn a_retransmitted_initial_carries_the_same_hello() {
    let flow = capture(AIOQUIC_RETRANSMITTED);
    let streams: Vec<Vec<u8>> = flow
        .iter()
        .map(|datagram| {
            let layout = packet::first_datagram(datagram).unwrap();
            let initial = &layout.packets[0];
            let keys = ClientInitialKeys::derive(initial.version, &datagram[initial.dcid.clone()]).unwrap();
            let (mut stream, mut scratch) = (Reassembly::new(MAX_CRYPTO), Vec::new());
            let frames = initial::open(&keys, datagram, initial, &mut scratch).unwrap();
            initial::read_frames(frames, &mut stream).unwrap();
            stream.contiguous().to_vec()
        })
        .collect();
    assert_eq!(streams[0][0], HANDSHAKE_CLIENT_HELLO);
    assert_eq!(streams[0], streams[1]);
    assert_ne!(flow[0], flow[1], "another packet number, so other ciphertext");
    let detector = quic(serde_json::json!({ "alpn": ["hq-interop"] }));
    assert_eq!(verdict_in_every_order(detector.as_ref(), &slices(&flow)), Match);
}
