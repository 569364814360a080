//! Integration tests over real sockets. Every test that touches the network
//! runs in a fresh network namespace of its own (root needed; otherwise it
//! is skipped with a printed reason).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod basic;
mod cli;
mod differential;
mod example;
mod fail2ban;
mod http;
mod limits;
mod many;
mod matrix;
mod metrics;
mod openssh;
mod peers;
mod peers_e2e;
mod proxy;
mod reload;
mod routes;
mod schema;
mod stalls;
mod steer;
mod steer_kernel;
mod support;
mod systemd;
mod tls;
mod tlsroute;
mod transparent;
mod udp;
mod udp_daemon;
mod udp_limits;
mod udp_quic;
mod udp_socket;
mod udp_steer;
mod udp_wireguard;
mod udp_workers;
