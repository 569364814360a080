//! `h2c`: the HTTP/2 prior-knowledge connection preface (RFC 9113 §3.4).

use crate::http::H2_PREFACE;
use crate::registry::{ConfError, FromConf, NoConf};
use crate::{DetectContext, Detector, Verdict, starts_like};

/// Recognises `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`.
#[derive(Debug, Clone, Copy, Default)]
pub struct H2cDetector;

impl Detector for H2cDetector {
    fn detect(&self, prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        match starts_like(prefix, H2_PREFACE) {
            None => Verdict::NoMatch,
            Some(false) => Verdict::need(H2_PREFACE.len()),
            Some(true) => Verdict::MATCH,
        }
    }
}

impl FromConf for H2cDetector {
    type Conf = NoConf;
    fn from_conf(_conf: NoConf) -> Result<Self, ConfError> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Outcome, judge};

    const CURL_H2C: &[u8] = include_bytes!("../../tests/fixtures/curl-h2-prior-knowledge.bin");
    const CURL_GET: &[u8] = include_bytes!("../../tests/fixtures/http/curl-GET.bin");

    #[test]
    fn curl_prior_knowledge_matches_and_http1_does_not() {
        assert_eq!(judge(&H2cDetector, CURL_H2C), Outcome::Match);
        assert_eq!(judge(&H2cDetector, CURL_GET), Outcome::No);
        assert_eq!(judge(&H2cDetector, b"PRI * HTTP/1.1\r\n"), Outcome::No);
    }
}
