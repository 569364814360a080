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

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use address::{ListenAddress, check_target, parse_listen_address};
pub use error::{ConfigError, JsonPath, Problem, Segment};
pub use protocols::KINDS;

use crate::protocol::{DetectLimits, Protocol, ProtocolSet};
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

/// A checked configuration, ready to serve.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub file: PathBuf,
    /// The plain listening address (`address`).
    pub listen: Option<ListenAddress>,
    /// Where logs go.
    pub log: LogTarget,
    /// Detection limits (`maxRead`, `detectTimeout`).
    pub limits: DetectLimits,
    /// Backend connect timeout (`connectTimeout`).
    pub connect_timeout: Duration,
    /// The top-level protocols and fallback.
    pub protocols: ProtocolSet,
}

const DEFAULT_MAX_READ: usize = 128;
const DEFAULT_DETECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let source =
            std::fs::read_to_string(file).map_err(|source| ConfigError::Read { file: file.to_owned(), source })?;
        Self::parse(file, &source)
    }

    /// Checks configuration text; `file` is only used in messages.
    pub fn parse(file: &Path, source: &str) -> Result<Self, ConfigError> {
        let mut checker = Checker { source, problems: Vec::new() };
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
        let max_read = match raw.max_read {
            None | Some(0) => DEFAULT_MAX_READ,
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let detect_timeout = self.seconds(&root.key("detectTimeout"), raw.detect_timeout, DEFAULT_DETECT_TIMEOUT);
        let connect_timeout = self.seconds(&root.key("connectTimeout"), raw.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        let limits = DetectLimits { max_read, timeout: detect_timeout, ..DetectLimits::default() };
        let shared = protocols::Shared { connect_timeout };
        let protocols = self.protocol_set(&root.key("protocols"), &raw.protocols, limits, shared);
        if listen.is_none() && raw.address.is_none() {
            self.problem(root, "address is required (for example \":8080\")".into());
        }
        Some(Config { file: file.to_owned(), listen, log, limits, connect_timeout, protocols: protocols? })
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
    ) -> Option<ProtocolSet> {
        let mut detected: Vec<Protocol> = Vec::new();
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
        if raw.is_empty() {
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
