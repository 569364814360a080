//! `syslog`: syslog messages over TCP (RFC 6587), with or without octet
//! counting, in RFC 3164 or RFC 5424 format.
//!
//! A message starts with `<PRI>`: 1–3 digits, 0 to 191, no leading zero
//! except `<0>`. With octet counting (RFC 6587 §3.4.1) it is preceded by
//! `MSG-LEN SP`, 1–5 digits with no leading zero.
//!
//! How strict after the PRI: one printable ASCII byte (space included)
//! decides. RFC 5424's `VERSION SP` (`<13>1 `) and RFC 3164's `Mmm dd
//! hh:mm:ss ` timestamp (`<13>Dec  1 …`, what `logger` sends) both pass,
//! and so do the loose BSD forms senders really use (`<189>123: *Mar 1 …`,
//! `<13>host tag: …`), which RFC 3164 §4.3.3 tells collectors to accept as
//! they come. A `<`, a digit and a `>` in that arrangement is already
//! specific: HTML, XML and XMPP (`<h`, `<!`, `<?`, `<s`) depart at the
//! second byte, and `12 abc` at the fourth. Control bytes and non-ASCII after
//! the PRI are refused, so binary data that happens to contain `<1>` is not
//! claimed.

use crate::registry::{ConfError, FromConf, NoConf};
use crate::{DetectContext, Detector, Verdict};

/// Digits in an octet-counting MSG-LEN (up to 99999 bytes).
const MAX_LEN_DIGITS: usize = 5;
/// Digits in a PRI.
const MAX_PRI_DIGITS: usize = 3;
/// The highest PRI: facility 23 (local7) × 8 + severity 7 (debug).
const MAX_PRI: u16 = 191;
/// The most bytes a decision takes: `99999 <191>` and one byte after it.
const DECISIVE_MAX: usize = MAX_LEN_DIGITS + 1 + 1 + MAX_PRI_DIGITS + 1 + 1;

/// Recognises syslog over TCP (RFC 3164, RFC 5424, octet-counted or not).
#[derive(Debug, Clone, Default)]
pub struct SyslogDetector;

/// Where the scan is in `[MSG-LEN SP] '<' PRI '>' byte`.
#[derive(Debug, Clone, Copy)]
enum Part {
    /// Before the first byte: a MSG-LEN digit or `<`.
    Start,
    /// In the MSG-LEN, with this many digits.
    MsgLen(usize),
    /// After `MSG-LEN SP`: the `<`.
    Open,
    /// In the PRI, with this many digits of this value.
    Pri(usize, u16),
    /// After `>`: the first byte of the message.
    Content,
}

impl Detector for SyslogDetector {
    fn detect(&self, prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        let mut part = Part::Start;
        for &b in prefix {
            part = match (part, b) {
                (Part::Start, b'1'..=b'9') => Part::MsgLen(1),
                (Part::MsgLen(n), b'0'..=b'9') if n < MAX_LEN_DIGITS => Part::MsgLen(n + 1),
                (Part::MsgLen(_), b' ') => Part::Open,
                (Part::Start | Part::Open, b'<') => Part::Pri(0, 0),
                (Part::Pri(n, value), b'0'..=b'9') => {
                    let leading_zero = n > 0 && value == 0; // only `<0>` may start with 0
                    let value = value * 10 + u16::from(b - b'0');
                    if leading_zero || n >= MAX_PRI_DIGITS || value > MAX_PRI {
                        return Verdict::NoMatch;
                    }
                    Part::Pri(n + 1, value)
                }
                (Part::Pri(n, _), b'>') if n > 0 => Part::Content,
                (Part::Content, b' '..=b'~') => return Verdict::MATCH,
                _ => return Verdict::NoMatch,
            };
        }
        Verdict::need_up_to(prefix.len() + 1, DECISIVE_MAX)
    }
}

impl FromConf for SyslogDetector {
    type Conf = NoConf;
    fn from_conf(_conf: NoConf) -> Result<Self, ConfError> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests;
