//! `hold`: opens many connections (each proven routed by a banner exchange),
//! reports how many are held, and keeps them open until stdin reaches EOF so
//! the harness can measure the proxy's idle cost in between.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::{Reply, Tally, connect_and_exchange};

/// Connections being opened at once: a burst of thousands would overflow
/// accept queues and measure something else.
const OPENING_AT_ONCE: usize = 64;

#[derive(Debug, Serialize)]
struct Held {
    held: usize,
    #[serde(flatten)]
    tally: Tally,
}

pub async fn run(target: SocketAddr, count: usize) -> anyhow::Result<()> {
    let opening = Arc::new(Semaphore::new(OPENING_AT_ONCE));
    let mut tasks = JoinSet::new();
    for n in 0..count {
        let permit = opening.clone().acquire_owned().await?;
        tasks.spawn(async move {
            let result = connect_and_exchange(n, target).await;
            drop(permit);
            result
        });
    }
    let mut held = Vec::with_capacity(count);
    let mut tally = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok((stream, reply))) => {
                tally.record(&Ok(reply));
                if reply == Reply::Origin {
                    held.push(stream);
                }
            }
            Ok(Err(e)) => tally.record(&Err(e)),
            Err(_) => tally.error("TaskFailed".into()),
        }
    }
    crate::print_line(&Held { held: held.len(), tally })?;
    let mut sink = Vec::new();
    tokio::io::stdin().read_to_end(&mut sink).await?;
    drop(held);
    Ok(())
}
