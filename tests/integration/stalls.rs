//! A backend that never reads: the client's reset still reaches it at once,
//! `stallTimeout` ends a stuck connection, `idleTimeout` a silent one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use crate::support::*;

const BANNER: &[u8] = include_bytes!("../fixtures/openssh-client-banner.bin");

/// A backend listener whose connections get a small receive buffer from
/// the start (set before listen, so the window is small from the SYN on).
fn small_backend() -> (tokio::net::TcpListener, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(16).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

fn config(backend: &str, extra: &str) -> String {
    format!(r#"{{"address": ":0", {extra} "protocols": [{{"kind": "ssh", "conf": {{"target": {}}}}}]}}"#, json(backend))
}

/// Connects through the daemon to a backend that accepts and never reads,
/// and pushes bytes until nothing moves any more: the daemon then holds
/// bytes for the backend that it cannot write. Returns the client, the
/// backend's socket, and the writer (abort it to stop writing).
async fn stuck_connection(daemon: &Daemon, backend: &tokio::net::TcpListener) -> (TcpStream, TcpStream) {
    let mut client = daemon.connect().await;
    send(&mut client, BANNER).await;
    let server = accept(backend).await;
    let written = Arc::new(AtomicU64::new(0));
    let chunk = vec![0x5a; 64 * 1024];
    // Write without waiting until the socket takes nothing more, several
    // times over: stuck once a whole round moves nothing.
    let started = std::time::Instant::now();
    let mut quiet_rounds = 0;
    while quiet_rounds < 5 {
        let before = written.load(Ordering::Relaxed);
        loop {
            match client.try_write(&chunk) {
                Ok(n) => written.fetch_add(n as u64, Ordering::Relaxed),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            };
        }
        // Give the daemon a turn to move what it can (bounded rounds).
        let _ = tokio::time::timeout(Duration::from_millis(50), client.writable()).await;
        quiet_rounds = if written.load(Ordering::Relaxed) == before { quiet_rounds + 1 } else { 0 };
        assert!(written.load(Ordering::Relaxed) < 512 << 20, "the backend was never back-pressured");
    }
    eprintln!("stuck after {:?} and {} bytes", started.elapsed(), written.load(Ordering::Relaxed));
    (client, server)
}

#[test]
fn a_client_reset_reaches_a_backend_that_never_reads() {
    in_netns(|| async {
        let (backend, addr) = small_backend();
        let daemon = Daemon::start(&config(&addr, "")).await;
        let (client, server) = stuck_connection(&daemon, &backend).await;
        reset(client);
        // The backend is told without reading a byte: its socket reports the
        // reset.
        tokio::time::timeout(WAIT, server.ready(Interest::ERROR))
            .await
            .expect("the reset reaches the backend")
            .unwrap();
        let error = server.take_error().unwrap().expect("a pending error");
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
        daemon.stop().await;
    });
}

#[test]
fn stall_timeout_resets_both_sides_of_a_connection_that_cannot_move() {
    in_netns(|| async {
        let (backend, addr) = small_backend();
        let daemon = Daemon::start(&config(&addr, r#""stallTimeout": 1.5,"#)).await;
        let (mut client, server) = stuck_connection(&daemon, &backend).await;
        assert_reset(&mut client).await;
        tokio::time::timeout(WAIT, server.ready(Interest::ERROR)).await.expect("the backend is reset").unwrap();
        daemon.stop().await;
    });
}

#[test]
fn idle_timeout_closes_a_connection_with_no_traffic() {
    in_netns(|| async {
        let (backend, addr) = backend().await;
        let daemon = Daemon::start(&config(&addr, r#""idleTimeout": 0.3,"#)).await;
        let mut client = daemon.connect().await;
        send(&mut client, BANNER).await;
        let mut server = accept(&backend).await;
        assert_eq!(read_exact(&mut server, BANNER.len()).await, BANNER);
        send(&mut server, b"SSH-2.0-x\r\n").await;
        assert_eq!(read_exact(&mut client, 11).await, b"SSH-2.0-x\r\n");
        // Then nothing either way: both ends see a clean close.
        assert_eq!(read_to_end(&mut client).await.unwrap(), b"");
        assert_eq!(read_to_end(&mut server).await.unwrap(), b"");
        client.shutdown().await.ok();
        daemon.stop().await;
    });
}

#[test]
fn stall_and_idle_timeouts_are_checked() {
    let error = serve2::Config::parse(
        std::path::Path::new("c.json"),
        r#"{"address": ":0", "stallTimeout": -1, "protocols": [{"kind": "echo"}]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("stallTimeout: expected a number of seconds above 0 and at most 86400"), "{error}");
}
