//! `serverNames` and `alpn`: which ClientHellos a route takes, shared by
//! every kind that routes by the hello (`tlsroute` over TCP, `quic` and
//! `dtls` over UDP), so the keys mean the same everywhere.

use crate::names::NamePatterns;
use crate::registry::{ConfError, ConfKey};
use crate::tls::hello::{Hello, MAX_NAME};

/// The `conf` of a kind whose only keys are `serverNames` and `alpn`
/// (`quic`, `dtls`).
#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FilterConf {
    /// SNI patterns (see [`crate::names`]); `""` is a hello without SNI.
    /// Absent: any name, or none.
    #[serde(default)]
    pub server_names: Option<Vec<String>>,
    /// ALPN protocols; the hello must offer at least one of them. Absent:
    /// ALPN is not looked at.
    #[serde(default)]
    pub alpn: Option<Vec<String>>,
}

impl FilterConf {
    /// The checked filter.
    pub(crate) fn filter(self) -> Result<HelloFilter, ConfError> {
        HelloFilter::from_conf(self.server_names, self.alpn)
    }
}

/// The configured SNI patterns and ALPN protocols; either may be absent.
#[derive(Debug, Clone, Default)]
pub(crate) struct HelloFilter {
    server_names: Option<NamePatterns>,
    alpn: Option<Vec<Box<[u8]>>>,
}

impl HelloFilter {
    /// Checks `serverNames` and `alpn` as written in a conf: an empty list
    /// is refused (it would match nothing), as are bad patterns and ALPN
    /// names outside 1 to 255 bytes; errors name the key and the index.
    pub(crate) fn from_conf(server_names: Option<Vec<String>>, alpn: Option<Vec<String>>) -> Result<Self, ConfError> {
        let server_names = match server_names {
            None => None,
            Some(names) if names.is_empty() => {
                return Err(ConfError::key("serverNames", "an empty list matches nothing; leave it out for any name"));
            }
            Some(names) => Some(NamePatterns::new(&names).map_err(|(i, message)| {
                ConfError::at(vec![ConfKey::Key("serverNames".to_owned()), ConfKey::Index(i)], message)
            })?),
        };
        let alpn = match alpn {
            None => None,
            Some(protocols) if protocols.is_empty() => {
                return Err(ConfError::key("alpn", "an empty list matches nothing; leave it out for any protocol"));
            }
            Some(protocols) => {
                if let Some(i) = protocols.iter().position(|p| p.is_empty() || p.len() > MAX_NAME) {
                    let message = format!("an ALPN protocol name is 1 to {MAX_NAME} bytes (RFC 7301)");
                    return Err(ConfError::at(vec![ConfKey::Key("alpn".to_owned()), ConfKey::Index(i)], message));
                }
                Some(protocols.into_iter().map(|p| p.into_bytes().into_boxed_slice()).collect())
            }
        };
        Ok(Self { server_names, alpn })
    }

    /// Whether neither key is given: every well-formed hello passes.
    pub(crate) fn is_empty(&self) -> bool {
        self.server_names.is_none() && self.alpn.is_none()
    }

    /// Whether `offered` is one of the configured ALPN protocols.
    pub(crate) fn accepts_alpn(&self, offered: &[u8]) -> bool {
        self.alpn.as_ref().is_some_and(|wanted| wanted.iter().any(|w| **w == *offered))
    }

    /// Whether a hello without extensions (SSLv2 format) can pass.
    pub(crate) fn accepts_hello_without_extensions(&self) -> bool {
        self.alpn.is_none() && self.server_names.as_ref().is_none_or(|names| names.matches(None))
    }

    /// Whether a walked hello (walked with [`HelloFilter::accepts_alpn`])
    /// passes: its SNI name matches `serverNames` (a name too long for DNS
    /// matches no pattern) and, when `alpn` is given, it offered one of them.
    pub(crate) fn accepts(&self, hello: &Hello) -> bool {
        let name = hello.server_name.as_ref();
        let name_ok = self.server_names.as_ref().is_none_or(|patterns| match name {
            None => patterns.matches(None),
            Some(name) => name.bytes().is_some_and(|bytes| patterns.matches(Some(bytes))),
        });
        name_ok && (self.alpn.is_none() || hello.alpn_accepted)
    }
}
