//! UDP flows on steered ports: the serve2d binary as root in a fresh
//! network namespace, its sk_lookup program sending `steer.udpPorts` to its
//! UDP socket. These need the UDP half of the kernel program.

use std::net::SocketAddr;

use crate::support::in_netns;
use crate::support::process::Serve2d;
use crate::support::udp::*;

/// serve2d on `body` with a control socket, steering attached.
async fn start(body: &str) -> (tempfile::TempDir, Serve2d) {
    let dir = tempfile::tempdir().unwrap();
    let control = crate::support::json(dir.path().join("control.sock").to_string_lossy());
    let config = format!(r#"{{"logStdout": true, "workers": 1, "control": {control}, {body}}}"#);
    std::fs::write(dir.path().join("conf.json"), config).unwrap();
    let mut daemon = Serve2d::spawn(&[], &dir.path().join("conf.json"));
    daemon.wait_for_line("steering attached").await;
    daemon.wait_for_line("serving").await;
    (dir, daemon)
}

#[test]
#[ignore = "needs UDP steering in the eBPF program"]
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
#[ignore = "needs UDP steering in the eBPF program"]
fn under_all_a_client_may_dial_the_port_of_serve2s_own_backend_socket() {
    in_netns(|| async {
        let mut backend = UdpBackend::start("b").await;
        let body =
            format!(r#""steer": {{"udpPorts": ["all"]}}, "udp": {{"forward": {{"target": "{}"}}}}"#, backend.addr);
        let (_dir, mut daemon) = start(&body).await;
        let first = client().await;
        let dialled: SocketAddr = "127.0.0.1:51820".parse().unwrap();
        assert_eq!(exchange(&first, dialled, "1").await, "b:1");
        // The port serve2's backend socket got for that flow, in the
        // ephemeral range: now another client dials it.
        let (_, upstream) = backend.next().await;
        let second = client().await;
        assert_eq!(exchange(&second, upstream, "2").await, "b:2");
        // Both flows still work, each answered from its own dialled port.
        assert_eq!(exchange(&first, dialled, "3").await, "b:3");
        assert_eq!(exchange(&second, upstream, "4").await, "b:4");
        daemon.child.kill().await.unwrap();
    });
}
