//! `connrate`: workers loop connect → banner exchange → close for a fixed
//! time (or until a number of connections is reached); the result is
//! completed exchanges per second and the time to first reply under that
//! load, from just before connect() to the first reply byte.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{Tally, timed_exchange};
use crate::latency::percentile;

#[derive(Debug, Serialize)]
pub struct ConnRate {
    conns_per_sec: f64,
    /// Time to first reply at this concurrency, over completed exchanges.
    ttfr_p50_us: f64,
    ttfr_p99_us: f64,
    #[serde(flatten)]
    tally: Tally,
}

/// Runs `concurrency` workers for `seconds`, or until `connections` have
/// been attempted when given (whichever comes first).
pub async fn run(target: SocketAddr, concurrency: usize, seconds: u64, connections: Option<usize>) -> ConnRate {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let attempted = Arc::new(AtomicUsize::new(0));
    let budget = connections.unwrap_or(usize::MAX);
    let mut workers = JoinSet::new();
    for worker in 0..concurrency {
        let attempted = attempted.clone();
        workers.spawn(async move {
            let mut tally = Tally::default();
            let mut ttfr_us = Vec::new();
            // Each worker walks its own subsequence of source addresses.
            let mut n = worker;
            while Instant::now() < deadline && attempted.fetch_add(1, Ordering::Relaxed) < budget {
                let result = timed_exchange(n, target).await.map(|(reply, first_reply)| {
                    ttfr_us.push(first_reply.as_secs_f64() * 1e6);
                    reply
                });
                tally.record(&result);
                n += concurrency;
            }
            (tally, ttfr_us)
        });
    }
    let mut tally = Tally::default();
    let mut ttfr_us = Vec::new();
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok((worker, times)) => {
                tally.add(worker);
                ttfr_us.extend(times);
            }
            Err(_) => tally.error("TaskFailed".into()),
        }
    }
    let elapsed = started.elapsed().as_secs_f64().max(f64::EPSILON);
    ttfr_us.sort_by(f64::total_cmp);
    ConnRate {
        conns_per_sec: tally.ok as f64 / elapsed,
        ttfr_p50_us: percentile(&ttfr_us, 0.50),
        ttfr_p99_us: percentile(&ttfr_us, 0.99),
        tally,
    }
}
