//! The UDP protocol kinds a configuration can name, by name: the datagram
//! counterpart of [`crate::registry`].
//!
//! Each kind is a [`DatagramDetector`] built from its own keys of the
//! entry's `conf` (camelCase, unknown keys refused); the route keys
//! (`target`, `proxyProtocol`) are taken out by serve2 before
//! [`UdpKind::build`], as for TCP. Adding a kind: write its detector in one
//! file of this crate, implement [`FromUdpConf`] for it, and add one line to
//! [`UDP_KINDS`].

use std::sync::Arc;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;

use crate::DatagramDetector;
use crate::registry::{ConfError, deserialize_conf};

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
    /// The kind `name`, built by `D`'s [`FromUdpConf`].
    pub const fn new<D: FromUdpConf>(name: &'static str, matches: &'static str) -> UdpKind
    where
        D::Conf: JsonSchema,
    {
        UdpKind { name, matches, build: build_with::<D>, schema: D::Conf::json_schema }
    }

    /// Builds the detector from the detector's keys of `conf` (an object;
    /// the route keys already taken out). Unknown keys are errors.
    pub fn build(&self, conf: serde_json::Value) -> Result<Arc<dyn DatagramDetector>, ConfError> {
        (self.build)(conf)
    }

    /// The JSON Schema of the detector's own keys of `conf` (without the
    /// route keys), inline; types it refers to go to `generator`'s
    /// definitions.
    pub fn conf_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        (self.schema)(generator)
    }
}

/// Every UDP kind, in documentation order.
pub static UDP_KINDS: &[UdpKind] = &[
    UdpKind::new::<crate::QuicDetector>(
        "quic",
        "a QUIC v1 or v2 client Initial; with `serverNames`/`alpn`, its decrypted ClientHello",
    ),
    UdpKind::new::<crate::WireGuardDetector>(
        "wireguard",
        "a WireGuard handshake initiation (its mac1 checked with `publicKey`) or keepalive",
    ),
    UdpKind::new::<crate::OpenVpnUdpDetector>(
        "openvpn",
        "OpenVPN over UDP: a client hard reset (plain, tls-auth, tls-crypt, tls-crypt-v2)",
    ),
    UdpKind::new::<crate::DtlsDetector>("dtls", "a DTLS 1.0, 1.2 or 1.3 ClientHello"),
    UdpKind::new::<crate::DatagramRegexDetector>(
        "regex",
        "`patterns` (regex::bytes syntax) on the flow's first datagram",
    ),
];

/// The UDP kind called `name`.
pub fn udp_kind(name: &str) -> Option<&'static UdpKind> {
    UDP_KINDS.iter().find(|k| k.name == name)
}

/// A datagram detector that can be built from its configuration keys.
pub trait FromUdpConf: DatagramDetector + Sized {
    /// The detector's keys, with `#[serde(deny_unknown_fields)]`.
    type Conf: DeserializeOwned;
    /// Checks the keys and builds the detector.
    fn from_conf(conf: Self::Conf) -> Result<Self, ConfError>;
}

fn build_with<D: FromUdpConf>(conf: serde_json::Value) -> Result<Arc<dyn DatagramDetector>, ConfError> {
    Ok(Arc::new(D::from_conf(deserialize_conf(conf)?)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_unique_name_and_builds_without_options_or_says_why() {
        for (i, kind) in UDP_KINDS.iter().enumerate() {
            assert!(UDP_KINDS[..i].iter().all(|k| k.name != kind.name), "{} twice", kind.name);
            match kind.build(serde_json::json!({})) {
                Ok(_) => assert_ne!(kind.name, "regex", "regex needs patterns"),
                Err(e) => assert!(!e.message.is_empty(), "{}", kind.name),
            }
        }
        assert_eq!(
            UDP_KINDS.iter().map(|k| k.name).collect::<Vec<_>>(),
            ["quic", "wireguard", "openvpn", "dtls", "regex"]
        );
    }

    #[test]
    fn unknown_and_route_keys_are_refused_with_their_name() {
        for kind in UDP_KINDS {
            for key in ["bogus", "target", "proxyProtocol"] {
                let e = kind.build(serde_json::json!({ key: 1 })).unwrap_err();
                assert!(e.message.contains(key), "{}: {e}", kind.name);
            }
        }
    }

    #[test]
    fn every_kind_has_a_conf_schema() {
        let mut generator = SchemaGenerator::default();
        for kind in UDP_KINDS {
            let schema = kind.conf_schema(&mut generator);
            assert!(schema.as_object().is_some(), "{}", kind.name);
        }
    }

    #[test]
    fn lookup_by_name() {
        assert_eq!(udp_kind("wireguard").map(|k| k.name), Some("wireguard"));
        assert!(udp_kind("tlsroute").is_none());
    }
}
