//! HTTP/1.x request lines and the HTTP/2 prior-knowledge preface.

use crate::magic::detect_tokens;
use crate::{DetectContext, Detector, Verdict};

/// The methods serve2d's `http` kind recognises, each followed by the space
/// that ends the method token (so `GETX` is not HTTP).
const METHODS: [&[u8]; 9] =
    [b"GET ", b"PUT ", b"HEAD ", b"POST ", b"PATCH ", b"TRACE ", b"DELETE ", b"CONNECT ", b"OPTIONS "];

/// The HTTP/2 connection preface (RFC 9113 §3.4): what an h2 client sends
/// first, over TLS with ALPN `h2` or in clear text with prior knowledge.
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Recognises an HTTP/1.x request by its method, or an HTTP/2 preface.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpDetector;

impl Detector for HttpDetector {
    fn detect(&self, prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        detect_tokens(prefix, METHODS.iter().copied().chain([H2_PREFACE]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_segmentation_independent;

    macro_rules! fixture {
        ($method:literal) => {
            ($method, include_bytes!(concat!("../../tests/fixtures/http/curl-", $method, ".bin")).as_slice())
        };
    }

    const CAPTURES: [(&str, &[u8]); 9] = [
        fixture!("GET"),
        fixture!("HEAD"),
        fixture!("POST"),
        fixture!("PUT"),
        fixture!("DELETE"),
        fixture!("OPTIONS"),
        fixture!("PATCH"),
        fixture!("TRACE"),
        fixture!("CONNECT"),
    ];
    const H2: &[u8] = include_bytes!("../../tests/fixtures/curl-h2-prior-knowledge.bin");
    const SSH: &[u8] = include_bytes!("../../tests/fixtures/openssh-client-banner.bin");
    const TLS: &[u8] = include_bytes!("../../tests/fixtures/curl-openssl3-clienthello.bin");

    fn verdict(flight: &[u8]) -> Verdict {
        assert_segmentation_independent(&HttpDetector, flight, &DetectContext::default())
    }

    #[test]
    fn every_method_captured_from_curl_matches() {
        for (method, flight) in CAPTURES {
            assert!(flight.starts_with(method.as_bytes()));
            assert_eq!(verdict(flight), Verdict::MATCH, "{method}");
        }
    }

    #[test]
    fn h2_prior_knowledge_matches() {
        assert_eq!(verdict(H2), Verdict::MATCH);
    }

    #[test]
    fn other_protocols_and_near_misses_are_refused() {
        for flight in [SSH, TLS, b"GETX / HTTP/1.1".as_slice(), b"get / HTTP/1.1", b"PRI * HTTP/1.1\r\n\r\n", b"ECHO"] {
            assert_eq!(verdict(flight), Verdict::NoMatch, "{:?}", String::from_utf8_lossy(flight));
        }
    }

    #[test]
    fn asks_for_the_shortest_possible_method() {
        let ctx = DetectContext::default();
        assert_eq!(HttpDetector.detect(b"", &ctx), Verdict::need(4));
        assert_eq!(HttpDetector.detect(b"P", &ctx), Verdict::need(4));
        assert_eq!(HttpDetector.detect(b"PA", &ctx), Verdict::need(6));
        assert_eq!(HttpDetector.detect(b"PR", &ctx), Verdict::need(H2_PREFACE.len()));
        assert_eq!(HttpDetector.detect(b"OPTIONS", &ctx), Verdict::need(8));
        assert_eq!(HttpDetector.detect(b"S", &ctx), Verdict::NoMatch);
    }
}
