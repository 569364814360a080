//! Integration tests over real sockets. Every test that touches the network
//! runs in a fresh network namespace of its own (root needed; otherwise it
//! is skipped with a printed reason).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod basic;
mod cli;
mod differential;
mod example;
mod http;
mod limits;
mod many;
mod matrix;
mod metrics;
mod openssh;
mod peers;
mod peers_e2e;
mod proxy;
mod routes;
mod stalls;
mod steer;
mod support;
mod tls;
mod tlsroute;
mod transparent;
