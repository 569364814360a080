//! `latency`: one connection at a time, the time from just before connect()
//! to the first reply byte of the banner exchange.

use std::net::SocketAddr;

use serde::Serialize;

use crate::client::{Reply, Tally, timed_exchange};

#[derive(Debug, Serialize)]
pub struct Latency {
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    mean_us: f64,
    #[serde(flatten)]
    tally: Tally,
}

pub async fn run(target: SocketAddr, count: usize) -> Latency {
    let mut samples = Vec::with_capacity(count);
    let mut tally = Tally::default();
    for n in 0..count {
        let result = timed_exchange(n, target).await;
        if let Ok((Reply::Origin, first_reply)) = result {
            samples.push(first_reply.as_secs_f64() * 1e6);
        }
        tally.record(&result.map(|(reply, _)| reply));
    }
    samples.sort_by(f64::total_cmp);
    let mean = if samples.is_empty() { 0.0 } else { samples.iter().sum::<f64>() / samples.len() as f64 };
    Latency {
        p50_us: percentile(&samples, 0.50),
        p90_us: percentile(&samples, 0.90),
        p99_us: percentile(&samples, 0.99),
        mean_us: mean,
        tally,
    }
}

/// Nearest-rank percentile of sorted samples (0 when there are none).
pub fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 0.50), 50.0);
        assert_eq!(percentile(&samples, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
