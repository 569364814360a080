//! The configuration file exactly as written: serve2d's JSON keys, plus
//! serve2's additions. Unknown keys are refused.

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// The top level of a configuration file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawConfig<'a> {
    /// Listening address, Go style (`":8080"`, `"host:port"`, `"[v6]:port"`).
    pub address: Option<String>,
    /// Plaintext detection cap in bytes; 0 or absent means 128.
    pub max_read: Option<u64>,
    /// Log to standard output.
    pub log_stdout: Option<bool>,
    /// Log to this file (appended).
    pub log_file: Option<String>,
    /// `"text"` (default) or `"json"` lines (serve2 addition).
    pub log_format: Option<String>,
    /// Seconds from accept until detection gives up (serve2 addition).
    pub detect_timeout: Option<f64>,
    /// Seconds to wait for a backend to accept (serve2 addition).
    pub connect_timeout: Option<f64>,
    /// Seconds a relay direction may hold pending bytes without moving any
    /// (serve2 addition; default 120).
    pub stall_timeout: Option<f64>,
    /// Seconds a relay may move nothing either way (serve2 addition; off).
    pub idle_timeout: Option<f64>,
    /// The protocols, tried in order.
    #[serde(default, borrow)]
    pub protocols: Vec<RawProtocol<'a>>,
    /// Kernel steering (serve2 addition).
    pub steer: Option<super::steer::RawSteer>,
    /// Per-port protocol sets for steered ports (serve2 addition).
    #[serde(default, borrow)]
    pub policies: Vec<super::steer::RawPolicy<'a>>,
    /// The control socket `serve2d status` talks to (serve2 addition).
    pub control: Option<String>,
    /// How raw TCP connections are relayed: "splice" or "copy" (serve2
    /// addition).
    #[schemars(extend("enum" = ["splice", "copy", null]))]
    pub relay: Option<String>,
    /// Worker threads (serve2 addition); default: one per CPU.
    pub workers: Option<u64>,
    /// Seconds open connections get to finish at shutdown (serve2 addition; 5).
    pub shutdown_timeout: Option<f64>,
    /// Most connections open at once (serve2 addition; no limit).
    pub max_connections: Option<u64>,
    /// Most connections in detection at once (serve2 addition; no limit).
    pub max_detecting: Option<u64>,
    /// Run as this user (name or id) once sockets are bound and steering is
    /// attached (serve2 addition).
    pub user: Option<NameOrId>,
    /// Run as this group (default: the user's primary group).
    pub group: Option<NameOrId>,
    /// Skip detection: dial this route at accept (serve2 addition).
    pub forward: Option<RouteConf>,
    /// Where a client that sent nothing by `detectTimeout` goes (serve2 addition).
    pub on_timeout: Option<RouteConf>,
    /// Source prefixes that must send a PROXY header first (serve2 addition).
    pub accept_proxy: Option<Vec<String>>,
    /// Where to serve Prometheus metrics (`GET /metrics`), `host:port`
    /// (serve2 addition).
    pub metrics: Option<String>,
    /// Source prefixes accepted on steered ports no policy owns (serve2
    /// addition; enforced by the kernel program).
    pub allow: Option<Vec<String>>,
    /// Source prefixes refused on those ports (serve2 addition).
    pub deny: Option<Vec<String>>,
    /// New connections per second per source prefix on those ports (serve2
    /// addition).
    pub rate_limit: Option<super::sources::RawRateLimit>,
    /// `false`: never hand `forward`'s connections to its backend's own
    /// listener in the kernel (serve2 addition; default true).
    pub kernel_direct: Option<bool>,
    /// Plain UDP address, Go style like `address` (serve2 addition).
    pub udp_address: Option<String>,
    /// UDP flows: protocols or forward, and timeouts (serve2 addition).
    #[serde(borrow)]
    pub udp: Option<super::udp::RawUdp<'a>>,
    /// Most UDP flows at once (serve2 addition; 65536).
    pub max_flows: Option<u64>,
    /// Most UDP flows at once from one source /24 (IPv4) or /64 (IPv6)
    /// (serve2 addition; 1024).
    pub max_flows_per_source: Option<u64>,
}

/// One entry of `protocols`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProtocol<'a> {
    /// The protocol kind (`proxy`, `tls`, `tlsmatcher`, `http`, `echo`, `discard`).
    pub kind: String,
    /// Use as the fallback when detection fails.
    #[serde(default)]
    pub default: bool,
    /// Kind-specific settings, parsed once the kind is known.
    #[serde(borrow)]
    pub conf: Option<&'a RawValue>,
}

/// `proxy`'s `conf`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProxyConf {
    /// Magic string(s) identifying the protocol.
    pub magic: Option<OneOrMany>,
    /// `host:port` to dial.
    pub target: String,
    /// Send a PROXY header first: `"v1"` or `"v2"` (serve2 addition).
    #[schemars(extend("enum" = ["v1", "v2", null]))]
    pub proxy_protocol: Option<String>,
    /// Connect from the client's address (serve2 addition).
    #[serde(default)]
    pub transparent: bool,
}

/// A route as written: `forward`, `onTimeout`, and the route keys of every
/// dialling kind's `conf`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteConf {
    /// `host:port` to dial.
    pub target: String,
    /// Send a PROXY header first: `"v1"` or `"v2"`.
    #[schemars(extend("enum" = ["v1", "v2", null]))]
    pub proxy_protocol: Option<String>,
    /// Connect from the client's address.
    #[serde(default)]
    pub transparent: bool,
}

/// The keys of [`RouteConf`], taken out of a routed kind's `conf` before
/// the rest goes to its detector.
pub const ROUTE_KEYS: [&str; 3] = ["target", "proxyProtocol", "transparent"];

/// `tls`'s `conf`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsConf {
    /// PEM certificate chain.
    pub cert: Option<String>,
    /// PEM private key.
    pub key: Option<String>,
    /// More certificates, chosen by SNI (serve2 addition).
    #[serde(default)]
    pub certs: Vec<CertPair>,
    /// ALPN protocols to offer.
    #[serde(default)]
    pub protos: Vec<String>,
}

/// One entry of `tls`'s `certs`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertPair {
    /// PEM certificate chain.
    pub cert: String,
    /// PEM private key.
    pub key: String,
}

/// `tlsmatcher`'s `conf`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsMatcherConf {
    /// SNI names to match.
    pub server_names: Option<OneOrMany>,
    /// ALPN protocols to match.
    pub negotiated_protocols: Option<OneOrMany>,
    /// Whether ALPN must (or must not) have agreed on a protocol.
    pub negotiated_protocol_is_mutual: Option<bool>,
    /// `host:port` to dial.
    pub target: String,
    /// Send a PROXY header first: `"v1"` or `"v2"` (serve2 addition).
    #[schemars(extend("enum" = ["v1", "v2", null]))]
    pub proxy_protocol: Option<String>,
    /// Connect from the client's address (serve2 addition).
    #[serde(default)]
    pub transparent: bool,
    /// Speak TLS to the target with the client's SNI and ALPN.
    #[serde(rename = "dialTLS", default)]
    pub dial_tls: bool,
    /// PEM CA certificates to verify the backend with (serve2 addition).
    pub ca_file: Option<String>,
    /// Skip backend certificate verification (serve2 addition).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// `http`'s `conf`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpConf {
    /// The folder to serve.
    pub path: String,
    /// The file served for a folder.
    pub default_file: Option<String>,
    /// The 404 body.
    pub not_found_msg: Option<String>,
    /// A file whose contents are the 404 body.
    pub not_found_file: Option<String>,
}

/// `echo`'s and `discard`'s `conf`: nothing.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyConf {}

/// A user or group: a name, or a numeric id (as a number or a string).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum NameOrId {
    /// A numeric id.
    Id(u32),
    /// A name (or an id written as a string).
    Name(String),
}

impl NameOrId {
    /// As text, for lookups.
    pub fn text(&self) -> String {
        match self {
            NameOrId::Id(id) => id.to_string(),
            NameOrId::Name(name) => name.clone(),
        }
    }
}

/// A string or an array of strings (serve2d's `magic`, `serverNames`…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor;
        impl<'de> Visitor<'de> for OneOrManyVisitor {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![value.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(OneOrMany(items))
            }
        }
        deserializer.deserialize_any(OneOrManyVisitor)
    }
}
