//! `xmpp`: an XMPP stream header (RFC 6120 §4.2), `<stream:stream` and the
//! whitespace before its attributes, optionally after an XML declaration.
//!
//! Clients (sendxmpp, slixmpp) differ in the declaration and in the order of
//! the attributes, and the `to` and `xmlns` attributes may lie past a 128-byte
//! `maxRead`, so the detector matches on the structure alone: an optional
//! `<?xml version='1.x' [encoding='…'] [standalone='yes|no']?>` (either quote
//! style), optional whitespace, then `<stream:stream` and one whitespace
//! byte. `<stream:stream` is XMPP's own element (the `stream` prefix bound to
//! `http://etherx.jabber.org/streams`); no other protocol opens with it.
//! Every byte is checked against that grammar as it arrives, so HTML, other
//! XML documents (`<?xml …?><rss`) and text that merely mentions jabber are
//! refused at the first byte that departs from it.

use crate::registry::{ConfError, FromConf, NoConf};
use crate::{DetectContext, Detector, Verdict};

/// The stream element with its conventional prefix, after the `<`.
const STREAM_ELEMENT: &[u8] = b"stream:stream";

/// Recognises an XMPP stream header.
#[derive(Debug, Clone, Default)]
pub struct XmppDetector;

impl Detector for XmppDetector {
    fn detect(&self, prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        match stream_header(&mut Scan { bytes: prefix, pos: 0 }) {
            Ok(()) => Verdict::MATCH,
            Err(Stop::Bad) => Verdict::NoMatch,
            // Undecided until the next byte; the declaration's length is not
            // known in advance, so take whatever the engine will read.
            Err(Stop::Short) => Verdict::need_up_to(prefix.len() + 1, usize::MAX),
        }
    }
}

impl FromConf for XmppDetector {
    type Conf = NoConf;
    fn from_conf(_conf: NoConf) -> Result<Self, ConfError> {
        Ok(Self)
    }
}

/// Why scanning stopped before the header was complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The bytes so far fit; more are needed.
    Short,
    /// A byte departs from the grammar.
    Bad,
}

/// A cursor over the buffered prefix. Running out of bytes is always
/// [`Stop::Short`] and a wrong byte always [`Stop::Bad`], so the scan is
/// monotonic by construction: a longer prefix takes the same path.
struct Scan<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Result<u8, Stop> {
        self.bytes.get(self.pos).copied().ok_or(Stop::Short)
    }

    fn bump(&mut self) -> Result<u8, Stop> {
        let b = self.peek()?;
        self.pos += 1;
        Ok(b)
    }

    fn literal(&mut self, expected: &[u8]) -> Result<(), Stop> {
        for &want in expected {
            if self.bump()? != want {
                return Err(Stop::Bad);
            }
        }
        Ok(())
    }

    /// Skips XML whitespace (`S`), returning how much there was.
    fn spaces(&mut self) -> Result<usize, Stop> {
        let start = self.pos;
        while is_space(self.peek()?) {
            self.pos += 1;
        }
        Ok(self.pos - start)
    }

    /// `S? '=' S?` then an opening quote, returned so the value can be
    /// closed with the same one.
    fn equals_quote(&mut self) -> Result<u8, Stop> {
        self.spaces()?;
        self.literal(b"=")?;
        self.spaces()?;
        match self.bump()? {
            q @ (b'\'' | b'"') => Ok(q),
            _ => Err(Stop::Bad),
        }
    }

    /// Bytes accepted by `accept` (at least one, the first also by `first`)
    /// up to the closing quote `q`.
    fn quoted(&mut self, q: u8, first: fn(u8) -> bool, accept: fn(u8) -> bool) -> Result<(), Stop> {
        if !first(self.bump()?) {
            return Err(Stop::Bad);
        }
        loop {
            match self.bump()? {
                b if b == q => return Ok(()),
                b if accept(b) => {}
                _ => return Err(Stop::Bad),
            }
        }
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// `[XMLDecl] S? '<stream:stream' S`.
fn stream_header(scan: &mut Scan<'_>) -> Result<(), Stop> {
    scan.literal(b"<")?;
    if scan.peek()? == b'?' {
        declaration(scan)?;
        scan.spaces()?;
        scan.literal(b"<")?;
    }
    scan.literal(STREAM_ELEMENT)?;
    // The attributes (xmlns is mandatory) follow; `<stream:streamX` or a
    // bare `<stream:stream>` is not a client's header.
    if is_space(scan.bump()?) { Ok(()) } else { Err(Stop::Bad) }
}

/// XML 1.0's XMLDecl after the `<`: `?xml`, `version` with a `1.x` value,
/// then optionally `encoding` and `standalone` in that order, then `?>`.
fn declaration(scan: &mut Scan<'_>) -> Result<(), Stop> {
    scan.literal(b"?xml")?;
    if scan.spaces()? == 0 {
        return Err(Stop::Bad); // `<?xml-stylesheet` and the like
    }
    scan.literal(b"version")?;
    let q = scan.equals_quote()?;
    scan.literal(b"1.")?;
    scan.quoted(q, |b| b.is_ascii_digit(), |b| b.is_ascii_digit())?;
    // 0: only `version` seen; 1: `encoding` seen; 2: `standalone` seen.
    let mut seen = 0;
    loop {
        let gap = scan.spaces()?;
        match scan.peek()? {
            b'?' => return scan.literal(b"?>"),
            // Pseudo-attributes are separated by whitespace.
            _ if gap == 0 => return Err(Stop::Bad),
            b'e' if seen < 1 => {
                scan.literal(b"encoding")?;
                let q = scan.equals_quote()?;
                let name = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
                scan.quoted(q, |b| b.is_ascii_alphabetic(), name)?;
                seen = 1;
            }
            b's' if seen < 2 => {
                scan.literal(b"standalone")?;
                let q = scan.equals_quote()?;
                match scan.peek()? {
                    b'y' => scan.literal(b"yes")?,
                    _ => scan.literal(b"no")?,
                }
                scan.literal(&[q])?;
                seen = 2;
            }
            _ => return Err(Stop::Bad),
        }
    }
}

#[cfg(test)]
mod tests;
