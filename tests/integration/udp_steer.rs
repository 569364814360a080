//! UDP flows on steered ports: the serve2d binary as root in a fresh
//! network namespace, its sk_lookup program sending `steer.udpPorts` to its
//! UDP socket. These need the UDP half of the kernel program.

use std::net::SocketAddr;

use crate::support::in_netns;
use crate::support::process::Serve2d;
use crate::support::udp::*;

/// A client whose socket is connected to `to`. Under `"all"` a local
/// client must be: the kernel hands a datagram to a connected socket before
/// steering runs, but to an unconnected one only after, so steering would
/// take the replies to an unconnected local client on a steered port.
async fn connected_client(to: SocketAddr) -> tokio::net::UdpSocket {
    let socket = client().await;
    socket.connect(to).await.unwrap();
    socket
}

/// serve2d on `body` with a control socket, steering attached.
async fn start(body: &str) -> (tempfile::TempDir, Serve2d) {
    start_with_workers(body, 1).await
}

/// [`start`] with `workers` threads (TCP and UDP alike).
async fn start_with_workers(body: &str, workers: usize) -> (tempfile::TempDir, Serve2d) {
    let dir = tempfile::tempdir().unwrap();
    let control = crate::support::json(dir.path().join("control.sock").to_string_lossy());
    let config = format!(r#"{{"logStdout": true, "workers": {workers}, "control": {control}, {body}}}"#);
    std::fs::write(dir.path().join("conf.json"), config).unwrap();
    let mut daemon = Serve2d::spawn(&[], &dir.path().join("conf.json"));
    daemon.wait_for_line("steering attached").await;
    daemon.wait_for_line("serving").await;
    (dir, daemon)
}

#[test]
fn steered_ports_reach_the_flow_engine_and_replies_leave_from_the_dialled_port() {
    in_netns(|| async {
        let (wg, dns) = (UdpBackend::start("wg").await, UdpBackend::start("dns").await);
        let body = format!(
            r#""steer": {{"udpPorts": [51820, "5300-5310"]}},
               "policies": [{{"name": "wg", "ports": [51820], "udp": {{"forward": {{"target": "{}"}}}}}}],
               "udp": {{"forward": {{"target": "{}"}}}}"#,
            wg.addr, dns.addr
        );
        let (_dir, mut daemon) = start(&body).await;
        for (host, port, tag) in [("127.0.0.1", 51820, "wg"), ("[::1]", 51820, "wg"), ("127.0.0.1", 5305, "dns")] {
            let dialled: SocketAddr = format!("{host}:{port}").parse().unwrap();
            let client = client_at(if dialled.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" }).await;
            assert_eq!(exchange(&client, dialled, "hi").await, format!("{tag}:hi"), "{dialled}");
            assert_eq!(exchange(&client, dialled, "again").await, format!("{tag}:again"), "{dialled}");
        }
        daemon.child.kill().await.unwrap();
    });
}

#[test]
fn under_all_a_client_may_dial_the_port_of_serve2s_own_backend_socket() {
    in_netns(|| async {
        let mut backend = UdpBackend::start("b").await;
        let body =
            format!(r#""steer": {{"udpPorts": ["all"]}}, "udp": {{"forward": {{"target": "{}"}}}}"#, backend.addr);
        let (_dir, mut daemon) = start(&body).await;
        let dialled: SocketAddr = "127.0.0.1:51820".parse().unwrap();
        let first = connected_client(dialled).await;
        assert_eq!(exchange(&first, dialled, "1").await, "b:1");
        // The port serve2's backend socket got for that flow, in the
        // ephemeral range: now another client dials it.
        let (_, upstream) = backend.next().await;
        let second = connected_client(upstream).await;
        assert_eq!(exchange(&second, upstream, "2").await, "b:2");
        // Both flows still work, each answered from its own dialled port.
        assert_eq!(exchange(&first, dialled, "3").await, "b:3");
        assert_eq!(exchange(&second, upstream, "4").await, "b:4");
        daemon.child.kill().await.unwrap();
    });
}

#[test]
fn under_all_two_hundred_random_ports_each_carry_a_flow_answered_from_the_dialled_port() {
    in_netns(|| async {
        let backend = UdpBackend::start("echo").await;
        let body =
            format!(r#""steer": {{"udpPorts": ["all"]}}, "udp": {{"forward": {{"target": "{}"}}}}"#, backend.addr);
        let (dir, mut daemon) = start(&body).await;
        // Outside the ephemeral range: there the clients' own sockets are
        // bound, and a dialled port a local non-serve2 socket holds cannot
        // be answered from (serve2 logs that flow's failure).
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
        let bounds: Vec<u16> = range.split_whitespace().map(|n| n.parse().unwrap()).collect();
        let backend_port: u16 = backend.addr.rsplit(':').next().unwrap().parse().unwrap();
        let mut avoid: Vec<u16> = (bounds[0]..=bounds[1]).collect();
        avoid.push(backend_port);
        let ports = crate::steer::random_ports(200, &avoid);
        let mut clients = Vec::new();
        for &port in &ports {
            let dialled = SocketAddr::from(([127, 0, 0, 1], port));
            let client = connected_client(dialled).await;
            assert_eq!(exchange(&client, dialled, &port.to_string()).await, format!("echo:{port}"), "{dialled}");
            clients.push((client, dialled));
        }
        // Every flow still answers, each from its own port.
        for (client, dialled) in &clients {
            assert_eq!(exchange(client, *dialled, "again").await, "echo:again", "{dialled}");
        }
        let status = std::process::Command::new(crate::support::process::binary())
            .arg("status")
            .arg("--socket")
            .arg(dir.path().join("control.sock"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&status.stdout);
        // Each client datagram: the flows' reply sockets are unconnected
        // (one per dialled port), so the program sees every datagram.
        assert!(text.contains("udp_steered 400"), "the program steered each datagram once: {text}");
        daemon.child.kill().await.unwrap();
    });
}

#[test]
fn with_two_workers_steered_flows_spread_over_both_and_replies_leave_from_the_dialled_port() {
    in_netns(|| async {
        let backend = UdpBackend::start("b").await;
        let body =
            format!(r#""steer": {{"udpPorts": [5300]}}, "udp": {{"forward": {{"target": "{}"}}}}"#, backend.addr);
        let (dir, mut daemon) = start_with_workers(&body, 2).await;
        let dialled: SocketAddr = "127.0.0.1:5300".parse().unwrap();
        let mut clients = Vec::new();
        for i in 0..64 {
            let client = client().await;
            // `exchange` asserts the reply came from exactly 127.0.0.1:5300.
            assert_eq!(exchange(&client, dialled, &i.to_string()).await, format!("b:{i}"));
            clients.push(client);
        }
        // The kernel keeps each client on its worker: no flow is created twice.
        for client in &clients {
            assert_eq!(exchange(client, dialled, "again").await, "b:again");
        }
        let output = std::process::Command::new(crate::support::process::binary())
            .args(["status", "--json", "--socket"])
            .arg(dir.path().join("control.sock"))
            .output()
            .unwrap();
        let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let udp = &status["udp"];
        assert_eq!((udp["flows"].as_u64(), udp["policies"][0]["created"].as_u64()), (Some(64), Some(64)), "{udp:#}");
        let sockets = udp["sockets"].as_array().unwrap();
        let mut threads: Vec<&str> = sockets.iter().map(|s| s["thread"].as_str().unwrap()).collect();
        threads.sort_unstable();
        assert_eq!(threads, ["serve2-udp-0", "serve2-udp-1"], "{udp:#}");
        assert!(sockets.iter().all(|s| s["flows"].as_u64() > Some(0)), "both workers serve flows: {udp:#}");
        daemon.child.kill().await.unwrap();
    });
}
