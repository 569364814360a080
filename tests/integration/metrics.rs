//! The Prometheus endpoint of the real daemon: scraped after scripted mixes
//! of connections, every count asserted exactly.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::certs::TestPki;
use crate::support::process::Serve2d;
use crate::support::*;

/// The daemon with a metrics endpoint on a free loopback port; `body` is
/// the rest of the configuration object.
async fn start(body: &str) -> (Daemon, SocketAddr) {
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let daemon = Daemon::start(&format!(r#"{{"address": ":0", "metrics": "{metrics}", {body}}}"#)).await;
    wait_listening(metrics.port()).await;
    (daemon, metrics)
}

/// Sends one HTTP/1.1 request; the response's head and body.
async fn request(addr: SocketAddr, method: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    send(&mut stream, format!("{method} {path} HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n").as_bytes())
        .await;
    let response = String::from_utf8(read_to_end(&mut stream).await.unwrap()).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a complete response");
    (head.to_owned(), body.to_owned())
}

async fn scrape(addr: SocketAddr) -> String {
    let (head, body) = request(addr, "GET", "/metrics").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    body
}

/// Scrapes until `done` holds (the daemon counts a connection just after
/// closing it), within [`WAIT`].
async fn scrape_until(addr: SocketAddr, done: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = scrape(addr).await;
        if done(&text) {
            return text;
        }
        assert!(tokio::time::Instant::now() < deadline, "metrics never got there:\n{text}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The value of one series, exactly as exposed (`name{labels}`).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn connections(text: &str, chain: &str, outcome: &str) -> Option<f64> {
    value(text, &format!(r#"serve2_connections_total{{policy="top",chain="{chain}",outcome="{outcome}"}}"#))
}

fn series_count(text: &str, family: &str) -> usize {
    text.lines().filter(|line| line.starts_with(&format!("{family}{{"))).count()
}

fn active(text: &str) -> Option<f64> {
    value(text, r#"serve2_connections_active{policy="top"}"#)
}

#[test]
fn a_scripted_mix_of_connections_is_counted_exactly() {
    in_netns(|| async {
        let (backend, backend_addr) = backend().await;
        let refusing = refusing_address().await;
        let (daemon, metrics) = start(&format!(
            r#""detectTimeout": 0.3, "acceptProxy": ["10.0.0.0/8"], "protocols": [
                {{"kind": "echo"}},
                {{"kind": "ssh", "conf": {{"target": {refusing}}}}},
                {{"kind": "proxy", "default": true, "conf": {{"target": {backend_addr}}}}}
            ]"#,
            refusing = json(&refusing),
            backend_addr = json(&backend_addr),
        ))
        .await;
        let (head, _) = request(metrics, "GET", "/").await;
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        let (head, _) = request(metrics, "POST", "/metrics").await;
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        let text = scrape(metrics).await;
        assert_eq!(active(&text), Some(0.0));
        assert_eq!(series_count(&text, "serve2_connections_total"), 0, "{text}");

        // matched: 10 bytes each way.
        let mut client = daemon.connect().await;
        send(&mut client, b"ECHO hello").await;
        assert_eq!(read_exact(&mut client, 10).await, b"ECHO hello");
        client.shutdown().await.unwrap();
        assert_eq!(read_to_end(&mut client).await.unwrap(), b"");

        // default: 11 bytes in, 2 out.
        let mut client = daemon.connect().await;
        send(&mut client, b"HELLO there").await;
        let mut server = accept(&backend).await;
        assert_eq!(read_exact(&mut server, 11).await, b"HELLO there");
        send(&mut server, b"hi").await;
        drop(server);
        assert_eq!(read_to_end(&mut client).await.unwrap(), b"hi");
        client.shutdown().await.unwrap();
        drop(client);
        scrape_until(metrics, |t| connections(t, "proxy", "default").is_some() && active(t) == Some(0.0)).await;

        // timeout: a silent client goes to the default after 0.3 s; 11 bytes out.
        let mut client = daemon.connect().await;
        let mut server = accept(&backend).await;
        let text = scrape(metrics).await;
        assert_eq!(active(&text), Some(1.0), "{text}");
        send(&mut server, b"220 ready\r\n").await;
        drop(server);
        assert_eq!(read_to_end(&mut client).await.unwrap(), b"220 ready\r\n");
        client.shutdown().await.unwrap();
        drop(client);

        // backend_error: the ssh route's backend refuses.
        let mut client = daemon.connect().await;
        send(&mut client, b"SSH-2.0-OpenSSH_9.6\r\n").await;
        assert_closed_silently(&mut client).await;

        // rejected: a PROXY header from a source acceptProxy does not list.
        let mut client = daemon.connect().await;
        send(&mut client, b"PROXY TCP4 192.0.2.7 192.0.2.8 1111 2222\r\n").await;
        assert_closed_silently(&mut client).await;

        let text =
            scrape_until(metrics, |t| series_count(t, "serve2_connections_total") == 5 && active(t) == Some(0.0)).await;
        assert_eq!(connections(&text, "echo", "matched"), Some(1.0), "{text}");
        assert_eq!(connections(&text, "proxy", "default"), Some(1.0), "{text}");
        assert_eq!(connections(&text, "proxy", "timeout"), Some(1.0), "{text}");
        assert_eq!(connections(&text, "ssh", "backend_error"), Some(1.0), "{text}");
        assert_eq!(connections(&text, "proxy-header", "rejected"), Some(1.0), "{text}");
        assert_eq!(value(&text, r#"serve2_bytes_total{policy="top",direction="from_client"}"#), Some(21.0));
        assert_eq!(value(&text, r#"serve2_bytes_total{policy="top",direction="to_client"}"#), Some(23.0));
        assert_eq!(value(&text, r#"serve2_tls_handshake_errors_total{policy="top"}"#), Some(0.0));
        // One detection per connection; the silent one waited the deadline.
        assert_eq!(value(&text, "serve2_detect_duration_seconds_count"), Some(5.0), "{text}");
        assert_eq!(value(&text, r#"serve2_detect_duration_seconds_bucket{le="+Inf"}"#), Some(5.0));
        assert_eq!(value(&text, r#"serve2_detect_duration_seconds_bucket{le="0.25"}"#), Some(4.0));
        assert!(value(&text, "serve2_detect_duration_seconds_sum").unwrap() >= 0.3, "{text}");
        assert_eq!(value(&text, r#"serve2_reloads_total{result="ok"}"#), Some(0.0));
        let build = format!(r#"serve2_build_info{{version="{}"}}"#, env!("CARGO_PKG_VERSION"));
        assert_eq!(value(&text, &build), Some(1.0));
        // No address reaches a label: not the client's, the backend's or a PROXY header's.
        for address in ["127.0.0.1", "192.0.2.7", &backend_addr, &refusing] {
            assert!(!text.contains(address), "{address} in\n{text}");
        }
        daemon.stop().await;
    });
}

#[test]
fn tls_chains_handshake_errors_and_closed_connections_are_counted() {
    in_netns(|| async {
        let pki = TestPki::new();
        let (daemon, metrics) = start(&format!(
            r#""detectTimeout": 0.3, "protocols": [
                {{"kind": "tls", "conf": {{"cert": {cert}, "key": {key}}}}},
                {{"kind": "echo"}}
            ]"#,
            cert = json(pki.cert_path().to_string_lossy()),
            key = json(pki.key_path().to_string_lossy()),
        ))
        .await;
        // tls>echo, twice: a nested chain.
        for _ in 0..2 {
            let mut tls = pki.connect(daemon.addr, "localhost", &[]).await;
            tls.write_all(b"ECHO over tls").await.unwrap();
            assert_eq!(read_exact(&mut tls, 13).await, b"ECHO over tls");
            tls.shutdown().await.unwrap();
            let _ = read_to_end(&mut tls).await;
        }
        // A ClientHello, then garbage: a failed handshake.
        let mut client = daemon.connect().await;
        send(&mut client, include_bytes!("../fixtures/curl-openssl3-clienthello.bin")).await;
        send(&mut client, b"\x16\x03\x03\x00\x02garbage").await;
        let _ = read_to_end(&mut client).await;
        // Inside TLS, bytes nothing matches: closed.
        let mut tls = pki.connect(daemon.addr, "localhost", &[]).await;
        tls.write_all(b"GARBAGE").await.unwrap();
        let _ = read_to_end(&mut tls).await;
        // In clear, bytes nothing matches, and a silent client: closed.
        let mut client = daemon.connect().await;
        send(&mut client, b"GARBAGE").await;
        assert_closed_silently(&mut client).await;
        let mut client = daemon.connect().await;
        assert_closed_silently(&mut client).await;

        let text =
            scrape_until(metrics, |t| series_count(t, "serve2_connections_total") == 5 && active(t) == Some(0.0)).await;
        assert_eq!(connections(&text, "tls>echo", "matched"), Some(2.0), "{text}");
        assert_eq!(connections(&text, "tls", "matched"), Some(1.0), "{text}");
        assert_eq!(connections(&text, "tls", "closed_unmatched"), Some(1.0), "{text}");
        assert_eq!(connections(&text, "-", "closed_unmatched"), Some(1.0), "{text}");
        assert_eq!(connections(&text, "-", "timeout"), Some(1.0), "{text}");
        assert_eq!(value(&text, r#"serve2_tls_handshake_errors_total{policy="top"}"#), Some(1.0), "{text}");
        // Two detections per TLS connection that finished its handshake.
        assert_eq!(value(&text, "serve2_detect_duration_seconds_count"), Some(9.0), "{text}");
        assert!(!text.contains("localhost") && !text.contains("127.0.0.1"), "{text}");
        daemon.stop().await;
    });
}

#[test]
fn connections_refused_by_accept_proxy_are_rejected() {
    in_netns(|| async {
        let (daemon, metrics) = start(r#""acceptProxy": ["127.0.0.0/8"], "protocols": [{"kind": "echo"}]"#).await;
        // A broken header from a trusted source.
        let mut client = daemon.connect().await;
        send(&mut client, b"NOT A PROXY HEADER\r\n").await;
        assert_closed_silently(&mut client).await;
        // A good header, then bytes nothing matches.
        let mut client = daemon.connect().await;
        send(&mut client, b"PROXY TCP4 198.51.100.9 127.0.0.1 5555 80\r\nGARBAGE").await;
        assert_closed_silently(&mut client).await;
        let text =
            scrape_until(metrics, |t| series_count(t, "serve2_connections_total") == 2 && active(t) == Some(0.0)).await;
        assert_eq!(connections(&text, "proxy-header", "rejected"), Some(1.0), "{text}");
        assert_eq!(connections(&text, "-", "closed_unmatched"), Some(1.0), "{text}");
        assert!(!text.contains("198.51.100.9"), "{text}");
        daemon.stop().await;
    });
}

#[test]
fn a_metrics_address_in_use_fails_the_start_naming_it() {
    in_netns(|| async {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap();
        let source = format!(
            r#"{{"address": ":0", "control": "", "workers": 1, "metrics": "{address}", "protocols": [{{"kind": "echo"}}]}}"#
        );
        let config = serve2::Config::parse(std::path::Path::new("test.json"), &source).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let error = serve2::run_with(config, vec![listener], std::future::pending()).await.unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&address.to_string()) && message.contains("metrics"), "{message}");
    });
}

#[test]
fn the_steering_daemon_exposes_the_kernel_counters() {
    in_netns(|| async {
        let (steered, metrics) = (free_port(), free_port());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf.json");
        let config = format!(
            r#"{{"logStdout": true, "control": "", "workers": 1, "metrics": "127.0.0.1:{metrics}",
                "steer": {{"ports": [{steered}]}}, "protocols": [{{"kind": "echo"}}]}}"#
        );
        std::fs::write(&path, config).unwrap();
        let mut daemon = Serve2d::spawn(&[], &path);
        daemon.wait_for_line("serving").await;
        let metrics: SocketAddr = format!("127.0.0.1:{metrics}").parse().unwrap();
        let mut client = TcpStream::connect(("127.0.0.1", steered)).await.unwrap();
        send(&mut client, b"ECHO steered").await;
        assert_eq!(read_exact(&mut client, 12).await, b"ECHO steered");
        client.shutdown().await.unwrap();
        assert_eq!(read_to_end(&mut client).await.unwrap(), b"");
        let text = scrape_until(metrics, |t| connections(t, "echo", "matched").is_some()).await;
        assert_eq!(connections(&text, "echo", "matched"), Some(1.0), "{text}");
        assert_eq!(value(&text, "serve2_steer_steered_total"), Some(1.0), "{text}");
        assert_eq!(value(&text, "serve2_steer_no_socket_total"), Some(0.0), "{text}");
        // Every new connection in the namespace runs the program: the
        // steered one and at least this scrape's.
        assert!(value(&text, "serve2_steer_lookups_total").unwrap() >= 2.0, "{text}");
    });
}

#[test]
fn connections_turned_away_by_limits_are_counted_as_limited() {
    in_netns(|| async {
        let (daemon, metrics) = start(r#""maxConnections": 2, "protocols": [{"kind": "echo"}]"#).await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut client = daemon.connect().await;
            send(&mut client, b"ECHO held").await;
            assert_eq!(read_exact(&mut client, 9).await, b"ECHO held");
            held.push(client);
        }
        for _ in 0..3 {
            // The daemon resets as soon as it accepts: even the connect may
            // report it.
            let Ok(mut client) = TcpStream::connect(daemon.addr).await else { continue };
            let _ = client.write_all(b"ECHO more").await;
            let mut byte = [0u8; 1];
            let read = tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read(&mut client, &mut byte)).await;
            assert!(matches!(read, Ok(Ok(0) | Err(_))), "turned away");
        }
        let text = scrape_until(metrics, |t| connections(t, "-", "limited") == Some(3.0)).await;
        assert_eq!(active(&text), Some(2.0), "{text}");
        drop(held);
        daemon.stop().await;
    });
}
