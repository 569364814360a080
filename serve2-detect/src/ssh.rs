//! `ssh`: an SSH identification string (RFC 4253 §4.2), `SSH-protoversion-`.
//!
//! A client's first line is its identification string (only a server may
//! send other lines first), so the detector needs `SSH-`, a version
//! `digits.digits` and the `-` after it: 8 to 9 bytes for `SSH-2.0-` or
//! `SSH-1.99-`, refusing at the first byte that cannot fit.

use crate::registry::{ConfError, FromConf, NoConf};
use crate::{DetectContext, Detector, Verdict, starts_like};

/// The longest version field we wait for (`1.99` is the longest in use).
const MAX_VERSION: usize = 8;

/// Recognises an SSH client's identification string.
#[derive(Debug, Clone, Copy, Default)]
pub struct SshDetector;

impl Detector for SshDetector {
    fn detect(&self, prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        match starts_like(prefix, b"SSH-") {
            None => return Verdict::NoMatch,
            Some(false) => return Verdict::need(4),
            Some(true) => {}
        }
        // digits '.' digits '-'
        let version = &prefix[4..];
        let mut seen_dot = false;
        for (i, &b) in version.iter().enumerate() {
            match b {
                b'0'..=b'9' => {}
                b'.' if !seen_dot && i > 0 => seen_dot = true,
                b'-' if seen_dot && version[i - 1] != b'.' => return Verdict::MATCH,
                _ => return Verdict::NoMatch,
            }
            if i >= MAX_VERSION {
                return Verdict::NoMatch;
            }
        }
        Verdict::need_up_to(prefix.len() + 1, 4 + MAX_VERSION + 1)
    }
}

impl FromConf for SshDetector {
    type Conf = NoConf;
    fn from_conf(_conf: NoConf) -> Result<Self, ConfError> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Outcome, judge};

    const OPENSSH: &[u8] = include_bytes!("../../tests/fixtures/openssh-client-banner.bin");

    #[test]
    fn real_openssh_banner_matches() {
        assert_eq!(judge(&SshDetector, OPENSSH), Outcome::Match);
        assert_eq!(judge(&SshDetector, b"SSH-1.99-PuTTY\r\n"), Outcome::Match);
        assert_eq!(judge(&SshDetector, b"SSH-2.0-"), Outcome::Match);
    }

    #[test]
    fn look_alikes_are_refused_early() {
        for flight in [&b"SSH2.0-x"[..], b"SSH-2-x", b"SSH-.0-x", b"SSH-2.-x", b"SSH-2.0.1-x", b"ssh-2.0-x", b"GET /"] {
            assert_eq!(judge(&SshDetector, flight), Outcome::No, "{:?}", String::from_utf8_lossy(flight));
        }
        assert_eq!(SshDetector.detect(b"X", &DetectContext::default()), Verdict::NoMatch);
        assert_eq!(judge(&SshDetector, b"SSH-123456789.0-"), Outcome::No);
    }
}
