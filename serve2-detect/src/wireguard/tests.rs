//! `wireguard` on wireguard-go's initiations for two server keys, a real
//! session's keepalives (tests/fixtures/udp/wireguard/) and look-alikes.

use std::sync::Arc;

use super::*;
use crate::fixtures::{slices, udp_foreign, udp_own};
use crate::testing::{Outcome, judge_datagrams, random_datagrams};
use crate::udp_registry::udp_kind;

const FOLDER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/udp/wireguard");

/// The public key `capture.sh` wrote for `who` (client, server1, server2).
fn public_key(who: &str) -> String {
    let keys = std::fs::read_to_string(format!("{FOLDER}/public-keys.txt")).unwrap();
    keys.lines().find_map(|line| line.strip_prefix(&format!("{who} "))).unwrap().to_owned()
}

fn wireguard(conf: serde_json::Value) -> Arc<dyn DatagramDetector> {
    udp_kind("wireguard").unwrap().build(conf).unwrap()
}

fn keyed(who: &str) -> Arc<dyn DatagramDetector> {
    wireguard(serde_json::json!({ "publicKey": public_key(who) }))
}

/// The captures whose file name contains `part`.
fn captures(part: &str) -> Vec<(String, Vec<Vec<u8>>)> {
    let found: Vec<_> = udp_own("wireguard").into_iter().filter(|(name, _)| name.contains(part)).collect();
    assert!(!found.is_empty(), "no capture named *{part}*");
    found
}

#[test]
fn a_keyed_entry_claims_only_initiations_made_for_its_key() {
    for (server, other) in [("server1", "server2"), ("server2", "server1")] {
        let detector = keyed(server);
        for (name, flow) in captures(&format!("initiation-{server}")) {
            assert_eq!(flow[0].len(), INITIATION_LEN);
            assert_eq!(judge_datagrams(detector.as_ref(), &slices(&flow)), Outcome::Match, "{server} on {name}");
        }
        for (name, flow) in captures(&format!("initiation-{other}")) {
            assert_eq!(judge_datagrams(detector.as_ref(), &slices(&flow)), Outcome::No, "{server} on {name}");
        }
        assert_eq!(judge_datagrams(keyed("client").as_ref(), &slices(&captures(server)[0].1)), Outcome::No);
    }
    // The session with server1 opens with an initiation for it.
    let session = &captures("session-server1")[0].1;
    assert_eq!(judge_datagrams(keyed("server1").as_ref(), &slices(session)), Outcome::Match);
    assert_eq!(judge_datagrams(keyed("server2").as_ref(), &slices(session)), Outcome::No);
}

#[test]
fn a_keyless_entry_claims_initiations_and_keepalives_a_keyed_one_no_keepalive() {
    let keyless = wireguard(serde_json::json!({}));
    for (name, flow) in udp_own("wireguard") {
        assert_eq!(judge_datagrams(keyless.as_ref(), &slices(&flow)), Outcome::Match, "{name}");
    }
    let session = &captures("session-server1")[0].1;
    let keepalives: Vec<&Vec<u8>> = session.iter().filter(|d| d[0] == TYPE_TRANSPORT).collect();
    assert!(keepalives.len() >= 2, "the session sent {} keepalives", keepalives.len());
    for (name, flow) in captures("keepalive") {
        assert_eq!(flow[0].len(), KEEPALIVE_LEN);
        assert!(keepalives.contains(&&flow[0]), "{name} is one of the session's keepalives");
        for server in ["server1", "server2"] {
            assert_eq!(judge_datagrams(keyed(server).as_ref(), &slices(&flow)), Outcome::No, "{server} on {name}");
        }
    }
    for keepalive in keepalives {
        assert_eq!(keyless.detect(&[keepalive]), DatagramVerdict::Match);
    }
}

#[test]
fn other_captures_junk_and_damaged_initiations_are_refused() {
    let mut flows = udp_foreign("wireguard");
    flows.extend(random_datagrams(0x3c, 90).into_iter().enumerate().map(|(i, d)| (format!("random #{i}"), vec![d])));
    flows.push(("zeros".into(), vec![vec![0; INITIATION_LEN]]));
    for conf in [serde_json::json!({}), serde_json::json!({ "publicKey": public_key("server1") })] {
        let detector = wireguard(conf.clone());
        for (name, flow) in &flows {
            assert_eq!(judge_datagrams(detector.as_ref(), &slices(flow)), Outcome::No, "{conf} on {name}");
        }
    }
    // Random bytes behind a right-looking header: only a keyless entry is fooled.
    let mut fake = vec![TYPE_INITIATION, 0, 0, 0];
    fake.extend(crate::testing::xorshift_bytes(7, INITIATION_LEN - 4));
    assert_eq!(wireguard(serde_json::json!({})).detect(&[&fake]), DatagramVerdict::Match);
    assert_eq!(keyed("server1").detect(&[&fake]), DatagramVerdict::NoMatch);
    let initiation = &captures("initiation-server1")[0].1[0];
    // mac2 (the last 16 bytes) is zero or a cookie's MAC: not checked.
    for i in 0..MAC1_AT + MAC_LEN {
        let mut flipped = initiation.clone();
        flipped[i] ^= 0x01;
        assert_eq!(keyed("server1").detect(&[&flipped]), DatagramVerdict::NoMatch, "byte {i} flipped");
    }
}

#[test]
fn truncated_datagrams_are_never_claimed() {
    let keyless = wireguard(serde_json::json!({}));
    for (name, flow) in udp_own("wireguard") {
        for datagram in &flow {
            for len in 0..datagram.len() {
                let cut = &datagram[..len];
                for server in ["server1", "server2"] {
                    assert_eq!(keyed(server).detect(&[cut]), DatagramVerdict::NoMatch, "{name} cut to {len}");
                }
                // A 32-byte prefix of an initiation is not a keepalive (type 1).
                assert_eq!(keyless.detect(&[cut]), DatagramVerdict::NoMatch, "{name} cut to {len}");
            }
        }
    }
}

#[test]
fn the_first_datagram_decides() {
    let initiation = &captures("initiation-server1")[0].1[0];
    let detector = keyed("server1");
    assert_eq!(detector.detect(&[]), DatagramVerdict::NeedMore);
    assert_eq!(detector.detect(&[initiation, b"junk"]), DatagramVerdict::Match);
    assert_eq!(detector.detect(&[b"junk", initiation]), DatagramVerdict::NoMatch);
}

#[test]
fn bad_public_keys_are_refused_naming_the_key() {
    let kind = udp_kind("wireguard").unwrap();
    for (key, says) in [("not base64!", "not base64"), ("AAAA", "32 bytes, this one 3"), ("", "32 bytes, this one 0")] {
        let e = kind.build(serde_json::json!({ "publicKey": key })).unwrap_err();
        assert_eq!(e.path, vec![crate::registry::ConfKey::Key("publicKey".into())], "{key}");
        assert!(e.message.contains(says), "{key}: {e}");
    }
    assert!(kind.build(serde_json::json!({ "publicKey": 5 })).is_err());
}
