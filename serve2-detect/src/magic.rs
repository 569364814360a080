//! Fixed byte strings ("magics"): serve2d's `proxy`, `echo` and `discard`.

use crate::{DetectContext, Detector, Verdict};

/// Matches when the prefix starts with one of a set of byte strings.
///
/// Candidates are tried shortest first; while one is still a prefix of what was
/// buffered, the detector asks for exactly the bytes that candidate needs.
#[derive(Debug, Clone)]
pub struct MagicDetector {
    /// Sorted by length, shortest first; never empty, no empty magic.
    magics: Vec<Box<[u8]>>,
}

impl MagicDetector {
    /// Builds a detector for the given magics. Returns `None` when the list is
    /// empty or holds an empty string (which would match everything).
    pub fn new<I, M>(magics: I) -> Option<Self>
    where
        I: IntoIterator<Item = M>,
        M: AsRef<[u8]>,
    {
        let mut magics: Vec<Box<[u8]>> = magics.into_iter().map(|m| m.as_ref().into()).collect();
        if magics.is_empty() || magics.iter().any(|m| m.is_empty()) {
            return None;
        }
        magics.sort_by_key(|m| m.len());
        magics.dedup();
        Some(Self { magics })
    }

    /// The magics, shortest first.
    pub fn magics(&self) -> impl Iterator<Item = &[u8]> {
        self.magics.iter().map(|m| &m[..])
    }
}

impl Detector for MagicDetector {
    fn detect(&self, prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        detect_tokens(prefix, self.magics())
    }
}

/// Matches when `prefix` starts with one of `tokens`; while some token is
/// still possible, asks for the shortest such token's length.
pub(crate) fn detect_tokens<'t>(prefix: &[u8], tokens: impl IntoIterator<Item = &'t [u8]>) -> Verdict {
    let mut need: Option<usize> = None;
    for token in tokens {
        if prefix.len() >= token.len() {
            if prefix.starts_with(token) {
                return Verdict::MATCH;
            }
        } else if token.starts_with(prefix) {
            need = Some(need.map_or(token.len(), |n| n.min(token.len())));
        }
    }
    need.map_or(Verdict::NoMatch, Verdict::need)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_segmentation_independent;

    fn verdict(detector: &MagicDetector, flight: &[u8]) -> Verdict {
        assert_segmentation_independent(detector, flight, &DetectContext::default())
    }

    const OPENSSH_BANNER: &[u8] = include_bytes!("../../tests/fixtures/openssh-client-banner.bin");

    #[test]
    fn ssh_magic_matches_real_openssh_banner() {
        let ssh = MagicDetector::new(["SSH"]).unwrap();
        assert_eq!(verdict(&ssh, OPENSSH_BANNER), Verdict::MATCH);
        assert_eq!(ssh.detect(b"", &DetectContext::default()), Verdict::need(3));
        assert_eq!(ssh.detect(b"SS", &DetectContext::default()), Verdict::need(3));
    }

    #[test]
    fn echo_and_discard_magics() {
        let echo = MagicDetector::new(["ECHO"]).unwrap();
        let discard = MagicDetector::new(["DISCARD"]).unwrap();
        assert_eq!(verdict(&echo, b"ECHO hello\n"), Verdict::MATCH);
        assert_eq!(verdict(&echo, b"DISCARD x"), Verdict::NoMatch);
        assert_eq!(verdict(&discard, b"DISCARD x"), Verdict::MATCH);
        assert_eq!(verdict(&discard, b"DISCO"), Verdict::NoMatch);
        assert_eq!(verdict(&discard, OPENSSH_BANNER), Verdict::NoMatch);
    }

    #[test]
    fn arrays_try_shortest_first_and_ask_for_more_while_a_prefix() {
        let multi = MagicDetector::new(["POST", "GET", "OPTIONS"]).unwrap();
        let ctx = DetectContext::default();
        assert_eq!(multi.detect(b"", &ctx), Verdict::need(3));
        assert_eq!(multi.detect(b"G", &ctx), Verdict::need(3));
        assert_eq!(multi.detect(b"P", &ctx), Verdict::need(4));
        assert_eq!(multi.detect(b"O", &ctx), Verdict::need(7));
        assert_eq!(multi.detect(b"OPTIO", &ctx), Verdict::need(7));
        assert_eq!(verdict(&multi, b"GET / HTTP/1.1\r\n"), Verdict::MATCH);
        assert_eq!(verdict(&multi, b"POST /"), Verdict::MATCH);
        assert_eq!(verdict(&multi, b"OPTIONS *"), Verdict::MATCH);
        assert_eq!(verdict(&multi, b"PUT /"), Verdict::NoMatch);
        assert_eq!(verdict(&multi, b"OPTIONAL"), Verdict::NoMatch);
    }

    #[test]
    fn overlapping_magics_settle_on_the_shortest() {
        let multi = MagicDetector::new(["SSH-2.0-OpenSSH", "SSH"]).unwrap();
        assert_eq!(multi.detect(b"SS", &DetectContext::default()), Verdict::need(3));
        assert_eq!(verdict(&multi, OPENSSH_BANNER), Verdict::MATCH);
    }

    #[test]
    fn empty_magics_are_refused() {
        assert!(MagicDetector::new(Vec::<&str>::new()).is_none());
        assert!(MagicDetector::new(["SSH", ""]).is_none());
    }
}
