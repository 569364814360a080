//! Opening a client's Initial packets with the version's initial keys
//! (RFC 9001 §5, RFC 9369 §3.3) and collecting their CRYPTO frames.

use rustls::Side;
use rustls::quic::DirectionalKeys;

use super::packet::{LongPacket, Version, varint};
use crate::reassembly::Reassembly;

/// The keys that open the Initial packets a client sends to one
/// Destination Connection ID (which anyone can derive: they protect against
/// ossification and off-path injection, not against on-path readers).
pub(super) struct ClientInitialKeys(DirectionalKeys);

impl ClientInitialKeys {
    /// The client's Initial keys for `dcid` in `version`, from rustls's
    /// aws-lc-rs provider (Initial packets always use AES-128-GCM and
    /// SHA-256).
    pub(super) fn derive(version: Version, dcid: &[u8]) -> Option<Self> {
        let suite = rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256.tls13()?.quic_suite()?;
        // The server's side of the keys: `remote` is what the client sends.
        Some(Self(suite.keys(dcid, Side::Server, version.keys()).remote))
    }
}

/// Removes header protection from the Initial `packet` of `datagram` and
/// decrypts it into `scratch`; returns its plaintext frames, or `None` when
/// the packet does not open (not encrypted for this Destination Connection
/// ID, or damaged) or its reserved bits are set once opened (RFC 9000
/// §17.2).
pub(super) fn open<'s>(
    keys: &ClientInitialKeys,
    datagram: &[u8],
    packet: &LongPacket,
    scratch: &'s mut Vec<u8>,
) -> Option<&'s [u8]> {
    scratch.clear();
    scratch.extend_from_slice(datagram.get(packet.range.clone())?);
    let pn_offset = packet.pn_offset - packet.range.start;
    // The sample begins 4 bytes past the packet number's offset, whatever
    // the packet number's length turns out to be.
    let (head, rest) = scratch.split_at_mut_checked(pn_offset + 4)?;
    let sample = rest.get(..keys.0.header.sample_len())?;
    let (first, after_first) = head.split_first_mut()?;
    keys.0.header.decrypt_in_place(sample, first, after_first.get_mut(pn_offset - 1..)?).ok()?;
    let pn_len = usize::from(*first & 0x03) + 1;
    let packet_number = head.get(pn_offset..pn_offset + pn_len)?.iter().fold(0u64, |n, &b| n << 8 | u64::from(b));
    let (header, payload) = scratch.split_at_mut_checked(pn_offset + pn_len)?;
    let reserved_bits = header[0] & 0x0c;
    let plaintext = keys.0.packet.decrypt_in_place(packet_number, header, payload).ok()?;
    (reserved_bits == 0).then_some(plaintext)
}

const PADDING: u8 = 0x00;
const PING: u8 = 0x01;
const ACK: u8 = 0x02;
const ACK_ECN: u8 = 0x03;
const CRYPTO: u8 = 0x06;

/// Reads an Initial's frames, adding CRYPTO data to `stream`. Refuses a
/// packet without frames, a frame an Initial may not carry (RFC 9000 §12.4:
/// only PADDING, PING, ACK, CRYPTO and CONNECTION_CLOSE, which a client
/// opening a connection has no reason to send), a truncated frame, and
/// CRYPTO data past the stream's bound or conflicting with earlier data.
pub(super) fn read_frames(frames: &[u8], stream: &mut Reassembly) -> Option<()> {
    if frames.is_empty() {
        return None;
    }
    let mut pos = 0;
    while let Some(&frame_type) = frames.get(pos) {
        pos += 1;
        match frame_type {
            PADDING | PING => {}
            ACK | ACK_ECN => {
                varint(frames, &mut pos)?; // largest acknowledged
                varint(frames, &mut pos)?; // ACK delay
                let ranges = varint(frames, &mut pos)?;
                varint(frames, &mut pos)?; // first ACK range
                // Each range takes at least two bytes, so this ends with
                // the frames however large the count claims to be.
                for _ in 0..ranges {
                    varint(frames, &mut pos)?; // gap
                    varint(frames, &mut pos)?; // ACK range length
                }
                if frame_type == ACK_ECN {
                    for _ in 0..3 {
                        varint(frames, &mut pos)?;
                    }
                }
            }
            CRYPTO => {
                let offset = usize::try_from(varint(frames, &mut pos)?).ok()?;
                let len = usize::try_from(varint(frames, &mut pos)?).ok()?;
                let data = frames.get(pos..pos.checked_add(len)?)?;
                stream.insert(offset, data).ok()?;
                pos += len;
            }
            _ => return None,
        }
    }
    Some(())
}
