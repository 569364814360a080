//! UDP protocol kinds, as `udp.protocols` entries name them: the datagram
//! detectors of serve2-detect's UDP registry (`quic`, `wireguard`,
//! `openvpn`, `dtls`, `regex`), then serve2's own `prefix` (datagrams that
//! start with given text, over as many datagrams as asked: what a magic is
//! for TCP).

use serde::Deserialize;
use serve2_detect::registry::ConfError;
use serve2_detect::udp_registry::FromUdpConf;
pub use serve2_detect::udp_registry::UdpKind;
pub use serve2_detect::{DatagramDetector, DatagramVerdict};

/// serve2's own UDP kinds.
static OWN_KINDS: &[UdpKind] = &[UdpKind::new::<PrefixDetector>(
    "prefix",
    "datagrams that start with `prefix` (the first `datagrams` of a flow, default 1)",
)];

/// Every UDP kind, in documentation order.
pub fn udp_kinds() -> impl Iterator<Item = &'static UdpKind> {
    serve2_detect::udp_registry::UDP_KINDS.iter().chain(OWN_KINDS)
}

/// The UDP kind called `name`.
pub fn udp_kind(name: &str) -> Option<&'static UdpKind> {
    udp_kinds().find(|k| k.name == name)
}

/// `prefix`'s keys.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrefixConf {
    /// The text every judged datagram starts with (UTF-8 bytes).
    prefix: String,
    /// How many datagrams must start with it before the flow matches
    /// (default 1).
    datagrams: Option<usize>,
}

/// Matches once the first `datagrams` datagrams all start with `prefix`.
#[derive(Debug)]
pub struct PrefixDetector {
    prefix: Vec<u8>,
    datagrams: usize,
}

impl DatagramDetector for PrefixDetector {
    fn detect(&self, datagrams: &[&[u8]]) -> DatagramVerdict {
        if datagrams.iter().take(self.datagrams).any(|d| !d.starts_with(&self.prefix)) {
            DatagramVerdict::NoMatch
        } else if datagrams.len() < self.datagrams {
            DatagramVerdict::NeedMore
        } else {
            DatagramVerdict::Match
        }
    }
}

impl FromUdpConf for PrefixDetector {
    type Conf = PrefixConf;
    fn from_conf(conf: PrefixConf) -> Result<Self, ConfError> {
        if conf.prefix.is_empty() {
            return Err(ConfError::key("prefix", "expected a non-empty string"));
        }
        let datagrams = conf.datagrams.unwrap_or(1);
        if !(1..=super::MAX_BUFFERED_DATAGRAMS).contains(&datagrams) {
            let most = super::MAX_BUFFERED_DATAGRAMS;
            return Err(ConfError::key("datagrams", format!("expected 1 to {most} (a flow buffers at most {most})")));
        }
        Ok(PrefixDetector { prefix: conf.prefix.into_bytes(), datagrams })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use serve2_detect::registry::ConfKey;

    #[test]
    fn prefix_decides_on_its_datagrams_and_never_changes_its_mind() {
        let detector = udp_kind("prefix").unwrap().build(json!({"prefix": "Q", "datagrams": 2})).unwrap();
        assert_eq!(detector.detect(&[b"Q1"]), DatagramVerdict::NeedMore);
        assert_eq!(detector.detect(&[b"Q1", b"Q2"]), DatagramVerdict::Match);
        assert_eq!(detector.detect(&[b"Q1", b"Q2", b"x"]), DatagramVerdict::Match);
        assert_eq!(detector.detect(&[b"x"]), DatagramVerdict::NoMatch);
        assert_eq!(detector.detect(&[b"Q1", b"x", b"Q3"]), DatagramVerdict::NoMatch);
    }

    #[test]
    fn regex_judges_the_first_datagram_whole() {
        let detector = udp_kind("regex").unwrap().build(json!({"patterns": "^HELLO"})).unwrap();
        assert_eq!(detector.detect(&[b"HELLO there"]), DatagramVerdict::Match);
        // A prefix of the pattern is a whole datagram that does not match.
        assert_eq!(detector.detect(&[b"HEL", b"HELLO"]), DatagramVerdict::NoMatch);
        let names: Vec<&str> = udp_kinds().map(|k| k.name).collect();
        assert_eq!(names, ["quic", "wireguard", "openvpn", "dtls", "regex", "prefix"]);
    }

    #[test]
    fn bad_keys_name_themselves() {
        let prefix = udp_kind("prefix").unwrap();
        assert_eq!(prefix.build(json!({"prefix": ""})).unwrap_err().path, vec![ConfKey::Key("prefix".into())]);
        let e = prefix.build(json!({"prefix": "Q", "datagrams": 9})).unwrap_err();
        assert!(e.message.contains("expected 1 to 8"), "{e}");
        let e = prefix.build(json!({"prefix": "Q", "bogus": 1})).unwrap_err();
        assert!(e.message.contains("bogus"), "{e}");
        let e = udp_kind("regex").unwrap().build(json!({"patterns": []})).unwrap_err();
        assert!(e.message.contains("at least one pattern"), "{e}");
    }
}
