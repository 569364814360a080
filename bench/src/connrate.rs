//! `connrate`: workers loop connect → banner exchange → close for a fixed
//! time; the result is completed exchanges per second.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{Tally, connect_and_exchange};

#[derive(Debug, Serialize)]
pub struct ConnRate {
    conns_per_sec: f64,
    #[serde(flatten)]
    tally: Tally,
}

pub async fn run(target: SocketAddr, concurrency: usize, seconds: u64) -> ConnRate {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut workers = JoinSet::new();
    for worker in 0..concurrency {
        workers.spawn(async move {
            let mut tally = Tally::default();
            // Each worker walks its own subsequence of source addresses.
            let mut n = worker;
            while Instant::now() < deadline {
                let result = connect_and_exchange(n, target).await.map(|(_stream, reply)| reply);
                tally.record(&result);
                n += concurrency;
            }
            tally
        });
    }
    let mut tally = Tally::default();
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(worker) => tally.add(worker),
            Err(_) => tally.error("TaskFailed".into()),
        }
    }
    let elapsed = started.elapsed().as_secs_f64().max(f64::EPSILON);
    ConnRate { conns_per_sec: tally.ok as f64 / elapsed, tally }
}
