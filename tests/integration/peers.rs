//! Routes under kernel steering, checked by real peers: a real HAProxy with
//! `accept-proxy` reads serve2's v1 and v2 headers and logs the client and
//! the port it dialled; server-first and silent clients on steered ports.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;

use crate::support::*;

const BANNER: &[u8] = include_bytes!("../fixtures/openssh-client-banner.bin");

/// HAProxy in TCP mode on `port` with `accept-proxy`, relaying to `backend`
/// and logging one line per connection with the client and dialled address
/// it took from the PROXY header.
fn haproxy(dir: &std::path::Path, port: u16, backend: &str) -> tokio::process::Child {
    let config = format!(
        "global\n  log stdout format raw local0 info\n\
         defaults\n  mode tcp\n  log global\n  timeout connect 5s\n  timeout client 10s\n  timeout server 10s\n\
         frontend fe\n  bind 127.0.0.1:{port} accept-proxy\n  log-format \"haproxy-saw client=%ci:%cp dialled=%fi:%fp\"\n  default_backend be\n\
         backend be\n  server s1 {backend}\n"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    tokio::process::Command::new("/usr/sbin/haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn haproxy")
}

#[test]
fn haproxy_accepts_v1_and_v2_headers_with_the_dialled_port_under_steering() {
    in_netns(|| async {
        if !peers_available(&["/usr/sbin/haproxy"]) {
            return;
        }
        let (origin, origin_addr) = backend().await;
        let haproxy_port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let mut haproxy = haproxy(dir.path(), haproxy_port, &origin_addr);
        let mut haproxy_log = BufReader::new(haproxy.stdout.take().unwrap()).lines();
        wait_listening(haproxy_port).await;
        let target = json(format!("127.0.0.1:{haproxy_port}"));
        let body = format!(
            r#""steer": {{"ports": [2201, 2202]}}, "policies": [
                {{"name": "v1", "ports": [2201], "protocols": [{{"kind": "ssh", "conf": {{"target": {target}, "proxyProtocol": "v1"}}}}]}},
                {{"name": "v2", "ports": [2202], "protocols": [{{"kind": "ssh", "conf": {{"target": {target}, "proxyProtocol": "v2"}}}}]}}
            ]"#
        );
        let (_dir, _daemon) = crate::steer::start(&body).await;
        for port in [2201u16, 2202] {
            let mut client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let client_port = client.local_addr().unwrap().port();
            send(&mut client, BANNER).await;
            // HAProxy stripped the header: the origin sees the banner alone.
            let mut server = accept(&origin).await;
            assert_eq!(read_exact(&mut server, BANNER.len()).await, BANNER, "port {port}");
            drop(server);
            drop(client);
            let line =
                tokio::time::timeout(WAIT, haproxy_log.next_line()).await.expect("haproxy logs").unwrap().unwrap();
            assert_eq!(line, format!("haproxy-saw client=127.0.0.1:{client_port} dialled=127.0.0.1:{port}"));
        }
    });
}

#[test]
fn a_steered_port_with_forward_gets_the_greeting_and_one_with_on_timeout_routes_silence() {
    in_netns(|| async {
        let (smtp, smtp_addr) = backend().await;
        let (imap, imap_addr) = backend().await;
        let (ssh, ssh_addr) = backend().await;
        let body = format!(
            r#""steer": {{"ports": ["2500-2600"]}}, "protocols": [{{"kind": "echo"}}], "policies": [
                {{"name": "smtp", "ports": [2525], "forward": {{"target": {}}}}},
                {{"name": "mixed", "ports": [2526], "detectTimeout": 0.3, "onTimeout": {{"target": {}}},
                  "protocols": [{{"kind": "ssh", "conf": {{"target": {}}}}}]}}
            ]"#,
            json(&smtp_addr),
            json(&imap_addr),
            json(&ssh_addr)
        );
        let (_dir, _daemon) = crate::steer::start(&body).await;
        // Server-first: the greeting arrives before the client says a word.
        let mut client = TcpStream::connect("127.0.0.1:2525").await.unwrap();
        let mut server = accept(&smtp).await;
        send(&mut server, b"220 ready\r\n").await;
        assert_eq!(read_exact(&mut client, 11).await, b"220 ready\r\n");
        // A silent client on the mixed port reaches onTimeout; SSH reaches ssh.
        let mut silent = TcpStream::connect("127.0.0.1:2526").await.unwrap();
        let mut server = accept(&imap).await;
        send(&mut server, b"* OK\r\n").await;
        assert_eq!(read_exact(&mut silent, 6).await, b"* OK\r\n");
        let mut client = TcpStream::connect("127.0.0.1:2526").await.unwrap();
        send(&mut client, BANNER).await;
        let mut server = accept(&ssh).await;
        assert_eq!(read_exact(&mut server, BANNER.len()).await, BANNER);
    });
}
