//! The routed protocol kinds a configuration can name, by name.
//!
//! Each kind is a detector built from its own keys of the entry's `conf`;
//! what is done with a match (dial `target`, send a PROXY header, connect
//! transparently) is the same for every kind and lives in serve2's route
//! handler. Adding a kind: write its detector in one file of this crate,
//! implement [`FromConf`] for it, and add one line to [`KINDS`].

use std::sync::Arc;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::Detector;

/// A routed protocol kind.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    /// The name written in `"kind"`.
    pub name: &'static str,
    /// What it matches, for documentation and error messages.
    pub matches: &'static str,
    build: fn(serde_json::Value) -> Result<Arc<dyn Detector>, ConfError>,
    schema: fn(&mut SchemaGenerator) -> Schema,
}

impl Kind {
    /// The kind `name`, built by `D`'s [`FromConf`].
    pub const fn new<D: FromConf>(name: &'static str, matches: &'static str) -> Kind
    where
        D::Conf: JsonSchema,
    {
        Kind { name, matches, build: build_with::<D>, schema: D::Conf::json_schema }
    }

    /// Builds the detector from the detector's keys of `conf` (an object;
    /// the route keys already taken out). Unknown keys are errors.
    pub fn build(&self, conf: serde_json::Value) -> Result<Arc<dyn Detector>, ConfError> {
        (self.build)(conf)
    }

    /// The JSON Schema of the detector's own keys of `conf` (without the
    /// route keys), inline; types it refers to go to `generator`'s
    /// definitions.
    pub fn conf_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        (self.schema)(generator)
    }
}

/// Every routed kind, in documentation order.
pub static KINDS: &[Kind] = &[
    Kind::new::<crate::SshDetector>("ssh", "an SSH identification string (`SSH-2.0-…`, `SSH-1.99-…`)"),
    Kind::new::<crate::TlsRouteDetector>("tlsroute", "a whole TLS ClientHello, routed without terminating TLS"),
    Kind::new::<crate::HttpRouteDetector>("httproute", "an HTTP/1.x request line (any RFC 9110 method, HTTP/0.9)"),
    Kind::new::<crate::H2cDetector>("h2c", "the HTTP/2 prior-knowledge preface"),
    Kind::new::<crate::OpenVpnDetector>("openvpn", "OpenVPN over TCP: a client hard reset, or static-key framing"),
    Kind::new::<crate::Socks5Detector>("socks5", "a SOCKS5 greeting"),
    Kind::new::<crate::RdpDetector>("rdp", "a TPKT + X.224 connection request"),
    Kind::new::<crate::XmppDetector>("xmpp", "an XMPP client stream header"),
    Kind::new::<crate::PostgresDetector>("postgres", "a PostgreSQL SSLRequest, GSSENCRequest or StartupMessage"),
    Kind::new::<crate::TincDetector>("tinc", "a tinc 1.0 or 1.1 ID line"),
    Kind::new::<crate::SyslogDetector>("syslog", "RFC 3164 or RFC 5424 syslog over TCP"),
    Kind::new::<crate::AdbDetector>("adb", "an Android Debug Bridge CNXN message"),
    Kind::new::<crate::MqttDetector>("mqtt", "an MQTT 3.1, 3.1.1 or 5 CONNECT packet"),
    Kind::new::<crate::RegexDetector>("regex", "`patterns` (regex::bytes syntax) on the buffered prefix"),
];

/// The routed kind called `name`.
pub fn kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}

/// A detector that can be built from its configuration keys.
pub trait FromConf: Detector + Sized {
    /// The detector's keys, with `#[serde(deny_unknown_fields)]`.
    type Conf: DeserializeOwned;
    /// Checks the keys and builds the detector.
    fn from_conf(conf: Self::Conf) -> Result<Self, ConfError>;
}

/// The keys of a kind with no options of its own.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoConf {}

/// One step of a path inside `conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfKey {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// Why a kind's keys were refused, and where inside `conf`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfError {
    /// The path from `conf` to the offending value (empty: `conf` itself).
    pub path: Vec<ConfKey>,
    /// What is wrong.
    pub message: String,
}

impl ConfError {
    /// An error about the value at `path` (keys and indexes from `conf`).
    pub fn at(path: Vec<ConfKey>, message: impl Into<String>) -> Self {
        Self { path, message: message.into() }
    }

    /// An error about key `key` of `conf`.
    pub fn key(key: &str, message: impl Into<String>) -> Self {
        Self::at(vec![ConfKey::Key(key.to_owned())], message)
    }
}

fn build_with<D: FromConf>(conf: serde_json::Value) -> Result<Arc<dyn Detector>, ConfError> {
    Ok(Arc::new(D::from_conf(deserialize_conf(conf)?)?))
}

/// Reads a kind's keys from `conf`, the error saying where inside it.
pub(crate) fn deserialize_conf<C: DeserializeOwned>(conf: serde_json::Value) -> Result<C, ConfError> {
    serde_path_to_error::deserialize(conf).map_err(|e| {
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_unique_name_and_builds_without_options_or_says_why() {
        for (i, kind) in KINDS.iter().enumerate() {
            assert!(KINDS[..i].iter().all(|k| k.name != kind.name), "{} twice", kind.name);
            // Either it builds from `{}` or it names what is missing.
            if let Err(e) = kind.build(serde_json::json!({})) {
                assert!(!e.message.is_empty(), "{}", kind.name);
            }
        }
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let e = kind("ssh").unwrap().build(serde_json::json!({"bogus": 1})).unwrap_err();
        assert!(e.message.contains("bogus"), "{e}");
    }
}
