//! The io_uring proxy: per worker one ring and one event loop, for every
//! step (accept, recv, socket, connect, send, shutdown, close).

mod conn;
mod engine;
mod ring;

pub use engine::{Engine, EngineOptions, HandOff};

use std::io;
use std::net::SocketAddr;

/// Serves every listener on its own thread until a worker fails.
pub fn serve(listeners: Vec<std::net::TcpListener>, target: SocketAddr, options: EngineOptions) -> io::Result<()> {
    crate::run_workers(listeners, target, move |listener, target| Engine::new(listener, target, options)?.run())
}
