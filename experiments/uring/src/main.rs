//! `uring-experiment epoll|uring|hybrid --listen ADDR --target ADDR`: one
//! of the three proxies; prints `{"ready":"ADDR"}` once listening (the
//! benchmark harness's convention), then serves until killed.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};
use uring_experiment::uring::EngineOptions;
use uring_experiment::{bind_group_for, epoll, hybrid, uring};

#[derive(Debug, Parser)]
#[command(name = "uring-experiment", about = "A minimal proxy over epoll, io_uring, or both")]
struct Cli {
    #[command(subcommand)]
    proxy: Proxy,
}

#[derive(Debug, Subcommand)]
enum Proxy {
    /// tokio (epoll): a current-thread runtime per worker, as serve2d.
    Epoll(Common),
    /// io_uring for every step.
    Uring {
        #[command(flatten)]
        common: Common,
        /// Regular descriptors and a plain ring (no direct descriptors, no
        /// SINGLE_ISSUER/DEFER_TASKRUN), to see what those buy.
        #[arg(long)]
        plain: bool,
        /// With --plain: half-close with shutdown(2), not IORING_OP_SHUTDOWN
        /// (which always runs on an io-wq worker thread).
        #[arg(long, requires = "plain")]
        sync_shutdown: bool,
    },
    /// io_uring for accept and the first exchange, tokio for the relay.
    Hybrid(Common),
}

#[derive(Debug, Args)]
struct Common {
    /// Where to listen (port 0 picks a free one).
    #[arg(long)]
    listen: SocketAddr,
    /// The backend every connection goes to.
    #[arg(long)]
    target: SocketAddr,
    /// Worker threads, each with its own SO_REUSEPORT listener.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().proxy {
        Proxy::Epoll(common) => epoll::serve(ready(&common)?, common.target)?,
        Proxy::Uring { common, plain, sync_shutdown } => {
            let options = EngineOptions { direct: !plain, defer_taskrun: !plain, hand_off: false, sync_shutdown };
            uring::serve(ready(&common)?, common.target, options)?;
        }
        Proxy::Hybrid(common) => hybrid::serve(ready(&common)?, common.target)?,
    }
    Ok(())
}

/// Binds the listeners and prints the ready line (connections queue in the
/// listen backlog until the workers accept).
fn ready(common: &Common) -> anyhow::Result<Vec<std::net::TcpListener>> {
    let listeners = bind_group_for(common.listen, common.workers)?;
    let addr = listeners.first().map(std::net::TcpListener::local_addr).transpose()?;
    if let Some(addr) = addr {
        println!("{{\"ready\":\"{addr}\"}}");
    }
    Ok(listeners)
}
