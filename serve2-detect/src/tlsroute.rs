//! `tlsroute`: TLS passthrough, routed by the ClientHello's SNI and ALPN
//! without terminating TLS (`tls` keeps meaning termination).
//!
//! The detector reads the whole ClientHello handshake message, across TCP
//! segments and TLS records (a hello over 16 KiB must span several), up to
//! `maxHello` bytes of handshake message (default 64 KiB). It follows every
//! record header as it arrives (content type 0x16, version 03 00–03 04,
//! fragment 1–16384 bytes) and refuses a hello whose length field exceeds
//! `maxHello` at once. SNI and ALPN sit in the extensions at the end of the
//! hello, so a hello that matches the grammar but not `serverNames` or `alpn`
//! is refused only when all of it is buffered: the verdict is then the same
//! whether the rest is well-formed or not.
//!
//! Names are compared in place through a cursor that skips record headers,
//! so a name split by a record boundary still matches; only the learned
//! [`Learned::server_name`] span is then absent (a span cannot cover two
//! pieces). Names longer than 255 bytes are no DNS host names and match no
//! `serverNames` pattern. A ClientHello with two server_name or two ALPN
//! extensions is refused, as TLS libraries refuse it, so that no route
//! depends on which one a backend would read.
//!
//! SSLv2-format compatibility hellos (RFC 5246 Appendix E.2: a 2-byte header
//! with the high bit set, msg_type 1, version 03 00–03 03) are accepted,
//! checked field by field, but carry no extensions, hence neither SNI nor
//! ALPN: they match only when `alpn` is not given and `serverNames` is
//! either not given or contains `""`; otherwise they are refused on their
//! first byte. (sslh's TLS probe refuses them outright; haproxy recognises
//! them only for `req.ssl_ver`, while its `req.ssl_hello_type` and SNI
//! fetches see no hello. Accepting them where no name is needed keeps a
//! catch-all `tlsroute` a faithful "any TLS client" route, and the
//! `""` pattern already means "a hello that names no server".)

use serde::Deserialize;

use crate::registry::{ConfError, FromConf};
use crate::tls::filter::HelloFilter;
use crate::tls::hello::{self, Layout, Stop};
use crate::tls::{
    CONTENT_TYPE_HANDSHAKE, ClientHelloScan, HANDSHAKE_HEADER, RECORD_HEADER, record_layer_bytes,
    scan_client_hello_up_to,
};
use crate::{ByteLimit, DetectContext, Detector, Learned, Verdict};

mod sslv2;
use sslv2::V2Scan;

/// `maxHello` when not configured: real ClientHellos are under 2 KB even
/// with post-quantum key shares; 64 KiB leaves room for padded ones and
/// long pre-shared-key lists.
pub const DEFAULT_MAX_HELLO: usize = 64 * 1024;
/// The largest `maxHello` accepted (a handshake length field has 24 bits).
pub const MAX_MAX_HELLO: usize = 16 << 20;

/// Recognises a TLS ClientHello and routes it by SNI and offered ALPN.
#[derive(Debug, Clone)]
pub struct TlsRouteDetector {
    filter: HelloFilter,
    max_hello: usize,
}

impl Default for TlsRouteDetector {
    fn default() -> Self {
        Self { filter: HelloFilter::default(), max_hello: DEFAULT_MAX_HELLO }
    }
}

/// The keys of `tlsroute`'s `conf`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Conf {
    /// SNI patterns (see [`crate::names`]); `""` is a hello without SNI.
    /// Absent: any name, or none.
    #[serde(default)]
    pub server_names: Option<Vec<String>>,
    /// ALPN protocols; the hello must offer at least one of them. Absent:
    /// ALPN is not looked at.
    #[serde(default)]
    pub alpn: Option<Vec<String>>,
    /// The largest ClientHello handshake message read, in bytes.
    #[serde(default)]
    pub max_hello: Option<usize>,
}

impl TlsRouteDetector {
    fn detect_records(&self, prefix: &[u8]) -> Verdict {
        let scan = scan_client_hello_up_to(prefix, self.max_hello);
        if scan == ClientHelloScan::Invalid {
            return Verdict::NoMatch;
        }
        // Walked on partial prefixes too, so a broken structure is refused
        // as soon as it is buffered rather than at the end of its record.
        match (scan, hello::walk(prefix, Layout::TlsRecords, |offered| self.filter.accepts_alpn(offered))) {
            (ClientHelloScan::Invalid, _) | (_, Err(Stop::Malformed)) => Verdict::NoMatch,
            (ClientHelloScan::Incomplete { need }, _) => Verdict::need(need),
            (ClientHelloScan::Complete { .. }, Ok(hello)) => {
                if self.filter.accepts(&hello) {
                    let span = hello.server_name.as_ref().and_then(|n| n.span);
                    Verdict::Match(Learned { server_name: span, host: None })
                } else {
                    Verdict::NoMatch
                }
            }
            // The scan found the whole message, so the walk cannot run short.
            (ClientHelloScan::Complete { .. }, Err(Stop::Short)) => Verdict::NoMatch,
        }
    }

    fn detect_v2(&self, prefix: &[u8]) -> Verdict {
        if !self.filter.accepts_hello_without_extensions() {
            return Verdict::NoMatch;
        }
        match sslv2::scan_v2(prefix, self.max_hello) {
            V2Scan::Complete => Verdict::MATCH,
            V2Scan::Incomplete { min, max } => Verdict::need_up_to(min, max),
            V2Scan::Invalid => Verdict::NoMatch,
        }
    }
}

impl Detector for TlsRouteDetector {
    fn detect(&self, prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        match prefix.first() {
            None => Verdict::need_up_to(1, RECORD_HEADER + HANDSHAKE_HEADER),
            Some(&CONTENT_TYPE_HANDSHAKE) => self.detect_records(prefix),
            Some(&first) if first & 0x80 != 0 => self.detect_v2(prefix),
            Some(_) => Verdict::NoMatch,
        }
    }

    fn byte_limit(&self) -> ByteLimit {
        // An SSLv2-format hello (at most 2 + maxHello bytes) fits this too.
        ByteLimit::AtLeast(record_layer_bytes(self.max_hello))
    }
}

impl FromConf for TlsRouteDetector {
    type Conf = Conf;
    fn from_conf(conf: Conf) -> Result<Self, ConfError> {
        let filter = HelloFilter::from_conf(conf.server_names, conf.alpn)?;
        let max_hello = conf.max_hello.unwrap_or(DEFAULT_MAX_HELLO);
        if max_hello == 0 || max_hello > MAX_MAX_HELLO {
            return Err(ConfError::key("maxHello", format!("must be 1 to {MAX_MAX_HELLO} bytes (16 MiB)")));
        }
        Ok(Self { filter, max_hello })
    }
}

#[cfg(test)]
mod synthetic_tests;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod timeline {
    use super::*;
    use crate::Span;

    const CHROMIUM_PQ: &[u8] = include_bytes!("../../tests/fixtures/chromium-156-x25519mlkem768-clienthello.bin");

    /// What the engine sees, prefix by prefix, for Chromium's 1955-byte
    /// post-quantum hello in one record: the record header is checked byte
    /// by byte, the handshake header is awaited, then the whole record; the
    /// verdict is undecided until the last byte, then a match that learned
    /// the SNI name.
    #[test]
    fn chromium_hello_is_undecided_until_its_last_byte() {
        let route = TlsRouteDetector::from_conf(Conf {
            server_names: Some(vec!["pq.example.test".to_owned()]),
            ..Conf::default()
        })
        .unwrap();
        let ctx = DetectContext::default();
        let expected = |end: usize| match end {
            0 => Verdict::need_up_to(1, 9),
            1..=4 => Verdict::need(5),
            5..=8 => Verdict::need(9),
            9..=1954 => Verdict::need(1955),
            _ => Verdict::Match(Learned { server_name: Span::new(1641, 1656), host: None }),
        };
        for end in 0..=CHROMIUM_PQ.len() {
            assert_eq!(route.detect(&CHROMIUM_PQ[..end], &ctx), expected(end), "after {end} bytes");
        }
        let Verdict::Match(learned) = route.detect(CHROMIUM_PQ, &ctx) else { unreachable!() };
        assert_eq!(learned.server_name.unwrap().of(CHROMIUM_PQ), b"pq.example.test");
    }
}
