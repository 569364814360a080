//! TLS ClientHello recognition and parsing.
//!
//! The detector does not stop at serve2's six-byte check: it follows the
//! record layer until the whole ClientHello handshake message is buffered,
//! however many records and TCP segments it spans (post-quantum ClientHellos
//! are 1.5–2 KB). The server cannot answer before that anyway, so waiting costs
//! no latency, rules out look-alikes and leaves SNI and ALPN available for
//! logging and routing.

use crate::{ByteLimit, DetectContext, Detector, Verdict};

pub(crate) mod filter;
pub(crate) mod hello;
mod state;
pub use state::TlsStateMatcher;

pub(crate) const RECORD_HEADER: usize = 5;
pub(crate) const HANDSHAKE_HEADER: usize = 4;
pub(crate) const CONTENT_TYPE_HANDSHAKE: u8 = 0x16;
pub(crate) const HANDSHAKE_CLIENT_HELLO: u8 = 0x01;
/// Largest TLSPlaintext fragment (RFC 8446 §5.1).
pub(crate) const MAX_FRAGMENT: usize = 1 << 14;
/// Largest ClientHello we buffer. Real ones are under 2 KB; peers stop at
/// 16 KiB. Anything larger is treated as "not TLS".
pub const MAX_CLIENT_HELLO: usize = 64 * 1024;

/// Result of walking the record layer over a buffered prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientHelloScan {
    /// The whole ClientHello is buffered; it ends `end` bytes into the input.
    Complete {
        /// Offset just past the ClientHello's last byte.
        end: usize,
    },
    /// Plausible so far; at least `need` bytes must be buffered to go on.
    Incomplete {
        /// Total bytes needed before the scan can go on.
        need: usize,
    },
    /// Not a TLS ClientHello.
    Invalid,
}

/// Walks TLS records from the start of `input` until the ClientHello handshake
/// message is complete, checking every header byte as soon as it arrives so a
/// non-TLS client is rejected after its first byte.
pub fn scan_client_hello(input: &[u8]) -> ClientHelloScan {
    scan_client_hello_up_to(input, MAX_CLIENT_HELLO)
}

/// Like [`scan_client_hello`], refusing a ClientHello handshake message
/// (header included) longer than `max_message` bytes as soon as its length
/// field arrives.
pub fn scan_client_hello_up_to(input: &[u8], max_message: usize) -> ClientHelloScan {
    // Handshake bytes seen so far, and the message length once known.
    let mut handshake_header = [0u8; HANDSHAKE_HEADER];
    let mut handshake_seen = 0usize;
    let mut pos = 0usize;
    loop {
        // Record header, byte by byte so garbage is refused early.
        let header = &input[pos.min(input.len())..input.len().min(pos + RECORD_HEADER)];
        let plausible = header.first().is_none_or(|&kind| kind == CONTENT_TYPE_HANDSHAKE)
            && header.get(1).is_none_or(|&major| major == 3)
            && header.get(2).is_none_or(|&minor| minor <= 4);
        if !plausible {
            return ClientHelloScan::Invalid;
        }
        if header.len() < RECORD_HEADER {
            return ClientHelloScan::Incomplete { need: pos + RECORD_HEADER };
        }
        let fragment_len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if fragment_len == 0 || fragment_len > MAX_FRAGMENT {
            return ClientHelloScan::Invalid;
        }
        let fragment_start = pos + RECORD_HEADER;
        let fragment_end = fragment_start + fragment_len;
        let available = &input[fragment_start.min(input.len())..input.len().min(fragment_end)];

        let mut used = 0;
        // Handshake header, which may itself straddle records.
        while handshake_seen < HANDSHAKE_HEADER && used < available.len() {
            handshake_header[handshake_seen] = available[used];
            if handshake_seen == 0 && available[used] != HANDSHAKE_CLIENT_HELLO {
                return ClientHelloScan::Invalid;
            }
            handshake_seen += 1;
            used += 1;
        }
        if handshake_seen < HANDSHAKE_HEADER {
            if available.len() < fragment_len {
                let header_missing = HANDSHAKE_HEADER - handshake_seen;
                let need = (fragment_start + used + header_missing).min(fragment_end);
                return ClientHelloScan::Incomplete { need };
            }
            pos = fragment_end;
            continue;
        }
        let body_len = usize::from(handshake_header[1]) << 16
            | usize::from(handshake_header[2]) << 8
            | usize::from(handshake_header[3]);
        if body_len < 2 + 32 || HANDSHAKE_HEADER + body_len > max_message {
            return ClientHelloScan::Invalid;
        }
        let message_len = HANDSHAKE_HEADER + body_len;
        // Bytes of the message this record can still carry.
        let wanted = message_len - handshake_seen;
        let in_record = fragment_len - used;
        if wanted <= in_record {
            let end = fragment_start + used + wanted;
            return if input.len() >= end {
                ClientHelloScan::Complete { end }
            } else {
                ClientHelloScan::Incomplete { need: end }
            };
        }
        if input.len() < fragment_end {
            return ClientHelloScan::Incomplete { need: fragment_end };
        }
        handshake_seen += in_record;
        pos = fragment_end;
    }
}

/// Recognises a TLS 1.0–1.3 ClientHello (the `tls` kind's detector).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientHelloDetector;

impl Detector for ClientHelloDetector {
    fn detect(&self, prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        match scan_client_hello(prefix) {
            ClientHelloScan::Complete { .. } => Verdict::MATCH,
            ClientHelloScan::Incomplete { need } => Verdict::need(need),
            ClientHelloScan::Invalid => Verdict::NoMatch,
        }
    }

    fn byte_limit(&self) -> ByteLimit {
        ByteLimit::AtLeast(record_layer_bytes(MAX_CLIENT_HELLO))
    }
}

/// How many bytes a handshake message of `max_message` bytes takes on the
/// wire in full-size records: record headers come on top of the message.
pub(crate) const fn record_layer_bytes(max_message: usize) -> usize {
    max_message + max_message / MAX_FRAGMENT * RECORD_HEADER + RECORD_HEADER
}

/// What a ClientHello says about the session the client wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHelloInfo {
    /// The SNI host name, lowercased.
    pub server_name: Option<String>,
    /// The ALPN protocols offered, in the client's order.
    pub alpn: Vec<Vec<u8>>,
}

/// Extracts SNI and ALPN from a complete ClientHello at the start of `input`.
/// Returns `None` when `input` does not start with a complete, well-formed one.
pub fn parse_client_hello(input: &[u8]) -> Option<ClientHelloInfo> {
    let ClientHelloScan::Complete { end } = scan_client_hello(input) else {
        return None;
    };
    // Reassemble the handshake message from its record fragments.
    let mut message = Vec::with_capacity(end);
    let mut pos = 0;
    while pos < end {
        let len = usize::from(u16::from_be_bytes([input[pos + 3], input[pos + 4]]));
        let fragment_end = (pos + RECORD_HEADER + len).min(end);
        message.extend_from_slice(&input[pos + RECORD_HEADER..fragment_end]);
        pos = fragment_end;
    }
    parse_client_hello_body(message.get(HANDSHAKE_HEADER..)?)
}

fn parse_client_hello_body(body: &[u8]) -> Option<ClientHelloInfo> {
    let mut reader = Reader(body);
    reader.take(2 + 32)?; // legacy_version, random
    reader.vec8()?; // legacy_session_id
    reader.vec16()?; // cipher_suites
    reader.vec8()?; // legacy_compression_methods
    let mut info = ClientHelloInfo::default();
    if reader.0.is_empty() {
        return Some(info); // no extensions (TLS 1.0 style)
    }
    let mut extensions = Reader(reader.vec16()?);
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let mut data = Reader(extensions.vec16()?);
        match kind {
            0 => info.server_name = parse_server_name(&mut data),
            16 => {
                let mut list = Reader(data.vec16()?);
                while !list.0.is_empty() {
                    info.alpn.push(list.vec8()?.to_vec());
                }
            }
            _ => {}
        }
    }
    Some(info)
}

fn parse_server_name(data: &mut Reader<'_>) -> Option<String> {
    let mut list = Reader(data.vec16()?);
    while !list.0.is_empty() {
        let name_type = list.take(1)?[0];
        let name = list.vec16()?;
        if name_type == 0 {
            let name = std::str::from_utf8(name).ok()?;
            return Some(name.trim_end_matches('.').to_ascii_lowercase());
        }
    }
    None
}

/// A bounds-checked cursor over TLS wire structures.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let len = self.take(1)?[0];
        self.take(usize::from(len))
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }
}

#[cfg(test)]
mod tests;
