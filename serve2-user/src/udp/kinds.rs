// stand-in until serve2-detect's UDP registry lands

//! UDP protocol kinds: datagram detectors by name, as `udp.protocols`
//! entries name them.
//!
//! This file has the shape of serve2-detect's UDP registry (the trait, the
//! verdict, [`UdpKind`], [`UDP_KINDS`], [`udp_kind`]) so that the registry
//! can replace it with a re-export. Its kinds: `regex` (the TCP `regex`
//! detector on the first datagram) and `prefix` (datagrams that start with
//! given text: the kind the integration tests drive detection with, since
//! it can ask for several datagrams before it decides).

use std::sync::Arc;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serve2_detect::registry::{ConfError, ConfKey};

/// Recognises one protocol from the first datagrams of a flow, in arrival
/// order. Pure and monotonic, as TCP detectors are: once it answers
/// `Match` or `NoMatch` for some datagrams, it answers the same with more.
pub trait DatagramDetector: Send + Sync + std::fmt::Debug + 'static {
    /// Judges the datagrams buffered so far (never empty).
    fn detect(&self, datagrams: &[&[u8]]) -> DatagramVerdict;
}

/// A datagram detector's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramVerdict {
    /// These datagrams are this protocol.
    Match,
    /// They can never be.
    NoMatch,
    /// Undecided: another datagram is needed.
    NeedMore,
}

/// A UDP protocol kind.
#[derive(Debug, Clone, Copy)]
pub struct UdpKind {
    /// The name written in `"kind"`.
    pub name: &'static str,
    /// What it matches, for documentation and error messages.
    pub matches: &'static str,
    build: fn(serde_json::Value) -> Result<Arc<dyn DatagramDetector>, ConfError>,
    schema: fn(&mut SchemaGenerator) -> Schema,
}

impl UdpKind {
    /// Builds the detector from its own keys of `conf` (the route keys
    /// `target` and `proxyProtocol` already taken out). Unknown keys are
    /// errors.
    pub fn build(&self, conf: serde_json::Value) -> Result<Arc<dyn DatagramDetector>, ConfError> {
        (self.build)(conf)
    }

    /// The JSON Schema of the detector's own keys of `conf`.
    pub fn conf_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        (self.schema)(generator)
    }
}

/// Every UDP kind, in documentation order.
pub static UDP_KINDS: &[UdpKind] = &[
    UdpKind {
        name: "regex",
        matches: "`patterns` (regex::bytes syntax) on the first datagram",
        build: build_regex,
        schema: regex_schema,
    },
    UdpKind {
        name: "prefix",
        matches: "datagrams that start with `prefix` (the first `datagrams` of a flow, default 1)",
        build: build_prefix,
        schema: PrefixConf::json_schema,
    },
];

/// The UDP kind called `name`.
pub fn udp_kind(name: &str) -> Option<&'static UdpKind> {
    UDP_KINDS.iter().find(|k| k.name == name)
}

/// A TCP detector judged on a flow's first datagram alone: a datagram is
/// whole, so "need more" there means "no".
#[derive(Debug)]
struct FirstDatagram(Arc<dyn serve2_detect::Detector>);

impl DatagramDetector for FirstDatagram {
    fn detect(&self, datagrams: &[&[u8]]) -> DatagramVerdict {
        let Some(first) = datagrams.first() else { return DatagramVerdict::NeedMore };
        if self.0.detect(first, &serve2_detect::DetectContext::default()).is_match() {
            DatagramVerdict::Match
        } else {
            DatagramVerdict::NoMatch
        }
    }
}

fn build_regex(conf: serde_json::Value) -> Result<Arc<dyn DatagramDetector>, ConfError> {
    let tcp = serve2_detect::registry::kind("regex").ok_or_else(|| ConfError::at(Vec::new(), "no regex kind"))?;
    Ok(Arc::new(FirstDatagram(tcp.build(conf)?)))
}

fn regex_schema(generator: &mut SchemaGenerator) -> Schema {
    match serve2_detect::registry::kind("regex") {
        Some(tcp) => tcp.conf_schema(generator),
        None => schemars::json_schema!({"type": "object"}),
    }
}

/// `prefix`'s keys.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PrefixConf {
    /// The text every judged datagram starts with (UTF-8 bytes).
    prefix: String,
    /// How many datagrams must start with it before the flow matches
    /// (default 1).
    datagrams: Option<usize>,
}

/// Matches once the first `datagrams` datagrams all start with `prefix`.
#[derive(Debug)]
struct PrefixDetector {
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

fn build_prefix(conf: serde_json::Value) -> Result<Arc<dyn DatagramDetector>, ConfError> {
    let conf: PrefixConf = serde_path_to_error::deserialize(conf).map_err(|e| {
        let path = e
            .path()
            .iter()
            .filter_map(|segment| match segment {
                serde_path_to_error::Segment::Map { key } => Some(ConfKey::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => Some(ConfKey::Index(*index)),
                _ => None,
            })
            .collect();
        ConfError::at(path, e.into_inner().to_string())
    })?;
    if conf.prefix.is_empty() {
        return Err(ConfError::key("prefix", "expected a non-empty string"));
    }
    let datagrams = conf.datagrams.unwrap_or(1);
    if !(1..=super::MAX_BUFFERED_DATAGRAMS).contains(&datagrams) {
        let most = super::MAX_BUFFERED_DATAGRAMS;
        return Err(ConfError::key("datagrams", format!("expected 1 to {most} (a flow buffers at most {most})")));
    }
    Ok(Arc::new(PrefixDetector { prefix: conf.prefix.into_bytes(), datagrams }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
