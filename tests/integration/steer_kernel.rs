//! What the steering program decides on its own, before any accept:
//! kernel-direct routes to a backend's own listener, and source rules
//! (allow, deny, rate limit) per policy.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::steer::{echo_through, start, status};
use crate::support::*;

/// Connects to `to` from the local address `from` (any 127/8 address is
/// local on `lo`).
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
    tokio::time::timeout(WAIT, socket.connect(to)).await.expect("connect answered in time")
}

/// Polls `serve2d status` until it contains `needle` (bounded).
async fn wait_for_status(dir: &tempfile::TempDir, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = status(dir);
        if text.contains(needle) {
            return text;
        }
        assert!(tokio::time::Instant::now() < deadline, "status never showed {needle:?}:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn a_kernel_direct_route_hands_connections_to_the_backend_and_falls_back_when_it_stops() {
    in_netns(|| async {
        let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend_addr = backend.local_addr().unwrap();
        let port = free_port();
        let body = format!(
            r#""steer": {{"ports": [{port}]}},
               "policies": [{{"name": "smtp", "ports": [{port}], "forward": {{"target": "{backend_addr}"}}}}]"#
        );
        let (dir, mut daemon) = start(&body).await;
        let text = wait_for_status(&dir, "kernel-routed").await;
        assert!(text.contains(&format!("ports {port} -> {backend_addr}: kernel-routed")), "{text}");

        // The backend's own listener takes the connection: its socket shows
        // the port the client dialled and the client itself as peer.
        let dialled = SocketAddr::from(([127, 0, 0, 1], port));
        let client = TcpStream::connect(dialled).await.unwrap();
        let (accepted, peer) = tokio::time::timeout(WAIT, backend.accept()).await.unwrap().unwrap();
        assert_eq!(accepted.local_addr().unwrap(), dialled, "no second connection: the client's own");
        assert_eq!(peer, client.local_addr().unwrap());
        drop((client, accepted));

        // The backend stops listening: the port falls back to serve2 at
        // once (nothing else listens on it, so a connection that is
        // accepted at all was accepted by the daemon), which forwards.
        drop(backend);
        let mut fallback = TcpStream::connect(dialled).await.expect("the port is never black-holed");
        assert_closed_or_reset(&mut fallback).await;
        let text = wait_for_status(&dir, "forwarded by serve2").await;
        let fallbacks = text
            .split("direct_fallbacks ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok());
        assert!(fallbacks.is_some_and(|n| n >= 1), "the program counted the fallback: {text}");

        // A restarted backend is found again.
        let backend = TcpListener::bind(backend_addr).await.unwrap();
        wait_for_status(&dir, "kernel-routed").await;
        let client = TcpStream::connect(dialled).await.unwrap();
        let (accepted, peer) = tokio::time::timeout(WAIT, backend.accept()).await.unwrap().unwrap();
        assert_eq!((accepted.local_addr().unwrap(), peer), (dialled, client.local_addr().unwrap()));
        let text = status(&dir);
        assert!(text.contains("smtp: denied 0, kernel_routed 2, rate_limited 0"), "{text}");
        daemon.child.kill().await.unwrap();
    });
}

/// A connection the daemon accepted and then closed, because the backend
/// refused it.
async fn assert_closed_or_reset(stream: &mut TcpStream) {
    let ended = tokio::time::timeout(WAIT, read_to_end(stream)).await.expect("closed in time");
    assert!(ended.map_or(true, |bytes| bytes.is_empty()), "nothing is relayed from a refused backend");
}

#[test]
fn deny_and_allow_refuse_sources_with_a_reset_before_accept() {
    in_netns(|| async {
        let (deny_port, allow_port) = (free_port(), free_port());
        let body = format!(
            r#""steer": {{"ports": [{deny_port}, {allow_port}]}},
               "policies": [
                 {{"name": "open", "ports": [{deny_port}], "deny": ["127.0.0.2", "127.0.9.0/24"], "allow": ["127.0.0.0/8", "127.0.9.9"],
                   "protocols": [{{"kind": "echo"}}]}},
                 {{"name": "closed", "ports": [{allow_port}], "allow": ["127.0.0.3/32"], "protocols": [{{"kind": "echo"}}]}}
               ]"#
        );
        let (dir, daemon) = start(&body).await;
        let deny_to = SocketAddr::from(([127, 0, 0, 1], deny_port));
        let allow_to = SocketAddr::from(([127, 0, 0, 1], allow_port));
        let refused = |result: std::io::Result<TcpStream>| {
            let error = result.expect_err("refused");
            assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused, "a reset at once: {error}");
        };
        refused(connect_from(Ipv4Addr::new(127, 0, 0, 2), deny_to).await);
        refused(connect_from(Ipv4Addr::new(127, 0, 9, 1), deny_to).await);
        // The longest matching prefix decides: the /32 allow inside the
        // denied /24, the denied /32 and /24 inside the allowed /8.
        connect_from(Ipv4Addr::new(127, 0, 9, 9), deny_to).await.expect("allowed inside the denied /24");
        echo_through(deny_to, "served").await;
        refused(connect_from(Ipv4Addr::new(127, 0, 0, 1), allow_to).await);
        connect_from(Ipv4Addr::new(127, 0, 0, 3), allow_to).await.expect("on the allow list");
        let text = status(&dir);
        assert!(text.contains("open: denied 2, kernel_routed 0, rate_limited 0"), "{text}");
        assert!(text.contains("closed: denied 1, kernel_routed 0, rate_limited 0"), "{text}");
        assert!(text.contains("refused 3"), "{text}");
        drop(daemon);
    });
}

#[test]
fn a_rate_limit_refuses_an_over_limit_source_while_another_is_served() {
    in_netns(|| async {
        let port = free_port();
        // One connection per 100 s sustained, three at once: the fourth in a
        // row is over the limit whatever the machine's speed.
        let body = format!(
            r#""steer": {{"ports": [{port}]}},
               "policies": [{{"name": "limited", "ports": [{port}],
                 "rateLimit": {{"perSecond": 0.01, "burst": 3, "prefixV4": 32}}, "protocols": [{{"kind": "echo"}}]}}]"#
        );
        let (dir, daemon) = start(&body).await;
        let to = SocketAddr::from(([127, 0, 0, 1], port));
        let busy = Ipv4Addr::new(127, 0, 0, 5);
        for _ in 0..3 {
            connect_from(busy, to).await.expect("within the burst");
        }
        let error = connect_from(busy, to).await.expect_err("over the limit");
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused, "{error}");
        // Another /32 has its own budget and is served in full.
        for _ in 0..3 {
            let quiet = connect_from(Ipv4Addr::new(127, 0, 0, 6), to).await.expect("its own budget");
            drop(quiet);
        }
        echo_through(to, "still served").await;
        let text = status(&dir);
        assert!(text.contains("limited: denied 0, kernel_routed 0, rate_limited 1"), "{text}");
        drop(daemon);
    });
}

#[test]
fn a_reload_changes_the_source_rules_in_the_kernel() {
    in_netns(|| async {
        let port = free_port();
        let body = |deny: &str| {
            format!(
                r#""steer": {{"ports": [{port}]}},
                   "policies": [{{"name": "p", "ports": [{port}], "deny": [{deny}], "protocols": [{{"kind": "echo"}}]}}]"#
            )
        };
        let (dir, daemon) = start(&body(r#""127.0.0.2""#)).await;
        let to = SocketAddr::from(([127, 0, 0, 1], port));
        let (two, four) = (Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 4));
        assert!(connect_from(two, to).await.is_err(), "denied before the reload");
        connect_from(four, to).await.expect("served before the reload");
        let control = dir.path().join("control.sock");
        let config = format!(
            r#"{{"logStdout": true, "control": {}, {}}}"#,
            json(control.to_string_lossy()),
            body(r#""127.0.0.4/32""#)
        );
        std::fs::write(dir.path().join("conf.json"), config).unwrap();
        let answer = serve2::control::request_reload(&control).await.unwrap();
        assert!(answer.ok, "{}", answer.message);
        connect_from(two, to).await.expect("no longer denied");
        let error = connect_from(four, to).await.expect_err("denied now");
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused, "{error}");
        drop(daemon);
    });
}
