use super::*;
use crate::testing::{Outcome as Judged, judge};

macro_rules! fixture {
    ($dir:literal, $name:literal) => {
        ($name, include_bytes!(concat!("../../../tests/fixtures/", $dir, "/", $name, ".bin")).as_slice())
    };
}

const PLAIN: &[u8] = fixture!("openvpn", "openvpn-2.6-plain").1;
const TLS_AUTH: &[u8] = fixture!("openvpn", "openvpn-2.6-tls-auth").1;
const TLS_CRYPT: &[u8] = fixture!("openvpn", "openvpn-2.6-tls-crypt").1;
const TLS_CRYPT_V2: &[u8] = fixture!("openvpn", "openvpn-2.6-tls-crypt-v2").1;

/// Real TLS-mode first flights, and the prefix length each is decided at.
const TLS_MODES: &[((&str, &[u8]), usize)] = &[
    (fixture!("openvpn", "openvpn-2.6-plain"), 16),
    (fixture!("openvpn", "openvpn-2.6-tls-auth"), 44),
    (fixture!("openvpn", "openvpn-2.6-tls-auth-sha256"), 56),
    (fixture!("openvpn", "openvpn-2.6-tls-auth-sha512"), 88),
    (fixture!("openvpn", "openvpn-2.6-tls-crypt"), 15),
    (fixture!("openvpn", "openvpn-2.6-tls-crypt-v2"), 15),
    (fixture!("openvpn", "openvpn-2.6-tls-crypt-v2-metadata"), 15),
];

/// Real static-key first packets (one packet each: the client sends no more
/// until its next timer).
const STATIC_KEY: &[(&str, &[u8])] = &[
    fixture!("openvpn", "openvpn-2.6-static-key-aes256cbc-sha1-occ"),
    fixture!("openvpn", "openvpn-2.6-static-key-aes256cbc-sha512-occ"),
    fixture!("openvpn", "openvpn-2.6-static-key-aes128cbc-md5-occ"),
    fixture!("openvpn", "openvpn-2.6-static-key-aes256cbc-sha1-ping"),
    fixture!("openvpn", "openvpn-2.6-static-key-aes256cbc-sha1-ping-run2"),
    fixture!("openvpn", "openvpn-2.6-static-key-aes256cbc-sha256-ping"),
    fixture!("openvpn", "openvpn-2.6-static-key-aes256cbc-sha512-ping"),
    fixture!("openvpn", "openvpn-2.6-static-key-aes256cbc-noauth-ping"),
    fixture!("openvpn", "openvpn-2.6-static-key-aes256cbc-sha1-lzo-ping"),
    fixture!("openvpn", "openvpn-2.6-static-key-nocipher-sha1-ping"),
];

/// Captures of other protocols that must be refused.
pub(crate) const NEGATIVE: &[(&str, &[u8])] = &[
    fixture!("negative", "dig-tcp"),
    fixture!("negative", "dig-tcp-nocookie"),
    fixture!("negative", "dig-tcp-noedns"),
    fixture!("negative", "dig-tcp-dnssec-aaaa"),
    fixture!("negative", "dig-tcp-axfr"),
    fixture!("negative", "dig-tcp-long-name"),
    fixture!("negative", "curl-socks4"),
    fixture!("negative", "curl-socks4a"),
    fixture!("negative", "ncat-socks4"),
];

const OTHERS: &[&[u8]] = &[
    include_bytes!("../../../tests/fixtures/openssh-client-banner.bin"),
    include_bytes!("../../../tests/fixtures/curl-openssl3-clienthello.bin"),
    include_bytes!("../../../tests/fixtures/chromium-156-x25519mlkem768-clienthello.bin"),
    include_bytes!("../../../tests/fixtures/curl-h2-prior-knowledge.bin"),
    include_bytes!("../../../tests/fixtures/http/curl-GET.bin"),
    include_bytes!("../../../tests/fixtures/http/curl-CONNECT.bin"),
    include_bytes!("../../../tests/fixtures/socks5/curl-socks5.bin"),
    include_bytes!("../../../tests/fixtures/socks5/curl-socks5-hostname-userpass.bin"),
];

fn detect(prefix: &[u8]) -> Verdict {
    OpenVpnDetector.detect(prefix, &DetectContext::default())
}

/// The shortest prefix of `flight` the detector decides on.
fn decided_at(flight: &[u8]) -> Option<usize> {
    (0..=flight.len()).find(|&end| !matches!(detect(&flight[..end]), Verdict::NeedMore(_)))
}

fn announced(flight: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([flight[0], flight[1]]))
}

/// `flight` with the length field set to `len` and padded or cut to fit.
fn with_len(flight: &[u8], len: usize) -> Vec<u8> {
    let mut out = flight.to_vec();
    out.resize(LEN + len, 0xa5);
    out[..LEN].copy_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
    out
}

#[test]
fn real_hard_resets_match_as_soon_as_their_header_is_conclusive() {
    for &((name, flight), at) in TLS_MODES {
        assert_eq!(judge(&OpenVpnDetector, flight), Judged::Match, "{name}");
        assert_eq!(decided_at(flight), Some(at), "{name}");
        assert_eq!(LEN + announced(flight), flight.len(), "{name}: one whole packet");
    }
    // The tls-crypt-v2 hard reset is larger than maxRead: only 15 bytes count.
    assert!(TLS_CRYPT_V2.len() > 128);
    assert_eq!(TLS_CRYPT_V2[2], OP_HARD_RESET_V3);
    assert_eq!(TLS_CRYPT_V2[HEADER..HEADER + 4], EARLY_NEG_PACKET_ID);
}

#[test]
fn each_capture_fits_its_own_mode() {
    let len = |f: &[u8]| announced(f);
    assert!(matches!(plain(PLAIN, len(PLAIN)), Outcome::Yes));
    assert!(matches!(tls_auth(TLS_AUTH, len(TLS_AUTH), 20), Outcome::Yes));
    assert!(matches!(tls_crypt(TLS_CRYPT, len(TLS_CRYPT)), Outcome::Yes));
    assert!(matches!(tls_crypt_v2(TLS_CRYPT_V2, len(TLS_CRYPT_V2)), Outcome::Yes));
    // And not another mode's.
    assert!(matches!(tls_auth(TLS_CRYPT, len(TLS_CRYPT), 32), Outcome::No));
    assert!(matches!(tls_crypt(TLS_AUTH, len(TLS_AUTH)), Outcome::No));
    assert!(matches!(static_key(TLS_CRYPT_V2, len(TLS_CRYPT_V2)), Outcome::No));
    assert!(matches!(plain(TLS_AUTH, len(TLS_AUTH)), Outcome::No));
}

#[test]
fn tls_auth_with_every_hmac_size() {
    // The SHA1 capture's layout with the HMAC stretched or shrunk.
    for hmac in HMAC_SIZES {
        let mut flight = TLS_AUTH[..HEADER].to_vec();
        flight.extend(std::iter::repeat_n(0x5a, hmac));
        flight.extend_from_slice(&TLS_AUTH[HEADER + 20..]);
        let flight = with_len(&flight, flight.len() - LEN);
        assert!(matches!(tls_auth(&flight, announced(&flight), hmac), Outcome::Yes), "{hmac}");
        assert_eq!(judge(&OpenVpnDetector, &flight), Judged::Match, "{hmac}");
        // A wrong replay id, ack count or message id refuses this mode.
        for at in [HEADER + hmac + 3, HEADER + hmac + 8, HEADER + hmac + 12] {
            let mut bad = flight.clone();
            bad[at] ^= 0x10;
            assert!(matches!(tls_auth(&bad, announced(&bad), hmac), Outcome::No), "{hmac} @{at}");
        }
    }
}

#[test]
fn hard_resets_refuse_a_wrong_fixed_byte_at_once() {
    // Op byte (other opcode or key id), then each mode's fixed fields.
    let cases: &[(&[u8], usize)] = &[
        (PLAIN, 2),
        (PLAIN, 11),
        (PLAIN, 15),
        (TLS_CRYPT, 2),
        (TLS_CRYPT, 14),
        (TLS_CRYPT_V2, 2),
        (TLS_CRYPT_V2, 11),
        (TLS_CRYPT_V2, 14),
    ];
    for &(flight, at) in cases {
        let mut bad = flight.to_vec();
        bad[at] ^= 0x01;
        let len = announced(&bad);
        let modes = [plain(&bad[..=at], len), tls_crypt(&bad[..=at], len), tls_crypt_v2(&bad[..=at], len)];
        assert!(modes.iter().all(|m| matches!(m, Outcome::No)), "byte {at} of a {len}-byte packet");
        if static_key(&bad, len).is_no() {
            assert_eq!(detect(&bad[..=at]), Verdict::NoMatch, "byte {at} of a {len}-byte packet");
        }
    }
    // The tls-crypt-v2 replay id of OpenVPN 2.5 (no early negotiation).
    let mut v25 = TLS_CRYPT_V2.to_vec();
    v25[HEADER..HEADER + 4].copy_from_slice(&FIRST_PACKET_ID);
    assert_eq!(decided_at(&v25), Some(15));
    assert!(detect(&v25[..15]).is_match());
}

impl Outcome {
    fn is_no(&self) -> bool {
        matches!(self, Outcome::No)
    }
}

#[test]
fn tls_crypt_v2_lengths_are_bounded_by_the_wrapped_key() {
    for (len, fits) in [(343, false), (344, true), (1078, true), (1079, false)] {
        let flight = with_len(&TLS_CRYPT_V2[..HEADER + 4], len);
        assert_eq!(detect(&flight[..15]).is_match(), fits, "{len}");
    }
}

#[test]
fn real_static_key_packets_match_once_whole() {
    for &(name, flight) in STATIC_KEY {
        let len = announced(flight);
        assert_eq!(LEN + len, flight.len(), "{name}: one whole packet");
        assert!((44..=112).contains(&len), "{name}: {len} outside what was measured");
        assert_eq!(judge(&OpenVpnDetector, flight), Judged::Match, "{name}");
        assert_eq!(decided_at(flight), Some(flight.len()), "{name}");
        // Undecided until then, asking for the whole packet.
        assert_eq!(detect(&flight[..20]), Verdict::need(flight.len()), "{name}");
    }
}

#[test]
fn static_key_window_is_enforced_at_the_length_field() {
    let body = [0xc3u8; LEN + STATIC_KEY_MAX + 10];
    for (len, fits) in
        [(0, false), (1, false), (13, false), (39, false), (40, true), (128, true), (129, false), (1500, false)]
    {
        let flight = with_len(&body, len);
        let expect = if fits { Judged::Match } else { Judged::No };
        assert_eq!(judge(&OpenVpnDetector, &flight), expect, "{len}");
        if !fits && len != 14 && len != 54 {
            assert_eq!(detect(&flight[..2]), Verdict::NoMatch, "{len} refused from its length alone");
        }
    }
    // Junk below the window: no waiting for the announced bytes.
    assert_eq!(detect(b"\x00\x05hello"), Verdict::NoMatch);
    assert_eq!(detect(b"\x00\x0ehello"), Verdict::NoMatch);
    // A first byte above any accepted length is refused alone.
    for b in [5u8, 0x16, b'G', b'S', 0xff] {
        assert_eq!(detect(&[b]), Verdict::NoMatch, "{b:#x}");
    }
    assert_eq!(detect(&[0]), Verdict::need(2));
    assert_eq!(detect(&[]), Verdict::need(2));
}

#[test]
fn dns_over_tcp_is_never_claimed() {
    for &(name, flight) in NEGATIVE.iter().filter(|(name, _)| name.starts_with("dig")) {
        assert_eq!(judge(&OpenVpnDetector, flight), Judged::No, "{name}");
        assert!(decided_at(flight).unwrap() <= DNS_DECIDED, "{name}");
    }
    // A query shaped to fit the window and a hard reset's fixed bytes:
    // ID high byte 0x38, length 54 (tls-crypt), a 1-byte first label so the
    // bytes at 11..15 read 00 00 00 01.
    let mut query = vec![0, 54, 0x38, 0x11, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 4];
    query.extend_from_slice(b"test");
    query.resize(LEN + 54, 0);
    assert!(matches!(tls_crypt(&query, 54), Outcome::Yes));
    assert_eq!(judge(&OpenVpnDetector, &query), Judged::No);
    // NOTIFY, UPDATE and DSO shapes too.
    for (flags, counts) in [([0x20, 0x00], [1, 1, 0, 0]), ([0x28, 0x00], [1, 0, 3, 1]), ([0x30, 0x00], [0, 0, 0, 0])] {
        let mut msg = vec![0, 60, 0xab, 0xcd, flags[0], flags[1]];
        for c in counts {
            msg.extend_from_slice(&u16::to_be_bytes(c));
        }
        msg.resize(LEN + 60, 0x77);
        assert_eq!(judge(&OpenVpnDetector, &msg), Judged::No, "{flags:?} {counts:?}");
    }
    // A response (QR 1) is not a client's first message: claimed as static key.
    let mut response = NEGATIVE[0].1.to_vec();
    response[4] |= 0x80;
    assert_eq!(judge(&OpenVpnDetector, &response), Judged::Match);
}

#[test]
fn other_protocols_are_refused() {
    for &(name, flight) in NEGATIVE {
        assert_eq!(judge(&OpenVpnDetector, flight), Judged::No, "{name}");
    }
    for flight in OTHERS {
        assert_eq!(judge(&OpenVpnDetector, flight), Judged::No, "{:?}", &flight[..8]);
        assert_eq!(detect(&flight[..1]), Verdict::NoMatch, "{:?}", &flight[..8]);
    }
    // Zero-led length framings of other protocols (4-byte lengths: PostgreSQL,
    // Kerberos, NetBIOS/SMB) read as a length below the window.
    for flight in [&b"\x00\x00\x00\x08\x04\xd2\x16\x2f"[..], b"\x00\x00\x00\x54\xfeSMB@\x00"] {
        assert_eq!(detect(flight), Verdict::NoMatch);
    }
    // RDP's TPKT reads as a tls-crypt-v2 length (768) but has no V3 op.
    let rdp = b"\x03\x00\x00\x13\x0e\xe0\x00\x00\x00\x00\x00\x01\x00\x08\x00\x0b\x00\x00\x00";
    assert_eq!(decided_at(rdp), Some(3));
    assert_eq!(judge(&OpenVpnDetector, rdp), Judged::No);
    // MQTT CONNECT.
    assert_eq!(detect(b"\x10\x10\x00\x04MQTT"), Verdict::NoMatch);
}

#[test]
fn engine_may_buffer_a_whole_static_key_packet() {
    assert_eq!(OpenVpnDetector.byte_limit(), ByteLimit::AtLeast(130));
    for &((name, _), at) in TLS_MODES {
        assert!(at <= LEN + STATIC_KEY_MAX, "{name}");
    }
}

#[test]
fn builds_from_an_empty_conf() {
    let kind = crate::registry::kind("openvpn").unwrap();
    let detector = kind.build(serde_json::json!({})).unwrap();
    assert!(detector.detect(PLAIN, &DetectContext::default()).is_match());
    assert!(kind.build(serde_json::json!({"staticKey": false})).is_err());
}

/// A small deterministic generator for the contract checks below.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
}

#[test]
fn verdicts_stay_monotonic_on_mutated_and_random_flights() {
    let mut rng = XorShift(0x05ee_d0f0_e4e1_u64);
    let templates: Vec<&[u8]> = TLS_MODES
        .iter()
        .map(|&((_, f), _)| f)
        .chain(STATIC_KEY.iter().map(|&(_, f)| f))
        .chain(NEGATIVE.iter().map(|&(_, f)| f))
        .collect();
    // `judge` panics if a verdict changes on a longer prefix or a NeedMore
    // asks for no more than is there.
    for template in templates {
        for _ in 0..50 {
            let mut flight = template.to_vec();
            for _ in 0..=rng.below(3) {
                let at = rng.below(flight.len().min(24));
                flight[at] = u8::try_from(rng.next() & 0xff).unwrap();
            }
            judge(&OpenVpnDetector, &flight);
        }
    }
    for _ in 0..500 {
        let len = rng.below(140);
        let mut flight = vec![0, u8::try_from(len).unwrap()];
        flight.extend((0..len).map(|_| u8::try_from(rng.next() & 0xff).unwrap()));
        if len > 0 && rng.below(2) == 0 {
            flight[2] = OP_HARD_RESET_V2;
        }
        let judged = judge(&OpenVpnDetector, &flight);
        // Random bytes are claimed only as a static-key packet.
        if judged == Judged::Match {
            assert!((STATIC_KEY_MIN..=STATIC_KEY_MAX).contains(&len), "{flight:02x?}");
        }
    }
}
