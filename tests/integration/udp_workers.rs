//! UDP on several worker threads: one socket each in a SO_REUSEPORT group,
//! the kernel spreading clients over them, with `maxFlows` and
//! `maxFlowsPerSource` holding for the daemon as a whole.

use crate::support::in_netns;
use crate::support::udp::*;

/// Clients, each its own flow (all from 127.0.0.1: one source /24).
const CLIENTS: usize = 64;

fn forward_to(backend: &UdpBackend, limits: &str) -> String {
    format!(r#"{limits}"udp": {{"forward": {{"target": "{}"}}}}"#, backend.addr)
}

#[test]
fn two_workers_both_serve_flows_and_every_reply_leaves_from_the_dialled_address() {
    in_netns(|| async {
        let backend = UdpBackend::start("b").await;
        let daemon = UdpDaemon::start_with_workers(&forward_to(&backend, ""), "127.0.0.1:0", 2).await;
        let mut clients = Vec::new();
        for i in 0..CLIENTS {
            let client = client().await;
            // `exchange` asserts the reply came from exactly daemon.addr.
            assert_eq!(exchange(&client, daemon.addr, &i.to_string()).await, format!("b:{i}"));
            clients.push(client);
        }
        let status = daemon.status_until("every flow", |s| s.flows == CLIENTS as u64).await;
        assert_eq!(status.listeners, [daemon.addr.to_string()], "one group, listed once");
        let mut threads: Vec<&str> = status.sockets.iter().map(|s| s.thread.as_str()).collect();
        threads.sort_unstable();
        assert_eq!(threads, ["serve2-udp-0", "serve2-udp-1"], "{status:#?}");
        assert!(status.sockets.iter().all(|s| s.flows > 0), "both workers serve flows: {status:#?}");
        assert_eq!(status.sockets.iter().map(|s| s.flows).sum::<u64>(), CLIENTS as u64);
        let (first, second) = (&status.sockets[0], &status.sockets[1]);
        let line =
            format!("  flows per thread: {} {}, {} {}\n", first.thread, first.flows, second.thread, second.flows);
        assert!(status.to_string().contains(&line), "{line:?} in\n{status}");
        // Each flow stays on its worker: a second round creates none.
        for (i, client) in clients.iter().enumerate() {
            assert_eq!(exchange(client, daemon.addr, &format!("again {i}")).await, format!("b:again {i}"));
        }
        let status = daemon.status().await;
        assert_eq!((status.flows, policy(&status, "top level").created), (CLIENTS as u64, CLIENTS as u64));
        daemon.stop().await;
    });
}

/// Sends one datagram from each of [`CLIENTS`] fresh sockets, then waits
/// until status accounts for every one: a flow or a drop of `reason`.
async fn open_flows_until_refused(daemon: &UdpDaemon, reason: &str) -> serve2::udp::UdpStatus {
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let client = client().await;
        client.send_to(i.to_string().as_bytes(), daemon.addr).await.unwrap();
        clients.push(client);
    }
    daemon
        .status_until("every datagram accounted for", |s| {
            policy(s, "top level").created + s.dropped[reason] == CLIENTS as u64
        })
        .await
}

#[test]
fn max_flows_holds_across_workers() {
    in_netns(|| async {
        let backend = UdpBackend::start("b").await;
        let daemon =
            UdpDaemon::start_with_workers(&forward_to(&backend, r#""maxFlows": 10, "#), "127.0.0.1:0", 2).await;
        let status = open_flows_until_refused(&daemon, "table_full").await;
        assert_eq!((status.flows, status.dropped["table_full"]), (10, CLIENTS as u64 - 10), "{status:#?}");
        assert_eq!(status.sockets.iter().map(|s| s.flows).sum::<u64>(), 10);
        daemon.stop().await;
    });
}

#[test]
fn max_flows_per_source_holds_across_workers() {
    in_netns(|| async {
        let backend = UdpBackend::start("b").await;
        let body = forward_to(&backend, r#""maxFlowsPerSource": 4, "#);
        let daemon = UdpDaemon::start_with_workers(&body, "127.0.0.1:0", 2).await;
        let status = open_flows_until_refused(&daemon, "source_full").await;
        assert_eq!((status.flows, status.dropped["source_full"]), (4, CLIENTS as u64 - 4), "{status:#?}");
        // Another /24 has its own allowance, whichever worker it reaches.
        let other = client_at("127.0.1.1:0").await;
        assert_eq!(exchange(&other, daemon.addr, "other").await, "b:other");
        daemon.stop().await;
    });
}
