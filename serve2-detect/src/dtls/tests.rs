//! `dtls` on OpenSSL 3.0 and GnuTLS 3.7 ClientHellos
//! (tests/fixtures/udp/dtls/), refragmented ones and look-alikes.

use std::sync::Arc;

use super::*;
use crate::fixtures::{slices, udp_foreign, udp_own};
use crate::testing::{Outcome, judge_datagrams, random_datagrams, verdict_in_every_order};
use crate::udp_registry::udp_kind;
use DatagramVerdict::{Match, NeedMore, NoMatch};

fn dtls(conf: serde_json::Value) -> Arc<dyn DatagramDetector> {
    udp_kind("dtls").unwrap().build(conf).unwrap()
}

/// The single-datagram hello of the capture whose name contains `part`.
fn hello(part: &str) -> Vec<u8> {
    let (_, flow) = udp_own("dtls").into_iter().find(|(name, _)| name.contains(part)).unwrap();
    assert_eq!(flow.len(), 1);
    flow[0].clone()
}

/// `datagram`'s one record re-cut into records of at most `chunk` bytes of
/// hello, each with its own fragment header.
fn refragment(datagram: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let header = &datagram[..RECORD_HEADER];
    let handshake = &datagram[RECORD_HEADER..RECORD_HEADER + DTLS_HANDSHAKE_HEADER];
    let body = &datagram[RECORD_HEADER + DTLS_HANDSHAKE_HEADER..];
    body.chunks(chunk)
        .enumerate()
        .map(|(i, piece)| {
            let offset = u32::try_from(i * chunk).unwrap().to_be_bytes();
            let len = u32::try_from(piece.len()).unwrap().to_be_bytes();
            let mut record = header[..11].to_vec();
            record.extend_from_slice(&u16::try_from(DTLS_HANDSHAKE_HEADER + piece.len()).unwrap().to_be_bytes());
            record.extend_from_slice(&handshake[..6]);
            record.extend_from_slice(&offset[1..]);
            record.extend_from_slice(&len[1..]);
            record.extend_from_slice(piece);
            record
        })
        .collect()
}

#[test]
fn every_real_hello_matches() {
    let own = udp_own("dtls");
    assert_eq!(own.len(), 5);
    for (name, flow) in &own {
        assert_eq!(judge_datagrams(dtls(serde_json::json!({})).as_ref(), &slices(flow)), Outcome::Match, "{name}");
    }
}

#[test]
fn server_names_and_alpn_route_like_tlsroute() {
    let named = |name: &str| name.contains("sni-alpn");
    let table = [
        (serde_json::json!({ "serverNames": ["dtls.example.test"] }), named as fn(&str) -> bool),
        (serde_json::json!({ "serverNames": ["*.example.test"], "alpn": ["coap"] }), named),
        (serde_json::json!({ "alpn": ["webrtc", "h2"] }), |name: &str| name.contains("openssl-3.0-dtls-sni-alpn")),
        (serde_json::json!({ "serverNames": [""] }), |name: &str| !name.contains("sni-alpn")),
        (serde_json::json!({ "serverNames": ["other.test"] }), |_: &str| false),
    ];
    for (conf, expected) in table {
        let detector = dtls(conf.clone());
        for (name, flow) in udp_own("dtls") {
            let want = if expected(&name) { Outcome::Match } else { Outcome::No };
            assert_eq!(judge_datagrams(detector.as_ref(), &slices(&flow)), want, "{conf} on {name}");
        }
    }
}

#[test]
fn a_fragmented_hello_is_reassembled_across_datagrams_in_any_order() {
    let records = refragment(&hello("gnutls-3.7-cli-udp-sni"), 90);
    assert_eq!(records.len(), 3);
    let named = dtls(serde_json::json!({ "serverNames": ["dtls.example.test"] }));
    let other = dtls(serde_json::json!({ "serverNames": ["other.test"] }));
    let any = dtls(serde_json::json!({}));
    // Two records in the first datagram, one in the second.
    let first = [records[0].clone(), records[1].clone()].concat();
    let flow = [first.as_slice(), records[2].as_slice()];
    assert_eq!(named.detect(&flow[..1]), NeedMore);
    assert_eq!(named.detect(&flow), Match);
    assert_eq!(other.detect(&flow), NoMatch);
    assert_eq!(any.detect(&flow[..1]), Match, "the headers decide without names");
    // One record per datagram, in every order.
    let apart: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    assert_eq!(verdict_in_every_order(named.as_ref(), &apart), Match);
    assert_eq!(verdict_in_every_order(other.as_ref(), &apart), NoMatch);
    assert_eq!(verdict_in_every_order(any.as_ref(), &apart), Match);
    // Never completed: refused after MAX_DATAGRAMS.
    let stuck = vec![apart[0]; MAX_DATAGRAMS];
    assert_eq!(named.detect(&stuck[..MAX_DATAGRAMS - 1]), NeedMore);
    assert_eq!(named.detect(&stuck), NoMatch);
}

#[test]
fn look_alikes_are_refused() {
    let good = hello("openssl-3.0-dtls1_2");
    let any = dtls(serde_json::json!({}));
    let with = |at: usize, value: u8| {
        let mut d = good.clone();
        d[at] = value;
        any.detect(&[&d])
    };
    assert_eq!(any.detect(&[&good]), Match);
    assert_eq!(with(0, 23), NoMatch, "application data");
    assert_eq!(with(2, 0xfe), NoMatch, "version fe fe");
    assert_eq!(with(4, 1), NoMatch, "epoch 1");
    assert_eq!(with(13, 3), NoMatch, "HelloVerifyRequest");
    assert_eq!(with(18, 1), NoMatch, "message_seq 1: the hello after a HelloVerifyRequest");
    assert_eq!(with(24, good[24] - 1), NoMatch, "fragment shorter than its record");
    assert_eq!(with(25, 3), NoMatch, "client version 03 xx");
    assert_eq!(with(RECORD_HEADER + DTLS_HANDSHAKE_HEADER + 34, 33), NoMatch, "a 33-byte session id");
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(any.detect(&[&trailing]), NoMatch, "a byte after the last record");
    // A TLS ClientHello is not a DTLS one.
    let tls =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/openssl3-s_client-clienthello.bin"));
    assert_eq!(any.detect(&[&tls.unwrap()]), NoMatch);
}

#[test]
fn other_captures_junk_and_truncations_are_refused() {
    let mut flows = udp_foreign("dtls");
    flows.extend(random_datagrams(0xd7, 90).into_iter().enumerate().map(|(i, d)| (format!("random #{i}"), vec![d])));
    flows.push(("zeros".into(), vec![vec![0; 200]]));
    let confs = [serde_json::json!({}), serde_json::json!({ "serverNames": ["*.example.test", ""] })];
    for conf in confs {
        let detector = dtls(conf.clone());
        for (name, flow) in &flows {
            assert_eq!(judge_datagrams(detector.as_ref(), &slices(flow)), Outcome::No, "{conf} on {name}");
        }
        for (name, flow) in udp_own("dtls") {
            for len in 0..flow[0].len() {
                assert_eq!(detector.detect(&[&flow[0][..len]]), NoMatch, "{conf} on {name} cut to {len}");
            }
        }
    }
}
