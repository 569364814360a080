//! QUIC long headers (RFC 9000 §17.2, RFC 9369 §3.2) and how a client's
//! datagram is laid out: every check here is on clear-text header fields,
//! before any cryptography.

use std::ops::Range;

/// The smallest datagram that may carry a client Initial (RFC 9000 §14.1).
pub(super) const MIN_INITIAL_DATAGRAM: usize = 1200;
/// The longest connection id of QUIC v1 and v2 (RFC 9000 §17.2).
const MAX_CID: usize = 20;
/// The shortest Destination Connection ID of a client's first Initial
/// (RFC 9000 §7.2: "at least 8 bytes").
const MIN_FIRST_DCID: usize = 8;
/// Header protection samples 16 bytes starting 4 bytes after the packet
/// number's offset (RFC 9001 §5.4.2), so shorter packets cannot be real.
pub(super) const MIN_PROTECTED_LEN: usize = 4 + 16;

/// A QUIC version serve2 recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Version {
    /// QUIC v1 (RFC 9000).
    V1,
    /// QUIC v2 (RFC 9369): other type codes, salt and key labels.
    V2,
}

impl Version {
    fn from_wire(version: u32) -> Option<Version> {
        match version {
            0x0000_0001 => Some(Version::V1),
            0x6b33_43cf => Some(Version::V2),
            _ => None,
        }
    }

    /// The packet type a long header's type bits mean in this version.
    fn packet_type(self, bits: u8) -> PacketType {
        match (self, bits) {
            (Version::V1, 0b00) | (Version::V2, 0b01) => PacketType::Initial,
            (Version::V1, 0b01) | (Version::V2, 0b10) => PacketType::ZeroRtt,
            _ => PacketType::Other,
        }
    }

    /// The rustls key schedule of this version.
    pub(super) fn keys(self) -> rustls::quic::Version {
        match self {
            Version::V1 => rustls::quic::Version::V1,
            Version::V2 => rustls::quic::Version::V2,
        }
    }
}

/// What a long-header packet is, as far as a client's first flight goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PacketType {
    /// Carries the ClientHello in CRYPTO frames.
    Initial,
    /// Early data: cannot be read without the session ticket's keys.
    ZeroRtt,
    /// Handshake or Retry: never sent by a client before the server answers.
    Other,
}

/// One long-header packet of a datagram, located by its clear fields.
#[derive(Debug, Clone)]
pub(super) struct LongPacket {
    pub version: Version,
    pub packet_type: PacketType,
    /// The Destination Connection ID, as a range of the datagram.
    pub dcid: Range<usize>,
    /// Where the protected packet number starts.
    pub pn_offset: usize,
    /// The whole packet, as a range of the datagram.
    pub range: Range<usize>,
}

/// The long-header packets a datagram is made of, in order.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    pub packets: Vec<LongPacket>,
}

impl Layout {
    /// Whether the datagram begins with an Initial packet.
    pub fn starts_with_initial(&self) -> bool {
        self.packets.first().is_some_and(|p| p.packet_type == PacketType::Initial)
    }

    /// The Initial packets.
    pub fn initials(&self) -> impl Iterator<Item = &LongPacket> {
        self.packets.iter().filter(|p| p.packet_type == PacketType::Initial)
    }
}

/// Reads a variable-length integer (RFC 9000 §16) at `*pos`, advancing it.
pub(super) fn varint(input: &[u8], pos: &mut usize) -> Option<u64> {
    let first = *input.get(*pos)?;
    let len = 1usize << (first >> 6);
    let bytes = input.get(*pos..*pos + len)?;
    let value = bytes[1..].iter().fold(u64::from(first & 0x3f), |v, &b| v << 8 | u64::from(b));
    *pos += len;
    Some(value)
}

/// Splits a client datagram into long-header packets, or says it is not one
/// a QUIC client sends before hearing from the server: every packet a long
/// header of one known version and one Destination Connection ID, an
/// Initial or 0-RTT packet whose lengths fit, covering the datagram up to
/// zero bytes at most (aioquic pads its datagrams to 1200 bytes with zeros
/// after the last packet), and the datagram padded to 1200 bytes when it
/// carries an Initial. The fixed bit (0x40) is not required: RFC 9287 lets
/// clients grease it.
pub(super) fn layout(datagram: &[u8]) -> Option<Layout> {
    let mut packets: Vec<LongPacket> = Vec::new();
    let mut pos = 0;
    while pos < datagram.len() {
        if !packets.is_empty() && datagram[pos..].iter().all(|&b| b == 0) {
            break;
        }
        let packet = long_packet(datagram, pos)?;
        if let Some(first) = packets.first()
            && (first.version != packet.version || datagram[first.dcid.clone()] != datagram[packet.dcid.clone()])
        {
            return None;
        }
        pos = packet.range.end;
        packets.push(packet);
    }
    let has_initial = packets.iter().any(|p| p.packet_type == PacketType::Initial);
    (!packets.is_empty() && (!has_initial || datagram.len() >= MIN_INITIAL_DATAGRAM)).then_some(Layout { packets })
}

/// Whether `datagram` can be the first one of a QUIC client: checked in
/// order of cost, a long header (high bit), the padded length, then the
/// layout starting with an Initial whose Destination Connection ID is at
/// least 8 bytes (RFC 9000 §7.2). A Version Negotiation packet (version 0)
/// or a short header is refused at its first bytes.
pub(super) fn first_datagram(datagram: &[u8]) -> Option<Layout> {
    if datagram.first().is_none_or(|&b| b & 0x80 == 0) || datagram.len() < MIN_INITIAL_DATAGRAM {
        return None;
    }
    let layout = layout(datagram)?;
    let first = layout.packets.first()?;
    (layout.starts_with_initial() && first.dcid.len() >= MIN_FIRST_DCID).then_some(layout)
}

/// The long-header packet starting at `start`.
fn long_packet(datagram: &[u8], start: usize) -> Option<LongPacket> {
    let first = *datagram.get(start)?;
    if first & 0x80 == 0 {
        return None;
    }
    let wire = u32::from_be_bytes(datagram.get(start + 1..start + 5)?.try_into().ok()?);
    let version = Version::from_wire(wire)?;
    let packet_type = version.packet_type((first >> 4) & 0b11);
    if packet_type == PacketType::Other {
        return None;
    }
    let mut pos = start + 5;
    let dcid = connection_id(datagram, &mut pos)?;
    connection_id(datagram, &mut pos)?; // Source Connection ID
    if packet_type == PacketType::Initial {
        let token = usize::try_from(varint(datagram, &mut pos)?).ok()?;
        pos = pos.checked_add(token)?;
    }
    let length = usize::try_from(varint(datagram, &mut pos)?).ok()?;
    let end = pos.checked_add(length)?;
    if length < MIN_PROTECTED_LEN || end > datagram.len() {
        return None;
    }
    Some(LongPacket { version, packet_type, dcid, pn_offset: pos, range: start..end })
}

/// A length-prefixed connection id at `*pos` (at most 20 bytes).
fn connection_id(datagram: &[u8], pos: &mut usize) -> Option<Range<usize>> {
    let len = usize::from(*datagram.get(*pos)?);
    let range = *pos + 1..*pos + 1 + len;
    if len > MAX_CID || range.end > datagram.len() {
        return None;
    }
    *pos = range.end;
    Some(range)
}
