//! One protocol set's handle on the metric families: every series its
//! connections touch, resolved once, so counting a connection is a few
//! atomic additions.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::families::{BytesLabels, ConnectionLabels, Families, PolicyLabels};
use super::histogram::AtomicHistogram;
use crate::protocol::{Protocol, ProtocolSet};

/// How many nested chains (`tls>http`) one policy counts by name; the
/// connections of any further chain are labelled `chain="other"`.
pub const MAX_NESTED_CHAINS: usize = 64;

/// How a connection ended, as `serve2_connections_total` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A protocol matched (or a `forward` route took it).
    Matched,
    /// Nothing matched and the default protocol took it.
    Default,
    /// The detection deadline ended detection (whether the default or
    /// `onTimeout` took the connection or it was closed).
    Timeout,
    /// Nothing matched, there is no default: closed.
    ClosedUnmatched,
    /// The backend refused, failed or did not answer in time.
    BackendError,
    /// Refused by a connection limit.
    Limited,
    /// Refused by `acceptProxy` (a PROXY header missing, broken, or from a
    /// source not allowed to send one).
    Rejected,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 7] = [
        Outcome::Matched,
        Outcome::Default,
        Outcome::Timeout,
        Outcome::ClosedUnmatched,
        Outcome::BackendError,
        Outcome::Limited,
        Outcome::Rejected,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Matched => "matched",
            Outcome::Default => "default",
            Outcome::Timeout => "timeout",
            Outcome::ClosedUnmatched => "closed_unmatched",
            Outcome::BackendError => "backend_error",
            Outcome::Limited => "limited",
            Outcome::Rejected => "rejected",
        }
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

/// Which way bytes went, as `serve2_bytes_total` counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Received from the client.
    FromClient,
    /// Sent to the client.
    ToClient,
}

impl EncodeLabelValue for Direction {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        std::fmt::Write::write_str(
            encoder,
            match self {
                Direction::FromClient => "from_client",
                Direction::ToClient => "to_client",
            },
        )
    }
}

/// A protocol's place in its set, for [`ChainKey`]: 0 is the PROXY header
/// (as `acceptProxy` reads it), 1 the fallback, 2 `onTimeout`, 3 `forward`,
/// `4 + i` the set's protocol `i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot(u8);

const FIRST_PROTOCOL: usize = 4;

impl Slot {
    /// The PROXY header a trusted source sends before its protocol.
    pub const PROXY_HEADER: Slot = Slot(0);

    /// The slot of `protocol`, which must be one of `set`'s own (compared by
    /// address: a few pointer comparisons, no string work).
    pub fn of(set: &ProtocolSet, protocol: &Protocol) -> Option<Slot> {
        let is = |candidate: Option<&Protocol>| candidate.is_some_and(|p| std::ptr::eq(p, protocol));
        let index = if is(set.fallback()) {
            1
        } else if is(set.on_timeout()) {
            2
        } else if is(set.forward_route()) {
            3
        } else {
            FIRST_PROTOCOL + set.protocols().iter().position(|p| std::ptr::eq(p, protocol))?
        };
        u8::try_from(index).ok().filter(|&i| i < u8::MAX).map(Slot)
    }
}

/// A connection's protocol chain as slots, packed one byte each (slot + 1),
/// up to eight layers; longer chains are counted as `other`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ChainKey {
    packed: u64,
    len: u8,
}

const OVERFLOW: u8 = u8::MAX;

impl ChainKey {
    /// Appends a layer (`None`: a protocol not of the set).
    pub fn push(&mut self, slot: Option<Slot>) {
        match slot {
            Some(Slot(slot)) if self.len < 8 => {
                self.packed |= u64::from(slot + 1) << (8 * u32::from(self.len));
                self.len += 1;
            }
            _ => self.len = OVERFLOW,
        }
    }
}

/// The connection counters of one chain, one per outcome, created in the
/// family on first use (so only outcomes that happened are exported).
#[derive(Debug)]
struct ChainCounters {
    chain: Arc<str>,
    by_outcome: [OnceLock<Counter>; Outcome::ALL.len()],
}

impl ChainCounters {
    fn new(chain: impl Into<Arc<str>>) -> Self {
        Self { chain: chain.into(), by_outcome: Default::default() }
    }

    fn inc(&self, family: &Family<ConnectionLabels, Counter>, policy: &Arc<str>, outcome: Outcome) {
        let counter = self.by_outcome[outcome as usize].get_or_init(|| {
            family.get_or_create_owned(&ConnectionLabels { policy: policy.clone(), chain: self.chain.clone(), outcome })
        });
        counter.inc();
    }
}

/// The series of one protocol set (one `policy` label value).
#[derive(Debug)]
pub struct PolicyMetrics {
    policy: Arc<str>,
    connections: Family<ConnectionLabels, Counter>,
    /// Connections that ended before any protocol was chosen (`chain="-"`).
    empty: ChainCounters,
    /// Single-protocol chains, by slot.
    single: Box<[ChainCounters]>,
    /// Nested chains by packed key, at most [`MAX_NESTED_CHAINS`].
    nested: RwLock<HashMap<u64, ChainCounters>>,
    /// Nested chains past the cap and chains of over eight layers.
    other: ChainCounters,
    active: Gauge,
    from_client: Counter,
    to_client: Counter,
    tls_errors: Counter,
    detect: AtomicHistogram,
}

impl PolicyMetrics {
    pub(super) fn new(families: &Families, policy: &str, set: &ProtocolSet) -> Self {
        let policy: Arc<str> = policy.into();
        fn name(protocol: Option<&Protocol>) -> &str {
            protocol.map_or("-", Protocol::name)
        }
        let special = ["proxy-header", name(set.fallback()), name(set.on_timeout()), name(set.forward_route())];
        let names = special.into_iter().chain(set.protocols().iter().map(Protocol::name));
        let by_policy = PolicyLabels { policy: policy.clone() };
        let bytes = |direction| families.bytes.get_or_create_owned(&BytesLabels { policy: policy.clone(), direction });
        Self {
            connections: families.connections.clone(),
            empty: ChainCounters::new("-"),
            single: names.map(ChainCounters::new).collect(),
            nested: RwLock::default(),
            other: ChainCounters::new("other"),
            active: families.active.get_or_create_owned(&by_policy),
            from_client: bytes(Direction::FromClient),
            to_client: bytes(Direction::ToClient),
            tls_errors: families.tls_errors.get_or_create_owned(&by_policy),
            detect: families.detect.clone(),
            policy,
        }
    }

    /// The `policy` label.
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// Counts a connection refused by a connection limit before detection
    /// (`outcome="limited"`, `chain="-"`).
    pub fn count_limited(&self) {
        self.empty.inc(&self.connections, &self.policy, Outcome::Limited);
    }

    /// Counts a connection refused before detection for its PROXY header
    /// (`outcome="rejected"`, `chain="-"`). Connections that carry a
    /// summary are counted from it instead.
    pub fn count_rejected(&self) {
        self.empty.inc(&self.connections, &self.policy, Outcome::Rejected);
    }

    /// Counts an ended connection: `chain` is `key` spelled out (`tls>http`,
    /// empty when no protocol was chosen).
    pub(crate) fn count(&self, key: ChainKey, chain: &str, outcome: Outcome) {
        let (family, policy) = (&self.connections, &self.policy);
        match key.len {
            0 => self.empty.inc(family, policy, outcome),
            1 => match self.single.get((key.packed - 1) as usize) {
                Some(counters) => counters.inc(family, policy, outcome),
                None => self.other.inc(family, policy, outcome),
            },
            OVERFLOW => self.other.inc(family, policy, outcome),
            _ => self.count_nested(key.packed, chain, outcome),
        }
    }

    fn count_nested(&self, packed: u64, chain: &str, outcome: Outcome) {
        let (family, policy) = (&self.connections, &self.policy);
        if let Some(counters) = self.nested.read().unwrap_or_else(PoisonError::into_inner).get(&packed) {
            return counters.inc(family, policy, outcome);
        }
        let mut nested = self.nested.write().unwrap_or_else(PoisonError::into_inner);
        if !nested.contains_key(&packed) && nested.len() >= MAX_NESTED_CHAINS {
            return self.other.inc(family, policy, outcome);
        }
        nested.entry(packed).or_insert_with(|| ChainCounters::new(chain)).inc(family, policy, outcome);
    }

    /// Adds an ended connection's byte counts.
    pub(crate) fn add_bytes(&self, from_client: u64, to_client: u64) {
        if from_client > 0 {
            self.from_client.inc_by(from_client);
        }
        if to_client > 0 {
            self.to_client.inc_by(to_client);
        }
    }

    /// Counts a failed TLS handshake.
    pub(crate) fn tls_error(&self) {
        self.tls_errors.inc();
    }

    /// Records how long one detection took.
    pub(crate) fn detected_in(&self, duration: Duration) {
        self.detect.observe(duration);
    }

    /// Counts a connection as active until the returned guard drops.
    pub fn open(self: &Arc<Self>) -> ActiveConnection {
        self.active.inc();
        ActiveConnection(self.clone())
    }
}

/// An open connection of a policy: `serve2_connections_active` counts it
/// until this drops.
#[derive(Debug)]
pub struct ActiveConnection(Arc<PolicyMetrics>);

impl std::ops::Deref for ActiveConnection {
    type Target = PolicyMetrics;
    fn deref(&self) -> &PolicyMetrics {
        &self.0
    }
}

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        self.0.active.dec();
    }
}
