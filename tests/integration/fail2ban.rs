//! dist/fail2ban/serve2d.conf against real serve2d log lines, text and
//! JSON: serve2d serves a scripted mix of clean and bad clients, each from
//! its own 127.0.0.x address, and `fail2ban-regex` must match exactly the
//! bad connections, by the bad clients' addresses.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::certs::TestPki;
use crate::support::process::Serve2d;
use crate::support::*;

const FAIL2BAN_REGEX: &str = "/usr/bin/fail2ban-regex";

fn filter() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("dist/fail2ban/serve2d.conf")
}

/// Connects to serve2d's port 8080 from `source` (port chosen by the kernel).
async fn connect_from(source: &str) -> TcpStream {
    let source: IpAddr = source.parse().unwrap();
    let (socket, target) = match source {
        IpAddr::V4(_) => (TcpSocket::new_v4().unwrap(), "127.0.0.1:8080"),
        IpAddr::V6(_) => (TcpSocket::new_v6().unwrap(), "[::1]:8080"),
    };
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let target: SocketAddr = target.parse().unwrap();
    tokio::time::timeout(WAIT, socket.connect(target)).await.expect("connect in time").expect("connect")
}

/// Waits (bounded) until serve2d closes `stream`, whatever it sends first.
async fn until_closed(stream: &mut (impl AsyncReadExt + Unpin)) {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut buf)).await.expect("closed in time") {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// A ClientHello as a real TLS client sends it.
fn client_hello() -> Vec<u8> {
    let roots = rustls::RootCertStore::empty();
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let mut client = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut hello = Vec::new();
    client.write_tls(&mut hello).unwrap();
    hello
}

/// Plays the mix against serve2d on :8080; returns how many connections it
/// made and the source address of every bad one, once per connection.
async fn play_mix(pki: &TestPki) -> (usize, Vec<IpAddr>) {
    let mut bad = Vec::new();
    let mut count = 0;
    // Clean: echo, twice.
    for _ in 0..2 {
        let mut client = connect_from("127.0.0.1").await;
        send(&mut client, b"ECHO hi").await;
        assert_eq!(read_exact(&mut client, 7).await, b"ECHO hi");
        count += 1;
    }
    // Clean: echo inside TLS.
    let tcp = connect_from("127.0.0.9").await;
    let handshake = pki.connector(&[]).connect(ServerName::try_from("localhost").unwrap(), tcp);
    let mut tls = tokio::time::timeout(WAIT, handshake).await.expect("handshake in time").unwrap();
    send(&mut tls, b"ECHO tls").await;
    assert_eq!(read_exact(&mut tls, 8).await, b"ECHO tls");
    tls.shutdown().await.unwrap();
    until_closed(&mut tls).await;
    count += 1;
    // Clean: a trusted proxy's header, then echo.
    let mut proxied = connect_from("127.0.0.6").await;
    send(&mut proxied, b"PROXY TCP4 192.0.2.9 198.51.100.1 5555 8080\r\nECHO px").await;
    assert_eq!(read_exact(&mut proxied, 7).await, b"ECHO px");
    count += 1;
    // Not the client's fault: the backend refuses (logged at WARN).
    let mut ssh = connect_from("127.0.0.10").await;
    send(&mut ssh, b"SSH-2.0-test\r\n").await;
    until_closed(&mut ssh).await;
    count += 1;
    // Served, then reset by the client (logged as a client i/o failure).
    let mut resetting = connect_from("127.0.0.11").await;
    send(&mut resetting, b"ECHO bye").await;
    assert_eq!(read_exact(&mut resetting, 8).await, b"ECHO bye");
    reset(resetting);
    count += 1;
    // Bad: garbage, twice from one address and once over IPv6.
    for source in ["127.0.0.2", "127.0.0.2", "::1"] {
        let mut client = connect_from(source).await;
        send(&mut client, b"\x00\x01garbage\r\n").await;
        until_closed(&mut client).await;
        bad.push(source.parse().unwrap());
    }
    // Bad, at the same time: silent until detectTimeout, then handed to
    // onTimeout's backend; and the start of something, then silence.
    let mut silent = connect_from("127.0.0.3").await;
    let mut stalled = connect_from("127.0.0.4").await;
    send(&mut stalled, b"EC").await;
    tokio::join!(until_closed(&mut silent), until_closed(&mut stalled));
    bad.extend(["127.0.0.3".parse::<IpAddr>().unwrap(), "127.0.0.4".parse().unwrap()]);
    // Bad: a real ClientHello, then garbage instead of a handshake.
    let mut tls_garbage = connect_from("127.0.0.5").await;
    send(&mut tls_garbage, &[client_hello(), b"\x17\x03\x03\x00\x05hello".to_vec()].concat()).await;
    until_closed(&mut tls_garbage).await;
    bad.push("127.0.0.5".parse().unwrap());
    // Bad: a trusted source without its PROXY header.
    let mut headerless = connect_from("127.0.0.7").await;
    send(&mut headerless, b"ECHO no header\r\n").await;
    until_closed(&mut headerless).await;
    bad.push("127.0.0.7".parse().unwrap());
    // Bad: a PROXY header from a source not listed in acceptProxy.
    let mut spoofer = connect_from("127.0.0.8").await;
    send(&mut spoofer, b"PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\nECHO hi").await;
    until_closed(&mut spoofer).await;
    bad.push("127.0.0.8".parse().unwrap());
    (count + bad.len(), bad)
}

/// Runs serve2d with `log_format` through the mix; returns its log lines
/// (every line it wrote, the summary lines among them) and the bad sources.
async fn log_of_mix(log_format: &str) -> (Vec<String>, Vec<IpAddr>) {
    let pki = TestPki::new();
    let (backend, backend_addr) = backend().await;
    // onTimeout's backend: accepts and hangs up.
    let backend = tokio::spawn(async move {
        while let Ok((stream, _)) = backend.accept().await {
            drop(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    // detectTimeout: short, yet long enough that a busy machine never
    // turns a client's first bytes into a timeout.
    let text = format!(
        r#"{{"address": ":8080", "control": "", "workers": 1, "shutdownTimeout": 0.1, "logFormat": {format},
            "detectTimeout": 1, "onTimeout": {{"target": {backend}}}, "acceptProxy": ["127.0.0.6/31"],
            "protocols": [
                {{"kind": "echo"}},
                {{"kind": "proxy", "conf": {{"magic": "SSH-", "target": {refusing}}}}},
                {{"kind": "tls", "conf": {{"cert": {cert}, "key": {key}}}}}
            ]}}"#,
        format = json(log_format),
        backend = json(&backend_addr),
        refusing = json(refusing_address().await),
        cert = json(pki.cert_path().to_string_lossy()),
        key = json(pki.key_path().to_string_lossy()),
    );
    std::fs::write(&config, text).unwrap();
    let mut daemon = Serve2d::spawn(&[], &config);
    daemon.wait_for_line("serving").await;
    let (connections, bad) = play_mix(&pki).await;
    for _ in 0..connections {
        daemon.wait_for_line("serve2::conn").await;
    }
    daemon.child.kill().await.unwrap();
    backend.abort();
    (daemon.log, bad)
}

/// `fail2ban-regex` over `lines` with the filter: the address of every
/// match, in order. Also checks its summary agrees on the count.
fn fail2ban_matches(lines: &[String], extra: &[&str]) -> Vec<IpAddr> {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve2d.log");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let run = |args: &[&str]| {
        let output = Command::new(FAIL2BAN_REGEX).args(args).args(extra).arg(&log).arg(filter()).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "fail2ban-regex: {stdout}{}", String::from_utf8_lossy(&output.stderr));
        stdout
    };
    let ips: Vec<IpAddr> =
        run(&["--raw", "--out", "ip"]).lines().map(|l| l.trim().parse().unwrap_or_else(|_| panic!("{l:?}"))).collect();
    let report = run(&["--raw", "--print-all-matched"]);
    let summary = report.lines().find(|l| l.starts_with("Lines: ")).unwrap_or_else(|| panic!("{report}"));
    assert!(summary.contains(&format!(" {} matched,", ips.len())), "{summary}\n{report}");
    ips
}

fn sorted(mut ips: Vec<IpAddr>) -> Vec<IpAddr> {
    ips.sort();
    ips
}

#[test]
fn the_filter_matches_exactly_the_bad_connections_in_text_logs() {
    if !peers_available(&[FAIL2BAN_REGEX]) {
        return;
    }
    in_netns(|| async {
        let (log, bad) = log_of_mix("text").await;
        let summaries: Vec<&String> = log.iter().filter(|l| l.contains("serve2::conn")).collect();
        assert!(summaries.iter().all(|l| l.contains(" fallback=") && l.contains(" end=")), "{summaries:#?}");
        assert!(summaries.iter().any(|l| l.contains(" WARN ") && l.contains("peer=127.0.0.10:")), "{summaries:#?}");
        assert!(
            summaries.iter().any(|l| l.contains("peer=127.0.0.11:") && l.contains("end=client i/o: ")),
            "{summaries:#?}"
        );
        assert_eq!(sorted(fail2ban_matches(&log, &[])), sorted(bad.clone()), "log:\n{}", log.join("\n"));
        // As fail2ban reads them from the journal: "host serve2d[pid]: "
        // first, no date cut off the line (the journal has its own).
        let journal: Vec<String> = log.iter().map(|l| format!("testhost serve2d[4242]: {l}")).collect();
        assert_eq!(sorted(fail2ban_matches(&journal, &["--datepattern", "{NONE}"])), sorted(bad));
    });
}

#[test]
fn the_filter_matches_exactly_the_bad_connections_in_json_logs() {
    if !peers_available(&[FAIL2BAN_REGEX]) {
        return;
    }
    in_netns(|| async {
        let (log, bad) = log_of_mix("json").await;
        for line in &log {
            let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if value["logger"] == "serve2::conn" {
                for field in ["peer", "port", "chain", "target", "up", "down", "ms", "end", "fallback"] {
                    assert!(!value[field].is_null(), "no {field} in {line}");
                }
            }
        }
        assert_eq!(sorted(fail2ban_matches(&log, &[])), sorted(bad.clone()), "log:\n{}", log.join("\n"));
        let journal: Vec<String> = log.iter().map(|l| format!("testhost serve2d[4242]: {l}")).collect();
        assert_eq!(sorted(fail2ban_matches(&journal, &["--datepattern", "{NONE}"])), sorted(bad));
    });
}
