//! # serve2-detect: recognising protocols from their first bytes
//!
//! A [`Detector`] is a pure function over the bytes a client has sent so far:
//! it answers [`Verdict::Match`] (with what it [`Learned`] on the way, such as
//! a TLS server name), [`Verdict::NoMatch`], or [`Verdict::NeedMore`] with how
//! many bytes it needs at least and how many it could use. serve2's engine
//! reads only what undecided detectors can use, runs every undecided
//! detector over the whole prefix after each read, and picks the first match
//! in configured order.
//!
//! Detectors must be monotonic: once a detector says `Match` or `NoMatch` for
//! a prefix, it says the same for every longer prefix. That is what makes the
//! verdict independent of how the client's bytes were split into segments;
//! [`testing`] checks it over every prefix of a captured flight.
//!
//! The protocol kinds a configuration can name are in [`registry`]: a new
//! kind is one file here plus one line there.
//!
//! UDP has its own contract ([`datagram`]): a [`DatagramDetector`] judges
//! the whole datagrams a new flow has sent so far and answers
//! [`DatagramVerdict::Match`], `NoMatch` or `NeedMore` (another datagram);
//! the UDP kinds (`quic`, `wireguard`, `openvpn`, `dtls`, `regex`) are in
//! [`udp_registry`], and [`testing::judge_datagrams`] checks them on
//! captured flows.

#![warn(missing_docs)]

mod adb;
pub mod datagram;
mod dtls;
#[cfg(test)]
mod fixtures;
mod h2c;
mod http;
mod httproute;
mod magic;
mod mqtt;
pub mod names;
mod openvpn;
mod postgres;
mod quic;
mod rdp;
mod reassembly;
mod regex;
pub mod registry;
mod socks5;
mod ssh;
mod syslog;
pub mod testing;
mod tinc;
pub mod tls;
mod tlsroute;
pub mod udp_registry;
mod wireguard;
mod xmpp;

pub use adb::AdbDetector;
pub use datagram::{DatagramDetector, DatagramVerdict};
pub use dtls::DtlsDetector;
pub use h2c::H2cDetector;
pub use http::{H2_PREFACE, HttpDetector};
pub use httproute::HttpRouteDetector;
pub use magic::MagicDetector;
pub use mqtt::MqttDetector;
pub use openvpn::{OpenVpnDetector, OpenVpnUdpDetector};
pub use postgres::PostgresDetector;
pub use quic::QuicDetector;
pub use rdp::RdpDetector;
pub use regex::{DatagramRegexDetector, RegexDetector};
pub use socks5::Socks5Detector;
pub use ssh::SshDetector;
pub use syslog::SyslogDetector;
pub use tinc::TincDetector;
pub use tls::{ClientHelloDetector, TlsStateMatcher};
pub use tlsroute::TlsRouteDetector;
pub use wireguard::WireGuardDetector;
pub use xmpp::XmppDetector;

/// A detector's answer for the bytes buffered so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The prefix identifies the protocol; the detector may say what it
    /// learned from it.
    Match(Learned),
    /// The prefix can never become this protocol.
    NoMatch,
    /// Undecided: more bytes must be buffered before the detector can answer.
    NeedMore(Need),
}

impl Verdict {
    /// A match that learned nothing beyond the protocol.
    pub const MATCH: Verdict = Verdict::Match(Learned::NOTHING);

    /// Undecided until exactly `total` bytes (counted from the first byte)
    /// are buffered: for fixed-size headers.
    pub const fn need(total: usize) -> Verdict {
        Verdict::NeedMore(Need { min: total, max: total })
    }

    /// Undecided until at least `min` bytes are buffered; the detector could
    /// use up to `max` (for delimiter-terminated lines, `max` lets the engine
    /// read the rest of the line in one call instead of byte by byte).
    pub const fn need_up_to(min: usize, max: usize) -> Verdict {
        Verdict::NeedMore(Need { min, max: if max > min { max } else { min } })
    }

    /// Whether this is a match.
    pub const fn is_match(&self) -> bool {
        matches!(self, Verdict::Match(_))
    }
}

/// How many bytes an undecided detector wants, counted from the first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    /// The fewest bytes with which the detector may answer differently.
    pub min: usize,
    /// The most bytes the detector can use (`>= min`); `usize::MAX` for
    /// "whatever the engine's cap allows".
    pub max: usize,
}

/// A byte range of the buffered prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Offset of the first byte.
    pub start: u32,
    /// Offset just past the last byte.
    pub end: u32,
}

impl Span {
    /// The span `start..end`, if it fits `u32` offsets.
    pub fn new(start: usize, end: usize) -> Option<Span> {
        Some(Span { start: u32::try_from(start).ok()?, end: u32::try_from(end).ok()? })
    }

    /// The bytes of `prefix` this span covers (empty if out of range).
    pub fn of<'a>(&self, prefix: &'a [u8]) -> &'a [u8] {
        prefix.get(self.start as usize..self.end as usize).unwrap_or_default()
    }
}

/// What a detector learned while matching, as spans of the prefix it matched
/// on: no allocation, and nothing downstream parses the bytes again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Learned {
    /// The TLS SNI host name, as sent (compare case-insensitively). Absent
    /// when the hello had none, or when the name straddles two TLS records.
    pub server_name: Option<Span>,
    /// The HTTP request's host (Host header or absolute-form authority),
    /// without any `:port`.
    pub host: Option<Span>,
}

impl Learned {
    /// Nothing learned.
    pub const NOTHING: Learned = Learned { server_name: None, host: None };
}

/// What serve2 learned from a TLS session it terminated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// The SNI server name the client asked for, lowercased.
    pub server_name: Option<String>,
    /// The ALPN protocol both sides agreed on, if any.
    pub alpn: Option<Vec<u8>>,
}

/// What a detector may know about the connection besides its bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct DetectContext<'a> {
    /// The TLS session this layer was decrypted from, if the nearest transport
    /// is TLS terminated by serve2.
    pub tls: Option<&'a TlsInfo>,
    /// How many transports (such as TLS) this layer is nested in; 0 for the
    /// raw TCP connection.
    pub depth: u8,
}

/// How many bytes the engine may buffer on a detector's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteLimit {
    /// The configured plaintext cap (`maxRead`).
    MaxRead,
    /// A detector-specific cap, for formats whose first message is larger than
    /// any sensible `maxRead` (a TLS ClientHello).
    AtLeast(usize),
}

/// Recognises one protocol from the first bytes a client sends.
///
/// Implementations must be pure and monotonic (see the crate docs) and
/// cheap: they run after every read over the whole buffered prefix.
pub trait Detector: Send + Sync + std::fmt::Debug + 'static {
    /// Judges the buffered prefix. `prefix` may be empty (before the first
    /// read); detectors that decide on connection state alone, like
    /// [`TlsStateMatcher`], answer then.
    fn detect(&self, prefix: &[u8], ctx: &DetectContext<'_>) -> Verdict;

    /// The most bytes this detector may ask the engine to buffer. A detector
    /// still undecided at its limit is treated as [`Verdict::NoMatch`].
    fn byte_limit(&self) -> ByteLimit {
        ByteLimit::MaxRead
    }
}

/// A detector that never matches: the detector of a default-only protocol.
#[derive(Debug, Clone, Copy, Default)]
pub struct NeverDetector;

impl Detector for NeverDetector {
    fn detect(&self, _prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        Verdict::NoMatch
    }
}

/// Compares `prefix` with the start of `expected` as far as both go: `None`
/// when they differ (say no), `Some(true)` when all of `expected` is there,
/// `Some(false)` when `prefix` is a proper prefix of it.
pub fn starts_like(prefix: &[u8], expected: &[u8]) -> Option<bool> {
    let n = prefix.len().min(expected.len());
    (prefix[..n] == expected[..n]).then_some(prefix.len() >= expected.len())
}
