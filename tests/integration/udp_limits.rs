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
