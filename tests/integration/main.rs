//! Integration tests over real sockets. Every test that touches the network
//! runs in a fresh network namespace of its own (root needed; otherwise it
//! is skipped with a printed reason).

mod basic;
mod cli;
mod http;
mod limits;
mod proxy;
mod support;
mod tls;
