//! `quic`: a QUIC client's first flight (QUIC v1, RFC 9000, and v2,
//! RFC 9369), routed by the SNI and ALPN of its ClientHello if asked.
//!
//! # Without `serverNames` or `alpn`: the clear-text header
//!
//! The first datagram decides, on header fields alone (no cryptography):
//! its first packet is a long header (a Version Negotiation packet, version
//! 0, or a short header is refused at once), of a known version (v1
//! `0x00000001` with Initial type bits `00`, v2 `0x6b3343cf` with `01`;
//! draft versions are not claimed), an Initial whose Destination Connection
//! ID is 8 to 20 bytes (RFC 9000 §7.2); the datagram is at least 1200 bytes
//! (clients must pad datagrams carrying Initials, §14.1) and is made exactly
//! of long-header Initial and 0-RTT packets of that version and connection
//! id, whose length fields fit. The fixed bit is not required: RFC 9287 lets
//! clients grease it.
//!
//! # With `serverNames` and/or `alpn`: the ClientHello
//!
//! Each Initial is opened with the version's initial keys (derived from its
//! Destination Connection ID; rustls's aws-lc-rs QUIC support supplies
//! them), its CRYPTO frames are reassembled by offset (out of order, across
//! datagrams: a post-quantum ClientHello spans two Initials), and the
//! ClientHello is read with the same grammar and the same `serverNames` /
//! `alpn` matching as `tlsroute` ([`crate::names`]; ALPN matches when any
//! offered protocol is listed). The verdict is `NeedMore` until the hello is
//! whole, then a match or a refusal; every later datagram of the flow must
//! pass the header check too (datagrams with only 0-RTT packets are
//! skipped), and an Initial that does not decrypt, carries a frame an
//! Initial may not, or CRYPTO data past [`MAX_CRYPTO`] bytes is refused. A
//! hello still incomplete after [`MAX_DATAGRAMS`] datagrams is refused.
//!
//! Decryption copies each Initial into a scratch buffer: detection allocates
//! here, which is acceptable because it runs once per new UDP flow. The
//! verdict is the same in whatever order the Initials arrive (the stream is
//! reassembled by offset, and bytes sent twice must agree).
//!
//! A flow whose first datagram is not an Initial (a 0-RTT datagram that
//! overtook it) is refused: clients send the Initial first, and reordering
//! before the first reply is rare.

use crate::datagram::{DatagramDetector, DatagramVerdict};
use crate::reassembly::Reassembly;
use crate::registry::ConfError;
use crate::tls::filter::HelloFilter;
use crate::tls::hello::{self, Layout, Stop};
use crate::tls::{HANDSHAKE_CLIENT_HELLO, HANDSHAKE_HEADER};
use crate::udp_registry::FromUdpConf;

mod initial;
mod packet;

use initial::ClientInitialKeys;

/// The most CRYPTO stream bytes read: a ClientHello ends before this offset
/// or is refused (real ones are under 2 KB even with post-quantum shares).
pub const MAX_CRYPTO: usize = 64 * 1024;
/// The most datagrams judged while the ClientHello is incomplete: a hello
/// spans two Initials at most in practice (each Initial datagram carries
/// about 1150 bytes of it).
pub const MAX_DATAGRAMS: usize = 8;

/// Recognises a QUIC client's Initial, optionally by its ClientHello's SNI
/// and ALPN (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct QuicDetector {
    filter: HelloFilter,
}

/// The keys of `quic`'s `conf` (given, the Initials are decrypted).
pub type Conf = crate::tls::filter::FilterConf;

impl DatagramDetector for QuicDetector {
    fn detect(&self, datagrams: &[&[u8]]) -> DatagramVerdict {
        let Some(first) = datagrams.first() else {
            return DatagramVerdict::NeedMore;
        };
        let Some(layout) = packet::first_datagram(first) else {
            return DatagramVerdict::NoMatch;
        };
        if self.filter.is_empty() {
            return DatagramVerdict::Match;
        }
        let flow = &layout.packets[0];
        let dcid = &first[flow.dcid.clone()];
        let Some(keys) = ClientInitialKeys::derive(flow.version, dcid) else {
            return DatagramVerdict::NoMatch;
        };
        let mut stream = Reassembly::new(MAX_CRYPTO);
        let mut scratch = Vec::new();
        for (i, datagram) in datagrams.iter().enumerate().take(MAX_DATAGRAMS) {
            let layout = if i == 0 { Some(layout.clone()) } else { packet::layout(datagram) };
            let Some(layout) = layout else {
                return DatagramVerdict::NoMatch;
            };
            // Packets of one datagram share version and connection id.
            let same_flow =
                layout.packets.first().is_some_and(|p| p.version == flow.version && datagram[p.dcid.clone()] == *dcid);
            if !same_flow {
                return DatagramVerdict::NoMatch;
            }
            for initial in layout.initials() {
                let opened = initial::open(&keys, datagram, initial, &mut scratch)
                    .and_then(|frames| initial::read_frames(frames, &mut stream));
                if opened.is_none() {
                    return DatagramVerdict::NoMatch;
                }
            }
            if let Some(verdict) = self.judge_hello(stream.contiguous()) {
                return verdict;
            }
        }
        if datagrams.len() >= MAX_DATAGRAMS { DatagramVerdict::NoMatch } else { DatagramVerdict::NeedMore }
    }
}

impl QuicDetector {
    /// The verdict on the CRYPTO stream's first bytes, `None` while they may
    /// still become a ClientHello.
    fn judge_hello(&self, stream: &[u8]) -> Option<DatagramVerdict> {
        let &kind = stream.first()?;
        if kind != HANDSHAKE_CLIENT_HELLO {
            return Some(DatagramVerdict::NoMatch);
        }
        let message_len = match stream.get(1..HANDSHAKE_HEADER) {
            Some(len) => {
                HANDSHAKE_HEADER + (usize::from(len[0]) << 16 | usize::from(len[1]) << 8 | usize::from(len[2]))
            }
            None => return None,
        };
        if message_len > MAX_CRYPTO {
            return Some(DatagramVerdict::NoMatch);
        }
        // Walked on the partial hello too, so a broken one is refused as
        // soon as it shows.
        let message = &stream[..stream.len().min(message_len)];
        match hello::walk(message, Layout::TlsMessage, |offered| self.filter.accepts_alpn(offered)) {
            Err(Stop::Malformed) => Some(DatagramVerdict::NoMatch),
            Err(Stop::Short) if message.len() < message_len => None,
            Err(Stop::Short) => Some(DatagramVerdict::NoMatch),
            Ok(hello) if self.filter.accepts(&hello) => Some(DatagramVerdict::Match),
            Ok(_) => Some(DatagramVerdict::NoMatch),
        }
    }
}

impl FromUdpConf for QuicDetector {
    type Conf = Conf;
    fn from_conf(conf: Conf) -> Result<Self, ConfError> {
        Ok(Self { filter: conf.filter()? })
    }
}

#[cfg(test)]
mod tests;
