//! A histogram of durations that records with two relaxed atomic additions.
//!
//! prometheus-client's own `Histogram` takes a mutex per observation (it
//! also keeps native-histogram state); detection runs once per connection
//! on every worker, so this one keeps per-bucket atomics instead and is
//! encoded through the same `EncodeMetric` interface.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Fixed buckets of durations; the sum is kept in nanoseconds.
#[derive(Debug, Clone)]
pub(crate) struct AtomicHistogram {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Upper bounds in seconds, ascending.
    bounds: Box<[f64]>,
    /// Upper bounds in nanoseconds, as observations are compared.
    bounds_ns: Box<[u64]>,
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    counts: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

impl AtomicHistogram {
    /// A histogram with these upper bounds (seconds, ascending) and `+Inf`.
    pub fn new(bounds: &[f64]) -> Self {
        let bounds_ns = bounds.iter().map(|&b| Duration::from_secs_f64(b).as_nanos() as u64).collect();
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Self { inner: Arc::new(Inner { bounds: bounds.into(), bounds_ns, counts, sum_ns: AtomicU64::new(0) }) }
    }

    /// Records one duration.
    pub fn observe(&self, duration: Duration) {
        let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let bucket = self.inner.bounds_ns.partition_point(|&bound| bound < ns);
        self.inner.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.inner.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Observations so far.
    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.inner.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> std::fmt::Result {
        let inner = &self.inner;
        let mut buckets: Vec<(f64, u64)> = Vec::with_capacity(inner.counts.len());
        for (i, count) in inner.counts.iter().enumerate() {
            let bound = inner.bounds.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((bound, count.load(Ordering::Relaxed)));
        }
        // The count is the buckets' total, so the two always agree.
        let count = buckets.iter().map(|&(_, n)| n).sum();
        let sum = inner.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}
