//! The metric families and their label sets.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use super::histogram::AtomicHistogram;
use super::policy::{Direction, Outcome};

/// Upper bounds (seconds) of the detection-duration buckets: detection
/// takes microseconds for a client that speaks first, and up to
/// `detectTimeout` for one that does not.
pub(super) const DETECT_BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// `{policy, chain, outcome}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ConnectionLabels {
    pub policy: Arc<str>,
    pub chain: Arc<str>,
    pub outcome: Outcome,
}

/// `{policy}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct PolicyLabels {
    pub policy: Arc<str>,
}

/// `{policy, direction}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct BytesLabels {
    pub policy: Arc<str>,
    pub direction: Direction,
}

/// `{result}` of a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ReloadLabels {
    pub result: ReloadResult,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum ReloadResult {
    Ok,
    Failed,
}

impl EncodeLabelValue for ReloadResult {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        encoder.write_str(match self {
            ReloadResult::Ok => "ok",
            ReloadResult::Failed => "failed",
        })
    }
}

/// `{version}` of `serve2_build_info`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Handles to every registered family (each shares its series with the
/// registry).
#[derive(Debug, Clone)]
pub(super) struct Families {
    pub connections: Family<ConnectionLabels, Counter>,
    pub active: Family<PolicyLabels, Gauge>,
    pub bytes: Family<BytesLabels, Counter>,
    pub tls_errors: Family<PolicyLabels, Counter>,
    pub detect: AtomicHistogram,
    reloads: Family<ReloadLabels, Counter>,
}

impl Families {
    /// Registers every family in `registry` (prefixed `serve2_`).
    pub fn register(registry: &mut Registry) -> Self {
        let families = Self {
            connections: Family::default(),
            active: Family::default(),
            bytes: Family::default(),
            tls_errors: Family::default(),
            detect: AtomicHistogram::new(&DETECT_BUCKETS),
            reloads: Family::default(),
        };
        registry.register(
            "connections",
            "Connections by policy, protocol chain and outcome, counted when they end",
            families.connections.clone(),
        );
        registry.register("connections_active", "Connections open now, by policy", families.active.clone());
        registry.register(
            "bytes",
            "Bytes received from (from_client) and sent to (to_client) clients, by policy, counted when \
             connections end",
            families.bytes.clone(),
        );
        registry.register_with_unit(
            "detect_duration",
            "Time one detection took, from its start to its verdict (match, no match, deadline, close)",
            Unit::Seconds,
            families.detect.clone(),
        );
        registry.register(
            "tls_handshake_errors",
            "TLS handshakes that failed or did not finish in time, by policy",
            families.tls_errors.clone(),
        );
        registry.register("reloads", "Configuration reloads, by result", families.reloads.clone());
        registry.register("build", "The running serve2", Info::new(BuildLabels { version: env!("CARGO_PKG_VERSION") }));
        for ok in [true, false] {
            let _ = families.reload(ok);
        }
        families
    }

    /// The reload counter for `ok`.
    pub fn reload(&self, ok: bool) -> Counter {
        let result = if ok { ReloadResult::Ok } else { ReloadResult::Failed };
        self.reloads.get_or_create_owned(&ReloadLabels { result })
    }
}
