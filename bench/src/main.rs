//! serve2-load: the origins and load generators `serve2-bench` drives.
//!
//! Every subcommand prints exactly one line of JSON on stdout (the origins
//! print it once listening), so the harness can parse results and readiness
//! the same way.

mod client;
mod connrate;
mod hold;
mod latency;
mod origin;

use std::net::SocketAddr;

use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(name = "serve2-load", about = "Origins and load generators for the serve2 benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A backend server; prints {"ready":"ADDR"} once listening, then serves forever.
    Origin {
        /// Where to listen (port 0 picks a free one).
        #[arg(long)]
        listen: SocketAddr,
        /// What to serve.
        #[arg(long, value_enum)]
        mode: OriginMode,
    },
    /// New connections per second, each doing an SSH banner exchange, and
    /// the time to first reply at that concurrency.
    Connrate {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Stop after this many connections (SECONDS still bounds the run).
        #[arg(long)]
        connections: Option<usize>,
    },
    /// Time from connect() to the first reply byte, one connection at a time.
    Latency {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 2000)]
        count: usize,
    },
    /// Opens COUNT connections, keeps them open until stdin reaches EOF.
    Hold {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 5000)]
        count: usize,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OriginMode {
    /// Answers a client SSH banner with `SSH-2.0-origin`, then drains.
    Banner,
    /// A minimal HTTP/1.1 responder (keep-alive, pipelining).
    Http,
}

fn main() -> anyhow::Result<()> {
    let command = Cli::parse().command;
    // One connection at a time gains nothing from worker threads, only
    // cross-thread wake-ups that would blur the latency being measured. The
    // banner origin is single-threaded too: the workload the connection
    // rate is judged on is defined through a single-threaded origin.
    let mut runtime = match command {
        Command::Latency { .. } | Command::Origin { mode: OriginMode::Banner, .. } => {
            tokio::runtime::Builder::new_current_thread()
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = runtime.enable_all().build()?;
    runtime.block_on(async {
        match command {
            Command::Origin { listen, mode } => origin::serve(listen, mode).await,
            Command::Connrate { target, concurrency, seconds, connections } => {
                print_line(&connrate::run(target, concurrency.max(1), seconds, connections).await)
            }
            Command::Latency { target, count } => print_line(&latency::run(target, count).await),
            Command::Hold { target, count } => hold::run(target, count).await,
        }
    })
}

/// Prints `value` as one JSON line (stdout is line-buffered, so it is flushed).
fn print_line(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
