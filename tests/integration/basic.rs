//! `echo`, `discard`, the default protocol, the detection deadline.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

fn config(default_target: Option<&str>, detect_timeout: f64) -> String {
    let default = match default_target {
        Some(target) => format!(r#",{{"kind": "proxy", "default": true, "conf": {{"target": {}}}}}"#, json(target)),
        None => String::new(),
    };
    format!(
        r#"{{"address": ":0", "detectTimeout": {detect_timeout}, "protocols": [
            {{"kind": "echo"}}, {{"kind": "discard"}}, {{"kind": "proxy", "conf": {{"magic": "SSH", "target": "127.0.0.1:9"}}}}
            {default}
        ]}}"#
    )
}

#[test]
fn echo_returns_everything_including_its_magic() {
    in_netns(|| async {
        let daemon = Daemon::start(&config(None, 5.0)).await;
        let mut client = daemon.connect().await;
        send(&mut client, b"EC").await;
        send(&mut client, b"HO hello\n").await;
        assert_eq!(read_exact(&mut client, 11).await, b"ECHO hello\n");
        send(&mut client, b"more").await;
        client.shutdown().await.unwrap();
        assert_eq!(read_to_end(&mut client).await.unwrap(), b"more");
        daemon.stop().await;
    });
}

#[test]
fn discard_swallows_everything() {
    in_netns(|| async {
        let daemon = Daemon::start(&config(None, 5.0)).await;
        let mut client = daemon.connect().await;
        send(&mut client, b"DISCARD").await;
        send(&mut client, &vec![b'x'; 100_000]).await;
        client.shutdown().await.unwrap();
        assert_eq!(read_to_end(&mut client).await.unwrap(), b"");
        daemon.stop().await;
    });
}

#[test]
fn unmatched_bytes_go_to_the_default_handler_replayed() {
    in_netns(|| async {
        let (backend, addr) = backend().await;
        let daemon = Daemon::start(&config(Some(&addr), 5.0)).await;
        let mut client = daemon.connect().await;
        send(&mut client, b"HELLO unknown protocol").await;
        let mut server = accept(&backend).await;
        assert_eq!(read_exact(&mut server, 22).await, b"HELLO unknown protocol");
        daemon.stop().await;
    });
}

#[test]
fn a_silent_client_goes_to_the_default_after_the_deadline() {
    in_netns(|| async {
        let (backend, addr) = backend().await;
        let daemon = Daemon::start(&config(Some(&addr), 0.3)).await;
        let started = std::time::Instant::now();
        let mut client = daemon.connect().await;
        // A server-first protocol: the client waits for the backend to speak.
        let mut server = accept(&backend).await;
        assert!(started.elapsed() >= Duration::from_millis(300));
        send(&mut server, b"220 smtp ready\r\n").await;
        assert_eq!(read_exact(&mut client, 16).await, b"220 smtp ready\r\n");
        send(&mut client, b"EHLO x\r\n").await;
        assert_eq!(read_exact(&mut server, 8).await, b"EHLO x\r\n");
        daemon.stop().await;
    });
}

#[test]
fn a_partial_match_at_the_deadline_keeps_its_bytes_for_the_default() {
    in_netns(|| async {
        let (backend, addr) = backend().await;
        let daemon = Daemon::start(&config(Some(&addr), 0.3)).await;
        let mut client = daemon.connect().await;
        send(&mut client, b"DISC").await;
        let mut server = accept(&backend).await;
        assert_eq!(read_exact(&mut server, 4).await, b"DISC");
        daemon.stop().await;
    });
}

#[test]
fn without_a_default_unmatched_and_silent_clients_are_closed() {
    in_netns(|| async {
        let daemon = Daemon::start(&config(None, 0.3)).await;
        let mut unmatched = daemon.connect().await;
        send(&mut unmatched, b"HELLO").await;
        assert_closed_silently(&mut unmatched).await;
        let started = std::time::Instant::now();
        let mut silent = daemon.connect().await;
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(WAIT, silent.read(&mut buf)).await.expect("closed by the deadline");
        assert!(matches!(n, Ok(0)) || n.is_err());
        assert!(started.elapsed() >= Duration::from_millis(300));
        daemon.stop().await;
    });
}

#[test]
fn a_client_closing_mid_detection_is_handled() {
    in_netns(|| async {
        let daemon = Daemon::start(&config(None, 5.0)).await;
        let mut client = daemon.connect().await;
        client.write_all(b"EC").await.unwrap();
        client.shutdown().await.unwrap();
        assert_eq!(read_to_end(&mut client).await.unwrap(), b"");
        // And the daemon is fine.
        let mut next = daemon.connect().await;
        send(&mut next, b"ECHO").await;
        assert_eq!(read_exact(&mut next, 4).await, b"ECHO");
        daemon.stop().await;
    });
}
