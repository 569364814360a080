//! `openvpn`: OpenVPN over TCP, in every mode a client can start in.
//!
//! Over TCP every OpenVPN packet is framed by a big-endian `u16` length. A
//! TLS-mode client opens with a hard reset (OpenVPN 2.4–2.6 and OpenVPN 3
//! alike; the layouts below are OpenVPN's `ssl_pkt.c` / `tls_crypt.h` and were
//! checked against real OpenVPN 2.6.14 clients, whose first flights are in
//! `tests/fixtures/openvpn/`). Offsets count from the first byte of the
//! length field:
//!
//! | mode | length | fixed fields | decided at |
//! |---|---|---|---|
//! | plain | 14 | op `0x38`; ack count 0 @11; message packet id 0 @12..16 | 16 bytes |
//! | `--tls-auth` (HMAC of `h` bytes) | 22 + `h` | op `0x38`; after the HMAC (@11): replay id 1, time, ack count 0, message id 0 | the whole packet (≤ 88 bytes) |
//! | `--tls-crypt` | 54 | op `0x38`; replay id 1 @11..15 (then time, tag and ciphertext) | 15 bytes |
//! | `--tls-crypt-v2` | 344..=1078 | op `0x50` (hard reset V3); replay id `0x0f000001` (2.6, OpenVPN 3: early negotiation) or 1 (2.5) @11..15 | 15 bytes |
//!
//! The op byte is `opcode << 3 | key_id`: a hard reset always has key id 0,
//! so P_CONTROL_HARD_RESET_CLIENT_V2 (7) is `0x38` and _V3 (10) is `0x50`.
//! The 8 bytes after it are the client's random session id. A client's hard
//! reset has an empty payload: early-negotiation TLVs are sent only by the
//! server (a 2.6 client announces support through the replay id
//! `0x0f000000 + 1` instead), so each mode has one length. `h` is any HMAC
//! OpenVPN's `--auth` can use: 16 (MD5), 20 (SHA1, the default), 28
//! (SHA224), 32 (SHA256), 48 (SHA384), 64 (SHA512). A tls-crypt-v2 hard
//! reset ends with the wrapped client key (tag 32 + key 256 + metadata up to
//! 733 + length 2 bytes): it is several hundred bytes, and the header alone
//! decides. The V1 hard reset of OpenVPN 1.x / 2.0 betas is not recognised.
//!
//! ## Static key (`--secret`)
//!
//! A static-key packet is HMAC + IV + ciphertext with no opcode, so only its
//! length framing can be judged. OpenVPN 2.6 clients (`--secret`, any
//! `--auth`, AES-CBC) send one packet, then nothing until the next ping or
//! OCC timer: with `--ping N` a ping at once, otherwise an OCC request about
//! 10 s after connecting (later than serve2's default `detectTimeout` of
//! 5 s: such clients need `--ping` below it). Measured lengths: 48 (AES-CBC,
//! `--auth none`), 64 (MD5), 68 (SHA1), 80 (SHA256), 112 (SHA512); 44 with
//! `--cipher none` and SHA1. A static-key first packet is claimed only when
//!
//! * its announced length is in [`STATIC_KEY_MIN`]`..=`[`STATIC_KEY_MAX`]:
//!   40 covers BF-CBC with `--auth none` (8 + 32) and every real cipher;
//!   128 is the largest measured (112) plus one 16-byte cipher block of
//!   slack. A longer length is refused at once rather than waited for, so a
//!   static-key client whose first packet is tunnel data (not a ping or OCC
//!   message) of more than 40 to 70 bytes (by HMAC size) is not recognised;
//! * the whole packet is buffered;
//! * it is not shaped like DNS (below).
//!
//! ## DNS over TCP
//!
//! DNS over TCP has the same `u16` framing, and `dig +tcp` queries are 30 to
//! 90 bytes long, most of them inside the static-key window; a DNS message
//! could also happen to fit a hard reset's few fixed bytes. So nothing whose
//! 12 bytes after the length look like the DNS header of a client message is
//! claimed in any mode: QR 0, QDCOUNT 0 or 1, and ANCOUNT, NSCOUNT, ARCOUNT
//! each below 256 (queries, NOTIFY, UPDATE, DSO). The DNS header is complete
//! at 14 bytes, before any mode decides. A static-key packet has that shape
//! by chance with probability about 2^-40, a hard reset (whose DNS header
//! would fall on its random session id) about 2^-32.
//!
//! ## What static-key recognition conflicts with
//!
//! Static-key recognition necessarily conflicts with any other client-first
//! protocol that opens with a big-endian `u16` length of 40 to 128 and a
//! payload not shaped like DNS: the Erlang distribution handshake and EPMD requests, Modbus/TCP whose
//! transaction id happens to fall in 40..=128, and private length-framed
//! protocols. Such a client is claimed as OpenVPN if `openvpn` comes first
//! in the protocol order; list those kinds before it. The other kinds serve2
//! detects never get that far: their first two bytes read as a length
//! outside every mode (TLS `16 03`, SSH, HTTP and other text, SOCKS `04`/`05`,
//! MQTT `10`, PostgreSQL's and other 4-byte lengths `00 00`), or, for
//! RDP's TPKT `03 00` (768, a tls-crypt-v2 length), a third byte that is not
//! the V3 op. Short length-prefixed junk (below 40 bytes) is refused as soon
//! as its length is read.
//!
//! ## Over UDP
//!
//! The packet checks live in `openvpn/packet.rs`, shared with the UDP kind
//! ([`OpenVpnUdpDetector`], `openvpn/udp.rs`), where each datagram is one
//! packet without the length field.

use crate::registry::{ConfError, FromConf, NoConf};
use crate::{ByteLimit, DetectContext, Detector, Need, Verdict};

mod packet;
mod udp;
use packet::{DNS_HEADER, Outcome, TLS_CRYPT_LEN, WKC_MAX, any_mode, dns_shaped, hard_resets};
#[cfg(test)]
use packet::{EARLY_NEG_PACKET_ID, FIRST_PACKET_ID, HMAC_SIZES, OP_HARD_RESET_V2, OP_HARD_RESET_V3};
pub use udp::OpenVpnUdpDetector;

/// The TCP framing: a big-endian `u16` packet length.
const LEN: usize = 2;
/// Length field, op byte and session id: where every mode's own fields begin.
#[cfg(test)]
const HEADER: usize = LEN + packet::HEADER;

/// Length field + DNS header: from here on a DNS-shaped prefix is refused.
/// Every mode decides later (see `packet::DNS_HEADER`).
const DNS_DECIDED: usize = LEN + DNS_HEADER;

/// Smallest static-key first packet claimed (announced length).
pub const STATIC_KEY_MIN: usize = 40;
/// Largest static-key first packet claimed (announced length).
pub const STATIC_KEY_MAX: usize = 128;

/// The largest announced length any mode accepts, for early refusal of the
/// length's first byte.
const MAX_ANNOUNCED: usize = TLS_CRYPT_LEN + WKC_MAX;

/// Recognises an OpenVPN client over TCP: a hard reset in plain,
/// `--tls-auth`, `--tls-crypt` or `--tls-crypt-v2` mode, or a static-key
/// first packet (see the module docs for what is checked).
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenVpnDetector;

/// Runs a packet check on the packet behind the length field of `prefix`,
/// counting what it needs from the start of `prefix`.
fn framed(prefix: &[u8], check: impl FnOnce(&[u8]) -> Outcome) -> Outcome {
    match check(prefix.get(LEN..).unwrap_or_default()) {
        Outcome::Undecided(need) => Outcome::Undecided(Need { min: need.min + LEN, max: need.max + LEN }),
        decided => decided,
    }
}

#[cfg(test)]
fn plain(prefix: &[u8], len: usize) -> Outcome {
    framed(prefix, |p| packet::plain(p, len))
}

#[cfg(test)]
fn tls_auth(prefix: &[u8], len: usize, hmac: usize) -> Outcome {
    framed(prefix, |p| packet::tls_auth(p, len, hmac))
}

#[cfg(test)]
fn tls_crypt(prefix: &[u8], len: usize) -> Outcome {
    framed(prefix, |p| packet::tls_crypt(p, len))
}

#[cfg(test)]
fn tls_crypt_v2(prefix: &[u8], len: usize) -> Outcome {
    framed(prefix, |p| packet::tls_crypt_v2(p, len))
}

/// A static-key first packet: only its length can be judged (DNS is refused
/// for every mode, in `detect`).
fn static_key(prefix: &[u8], len: usize) -> Outcome {
    if !(STATIC_KEY_MIN..=STATIC_KEY_MAX).contains(&len) {
        return Outcome::No;
    }
    let end = LEN + len;
    if prefix.len() >= end { Outcome::Yes } else { Outcome::Undecided(Need { min: end, max: end }) }
}

impl Detector for OpenVpnDetector {
    fn detect(&self, prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        let [hi, lo, ..] = *prefix else {
            return match prefix.first() {
                Some(&hi) if usize::from(hi) > MAX_ANNOUNCED >> 8 => Verdict::NoMatch,
                _ => Verdict::need(LEN),
            };
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        // No mode decides before the DNS header is complete, so refusing
        // DNS-shaped prefixes from there on keeps every verdict monotonic.
        if let Some(header) = prefix.get(LEN..DNS_DECIDED).and_then(|h| h.try_into().ok())
            && dns_shaped(header)
        {
            return Verdict::NoMatch;
        }
        let tls_modes = framed(prefix, |packet| any_mode(hard_resets(packet, len)));
        match any_mode([tls_modes, static_key(prefix, len)].into_iter()) {
            Outcome::Yes => Verdict::MATCH,
            Outcome::No => Verdict::NoMatch,
            Outcome::Undecided(need) => Verdict::NeedMore(need),
        }
    }

    fn byte_limit(&self) -> ByteLimit {
        // A static-key packet is judged whole; every TLS mode decides sooner.
        ByteLimit::AtLeast(LEN + STATIC_KEY_MAX)
    }
}

impl FromConf for OpenVpnDetector {
    type Conf = NoConf;
    fn from_conf(_conf: NoConf) -> Result<Self, ConfError> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests;
