//! Connection limits: `maxConnections` (all connections, and each
//! policy's) and `maxDetecting` (connections still in detection). Past a
//! limit a new connection is reset at once, so a flood on one protocol
//! cannot lock out another policy's clients.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::TcpStream;

/// The top-level limits, swapped with the router on reload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once, all policies together.
    pub max_connections: Option<u64>,
    /// Most connections in detection at once.
    pub max_detecting: Option<u64>,
}

/// One unit of a counted limit, given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot(Arc<AtomicU64>);

impl Slot {
    /// Takes a slot of `counter` unless that would pass `max`.
    pub fn take(counter: &Arc<AtomicU64>, max: Option<u64>) -> Option<Slot> {
        let now = counter.fetch_add(1, Ordering::Relaxed) + 1;
        if max.is_some_and(|max| now > max) {
            counter.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Slot(counter.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Connections refused by limits since start.
static LIMITED: AtomicU64 = AtomicU64::new(0);
/// The second of the last warning about them (coarse clock, seconds).
static WARNED_AT: AtomicU64 = AtomicU64::new(0);

/// How many connections limits refused since start.
pub fn limited_total() -> u64 {
    LIMITED.load(Ordering::Relaxed)
}

/// Resets a connection a limit refused. A flood must not flood the log
/// too: at most one warning a second, with the running count.
pub(crate) fn refuse(stream: TcpStream, limit: &'static str, metrics: Option<&crate::metrics::PolicyMetrics>) {
    if let Some(metrics) = metrics {
        metrics.count_limited();
    }
    // Best effort: a reset frees the socket at once (no FIN exchange).
    let _ = socket2::SockRef::from(&stream).set_linger(Some(std::time::Duration::ZERO));
    drop(stream);
    let total = LIMITED.fetch_add(1, Ordering::Relaxed) + 1;
    let second = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if WARNED_AT.swap(second, Ordering::Relaxed) != second {
        tracing::warn!(limit, total, "connections refused: limit reached");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_stop_at_the_limit_and_come_back_when_dropped() {
        let counter = Arc::new(AtomicU64::new(0));
        let first = Slot::take(&counter, Some(2)).unwrap();
        let second = Slot::take(&counter, Some(2)).unwrap();
        assert!(Slot::take(&counter, Some(2)).is_none());
        assert_eq!(counter.load(Ordering::Relaxed), 2);
        drop(first);
        let third = Slot::take(&counter, Some(2)).unwrap();
        drop((second, third));
        assert_eq!(counter.load(Ordering::Relaxed), 0);
        assert!(Slot::take(&counter, None).is_some());
    }
}
