//! OpenVPN client packets, whatever the framing: the checks both the TCP
//! detector (packets behind a `u16` length) and the UDP one (a packet per
//! datagram) run. Offsets count from the packet's op byte; the TCP detector
//! adds its two length bytes to every `Need`.

use crate::Need;

/// The op byte of P_CONTROL_HARD_RESET_CLIENT_V2, key id 0.
pub(super) const OP_HARD_RESET_V2: u8 = 7 << 3;
/// The op byte of P_CONTROL_HARD_RESET_CLIENT_V3 (tls-crypt-v2), key id 0.
pub(super) const OP_HARD_RESET_V3: u8 = 10 << 3;
/// Op byte + session id: where every mode's own fields begin.
pub(super) const HEADER: usize = 1 + 8;
/// The first replay packet id of `--tls-auth` and `--tls-crypt`.
pub(super) const FIRST_PACKET_ID: [u8; 4] = [0, 0, 0, 1];
/// The first replay packet id of a tls-crypt-v2 client that supports early
/// negotiation (OpenVPN 2.6, OpenVPN 3): `EARLY_NEG_START + 1`.
pub(super) const EARLY_NEG_PACKET_ID: [u8; 4] = [0x0f, 0, 0, 1];
/// The plain hard reset: op, session id, ack count 0, message packet id 0.
pub(super) const PLAIN_LEN: usize = 1 + 8 + 1 + 4;
/// `--tls-auth` adds the HMAC, the replay packet id and its time.
const TLS_AUTH_OVERHEAD: usize = PLAIN_LEN + 4 + 4;
/// HMAC sizes of the digests `--auth` can use.
pub(super) const HMAC_SIZES: [usize; 6] = [16, 20, 28, 32, 48, 64];
/// `--tls-crypt`: op, session id, replay id and time, 32-byte tag, and the
/// encrypted ack count and message packet id.
pub(super) const TLS_CRYPT_LEN: usize = 1 + 8 + 8 + 32 + 1 + 4;
/// tls-crypt-v2's wrapped client key: tag, client key, metadata, length.
const WKC_MIN: usize = 32 + 256 + 2;
/// `TLS_CRYPT_V2_MAX_WKC_LEN`.
pub(super) const WKC_MAX: usize = 1024;
/// The DNS header: a packet whose first bytes look like one is refused.
pub(super) const DNS_HEADER: usize = 12;
/// Every hard reset decides later than the DNS header is complete (the
/// earliest, tls-crypt and tls-crypt-v2, at `HEADER + 4` = 13 bytes).
const _: () = assert!(DNS_HEADER < HEADER + 4);

/// One way the packet's bytes so far could be OpenVPN.
#[derive(Debug, Clone, Copy)]
pub(super) enum Outcome {
    Yes,
    No,
    /// Undecided; counted from the op byte.
    Undecided(Need),
}

/// Undecided until `end` bytes: could answer after the next byte.
fn undecided(packet: &[u8], end: usize) -> Outcome {
    Outcome::Undecided(Need { min: packet.len() + 1, max: end.max(packet.len() + 1) })
}

/// Compares the bytes of `packet` at `at..` with `expected`, as far as the
/// packet goes: false as soon as one differs.
fn fits(packet: &[u8], at: usize, expected: &[u8]) -> bool {
    let end = packet.len().min(at + expected.len());
    end <= at || packet[at..end] == expected[..end - at]
}

/// A hard reset laid out as fixed byte fields, decided once `decide_at`
/// bytes are there.
fn hard_reset(packet: &[u8], op: u8, fields: &[(usize, &[u8])], decide_at: usize) -> Outcome {
    if !fits(packet, 0, &[op]) || !fields.iter().all(|&(at, bytes)| fits(packet, at, bytes)) {
        return Outcome::No;
    }
    if packet.len() >= decide_at { Outcome::Yes } else { undecided(packet, decide_at) }
}

/// The plain (no `--tls-auth`/`--tls-crypt`) hard reset of a `len`-byte
/// packet.
pub(super) fn plain(packet: &[u8], len: usize) -> Outcome {
    if len != PLAIN_LEN {
        return Outcome::No;
    }
    hard_reset(packet, OP_HARD_RESET_V2, &[(HEADER, &[0; 5])], PLAIN_LEN)
}

/// A `--tls-auth` hard reset with an HMAC of `hmac` bytes.
pub(super) fn tls_auth(packet: &[u8], len: usize, hmac: usize) -> Outcome {
    if len != TLS_AUTH_OVERHEAD + hmac {
        return Outcome::No;
    }
    let replay = HEADER + hmac;
    // Replay id 1, then the time (any value), ack count 0, message id 0.
    hard_reset(packet, OP_HARD_RESET_V2, &[(replay, &FIRST_PACKET_ID), (replay + 8, &[0; 5])], len)
}

/// A `--tls-crypt` hard reset: the replay id is the last clear field.
pub(super) fn tls_crypt(packet: &[u8], len: usize) -> Outcome {
    if len != TLS_CRYPT_LEN {
        return Outcome::No;
    }
    hard_reset(packet, OP_HARD_RESET_V2, &[(HEADER, &FIRST_PACKET_ID)], HEADER + 4)
}

/// A `--tls-crypt-v2` hard reset (V3): replay id `0x0f000001` or 1.
pub(super) fn tls_crypt_v2(packet: &[u8], len: usize) -> Outcome {
    if !(TLS_CRYPT_LEN + WKC_MIN..=TLS_CRYPT_LEN + WKC_MAX).contains(&len) {
        return Outcome::No;
    }
    if packet.get(HEADER).is_some_and(|&b| b != EARLY_NEG_PACKET_ID[0] && b != FIRST_PACKET_ID[0]) {
        return Outcome::No;
    }
    hard_reset(packet, OP_HARD_RESET_V3, &[(HEADER + 1, &FIRST_PACKET_ID[1..])], HEADER + 4)
}

/// Every TLS-mode hard reset a `len`-byte packet could be.
pub(super) fn hard_resets(packet: &[u8], len: usize) -> impl Iterator<Item = Outcome> + '_ {
    HMAC_SIZES.iter().map(move |&hmac| tls_auth(packet, len, hmac)).chain([
        plain(packet, len),
        tls_crypt(packet, len),
        tls_crypt_v2(packet, len),
    ])
}

/// A match of any mode is final (each mode is monotonic); a refusal needs
/// every mode to refuse; otherwise the union of what the undecided ones
/// want.
pub(super) fn any_mode(modes: impl Iterator<Item = Outcome>) -> Outcome {
    let mut need: Option<Need> = None;
    for outcome in modes {
        match outcome {
            Outcome::Yes => return Outcome::Yes,
            Outcome::No => {}
            Outcome::Undecided(n) => {
                need = Some(need.map_or(n, |m| Need { min: m.min.min(n.min), max: m.max.max(n.max) }));
            }
        }
    }
    need.map_or(Outcome::No, Outcome::Undecided)
}

/// Whether a packet's first 12 bytes are a DNS header of a client message:
/// QR 0, QDCOUNT 0 or 1, the other counts below 256. A hard reset has that
/// shape by chance (its DNS header would fall on the random session id)
/// with probability about 2^-32.
pub(super) fn dns_shaped(header: &[u8; DNS_HEADER]) -> bool {
    let count = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    header[2] & 0x80 == 0 && count(4) <= 1 && [6, 8, 10].iter().all(|&i| count(i) < 256)
}
