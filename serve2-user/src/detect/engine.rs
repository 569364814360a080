//! The detection loop: read only what undecided detectors can use, judge the
//! whole prefix after every read, pick the first match in configured order.

use std::io;

use super::{ByteLimit, DetectContext, Learned, Verdict};
use crate::conn::Conn;
use crate::protocol::ProtocolSet;

/// Why no protocol was detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmatched {
    /// Every detector refused the bytes.
    Refused,
    /// The detection deadline passed first.
    Timeout,
    /// The client closed its side before any detector decided.
    PeerClosed,
}

impl Unmatched {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Unmatched::Refused => "no-match",
            Unmatched::Timeout => "detect-timeout",
            Unmatched::PeerClosed => "client-closed",
        }
    }
}

/// The engine's answer: the winning protocol and what its detector learned,
/// or why none won.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// `set.protocols()[index]` matched; `learned` spans the bytes buffered.
    Matched {
        /// Index of the protocol.
        index: usize,
        /// What the detector learned.
        learned: Learned,
    },
    /// Nothing matched.
    Unmatched(Unmatched),
}

/// Runs detection on `conn` until a protocol of `set` matches, all refuse,
/// the client stops sending, or `conn`'s detection deadline passes.
///
/// Order is strict: a match counts only once every protocol before it has
/// refused, so the verdict never depends on how the bytes were segmented.
/// Also returns how many bytes detection saw, and the names the winner
/// learned (copied out: the buffer goes to the handler).
pub(crate) async fn detect(conn: &mut Conn, set: &ProtocolSet) -> io::Result<Detection> {
    let detected = detect_buffered(conn, set).await?;
    let names = match &detected {
        Detected::Matched { learned, .. } => LearnedNames::new(learned, conn.buffered()),
        Detected::Unmatched(_) => LearnedNames::default(),
    };
    let seen = conn.end_detection();
    Ok(Detection { detected, seen, names })
}

/// The engine's full answer.
#[derive(Debug)]
pub(crate) struct Detection {
    /// Who won, if anyone.
    pub detected: Detected,
    /// Bytes detection saw.
    pub seen: usize,
    /// The names the winning detector learned.
    pub names: LearnedNames,
}

/// Names a detector learned, escaped and capped for log lines: bytes from
/// the wire never reach a log unescaped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct LearnedNames {
    /// The TLS SNI host name, lowercased.
    pub server_name: Option<String>,
    /// The HTTP host.
    pub host: Option<String>,
}

/// The longest name kept (a DNS name is at most 253 bytes).
const MAX_NAME: usize = 253;

impl LearnedNames {
    fn new(learned: &Learned, prefix: &[u8]) -> Self {
        let name = |span: Option<crate::detect::Span>| span.map(|s| escape_name(s.of(prefix)));
        Self { server_name: name(learned.server_name), host: name(learned.host) }
    }
}

/// Lowercases, escapes anything outside printable ASCII, and caps length.
pub(crate) fn escape_name(raw: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(raw.len().min(MAX_NAME));
    for &b in raw.iter().take(MAX_NAME) {
        match b {
            b'!'..=b'~' if b != b'\\' && b != b'"' => out.push(char::from(b.to_ascii_lowercase())),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    if raw.len() > MAX_NAME {
        out.push('…');
    }
    out
}

async fn detect_buffered(conn: &mut Conn, set: &ProtocolSet) -> io::Result<Detected> {
    let protocols = set.protocols();
    let max_read = set.limits().max_read;
    // Bit i set: protocol i is still undecided or matched-but-waiting.
    let mut alive: u64 = if protocols.len() >= 64 { u64::MAX } else { (1u64 << protocols.len()) - 1 };
    loop {
        let info = conn.info();
        let ctx = DetectContext { tls: info.tls.as_ref(), depth: info.depth };
        let prefix = conn.buffered();
        let mut blocked = false;
        // The most bytes any undecided detector ahead of a match can use.
        let mut want = 0usize;
        for (index, protocol) in protocols.iter().enumerate() {
            let bit = 1u64 << index;
            if alive & bit == 0 {
                continue;
            }
            let detector = protocol.detector();
            let limit = byte_limit(detector.byte_limit(), max_read);
            // A first read may hold more than a detector's limit: it never
            // sees past it.
            let view = &prefix[..prefix.len().min(limit)];
            match detector.detect(view, &ctx) {
                Verdict::Match(learned) if !blocked => return Ok(Detected::Matched { index, learned }),
                Verdict::Match(_) => {}
                Verdict::NoMatch => alive &= !bit,
                Verdict::NeedMore(need) => {
                    // A detector asking for what it already has is a bug in it;
                    // ask for one more byte rather than spin.
                    let min = need.min.max(view.len() + 1);
                    if min > limit {
                        alive &= !bit;
                    } else {
                        blocked = true;
                        want = want.max(need.max.clamp(min, limit));
                    }
                }
            }
        }
        if alive == 0 || want == 0 {
            return Ok(Detected::Unmatched(Unmatched::Refused));
        }
        let more = want - prefix.len();
        let reason = match conn.buffer_before_deadline(more).await? {
            Some(0) => Unmatched::PeerClosed,
            Some(_) => continue,
            None => Unmatched::Timeout,
        };
        return Ok(settle(conn, set, alive, reason));
    }
}

/// No more bytes will come: undecided detectors count as refusals, and the
/// first remaining match (in order) wins.
fn settle(conn: &Conn, set: &ProtocolSet, alive: u64, reason: Unmatched) -> Detected {
    let info = conn.info();
    let ctx = DetectContext { tls: info.tls.as_ref(), depth: info.depth };
    let prefix = conn.buffered();
    let max_read = set.limits().max_read;
    set.protocols()
        .iter()
        .enumerate()
        .filter(|(i, _)| alive & (1u64 << i) != 0)
        .find_map(|(index, p)| {
            let limit = byte_limit(p.detector().byte_limit(), max_read);
            match p.detector().detect(&prefix[..prefix.len().min(limit)], &ctx) {
                Verdict::Match(learned) => Some(Detected::Matched { index, learned }),
                _ => None,
            }
        })
        .unwrap_or(Detected::Unmatched(reason))
}

/// The most bytes a detector may see.
fn byte_limit(limit: ByteLimit, max_read: usize) -> usize {
    match limit {
        ByteLimit::MaxRead => max_read,
        ByteLimit::AtLeast(n) => n.max(max_read),
    }
}

#[cfg(test)]
mod tests;
