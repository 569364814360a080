//! UDP flows on `udpAddress`: detection by kind over a flow's first
//! datagrams, replay in order, defaults, forward, PROXY v2 headers, and
//! replies from exactly the address the client sent to.

use std::net::SocketAddr;

use crate::support::in_netns;
use crate::support::udp::*;

/// Two kinds, each to its backend: `prefix` "A" and `prefix` "B".
fn two_kinds(a: &UdpBackend, b: &UdpBackend) -> String {
    format!(
        r#""udp": {{"protocols": [
             {{"kind": "prefix", "conf": {{"prefix": "A", "target": "{a}"}}}},
             {{"kind": "prefix", "conf": {{"prefix": "B", "target": "{b}"}}}}
           ]}}"#,
        a = a.addr,
        b = b.addr
    )
}

#[test]
fn flows_go_to_their_kinds_backend_and_replies_come_from_the_dialled_address() {
    in_netns(|| async {
        let (mut a, mut b) = (UdpBackend::start("a").await, UdpBackend::start("b").await);
        let daemon = UdpDaemon::start(&two_kinds(&a, &b)).await;
        let client = client().await;
        assert_eq!(exchange(&client, daemon.addr, "A1").await, "a:A1");
        assert_eq!(
            exchange(&client, daemon.addr, "A2 later datagrams follow the flow").await,
            "a:A2 later datagrams follow the flow"
        );
        let other = client_at("127.0.0.1:0").await;
        assert_eq!(exchange(&other, daemon.addr, "B1").await, "b:B1");
        assert_eq!(a.next().await.0, b"A1");
        assert_eq!(b.next().await.0, b"B1");
        let status = daemon.status_until("two flows", |s| s.flows == 2).await;
        assert_eq!(policy(&status, "top level").created, 2);
        assert_eq!(policy(&status, "top level").protocols, ["prefix", "prefix"]);
        daemon.stop().await;
    });
}

#[test]
fn a_wildcard_socket_answers_from_the_address_each_client_dialled() {
    in_netns(|| async {
        let echo = UdpBackend::start("e").await;
        let body = format!(r#""udp": {{"forward": {{"target": "{}"}}}}"#, echo.addr);
        let daemon = UdpDaemon::start_at(&body, ":0").await;
        let port = daemon.addr.port();
        // Every 127/8 address is local on lo, and [::1] too: one dual-stack
        // socket receives them all; each reply must leave from the address
        // its client used, not the one the routing table prefers.
        for (bind, dialled) in [("127.0.0.1:0", "127.0.0.1"), ("127.0.0.1:0", "127.0.0.2"), ("[::1]:0", "[::1]")] {
            let dialled: SocketAddr = format!("{dialled}:{port}").parse().unwrap();
            let client = client_at(bind).await;
            assert_eq!(exchange(&client, dialled, "hello").await, "e:hello", "{dialled}");
        }
        daemon.stop().await;
    });
}

#[test]
fn flows_at_once_stay_apart() {
    in_netns(|| async {
        let (a, b) = (UdpBackend::start("a").await, UdpBackend::start("b").await);
        let daemon = UdpDaemon::start(&two_kinds(&a, &b)).await;
        let mut clients = Vec::new();
        for i in 0..6 {
            clients.push((client().await, if i % 2 == 0 { "A" } else { "B" }));
        }
        // Interleaved: every client's first datagram, then every second.
        for round in 0..2 {
            for (i, (client, kind)) in clients.iter().enumerate() {
                client.send_to(format!("{kind}{i}.{round}").as_bytes(), daemon.addr).await.unwrap();
            }
            for (i, (client, kind)) in clients.iter().enumerate() {
                let (reply, from) = receive(client).await;
                assert_eq!(from, daemon.addr);
                assert_eq!(reply, format!("{}:{kind}{i}.{round}", kind.to_lowercase()));
            }
        }
        daemon.status_until("six flows", |s| s.flows == 6).await;
        daemon.stop().await;
    });
}

#[test]
fn undetected_flows_go_to_the_default() {
    in_netns(|| async {
        let (a, fallback) = (UdpBackend::start("a").await, UdpBackend::start("default").await);
        let body = format!(
            r#""udp": {{"protocols": [
                 {{"kind": "prefix", "conf": {{"prefix": "A", "target": "{}"}}}},
                 {{"kind": "prefix", "default": true, "conf": {{"prefix": "unused", "target": "{}"}}}}
               ]}}"#,
            a.addr, fallback.addr
        );
        let daemon = UdpDaemon::start(&body).await;
        let client = client().await;
        assert_eq!(exchange(&client, daemon.addr, "zzz").await, "default:zzz");
        assert_eq!(
            exchange(&client, daemon.addr, "A but the flow is decided").await,
            "default:A but the flow is decided"
        );
        let status = daemon.status().await;
        assert_eq!(policy(&status, "top level").fallback.as_deref(), Some("prefix"));
        assert_eq!(policy(&status, "top level").undetected, 0);
        daemon.stop().await;
    });
}

#[test]
fn without_a_default_an_undetected_flow_is_dropped_and_its_source_detected_afresh() {
    in_netns(|| async {
        let mut a = UdpBackend::start("a").await;
        let body = format!(
            r#""udp": {{"protocols": [{{"kind": "prefix", "conf": {{"prefix": "A", "target": "{}"}}}}]}}"#,
            a.addr
        );
        let daemon = UdpDaemon::start(&body).await;
        let client = client().await;
        client.send_to(b"nothing knows this", daemon.addr).await.unwrap();
        let status = daemon
            .status_until("the undetected flow", |s| policy(s, "top level").undetected == 1 && s.flows == 0)
            .await;
        assert_eq!(status.dropped["undetected"], 1);
        // The same client address and port: a new flow, detected again.
        assert_eq!(exchange(&client, daemon.addr, "A now").await, "a:A now");
        assert_eq!(a.next().await.0, b"A now", "the refused datagram never reached the backend");
        let status = daemon.status().await;
        assert_eq!((policy(&status, "top level").created, status.flows), (2, 1));
        daemon.stop().await;
    });
}

#[test]
fn forward_sends_every_flow_to_its_target_undetected() {
    in_netns(|| async {
        let only = UdpBackend::start("only").await;
        let daemon = UdpDaemon::start(&format!(r#""udp": {{"forward": {{"target": "{}"}}}}"#, only.addr)).await;
        for text in ["anything", "\u{1}\u{2}binary"] {
            let client = client().await;
            assert_eq!(exchange(&client, daemon.addr, text).await, format!("only:{text}"));
        }
        let status = daemon.status().await;
        assert_eq!(policy(&status, "top level").protocols, [format!("forward {}", only.addr)]);
        daemon.stop().await;
    });
}

#[test]
fn datagrams_buffered_before_the_verdict_are_replayed_in_order() {
    in_netns(|| async {
        let mut q = UdpBackend::start("q").await;
        // `prefix` with 3 datagrams decides on the third: the first two wait.
        let body = format!(
            r#""udp": {{"protocols": [{{"kind": "prefix", "conf": {{"prefix": "Q", "datagrams": 3, "target": "{}"}}}}]}}"#,
            q.addr
        );
        let daemon = UdpDaemon::start(&body).await;
        let client = client().await;
        for text in ["Q1", "Q2", "Q3", "Q4"] {
            client.send_to(text.as_bytes(), daemon.addr).await.unwrap();
        }
        let mut upstream = None;
        for text in ["Q1", "Q2", "Q3", "Q4"] {
            let (data, from) = q.next().await;
            assert_eq!(String::from_utf8_lossy(&data), text);
            // All from the flow's one backend socket.
            assert_eq!(*upstream.get_or_insert(from), from);
        }
        for text in ["Q1", "Q2", "Q3", "Q4"] {
            let (reply, from) = receive(&client).await;
            assert_eq!((reply, from), (format!("q:{text}"), daemon.addr));
        }
        daemon.stop().await;
    });
}

#[test]
fn a_flow_still_undecided_at_detect_timeout_goes_to_the_default() {
    in_netns(|| async {
        let (q, mut fallback) = (UdpBackend::start("q").await, UdpBackend::start("default").await);
        let body = format!(
            r#""detectTimeout": 0.2,
               "udp": {{"protocols": [
                 {{"kind": "prefix", "conf": {{"prefix": "Q", "datagrams": 3, "target": "{}"}}}},
                 {{"kind": "regex", "default": true, "conf": {{"patterns": "^unused", "target": "{}"}}}}
               ]}}"#,
            q.addr, fallback.addr
        );
        let daemon = UdpDaemon::start(&body).await;
        let client = client().await;
        // One datagram of three: still undecided when the deadline passes.
        client.send_to(b"Q1", daemon.addr).await.unwrap();
        assert_eq!(fallback.next().await.0, b"Q1");
        let (reply, from) = receive(&client).await;
        assert_eq!((reply.as_str(), from), ("default:Q1", daemon.addr));
        daemon.stop().await;
    });
}

#[test]
fn proxy_protocol_v2_prefixes_every_datagram_with_the_flows_addresses() {
    in_netns(|| async {
        let mut backend = UdpBackend::start("p").await;
        let body = format!(r#""udp": {{"forward": {{"target": "{}", "proxyProtocol": "v2"}}}}"#, backend.addr);
        let daemon = UdpDaemon::start(&body).await;
        let client = client().await;
        for text in ["first", "second"] {
            client.send_to(text.as_bytes(), daemon.addr).await.unwrap();
            let (datagram, _) = backend.next().await;
            let header = ppp::v2::Header::try_from(datagram.as_slice()).expect("a PROXY v2 header");
            assert_eq!(header.command, ppp::v2::Command::Proxy);
            assert_eq!(header.protocol, ppp::v2::Protocol::Datagram);
            let ppp::v2::Addresses::IPv4(addresses) = header.addresses else { panic!("{:?}", header.addresses) };
            let source = SocketAddr::from((addresses.source_address, addresses.source_port));
            let destination = SocketAddr::from((addresses.destination_address, addresses.destination_port));
            assert_eq!((source, destination), (client.local_addr().unwrap(), daemon.addr));
            assert_eq!(&datagram[header.len()..], text.as_bytes());
            let (reply, _) = receive(&client).await;
            assert!(reply.starts_with("p:") && reply.ends_with(text), "{reply:?}");
        }
        daemon.stop().await;
    });
}
