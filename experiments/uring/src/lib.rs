//! The io_uring experiment (issue 9, point 3): one minimal TCP proxy, the
//! same logic over three I/O mechanisms, to measure io_uring against epoll
//! on the benchmark's short-connection workload.
//!
//! Every proxy: accepts; reads once (the client's first bytes, like serve2's
//! detection on an SSH banner); connects to the target with TCP_NODELAY;
//! writes those bytes; relays both ways through one [`BUFFER`]-sized buffer
//! per direction, half-closing a side whose peer ended; closes both. One
//! thread per listener of an SO_REUSEPORT group, as serve2d's workers.
//!
//! - [`epoll`]: a current-thread tokio runtime per worker (serve2d's shape).
//! - [`uring`]: an io_uring event loop per worker for everything.
//! - [`hybrid`]: io_uring for accept and the first exchange, then the
//!   sockets go to tokio for the relay (what serve2 could adopt).

pub mod epoll;
pub mod hybrid;
pub mod listener;
pub mod relay;
pub mod uring;

pub use listener::bind_group as bind_group_for;

use std::net::SocketAddr;

/// Bytes of each direction's relay buffer, in every proxy (serve2's copy
/// relay uses the same chunk).
pub const BUFFER: usize = 16 * 1024;

/// Runs `worker` on one thread per listener and waits for them all; returns
/// the first worker error (workers only return on a fatal one).
pub fn run_workers<F>(listeners: Vec<std::net::TcpListener>, target: SocketAddr, worker: F) -> std::io::Result<()>
where
    F: Fn(std::net::TcpListener, SocketAddr) -> std::io::Result<()> + Send + Sync + Clone + 'static,
{
    let mut threads = Vec::new();
    for (index, listener) in listeners.into_iter().enumerate() {
        let worker = worker.clone();
        threads
            .push(std::thread::Builder::new().name(format!("worker-{index}")).spawn(move || worker(listener, target))?);
    }
    let mut result = Ok(());
    for thread in threads {
        let outcome = thread.join().unwrap_or_else(|_| Err(std::io::Error::other("worker panicked")));
        if result.is_ok() {
            result = outcome;
        }
    }
    result
}
