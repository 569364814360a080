//! `dtls`: a DTLS client's ClientHello (DTLS 1.0, RFC 4347; 1.2, RFC 6347;
//! 1.3, RFC 9147), routed by its SNI and ALPN if asked.
//!
//! Every record of the first datagram must be a plaintext handshake record
//! (content type 22, version `fe ff`, `fe fd` or `fe fc`, epoch 0, a length
//! that fits) carrying a fragment of one ClientHello: handshake type 1,
//! message_seq 0 (a new flow's first hello; the one repeated after a
//! HelloVerifyRequest has 1 and belongs to a flow already decided), a
//! fragment that lies within the message and fills its record, and a
//! client version `fe ff`, `fe fd` or `fe fc`. The records must cover the
//! datagram exactly. Whatever of the hello is there is then read with the
//! ClientHello grammar `tlsroute` uses (with DTLS's cookie field), so a
//! broken hello is refused.
//!
//! Without `serverNames` or `alpn` that decides on the first datagram. With
//! them the whole hello is needed: fragments are reassembled by offset
//! across records and datagrams (real clients fit theirs in one datagram;
//! a hello larger than the path MTU is fragmented, RFC 6347 §4.2.3), the
//! verdict is `NeedMore` until it is whole, then the names are matched as
//! by `tlsroute` ([`crate::names`]; ALPN when any offered protocol is
//! listed). Every later datagram must carry fragments of the same hello; a
//! hello still incomplete after [`MAX_DATAGRAMS`] datagrams is refused.

use crate::datagram::{DatagramDetector, DatagramVerdict};
use crate::reassembly::Reassembly;
use crate::registry::ConfError;
use crate::tls::filter::HelloFilter;
use crate::tls::hello::{self, DTLS_HANDSHAKE_HEADER, Layout, Stop};
use crate::tls::{CONTENT_TYPE_HANDSHAKE, HANDSHAKE_CLIENT_HELLO};
use crate::udp_registry::FromUdpConf;

/// A DTLS record header: type, version, epoch, sequence number, length.
const RECORD_HEADER: usize = 13;
/// DTLS 1.0, 1.2 and 1.3 on the wire.
const VERSIONS: [[u8; 2]; 3] = [[0xfe, 0xff], [0xfe, 0xfd], [0xfe, 0xfc]];
/// The smallest ClientHello body: version, random, empty session id and
/// cookie, one cipher suite, one compression method.
const MIN_BODY: usize = 2 + 32 + 1 + 1 + 2 + 2 + 1 + 1;
/// The largest ClientHello read, as for `tlsroute`'s default `maxHello`.
pub const MAX_HELLO: usize = 64 * 1024;
/// The most datagrams judged while the ClientHello is incomplete.
pub const MAX_DATAGRAMS: usize = 8;

/// Recognises a DTLS ClientHello, optionally by its SNI and ALPN (see the
/// module docs).
#[derive(Debug, Clone, Default)]
pub struct DtlsDetector {
    filter: HelloFilter,
}

/// The keys of `dtls`'s `conf`.
pub type Conf = crate::tls::filter::FilterConf;

/// One fragment of the ClientHello, from one record.
struct Fragment<'a> {
    /// The whole message's body length, as its header says.
    message_len: usize,
    offset: usize,
    bytes: &'a [u8],
}

/// The ClientHello fragments a datagram's records carry, or `None` when it
/// is not made of such records only.
fn fragments(datagram: &[u8]) -> Option<Vec<Fragment<'_>>> {
    // The first bytes refuse other protocols before any loop.
    if datagram.first() != Some(&CONTENT_TYPE_HANDSHAKE) || datagram.get(1) != Some(&0xfe) {
        return None;
    }
    let mut found = Vec::new();
    let mut pos = 0;
    while pos < datagram.len() {
        let header = datagram.get(pos..pos + RECORD_HEADER)?;
        let version_ok = VERSIONS.iter().any(|v| header[1..3] == *v);
        if header[0] != CONTENT_TYPE_HANDSHAKE || !version_ok || header[3..5] != [0, 0] {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([header[11], header[12]]));
        let record = datagram.get(pos + RECORD_HEADER..pos + RECORD_HEADER + len)?;
        found.push(fragment(record)?);
        pos += RECORD_HEADER + len;
    }
    let message_len = found.first()?.message_len;
    found.iter().all(|f| f.message_len == message_len).then_some(found)
}

/// The ClientHello fragment that fills `record`.
fn fragment(record: &[u8]) -> Option<Fragment<'_>> {
    let u24 =
        |at: usize| usize::from(record[at]) << 16 | usize::from(record[at + 1]) << 8 | usize::from(record[at + 2]);
    if record.len() <= DTLS_HANDSHAKE_HEADER || record[0] != HANDSHAKE_CLIENT_HELLO || record[4..6] != [0, 0] {
        return None;
    }
    let (message_len, offset, fragment_len) = (u24(1), u24(6), u24(9));
    let bytes = &record[DTLS_HANDSHAKE_HEADER..];
    let fits = fragment_len == bytes.len() && offset + fragment_len <= message_len;
    let version_ok = offset > 0 || bytes.get(..2).is_none_or(|v| VERSIONS.iter().any(|known| v == known));
    (fits && version_ok && (MIN_BODY..=MAX_HELLO).contains(&message_len)).then_some(Fragment {
        message_len,
        offset,
        bytes,
    })
}

impl DtlsDetector {
    /// The verdict on the hello's body as reassembled so far (`body` from
    /// offset 0, `message_len` in all), `None` while it may still match.
    fn judge_hello(&self, body: &[u8], message_len: usize) -> Option<DatagramVerdict> {
        let whole = body.len() >= message_len;
        let body = &body[..body.len().min(message_len)];
        let len = u32::try_from(message_len).ok()?.to_be_bytes();
        // The walk reads a whole, unfragmented message: rebuild its header.
        let mut message = vec![HANDSHAKE_CLIENT_HELLO, len[1], len[2], len[3], 0, 0, 0, 0, 0, len[1], len[2], len[3]];
        message.extend_from_slice(body);
        match hello::walk(&message, Layout::DtlsMessage, |offered| self.filter.accepts_alpn(offered)) {
            Err(Stop::Malformed) => Some(DatagramVerdict::NoMatch),
            Err(Stop::Short) if !whole => None,
            Err(Stop::Short) => Some(DatagramVerdict::NoMatch),
            Ok(hello) if self.filter.accepts(&hello) => Some(DatagramVerdict::Match),
            Ok(_) => Some(DatagramVerdict::NoMatch),
        }
    }
}

impl DatagramDetector for DtlsDetector {
    fn detect(&self, datagrams: &[&[u8]]) -> DatagramVerdict {
        let Some(first) = datagrams.first() else {
            return DatagramVerdict::NeedMore;
        };
        let Some(message_len) = fragments(first).and_then(|f| f.first().map(|f| f.message_len)) else {
            return DatagramVerdict::NoMatch;
        };
        let mut stream = Reassembly::new(message_len);
        for datagram in datagrams.iter().take(MAX_DATAGRAMS) {
            let Some(pieces) = fragments(datagram).filter(|f| f.iter().all(|f| f.message_len == message_len)) else {
                return DatagramVerdict::NoMatch;
            };
            if pieces.iter().any(|f| stream.insert(f.offset, f.bytes).is_err()) {
                return DatagramVerdict::NoMatch;
            }
            match self.judge_hello(stream.contiguous(), message_len) {
                Some(verdict) => return verdict,
                // The headers decide when no name is asked for.
                None if self.filter.is_empty() => return DatagramVerdict::Match,
                None => {}
            }
        }
        if datagrams.len() >= MAX_DATAGRAMS { DatagramVerdict::NoMatch } else { DatagramVerdict::NeedMore }
    }
}

impl FromUdpConf for DtlsDetector {
    type Conf = Conf;
    fn from_conf(conf: Conf) -> Result<Self, ConfError> {
        Ok(Self { filter: conf.filter()? })
    }
}

#[cfg(test)]
mod tests;
