//! serve2d's JSON configuration: parsed as written ([`raw`]), then checked
//! and turned into ready-to-run protocol sets ([`Config`]).
//!
//! Every problem names the file, the JSON path, the line and column, and
//! what was expected; all problems are reported at once where possible.

mod address;
mod error;
mod locate;
mod protocols;
pub mod raw;
mod routes;
mod schema;
mod sources;
mod steer;
mod udp;
mod udp_schema;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use address::{ListenAddress, check_target, parse_listen_address};
pub use error::{ConfigError, JsonPath, Problem, Segment};
pub use protocols::{BUILTIN_KINDS, kinds};
pub use schema::{SCHEMA_TITLE, schema};
pub use sources::{DirectCandidate, RateLimit, SourceRules};
pub use steer::{Policy, PortSpec, RawPolicy, RawSteer, SteerConfig, local_addresses};
pub use udp::{RawUdp, RawUdpProtocol, UDP_ROUTE_KEYS, UdpConfig, UdpRouteConf, UdpSteer};

use crate::protocol::{DetectLimits, Protocol, ProtocolSet};
use crate::relay::{RelayLimits, RelayMode};
use raw::{RawConfig, RawProtocol};

/// Where log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard error (neither `logStdout` nor `logFile` set).
    Stderr,
    /// Standard output (`logStdout`).
    Stdout,
    /// A file, appended to (`logFile`).
    File(PathBuf),
}

/// How log lines are written (`logFormat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `tracing`'s text lines with `key=value` fields (`"text"`, the default).
    #[default]
    Text,
    /// One JSON object per line, span fields flattened (`"json"`).
    Json,
}

/// A checked configuration, ready to serve.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub file: PathBuf,
    /// The plain listening address (`address`).
    pub listen: Option<ListenAddress>,
    /// Where logs go.
    pub log: LogTarget,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// Detection limits (`maxRead`, `detectTimeout`).
    pub limits: DetectLimits,
    /// Backend connect timeout (`connectTimeout`).
    pub connect_timeout: Duration,
    /// The top-level protocols and fallback: for the plain listener and
    /// for steered ports no policy names.
    pub protocols: ProtocolSet,
    /// Kernel steering, if configured.
    pub steer: Option<SteerConfig>,
    /// Per-port policies (steered ports only).
    pub policies: Vec<Policy>,
    /// The control socket for `serve2d status`, if any.
    pub control: Option<PathBuf>,
    /// How raw TCP connections are relayed.
    pub relay: RelayMode,
    /// Worker threads, each with its own listening sockets.
    pub workers: usize,
    /// How long open connections get to finish at shutdown.
    pub shutdown_timeout: Duration,
    /// `maxConnections` and `maxDetecting`.
    pub connection_limits: crate::admission::ConnectionLimits,
    /// Who to run as once set up (`user`, `group`).
    pub run_as: Option<crate::privileges::RunAs>,
    /// Where the Prometheus metrics endpoint listens (`metrics`), if anywhere.
    pub metrics: Option<ListenAddress>,
    /// Source rules of the steered ports no policy owns.
    pub sources: SourceRules,
    /// The top level's `forward` route, if the kernel may take it to the
    /// backend directly on steered ports no policy owns.
    pub direct: Option<DirectCandidate>,
    /// UDP flows: `udpAddress`, `steer.udpPorts`, the top-level `udp` block
    /// (policies have theirs), `maxFlows`, `maxFlowsPerSource`.
    pub udp: UdpConfig,
}

/// Where the control socket goes when `control` is not set.
pub const DEFAULT_CONTROL: &str = "/run/serve2d.sock";

impl Config {
    /// The router for this configuration: policies by port, the top-level
    /// protocols for every other port.
    pub fn router(&self) -> Result<crate::Router, crate::router::RouterError> {
        self.router_with(None)
    }

    /// Like [`Config::router`], each protocol set counting its connections
    /// in `metrics` under its policy's name (`top` for the top level).
    pub fn router_with(
        &self,
        metrics: Option<&crate::metrics::Metrics>,
    ) -> Result<crate::Router, crate::router::RouterError> {
        let set = |name: &str, set: &ProtocolSet| metrics.map_or_else(|| set.clone(), |m| m.instrument(name, set));
        let mut router =
            crate::Router::new(set(crate::metrics::TOP_POLICY, &self.protocols)).with_limits(self.connection_limits);
        for policy in self.policies.iter().filter(|p| p.serves_tcp()) {
            router.add_policy(policy.ports.iter(), set(&policy.name, &policy.protocols))?;
        }
        Ok(router)
    }
}

const DEFAULT_MAX_READ: usize = 128;
const DEFAULT_DETECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let source =
            std::fs::read_to_string(file).map_err(|source| ConfigError::Read { file: file.to_owned(), source })?;
        Self::parse(file, &source)
    }

    /// Checks configuration text; `file` is only used in messages.
    pub fn parse(file: &Path, source: &str) -> Result<Self, ConfigError> {
        let mut checker = Checker { source, problems: Vec::new(), targets: Vec::new(), udp_targets: Vec::new() };
        let config = checker.config(file, source);
        match config {
            Some(config) if checker.problems.is_empty() => Ok(config),
            _ => {
                let mut problems = checker.problems;
                problems.sort_by_key(|p| (p.line == 0, p.line, p.column));
                Err(ConfigError::Invalid { file: file.to_owned(), problems })
            }
        }
    }
}

/// Collects problems against the source text they point into.
struct Checker<'s> {
    source: &'s str,
    problems: Vec<Problem>,
    /// Every dial target seen, to check against steering at the end.
    targets: Vec<(JsonPath, String)>,
    /// Every UDP target seen, to check against UDP steering at the end.
    udp_targets: Vec<(JsonPath, String)>,
}

impl<'s> Checker<'s> {
    fn problem(&mut self, path: JsonPath, message: String) {
        let offset = locate::locate(self.source, &path);
        let (line, column) = offset.map_or((0, 0), |o| error::line_column(self.source, o));
        self.problems.push(Problem { path, line, column, message });
    }

    fn problem_at_offset(&mut self, path: JsonPath, offset: usize, message: String) {
        let (line, column) = error::line_column(self.source, offset);
        self.problems.push(Problem { path, line, column, message });
    }

    fn config(&mut self, file: &Path, source: &'s str) -> Option<Config> {
        let mut deserializer = serde_json::Deserializer::from_str(source);
        let raw: RawConfig<'s> = match serde_path_to_error::deserialize(&mut deserializer) {
            Ok(raw) => raw,
            Err(e) => {
                let inner = e.inner();
                let message = protocols::strip_position(&inner.to_string());
                let path = JsonPath::default().join_serde(e.path());
                self.problems.push(Problem { path, line: inner.line(), column: inner.column(), message });
                return None;
            }
        };
        let root = JsonPath::default();
        let listen = match raw.address.as_deref() {
            None => None,
            Some(address) => match parse_listen_address(address) {
                Ok(listen) => Some(listen),
                Err(message) => {
                    self.problem(root.key("address"), message);
                    None
                }
            },
        };
        let log = match (raw.log_stdout.unwrap_or(false), raw.log_file.as_deref()) {
            (true, Some(file)) if !file.is_empty() => {
                self.problem(root.key("logFile"), "logStdout and logFile cannot both be set".into());
                LogTarget::Stdout
            }
            (_, Some(file)) if !file.is_empty() => LogTarget::File(PathBuf::from(file)),
            (true, _) => LogTarget::Stdout,
            (false, _) => LogTarget::Stderr,
        };
        let log_format = match raw.log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                self.problem(root.key("logFormat"), format!("unknown log format `{other}`; expected text or json"));
                LogFormat::Text
            }
        };
        let max_read = match raw.max_read {
            None | Some(0) => DEFAULT_MAX_READ,
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let detect_timeout = self.seconds(&root.key("detectTimeout"), raw.detect_timeout, DEFAULT_DETECT_TIMEOUT);
        let connect_timeout = self.seconds(&root.key("connectTimeout"), raw.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        let limits = DetectLimits { max_read, timeout: detect_timeout, ..DetectLimits::default() };
        let relay = match raw.relay.as_deref() {
            None | Some("splice") => RelayMode::Splice,
            Some("copy") => RelayMode::Copy,
            Some("sockmap") => {
                let message = "the in-kernel relay (`sockmap`) was retired: it was slower than splice and could lose \
                               bytes at close (docs/PERFORMANCE.md); use \"splice\"";
                self.problem(root.key("relay"), message.into());
                RelayMode::Splice
            }
            Some(other) => {
                self.problem(root.key("relay"), format!("unknown relay `{other}`; expected splice or copy"));
                RelayMode::Splice
            }
        };
        let relay_limits = self.relay_limits(&root, raw.stall_timeout, raw.idle_timeout, RelayLimits::default());
        let shared = protocols::Shared { connect_timeout, relay, relay_limits };
        let workers = match raw.workers {
            None => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            Some(n @ 1..=256) => n as usize,
            Some(_) => {
                self.problem(root.key("workers"), "expected a number of threads from 1 to 256".into());
                1
            }
        };
        let mut steer = raw.steer.as_ref().map(|raw| self.steer(raw));
        let udp_steer = raw.steer.as_ref().zip(steer.as_ref()).map(|(raw, steer)| self.udp_steer(raw, steer));
        let policies = self.policies(&raw, steer.as_ref(), udp_steer.as_ref(), limits, shared);
        // With steering and no plain listener, top-level protocols are only
        // needed for steered ports no policy owns (a UDP-only configuration
        // needs none).
        let owned = policies
            .iter()
            .filter(|p| p.serves_tcp())
            .fold(crate::ports::PortSet::new(), |owned, p| owned.union(&p.ports));
        let top_level_needed = raw.address.is_some()
            || steer.as_ref().map_or(raw.udp_address.is_none(), |s| !s.configured().difference(&owned).is_empty());
        let routes = routes::RawRoutes {
            forward: raw.forward.as_ref(),
            on_timeout: raw.on_timeout.as_ref(),
            accept_proxy: raw.accept_proxy.as_deref(),
        };
        let protocols = self.routed_set(&root, &raw.protocols, &routes, limits, shared, !top_level_needed);
        if raw.address.is_none() && steer.is_none() && raw.udp_address.is_none() {
            let message = "address or steer is required (for example \"address\": \":8080\"; udpAddress for UDP only)";
            self.problem(root.clone(), message.into());
        }
        let mut udp = self.udp_config(&raw, udp_steer, &policies, detect_timeout);
        if let Some(steer) = &mut steer {
            self.no_loops(steer);
        }
        let raw_sources = sources::RawSources {
            allow: raw.allow.as_deref(),
            deny: raw.deny.as_deref(),
            rate_limit: raw.rate_limit.as_ref(),
        };
        let sources = self.sources(&root, &raw_sources, steer.is_some());
        let direct = sources::direct_candidate(raw.forward.as_ref(), raw.accept_proxy.as_deref(), raw.kernel_direct);
        if let Some(udp_steer) = &mut udp.steer {
            self.udp_no_loops(udp_steer);
        }
        let metrics = raw.metrics.as_deref().and_then(|address| {
            parse_listen_address(address).map_err(|message| self.problem(root.key("metrics"), message)).ok()
        });
        let control = match raw.control.as_deref() {
            Some("") => None,
            Some(path) => Some(PathBuf::from(path)),
            None => Some(PathBuf::from(DEFAULT_CONTROL)),
        };
        Some(Config {
            file: file.to_owned(),
            listen,
            log,
            log_format,
            limits,
            connect_timeout,
            protocols: protocols?,
            steer,
            policies,
            control,
            relay,
            workers,
            shutdown_timeout: self.seconds(
                &root.key("shutdownTimeout"),
                raw.shutdown_timeout,
                DEFAULT_SHUTDOWN_TIMEOUT,
            ),
            connection_limits: crate::admission::ConnectionLimits {
                max_connections: self.count(&root.key("maxConnections"), raw.max_connections),
                max_detecting: self.count(&root.key("maxDetecting"), raw.max_detecting),
            },
            run_as: self.run_as(&root, raw.user.as_ref(), raw.group.as_ref()),
            metrics,
            sources,
            direct,
            udp,
        })
    }

    /// `stallTimeout` and `idleTimeout` of the object at `at`, over `inherited`.
    fn relay_limits(
        &mut self,
        at: &JsonPath,
        stall: Option<f64>,
        idle: Option<f64>,
        inherited: RelayLimits,
    ) -> RelayLimits {
        let mut limits = inherited;
        if let Some(stall) = stall {
            limits.stall = Some(self.seconds(&at.key("stallTimeout"), Some(stall), crate::relay::DEFAULT_STALL));
        }
        if let Some(idle) = idle {
            limits.idle = Some(self.seconds(&at.key("idleTimeout"), Some(idle), Duration::from_secs(1)));
        }
        limits
    }

    /// `user` and `group`, resolved on this system.
    fn run_as(
        &mut self,
        root: &JsonPath,
        user: Option<&raw::NameOrId>,
        group: Option<&raw::NameOrId>,
    ) -> Option<crate::privileges::RunAs> {
        let Some(user) = user else {
            if group.is_some() {
                self.problem(root.key("group"), "group needs user (the user to run as)".into());
            }
            return None;
        };
        let group = group.map(raw::NameOrId::text);
        match crate::privileges::resolve(&user.text(), group.as_deref()) {
            Ok(run_as) => Some(run_as),
            Err(message) => {
                let key = if message.starts_with("no group") { "group" } else { "user" };
                self.problem(root.key(key), message);
                None
            }
        }
    }

    /// A count limit: at least 1.
    fn count(&mut self, at: &JsonPath, value: Option<u64>) -> Option<u64> {
        match value {
            Some(0) => {
                self.problem(
                    at.clone(),
                    "expected a number of connections of at least 1 (omit it for no limit)".into(),
                );
                None
            }
            other => other,
        }
    }

    fn seconds(&mut self, at: &JsonPath, value: Option<f64>, default: Duration) -> Duration {
        match value {
            None => default,
            Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Duration::from_secs_f64(s),
            Some(_) => {
                self.problem(at.clone(), "expected a number of seconds above 0 and at most 86400".into());
                default
            }
        }
    }

    /// Builds a protocol list (at `at`) into a set with its fallback.
    fn protocol_set(
        &mut self,
        at: &JsonPath,
        raw: &[RawProtocol<'_>],
        limits: DetectLimits,
        shared: protocols::Shared,
        allow_empty: bool,
        first: Option<Protocol>,
    ) -> Option<ProtocolSet> {
        let mut detected: Vec<Protocol> = first.into_iter().collect();
        let mut fallback: Option<(usize, Protocol)> = None;
        let mut complete = true;
        for (index, entry) in raw.iter().enumerate() {
            let Some(protocol) = self.protocol(at, index, entry, shared) else {
                complete = false;
                continue;
            };
            if !entry.default {
                detected.push(protocol);
            } else if let Some((first, _)) = &fallback {
                let message = format!("only one protocol may be the default; {at}[{first}] already is");
                self.problem(at.index(index).key("default"), message);
            } else {
                fallback = Some((index, protocol));
            }
        }
        if raw.is_empty() && !allow_empty {
            self.problem(at.clone(), "at least one protocol is required".into());
            return None;
        }
        match ProtocolSet::new(detected, fallback.map(|(_, p)| p), limits) {
            Ok(set) if complete => Some(set),
            Ok(_) => None,
            Err(e) => {
                self.problem(at.clone(), e.to_string());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
