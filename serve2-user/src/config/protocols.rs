//! Turning `protocols` entries into detectors and handlers, checking every
//! file and address they name.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::Checker;
use super::address::check_target;
use super::error::JsonPath;
use super::raw::{
    EmptyConf, HttpConf, OneOrMany, ProxyConf, ROUTE_KEYS, RawProtocol, RouteConf, TlsConf, TlsMatcherConf,
};
use crate::detect::{ClientHelloDetector, Detector, HttpDetector, MagicDetector, NeverDetector, TlsStateMatcher};
use crate::handler::{
    BackendVerification, DiscardHandler, EchoHandler, FileServer, NotFound, ProxyHandler, TlsConfigError,
    TlsTerminator, client_config, load_certificates, load_private_key, server_config,
};
use crate::protocol::{Handler, Protocol};
use crate::proxy_header::ProxyVersion;
use crate::relay::RelayMode;

/// The kinds serve2d knew, handled here; every other kind is a routed kind
/// of [`serve2_detect::registry`].
pub const BUILTIN_KINDS: [&str; 6] = ["proxy", "tls", "tlsmatcher", "http", "echo", "discard"];

/// Every kind a configuration may name.
pub fn kinds() -> impl Iterator<Item = &'static str> {
    BUILTIN_KINDS.into_iter().chain(serve2_detect::registry::KINDS.iter().map(|k| k.name))
}

/// Settings shared by every protocol of a configuration.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shared {
    pub connect_timeout: Duration,
    pub relay: RelayMode,
    /// `stallTimeout` and `idleTimeout` (a policy may override them).
    pub relay_limits: crate::relay::RelayLimits,
}

impl Checker<'_> {
    /// Parses `conf` (absent = `{}`) as `T`, reporting errors at their exact
    /// place inside it.
    pub(super) fn conf<T: DeserializeOwned>(&mut self, at: &JsonPath, conf: Option<&RawValue>) -> Option<T> {
        let text = conf.map_or("{}", RawValue::get);
        let mut deserializer = serde_json::Deserializer::from_str(text);
        match serde_path_to_error::deserialize(&mut deserializer) {
            Ok(value) => Some(value),
            Err(e) => {
                let path = at.key("conf").join_serde(e.path());
                let message = strip_position(&e.inner().to_string());
                match conf {
                    Some(raw) => {
                        let base = raw.get().as_ptr() as usize - self.source.as_ptr() as usize;
                        let inner = super::error::offset_of(text, e.inner().line(), e.inner().column());
                        self.problem_at_offset(path, base + inner, message);
                    }
                    None => self.problem(at.clone(), format!("conf: {message}")),
                }
                None
            }
        }
    }

    /// Builds protocol `index` of a list at `list`.
    pub(super) fn protocol(
        &mut self,
        list: &JsonPath,
        index: usize,
        raw: &RawProtocol<'_>,
        shared: Shared,
    ) -> Option<Protocol> {
        let at = list.index(index);
        let kind = raw.kind.as_str();
        let (detector, handler): (Arc<dyn Detector>, Arc<dyn Handler>) = match kind {
            "proxy" => {
                let conf: ProxyConf = self.conf(&at, raw.conf)?;
                let route = RouteConf {
                    target: conf.target,
                    proxy_protocol: conf.proxy_protocol,
                    transparent: conf.transparent,
                };
                let handler = self.route(&at.key("conf"), &route, shared)?;
                let detector: Arc<dyn Detector> = match conf.magic {
                    Some(magic) => Arc::new(self.magic(&at.key("conf").key("magic"), magic)?),
                    None if raw.default => Arc::new(NeverDetector),
                    None => {
                        let message =
                            "conf.magic is required (a string or an array of strings) unless \"default\": true";
                        self.problem(at.clone(), message.to_owned());
                        return None;
                    }
                };
                (detector, Arc::new(handler))
            }
            "tls" => {
                let conf: TlsConf = self.conf(&at, raw.conf)?;
                (Arc::new(ClientHelloDetector), Arc::new(self.tls_terminator(&at, &conf)?))
            }
            "tlsmatcher" => {
                let conf: TlsMatcherConf = self.conf(&at, raw.conf)?;
                let route = RouteConf {
                    target: conf.target.clone(),
                    proxy_protocol: conf.proxy_protocol.clone(),
                    transparent: conf.transparent,
                };
                let mut handler = self.route(&at.key("conf"), &route, shared)?;
                if conf.dial_tls {
                    handler = handler.with_tls(self.backend_tls(&at, &conf)?);
                }
                (Arc::new(tls_state_matcher(&conf)), Arc::new(handler))
            }
            "http" => {
                let conf: HttpConf = self.conf(&at, raw.conf)?;
                (Arc::new(HttpDetector), Arc::new(self.file_server(&at, conf)?))
            }
            "echo" | "discard" => {
                let _: EmptyConf = self.conf(&at, raw.conf)?;
                let magic = if kind == "echo" { "ECHO" } else { "DISCARD" };
                let detector = MagicDetector::new([magic]).map(Arc::new)?;
                let handler: Arc<dyn Handler> =
                    if kind == "echo" { Arc::new(EchoHandler) } else { Arc::new(DiscardHandler) };
                (detector, handler)
            }
            other => match serve2_detect::registry::kind(other) {
                Some(routed) => self.routed(&at, routed, raw, shared)?,
                None => {
                    let known: Vec<&str> = kinds().collect();
                    let message = format!("unknown kind `{other}`; expected one of {}", known.join(", "));
                    self.problem(at.key("kind"), message);
                    return None;
                }
            },
        };
        Some(Protocol::from_arcs(kind, detector, handler))
    }

    /// A routed kind: the route keys of `conf` make the handler, the rest
    /// its detector.
    fn routed(
        &mut self,
        at: &JsonPath,
        kind: &serve2_detect::registry::Kind,
        raw: &RawProtocol<'_>,
        shared: Shared,
    ) -> Option<(Arc<dyn Detector>, Arc<dyn Handler>)> {
        let conf_at = at.key("conf");
        let mut keys: serde_json::Map<String, serde_json::Value> = self.conf(at, raw.conf)?;
        let route: serde_json::Map<String, serde_json::Value> =
            ROUTE_KEYS.iter().filter_map(|&k| keys.remove_entry(k)).collect();
        let route: Option<RouteConf> = match serde_path_to_error::deserialize(serde_json::Value::Object(route)) {
            Ok(route) => Some(route),
            Err(e) => {
                let message = strip_position(&e.inner().to_string());
                let path = conf_at.join_serde(e.path());
                self.problem(if path == conf_at { at.clone() } else { path }, format!("conf: {message}"));
                None
            }
        };
        let handler = route.and_then(|route| self.route(&conf_at, &route, shared));
        let detector = kind
            .build(serde_json::Value::Object(keys))
            .map_err(|e| self.detector_problem(&conf_at, kind.name, &ROUTE_KEYS, e))
            .ok();
        Some((detector?, Arc::new(handler?)))
    }

    /// Reports a kind's refusal of its `conf` keys (at `conf_at`), naming
    /// the route keys `route_keys` the kind shares with every other.
    pub(super) fn detector_problem(
        &mut self,
        conf_at: &JsonPath,
        kind: &str,
        route_keys: &[&str],
        error: serve2_detect::registry::ConfError,
    ) {
        let path = error.path.iter().fold(conf_at.clone(), |path, key| match key {
            serve2_detect::registry::ConfKey::Key(k) => path.key(k),
            serve2_detect::registry::ConfKey::Index(i) => path.index(*i),
        });
        let mut message = strip_position(&error.message);
        let keys = route_keys.join(", ");
        if let Some(unknown) = message.strip_suffix(", there are no fields") {
            message = format!("{unknown}: `{kind}` takes only the route keys {keys}");
        } else if message.starts_with("unknown field") {
            message = format!("{message}, or a route key: {keys}");
        }
        self.problem(path, message);
    }

    /// The shared route handler for `route` (at `at`: the object holding
    /// its keys).
    pub(super) fn route(&mut self, at: &JsonPath, route: &RouteConf, shared: Shared) -> Option<ProxyHandler> {
        let target = self.target(&at.key("target"), &route.target);
        let header = match route.proxy_protocol.as_deref() {
            None => None,
            Some("v1") => Some(ProxyVersion::V1),
            Some("v2") => Some(ProxyVersion::V2),
            Some(other) => {
                self.problem(at.key("proxyProtocol"), format!("`{other}`: expected \"v1\" or \"v2\""));
                return None;
            }
        };
        Some(
            ProxyHandler::new(target?, shared.connect_timeout)
                .with_relay(shared.relay)
                .with_proxy_header(header)
                .with_transparent(route.transparent)
                .with_limits(shared.relay_limits),
        )
    }

    fn target(&mut self, at: &JsonPath, target: &str) -> Option<String> {
        match check_target(target) {
            Ok(()) => {
                // Checked against steering once it is known.
                self.targets.push((at.clone(), target.to_owned()));
                Some(target.to_owned())
            }
            Err(message) => {
                self.problem(at.clone(), message);
                None
            }
        }
    }

    fn magic(&mut self, at: &JsonPath, magic: OneOrMany) -> Option<MagicDetector> {
        let detector = MagicDetector::new(&magic.0);
        if detector.is_none() {
            self.problem(at.clone(), "expected a non-empty string or a non-empty array of non-empty strings".into());
        }
        detector
    }

    fn tls_terminator(&mut self, at: &JsonPath, conf: &TlsConf) -> Option<TlsTerminator> {
        let conf_at = at.key("conf");
        // (cert, key, where they were written)
        let mut pairs: Vec<(&str, &str, JsonPath)> = Vec::new();
        match (&conf.cert, &conf.key) {
            (Some(cert), Some(key)) => pairs.push((cert, key, conf_at.clone())),
            (None, None) => {}
            (Some(_), None) => self.problem(conf_at.key("cert"), "cert needs its key".into()),
            (None, Some(_)) => self.problem(conf_at.key("key"), "key needs its cert".into()),
        }
        for (i, pair) in conf.certs.iter().enumerate() {
            pairs.push((&pair.cert, &pair.key, conf_at.key("certs").index(i)));
        }
        if pairs.is_empty() {
            if conf.cert.is_none() && conf.key.is_none() {
                self.problem(at.clone(), "conf: cert and key, or certs, are required".into());
            }
            return None;
        }
        let mut loaded = Vec::new();
        for (cert, key, pair_at) in &pairs {
            let chain = load_certificates(Path::new(cert))
                .map_err(|e| self.problem(pair_at.key("cert"), with_cwd(cert, describe(e))))
                .ok();
            let key = load_private_key(Path::new(key))
                .map_err(|e| self.problem(pair_at.key("key"), with_cwd(key, describe(e))))
                .ok();
            loaded.push((chain, key));
        }
        let loaded: Option<Vec<_>> = loaded.into_iter().map(|(chain, key)| Some((chain?, key?))).collect();
        match server_config(loaded?, &conf.protos) {
            Ok(config) => Some(TlsTerminator::new(Arc::new(config))),
            Err((i, e)) => {
                let pair_at = pairs.get(i).map_or(conf_at.clone(), |(_, _, at)| at.clone());
                self.problem(pair_at.key("key"), format!("certificate and key do not work together: {e}"));
                None
            }
        }
    }

    fn backend_tls(&mut self, at: &JsonPath, conf: &TlsMatcherConf) -> Option<Arc<rustls::ClientConfig>> {
        let verification = match (&conf.ca_file, conf.insecure_skip_verify) {
            (Some(_), true) => {
                self.problem(at.key("conf").key("caFile"), "set caFile or insecureSkipVerify, not both".into());
                return None;
            }
            (Some(ca), false) => BackendVerification::CaFile(PathBuf::from(ca)),
            (None, true) => BackendVerification::Insecure,
            (None, false) => BackendVerification::SystemRoots,
        };
        match client_config(&verification) {
            Ok(config) => Some(Arc::new(config)),
            Err(e) => {
                let ca = conf.ca_file.as_deref().unwrap_or_default();
                self.problem(at.key("conf").key("caFile"), with_cwd(ca, describe(e)));
                None
            }
        }
    }

    fn file_server(&mut self, at: &JsonPath, conf: HttpConf) -> Option<FileServer> {
        let conf_at = at.key("conf");
        let not_found = match (conf.not_found_msg, conf.not_found_file) {
            (Some(_), Some(_)) => {
                self.problem(conf_at.key("notFoundFile"), "set notFoundMsg or notFoundFile, not both".into());
                return None;
            }
            (_, Some(file)) => {
                if !Path::new(&file).is_file() {
                    self.problem(conf_at.key("notFoundFile"), with_cwd(&file, "no such file"));
                    return None;
                }
                NotFound::File(PathBuf::from(file))
            }
            (Some(message), None) => NotFound::Message(message),
            (None, None) => NotFound::Message("404 page not found\n".into()),
        };
        let root = Path::new(&conf.path);
        if !root.is_dir() {
            self.problem(conf_at.key("path"), with_cwd(&conf.path, "no such folder"));
            return None;
        }
        let default_file = conf.default_file.unwrap_or_else(|| "index.html".into());
        if default_file.contains('/') {
            self.problem(conf_at.key("defaultFile"), "expected a file name, without `/`".into());
            return None;
        }
        match FileServer::new(root, default_file, not_found) {
            Ok(server) => Some(server),
            Err(e) => {
                self.problem(conf_at.key("path"), with_cwd(&conf.path, e));
                None
            }
        }
    }
}

fn tls_state_matcher(conf: &TlsMatcherConf) -> TlsStateMatcher {
    let mut matcher = TlsStateMatcher::new();
    if let Some(names) = &conf.server_names {
        matcher = matcher.server_names(&names.0);
    }
    if let Some(protocols) = &conf.negotiated_protocols {
        matcher = matcher.negotiated_protocols(&protocols.0);
    }
    if let Some(mutual) = conf.negotiated_protocol_is_mutual {
        matcher = matcher.negotiated_protocol_is_mutual(mutual);
    }
    matcher
}

/// `"what"` for absolute paths; relative ones also say what they are
/// relative to (the working directory, as in serve2d).
fn with_cwd(path: &str, what: impl std::fmt::Display) -> String {
    let what = what.to_string();
    if Path::new(path).is_absolute() {
        return format!("`{path}`: {what}");
    }
    match std::env::current_dir() {
        Ok(cwd) => format!("`{path}` (relative to the working directory {}): {what}", cwd.display()),
        Err(_) => format!("`{path}`: {what}"),
    }
}

/// A TLS file error without the path (the problem names it already).
fn describe(error: TlsConfigError) -> String {
    match error {
        TlsConfigError::Read { source, .. } => format!("cannot read: {source}"),
        TlsConfigError::Content { what, .. } => what,
        TlsConfigError::Rustls(e) => e.to_string(),
    }
}

/// serde_json appends " at line L column C"; the problem says it already.
pub(super) fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}
