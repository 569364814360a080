//! `regex` over UDP: the same `patterns`, on the flow's first datagram.

use super::{Compiled, Conf, Input, compile_all};
use crate::datagram::{DatagramDetector, DatagramVerdict, by_first};
use crate::registry::ConfError;
use crate::udp_registry::FromUdpConf;

/// Recognises a UDP flow whose first datagram one of the configured patterns
/// matches somewhere in (anchored patterns at its first byte). Only the
/// first datagram is read: it decides, so the verdict never waits for a
/// second one. The datagram is a whole input: `$` and `\z` match at its
/// end, and a pattern that would need more bytes does not match.
#[derive(Debug, Clone)]
pub struct DatagramRegexDetector {
    /// In configuration order; never empty.
    patterns: Vec<Compiled>,
}

impl DatagramDetector for DatagramRegexDetector {
    fn detect(&self, datagrams: &[&[u8]]) -> DatagramVerdict {
        by_first(datagrams, |first| self.patterns.iter().any(|p| p.matches_whole(first)))
    }
}

impl FromUdpConf for DatagramRegexDetector {
    type Conf = Conf;
    fn from_conf(conf: Conf) -> Result<Self, ConfError> {
        Ok(Self { patterns: compile_all(&conf.patterns, Input::Datagram)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::udp_registry::udp_kind;
    use DatagramVerdict::{Match, NeedMore, NoMatch};

    fn regex(conf: serde_json::Value) -> std::sync::Arc<dyn DatagramDetector> {
        udp_kind("regex").unwrap().build(conf).unwrap()
    }

    #[test]
    fn only_the_first_datagram_counts() {
        let detector = regex(serde_json::json!({ "patterns": "^PING" }));
        assert_eq!(detector.detect(&[]), NeedMore);
        assert_eq!(detector.detect(&[b"PING 1"]), Match);
        assert_eq!(detector.detect(&[b"PING 1", b"junk"]), Match);
        assert_eq!(detector.detect(&[b"junk", b"PING 1"]), NoMatch);
        assert_eq!(detector.detect(&[b"PIN"]), NoMatch, "a whole datagram: nothing more comes");
        assert_eq!(detector.detect(&[b""]), NoMatch);
    }

    #[test]
    fn the_end_of_the_datagram_is_the_end_of_input() {
        let end = regex(serde_json::json!({ "patterns": ["^HELLO$"] }));
        assert_eq!(end.detect(&[b"HELLO"]), Match);
        assert_eq!(end.detect(&[b"HELLO!"]), NoMatch);
        let word = regex(serde_json::json!({ "patterns": [r"\bv1\b"] }));
        assert_eq!(word.detect(&[b"proto v1"]), Match, "\\b at the very end");
        assert_eq!(word.detect(&[b"proto v12"]), NoMatch);
        let unanchored = regex(serde_json::json!({ "patterns": ["x{3}"] }));
        assert_eq!(unanchored.detect(&[b"..xxx.."]), Match);
        assert_eq!(unanchored.detect(&[b"..xx.x"]), NoMatch);
    }

    #[test]
    fn conf_errors_are_those_of_the_tcp_kind() {
        let kind = udp_kind("regex").unwrap();
        assert_eq!(
            kind.build(serde_json::json!({ "patterns": [] })).unwrap_err().message,
            "at least one pattern is needed"
        );
        let e = kind.build(serde_json::json!({ "patterns": ["ok", "a*"] })).unwrap_err();
        assert!(e.message.contains("empty string"), "{e}");
        assert!(kind.build(serde_json::json!({})).unwrap_err().message.contains("patterns"));
        assert!(kind.build(serde_json::json!({ "patterns": "(" })).is_err());
    }
}
