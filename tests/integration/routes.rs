//! Routes besides detection and the route options every dialling kind
//! shares: `forward` (server-first), `onTimeout` (silent clients),
//! `proxyProtocol`, `acceptProxy`, and kinds from the registry.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::*;

const BANNER: &[u8] = include_bytes!("../fixtures/openssh-client-banner.bin");

/// `host:port` of the client side of `stream`, and of the daemon side.
fn ends(stream: &TcpStream) -> (std::net::SocketAddr, std::net::SocketAddr) {
    (stream.local_addr().unwrap(), stream.peer_addr().unwrap())
}

#[test]
fn forward_dials_at_accept_so_a_server_first_greeting_arrives_before_the_client_speaks() {
    in_netns(|| async {
        let (backend, addr) = backend().await;
        let daemon = Daemon::start(&format!(r#"{{"address": ":0", "forward": {{"target": {}}}}}"#, json(&addr))).await;
        let mut client = daemon.connect().await;
        let mut server = accept(&backend).await;
        send(&mut server, b"220 mail.example.test ESMTP\r\n").await;
        assert_eq!(read_exact(&mut client, 29).await, b"220 mail.example.test ESMTP\r\n");
        send(&mut client, b"EHLO x\r\n").await;
        assert_eq!(read_exact(&mut server, 8).await, b"EHLO x\r\n");
        daemon.stop().await;
    });
}

#[test]
fn forward_refuses_protocols_beside_it() {
    let error = serve2::Config::parse(
        std::path::Path::new("c.json"),
        r#"{"address": ":0", "forward": {"target": "127.0.0.1:25"}, "protocols": [{"kind": "echo"}]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("forward: a set with `forward` detects nothing: remove `protocols` or `forward`"),
        "{error}"
    );
}

#[test]
fn a_silent_client_reaches_on_timeout_and_unknown_bytes_reach_the_default_at_once() {
    in_netns(|| async {
        let (silent_backend, silent_addr) = backend().await;
        let (ssh_backend, ssh_addr) = backend().await;
        let config = format!(
            r#"{{"address": ":0", "detectTimeout": 0.3, "onTimeout": {{"target": {}}}, "protocols": [
                {{"kind": "ssh", "conf": {{"target": {}}}}},
                {{"kind": "echo", "default": true}}
            ]}}"#,
            json(&silent_addr),
            json(&ssh_addr)
        );
        let daemon = Daemon::start(&config).await;
        // Sends nothing: after detectTimeout it is dialled to onTimeout,
        // whose greeting then reaches it.
        let mut silent = daemon.connect().await;
        let mut server = accept(&silent_backend).await;
        send(&mut server, b"* OK IMAP4rev1\r\n").await;
        assert_eq!(read_exact(&mut silent, 16).await, b"* OK IMAP4rev1\r\n");
        // Bytes nothing matches go to the default (echo) as soon as every
        // detector has said no: with a deadline of 60 s, an echo within
        // `read_exact`'s 10 s bound proves detection did not wait for it.
        let patient = Daemon::start(&config.replace(r#""detectTimeout": 0.3"#, r#""detectTimeout": 60"#)).await;
        let mut unknown = patient.connect().await;
        send(&mut unknown, b"HELO\n").await;
        assert_eq!(read_exact(&mut unknown, 5).await, b"HELO\n");
        patient.stop().await;
        // And the ssh kind still routes SSH.
        let mut ssh = daemon.connect().await;
        send(&mut ssh, BANNER).await;
        let mut ssh_server = accept(&ssh_backend).await;
        assert_eq!(read_exact(&mut ssh_server, BANNER.len()).await, BANNER);
        daemon.stop().await;
    });
}

#[test]
fn proxy_protocol_v1_and_v2_announce_the_client_and_the_dialled_address() {
    in_netns(|| async {
        for version in ["v1", "v2"] {
            let (backend, addr) = backend().await;
            let config = format!(
                r#"{{"address": ":0", "protocols": [{{"kind": "proxy", "conf": {{"magic": "SSH", "target": {}, "proxyProtocol": "{version}"}}}}]}}"#,
                json(&addr)
            );
            let daemon = Daemon::start(&config).await;
            let mut client = daemon.connect().await;
            let (client_addr, dialled) = ends(&client);
            send(&mut client, BANNER).await;
            let mut server = accept(&backend).await;
            let header = match version {
                "v1" => format!(
                    "PROXY TCP4 {} {} {} {}\r\n",
                    client_addr.ip(),
                    dialled.ip(),
                    client_addr.port(),
                    dialled.port()
                )
                .into_bytes(),
                _ => v2_header(client_addr, dialled),
            };
            assert_eq!(read_exact(&mut server, header.len()).await, header, "{version}");
            assert_eq!(read_exact(&mut server, BANNER.len()).await, BANNER, "{version}");
            daemon.stop().await;
        }
    });
}

/// The v2 header for TCP over IPv4, written out by hand from the spec.
fn v2_header(source: std::net::SocketAddr, destination: std::net::SocketAddr) -> Vec<u8> {
    let (std::net::IpAddr::V4(src), std::net::IpAddr::V4(dst)) = (source.ip(), destination.ip()) else {
        panic!("IPv4 expected")
    };
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    header.extend_from_slice(&src.octets());
    header.extend_from_slice(&dst.octets());
    header.extend_from_slice(&source.port().to_be_bytes());
    header.extend_from_slice(&destination.port().to_be_bytes());
    header
}

#[test]
fn accept_proxy_strips_a_trusted_header_and_passes_its_client_on() {
    in_netns(|| async {
        let (backend, addr) = backend().await;
        let config = format!(
            r#"{{"address": ":0", "acceptProxy": ["127.0.0.0/8"], "protocols": [
                {{"kind": "ssh", "conf": {{"target": {}, "proxyProtocol": "v1"}}}}
            ]}}"#,
            json(&addr)
        );
        let daemon = Daemon::start(&config).await;
        for header in [
            b"PROXY TCP4 192.0.2.9 198.51.100.1 5555 22\r\n".to_vec(),
            v2_header("192.0.2.9:5555".parse().unwrap(), "198.51.100.1:22".parse().unwrap()),
        ] {
            let mut client = daemon.connect().await;
            // Header and banner split oddly: the header ends mid-segment.
            let flight = [header.as_slice(), BANNER].concat();
            send(&mut client, &flight[..header.len() - 3]).await;
            client.flush().await.unwrap();
            send(&mut client, &flight[header.len() - 3..]).await;
            let mut server = accept(&backend).await;
            let onward = b"PROXY TCP4 192.0.2.9 198.51.100.1 5555 22\r\n";
            assert_eq!(read_exact(&mut server, onward.len()).await, onward);
            assert_eq!(read_exact(&mut server, BANNER.len()).await, BANNER);
        }
        // A trusted source without a header is closed, unrouted.
        let mut bare = daemon.connect().await;
        send(&mut bare, BANNER).await;
        assert_closed_silently(&mut bare).await;
        daemon.stop().await;
    });
}

#[test]
fn a_proxy_header_from_an_untrusted_source_is_refused() {
    in_netns(|| async {
        let (backend, addr) = backend().await;
        let config = format!(
            r#"{{"address": ":0", "acceptProxy": ["192.0.2.0/24"], "protocols": [
                {{"kind": "ssh", "conf": {{"target": {}}}}},
                {{"kind": "proxy", "default": true, "conf": {{"target": {}}}}}
            ]}}"#,
            json(&addr),
            json(&addr)
        );
        let daemon = Daemon::start(&config).await;
        for header in [&b"PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n"[..], b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c"] {
            let mut client = daemon.connect().await;
            send(&mut client, &[header, BANNER].concat()).await;
            assert_closed_silently(&mut client).await;
        }
        // The same source without a header is served as usual.
        let mut client = daemon.connect().await;
        send(&mut client, BANNER).await;
        let mut server = accept(&backend).await;
        assert_eq!(read_exact(&mut server, BANNER.len()).await, BANNER);
        daemon.stop().await;
    });
}

#[test]
fn registry_kinds_take_the_route_keys_and_refuse_unknown_ones() {
    let parse = |conf: &str| {
        serve2::Config::parse(
            std::path::Path::new("c.json"),
            &format!(r#"{{"address": ":0", "protocols": [{{"kind": "h2c", "conf": {conf}}}]}}"#),
        )
    };
    parse(r#"{"target": "127.0.0.1:80", "proxyProtocol": "v2", "transparent": false}"#).unwrap();
    let error = parse(r#"{"target": "127.0.0.1:80", "bogus": 1}"#).unwrap_err().to_string();
    assert!(
        error.contains(
            "protocols[0].conf.bogus: unknown field `bogus`: `h2c` takes only the route keys target, proxyProtocol, transparent"
        ),
        "{error}"
    );
    let error = parse(r#"{"proxyProtocol": "v3"}"#).unwrap_err().to_string();
    assert!(error.contains("missing field `target`"), "{error}");
    let error = parse(r#"{"target": "127.0.0.1:80", "proxyProtocol": "v3"}"#).unwrap_err().to_string();
    assert!(error.contains("protocols[0].conf.proxyProtocol: `v3`: expected \"v1\" or \"v2\""), "{error}");
}
