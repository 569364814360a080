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
mod udp;

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
    /// The UDP origin: echoes every datagram; prints {"ready":"ADDR"}.
    UdpEcho {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Round trips per second: FLOWS flows, WINDOW datagrams of SIZE bytes in flight each.
    UdpPingpong {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 1)]
        flows: usize,
        #[arg(long, default_value_t = 32)]
        window: usize,
        #[arg(long, default_value_t = 64)]
        size: usize,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// New flows per second: each from a new source port, one datagram and its echo.
    UdpFlows {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Stop after starting this many flows (SECONDS still bounds the run).
        #[arg(long, default_value_t = 40_000)]
        max_flows: usize,
    },
    /// Opens COUNT flows (each echoed once), holds them idle until stdin reaches EOF.
    UdpHold {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 10_000)]
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
    // The UDP tools run on plain threads, batching their system calls.
    match command {
        Command::UdpEcho { listen } => return udp::echo::serve(listen),
        Command::UdpPingpong { target, flows, window, size, seconds } => {
            let shape = udp::pingpong::Shape { flows: flows.max(1), window: window.max(1), size, seconds };
            return print_line(&udp::pingpong::run(target, shape)?);
        }
        Command::UdpFlows { target, concurrency, seconds, max_flows } => {
            return print_line(&udp::flows::rate(target, concurrency.max(1), seconds, max_flows));
        }
        Command::UdpHold { target, count } => return udp::flows::hold(target, count),
        _ => {}
    }
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
            _ => Ok(()),
        }
    })
}

/// Prints `value` as one JSON line (stdout is line-buffered, so it is flushed).
fn print_line(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
