//! The flow table's bounds and timers: `maxFlows`, `maxFlowsPerSource`,
//! idle flows ended on a timer, and the counters status and metrics show.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use crate::support::udp::*;
use crate::support::{free_port, in_netns, read_to_end, send, wait_listening};

fn forward_to(backend: &UdpBackend, more: &str) -> String {
    format!(r#""udp": {{"forward": {{"target": "{}"}}{more}}}"#, backend.addr)
}

#[test]
fn new_flows_past_max_flows_are_dropped_and_counted() {
    in_netns(|| async {
        let backend = UdpBackend::start("b").await;
        let daemon = UdpDaemon::start(&format!(r#""maxFlows": 2, {}"#, forward_to(&backend, ""))).await;
        let (first, second, third) = (client().await, client().await, client().await);
        assert_eq!(exchange(&first, daemon.addr, "1").await, "b:1");
        assert_eq!(exchange(&second, daemon.addr, "2").await, "b:2");
        third.send_to(b"3", daemon.addr).await.unwrap();
        let status = daemon.status_until("the refused flow", |s| s.dropped["table_full"] == 1).await;
        assert_eq!((status.flows, status.max_flows, policy(&status, "top level").created), (2, 2, 2));
        // The flows in the table go on.
        assert_eq!(exchange(&first, daemon.addr, "1 again").await, "b:1 again");
        daemon.stop().await;
    });
}

#[test]
fn one_source_network_cannot_take_more_than_max_flows_per_source() {
    in_netns(|| async {
        let backend = UdpBackend::start("b").await;
        let daemon =
            UdpDaemon::start_at(&format!(r#""maxFlowsPerSource": 1, {}"#, forward_to(&backend, "")), ":0").await;
        let (first, same_24) = (client_at("127.0.0.1:0").await, client_at("127.0.0.9:0").await);
        assert_eq!(exchange(&first, daemon.addr, "1").await, "b:1");
        same_24.send_to(b"2", daemon.addr).await.unwrap();
        daemon.status_until("the refused source", |s| s.dropped["source_full"] == 1).await;
        // Another /24 has its own allowance.
        let other_24 = client_at("127.0.1.1:0").await;
        assert_eq!(exchange(&other_24, daemon.addr, "3").await, "b:3");
        let status = daemon.status().await;
        assert_eq!((status.flows, status.dropped["table_full"]), (2, 0));
        daemon.stop().await;
    });
}

#[test]
fn idle_flows_are_reaped_on_the_timer_without_further_traffic() {
    in_netns(|| async {
        let silent = UdpBackend::start_answering("silent", false).await;
        let talking = UdpBackend::start("t").await;
        let body = format!(
            r#""udp": {{"protocols": [
                 {{"kind": "prefix", "conf": {{"prefix": "S", "target": "{}"}}}},
                 {{"kind": "prefix", "conf": {{"prefix": "T", "target": "{}"}}}}
               ], "idleTimeout": 0.2, "establishedTimeout": 0.4}}"#,
            silent.addr, talking.addr
        );
        let daemon = UdpDaemon::start(&body).await;
        let (never_answered, answered) = (client().await, client().await);
        never_answered.send_to(b"S", daemon.addr).await.unwrap();
        assert_eq!(exchange(&answered, daemon.addr, "T").await, "t:T");
        daemon.status_until("both flows", |s| s.flows == 2).await;
        // Nothing more is sent: only the reaper's timer can end them.
        let status = daemon.status_until("every flow reaped", |s| s.flows == 0).await;
        assert_eq!(policy(&status, "top level").flows, 0);
        assert_eq!(policy(&status, "top level").created, 2);
        // A reaped flow's source starts a new one.
        assert_eq!(exchange(&answered, daemon.addr, "T again").await, "t:T again");
        daemon.status_until("the new flow", |s| s.flows == 1 && policy(s, "top level").created == 3).await;
        daemon.stop().await;
    });
}

/// The value of one series, exactly as exposed (`name{labels}`).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    send(&mut stream, b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n").await;
    let response = String::from_utf8(read_to_end(&mut stream).await.unwrap()).unwrap();
    response.split_once("\r\n\r\n").expect("a complete response").1.to_owned()
}

#[test]
fn metrics_count_flows_table_full_and_undetected() {
    in_netns(|| async {
        let backend = UdpBackend::start("a").await;
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let body = format!(
            r#""metrics": "{metrics}", "maxFlows": 1,
               "udp": {{"protocols": [{{"kind": "prefix", "conf": {{"prefix": "A", "target": "{}"}}}}]}}"#,
            backend.addr
        );
        let daemon = UdpDaemon::start(&body).await;
        wait_listening(metrics.port()).await;
        let (matching, unmatched, refused) = (client().await, client().await, client().await);
        unmatched.send_to(b"X", daemon.addr).await.unwrap();
        daemon.status_until("the undetected flow", |s| policy(s, "top level").undetected == 1).await;
        assert_eq!(exchange(&matching, daemon.addr, "A").await, "a:A");
        refused.send_to(b"A too", daemon.addr).await.unwrap();
        daemon.status_until("the refused flow", |s| s.dropped["table_full"] == 1).await;
        let text = scrape(metrics).await;
        for (series, expected) in [
            (r#"serve2_udp_flows_active{policy="top"}"#, 1.0),
            (r#"serve2_udp_flows_created_total{policy="top"}"#, 2.0),
            (r#"serve2_udp_flows_undetected_total{policy="top"}"#, 1.0),
            (r#"serve2_udp_table_full_total{limit="maxFlows"}"#, 1.0),
            (r#"serve2_udp_table_full_total{limit="maxFlowsPerSource"}"#, 0.0),
            (r#"serve2_udp_dropped_total{reason="undetected"}"#, 1.0),
            (r#"serve2_udp_bytes_total{policy="top",direction="from_client"}"#, 1.0),
        ] {
            assert_eq!(value(&text, series), Some(expected), "{series} in\n{text}");
        }
        daemon.stop().await;
    });
}

/// Sends one datagram from `source` (any address: IP_TRANSPARENT lets a
/// socket send from an address this host does not have).
fn send_spoofed(source: std::net::SocketAddr, to: std::net::SocketAddr, data: &[u8]) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    socket.set_ip_transparent_v4(true).unwrap();
    socket.bind(&source.into()).unwrap();
    socket.send_to(data, &to.into()).unwrap();
}

#[test]
fn a_flood_of_spoofed_sources_fills_no_more_than_the_limits_and_a_real_flow_is_still_served() {
    in_netns(|| async {
        crate::support::ip(&["addr", "add", "10.200.0.1/16", "dev", "lo"]);
        let backend = UdpBackend::start("real").await;
        // Two datagrams decide a flow: every spoofed one stays undecided,
        // buffered, until detectTimeout drops it (there is no default).
        let body = format!(
            r#""maxFlows": 2000, "maxFlowsPerSource": 8, "detectTimeout": 1,
               "udp": {{"protocols": [{{"kind": "prefix", "conf": {{"prefix": "R", "datagrams": 2, "target": "{}"}}}}]}}"#,
            backend.addr
        );
        let daemon = UdpDaemon::start_at(&body, "10.200.0.1:0").await;
        let to = daemon.addr;
        let sent = tokio::task::spawn_blocking(move || {
            // 100,000 datagrams from as many sources, over 1,024 source /24s.
            let mut seed = 0x9e37_79b9_7f4a_7c15u64;
            for i in 0..100_000u32 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let network = (i % 1024) as u16;
                let source = std::net::SocketAddr::from((
                    [10, 201 + (network >> 8) as u8, network as u8, (seed % 254) as u8 + 1],
                    1024 + (seed >> 16) as u16 % 60000,
                ));
                send_spoofed(source, to, b"R spoofed");
            }
        });
        let mut most = 0;
        while !sent.is_finished() {
            most = most.max(daemon.status().await.flows);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        sent.await.unwrap();
        let status = daemon.status().await;
        most = most.max(status.flows);
        assert!(most <= 2000, "the table never holds more than maxFlows: {most}");
        let refused = status.dropped["table_full"] + status.dropped["source_full"];
        assert!(refused > 0, "the flood met the limits: {status:#?}");
        // A real client is served: at once if the table has room, else as
        // soon as the undecided spoofed flows time out (bounded wait).
        let client = client_at("10.200.0.1:0").await;
        let deadline = tokio::time::Instant::now() + crate::support::WAIT;
        let mut buffer = [0u8; 64];
        loop {
            client.send_to(b"R1", to).await.unwrap();
            client.send_to(b"R2", to).await.unwrap();
            if let Ok(Ok((n, from))) =
                tokio::time::timeout(std::time::Duration::from_millis(200), client.recv_from(&mut buffer)).await
            {
                assert_eq!(from, to);
                assert!(buffer[..n].starts_with(b"real:R"), "{:?}", String::from_utf8_lossy(&buffer[..n]));
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the real flow was never served: {:#?}",
                daemon.status().await
            );
        }
        daemon.stop().await;
    });
}
