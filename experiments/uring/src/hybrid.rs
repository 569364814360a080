//! The hybrid proxy: io_uring for accept and the first exchange (first
//! read, socket, TCP_NODELAY, connect, replay), then both sockets go to
//! tokio, whose relay is [`crate::epoll`]'s. Per worker one current-thread
//! runtime and one ring, whose descriptor tokio polls like any socket: the
//! shape serve2 could adopt without leaving tokio.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;

use crate::relay::relay;
use crate::uring::{Engine, EngineOptions, HandOff};

/// Serves every listener on its own thread until a worker fails.
pub fn serve(listeners: Vec<std::net::TcpListener>, target: SocketAddr) -> io::Result<()> {
    crate::run_workers(listeners, target, worker)
}

/// The ring's descriptor as tokio sees it (the engine owns and closes it).
#[derive(Debug)]
struct RingFd(RawFd);

impl AsRawFd for RingFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

fn worker(listener: std::net::TcpListener, target: SocketAddr) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // No DEFER_TASKRUN: completions must reach the ring without an enter
    // of ours, so that the ring's descriptor turns readable for epoll.
    let options = EngineOptions { direct: false, defer_taskrun: false, hand_off: true, sync_shutdown: false };
    let mut engine = Engine::new(listener, target, options)?;
    runtime.block_on(async move {
        // SAFETY: the ring's descriptor stays open while `ring` exists: the
        // engine, which closes it, outlives it (dropped after it, declared
        // before).
        let ring = unsafe { AsyncFd::register_with_interest(RingFd(engine.ring_fd()), Interest::READABLE)? };
        loop {
            engine.submit()?;
            let mut ready = ring.readable().await?;
            // Cleared before draining: a completion posted meanwhile makes
            // the descriptor readable again.
            ready.clear_ready();
            engine.complete()?;
            for handed in engine.take_handed() {
                start_relay(handed);
            }
        }
    })
}

fn start_relay(handed: HandOff) {
    let client = TcpStream::from_std(std::net::TcpStream::from(handed.client));
    let backend = TcpStream::from_std(std::net::TcpStream::from(handed.backend));
    if let (Ok(client), Ok(backend)) = (client, backend) {
        tokio::spawn(relay(client, backend, handed.up, handed.down));
    }
}
