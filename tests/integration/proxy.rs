//! `proxy`: exact bytes, refused and silent backends, half-close and resets.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::support::*;

const BANNER: &[u8] = include_bytes!("../fixtures/openssh-client-banner.bin");

fn ssh_proxy_config(target: &str) -> String {
    format!(
        r#"{{"address": ":0", "connectTimeout": 0.5, "protocols": [
            {{"kind": "echo"}},
            {{"kind": "proxy", "conf": {{"magic": "SSH", "target": {}}}}}
        ]}}"#,
        json(target)
    )
}

/// A client connected through the daemon to `backend`, having sent the
/// OpenSSH banner, and the backend's end.
async fn proxied_pair(
    daemon: &Daemon,
    backend: &tokio::net::TcpListener,
) -> (tokio::net::TcpStream, tokio::net::TcpStream) {
    let mut client = daemon.connect().await;
    send(&mut client, BANNER).await;
    let mut server = accept(backend).await;
    assert_eq!(read_exact(&mut server, BANNER.len()).await, BANNER);
    (client, server)
}

#[test]
fn ssh_magic_reaches_the_backend_byte_for_byte_both_ways() {
    in_netns(|| async {
        let (backend, addr) = backend().await;
        let daemon = Daemon::start(&ssh_proxy_config(&addr)).await;
        // One byte per write: detection must not care how bytes arrive.
        let mut client = daemon.connect().await;
        client.set_nodelay(true).unwrap();
        for byte in BANNER {
            send(&mut client, &[*byte]).await;
        }
        let mut server = accept(&backend).await;
        assert_eq!(read_exact(&mut server, BANNER.len()).await, BANNER);
        send(&mut server, b"SSH-2.0-OpenSSH_9.2 server\r\n").await;
        assert_eq!(read_exact(&mut client, 28).await, b"SSH-2.0-OpenSSH_9.2 server\r\n");
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        send(&mut client, &payload).await;
        assert_eq!(read_exact(&mut server, payload.len()).await, payload);
        daemon.stop().await;
    });
}

#[test]
fn a_refusing_backend_closes_the_client_at_once_and_others_are_still_served() {
    in_netns(|| async {
        let refused = refusing_address().await;
        let daemon = Daemon::start(&ssh_proxy_config(&refused)).await;
        let mut client = daemon.connect().await;
        send(&mut client, BANNER).await;
        assert_closed_silently(&mut client).await;
        // The daemon keeps serving.
        let mut other = daemon.connect().await;
        send(&mut other, b"ECHO still here").await;
        assert_eq!(read_exact(&mut other, 15).await, b"ECHO still here");
        daemon.stop().await;
    });
}

#[test]
fn a_backend_that_never_answers_times_out() {
    in_netns(|| async {
        // A neighbour that exists on paper only: SYNs vanish, connect hangs.
        ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
        ip(&["addr", "add", "10.9.9.1/24", "dev", "v0"]);
        ip(&["link", "set", "v0", "up"]);
        ip(&["link", "set", "v1", "up"]);
        ip(&["neigh", "add", "10.9.9.2", "lladdr", "02:00:00:00:00:01", "dev", "v0"]);
        let daemon = Daemon::start(&ssh_proxy_config("10.9.9.2:22")).await;
        let mut client = daemon.connect().await;
        let started = std::time::Instant::now();
        send(&mut client, BANNER).await;
        assert_closed_silently(&mut client).await;
        // connectTimeout is 0.5 s; without it the close would take minutes.
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        daemon.stop().await;
    });
}

#[test]
fn client_half_close_reaches_the_backend_while_replies_keep_flowing() {
    in_netns(|| async {
        let (backend, addr) = backend().await;
        let daemon = Daemon::start(&ssh_proxy_config(&addr)).await;
        let (mut client, mut server) = proxied_pair(&daemon, &backend).await;
        client.shutdown().await.unwrap();
        assert_eq!(read_to_end(&mut server).await.unwrap(), b"");
        // The other direction still works after the client's FIN.
        send(&mut server, b"late reply").await;
        assert_eq!(read_exact(&mut client, 10).await, b"late reply");
        server.shutdown().await.unwrap();
        assert_eq!(read_to_end(&mut client).await.unwrap(), b"");
        daemon.stop().await;
    });
}

#[test]
fn backend_half_close_reaches_the_client_while_requests_keep_flowing() {
    in_netns(|| async {
        let (backend, addr) = backend().await;
        let daemon = Daemon::start(&ssh_proxy_config(&addr)).await;
        let (mut client, mut server) = proxied_pair(&daemon, &backend).await;
        send(&mut server, b"bye").await;
        server.shutdown().await.unwrap();
        assert_eq!(read_to_end(&mut client).await.unwrap(), b"bye");
        send(&mut client, b"still talking").await;
        assert_eq!(read_exact(&mut server, 13).await, b"still talking");
        client.shutdown().await.unwrap();
        assert_eq!(read_to_end(&mut server).await.unwrap(), b"");
        daemon.stop().await;
    });
}

#[test]
fn a_client_reset_reaches_the_backend_as_a_reset() {
    in_netns(|| async {
        let (backend, addr) = backend().await;
        let daemon = Daemon::start(&ssh_proxy_config(&addr)).await;
        let (client, mut server) = proxied_pair(&daemon, &backend).await;
        reset(client);
        assert_reset(&mut server).await;
        daemon.stop().await;
    });
}

#[test]
fn a_backend_reset_reaches_the_client_as_a_reset() {
    in_netns(|| async {
        let (backend, addr) = backend().await;
        let daemon = Daemon::start(&ssh_proxy_config(&addr)).await;
        let (mut client, server) = proxied_pair(&daemon, &backend).await;
        reset(server);
        assert_reset(&mut client).await;
        daemon.stop().await;
    });
}

#[test]
fn magic_arrays_route_each_candidate() {
    in_netns(|| async {
        let (backend, addr) = backend().await;
        let config = format!(
            r#"{{"address": ":0", "protocols": [
                {{"kind": "proxy", "conf": {{"magic": ["GET ", "POST ", "OPTIONS "], "target": {}}}}}
            ]}}"#,
            json(&addr)
        );
        let daemon = Daemon::start(&config).await;
        for request in [&b"POST / HTTP/1.0\r\n\r\n"[..], b"OPTIONS * HTTP/1.0\r\n\r\n", b"GET / HTTP/1.0\r\n\r\n"] {
            let mut client = daemon.connect().await;
            send(&mut client, request).await;
            let mut server = accept(&backend).await;
            assert_eq!(read_exact(&mut server, request.len()).await, request);
        }
        let mut unmatched = daemon.connect().await;
        send(&mut unmatched, b"PUT / HTTP/1.0\r\n\r\n").await;
        assert_closed_silently(&mut unmatched).await;
        daemon.stop().await;
    });
}

#[test]
fn bytes_in_flight_are_delivered_before_the_close_in_both_directions() {
    in_netns(|| async {
        let (backend, addr) = backend().await;
        let daemon = Daemon::start(&ssh_proxy_config(&addr)).await;
        let (mut client, mut server) = proxied_pair(&daemon, &backend).await;
        let big: Vec<u8> = (0..8_000_000u32).map(|i| (i % 253) as u8).collect();
        // Each side writes a burst and closes at once, without waiting for
        // the other to read: nothing may be lost on the way.
        let expected = big.clone();
        let writer = tokio::spawn(async move {
            server.write_all(&expected).await.unwrap();
            server.shutdown().await.unwrap();
            server
        });
        assert_eq!(read_to_end(&mut client).await.unwrap().len(), big.len());
        let mut server = writer.await.unwrap();
        // The burst is larger than the socket buffers on the way: the
        // server must read while the client writes.
        let burst = big.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&burst).await.unwrap();
            drop(client);
        });
        let received = read_to_end(&mut server).await.unwrap();
        writer.await.unwrap();
        assert!(received == big, "client's last {} bytes lost", big.len().saturating_sub(received.len()));
        daemon.stop().await;
    });
}
