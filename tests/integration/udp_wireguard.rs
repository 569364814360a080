//! WireGuard through serve2: wireguard-go and `wg` from Debian, a client in
//! a namespace of its own whose peer endpoint is serve2's UDP address, the
//! server beside serve2, on a port shared with QUIC. The handshake and then
//! a TCP exchange through the tunnel pass through serve2's `wireguard`
//! kind (its `publicKey` verifying the initiation's mac1).

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};

use crate::support::udp::UdpDaemon;
use crate::support::*;
use crate::transparent::NamedNetns;

const WG: &str = "/usr/bin/wg";
const WIREGUARD_GO: &str = "/usr/bin/wireguard-go";

fn wg(args: &[&str], input: Option<&str>) -> String {
    let mut child = Command::new(WG).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    if let Some(input) = input {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "wg {args:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A wireguard-go interface process, killed when dropped.
struct Interface(Child);

impl Drop for Interface {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts wireguard-go for `name` (in `netns`, else this thread's
/// namespace) and waits, bounded, for its interface.
fn interface(name: &str, netns: Option<&NamedNetns>) -> Interface {
    let mut command = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns.0, WIREGUARD_GO, name]);
            c
        }
        None => {
            let mut c = Command::new(WIREGUARD_GO);
            c.arg(name);
            c
        }
    };
    // Owned at once: dropping it (a failed wait below included) kills and reaps it.
    let interface = Interface(
        command.env("WG_PROCESS_FOREGROUND", "1").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap(),
    );
    // Ready once its control socket answers (the link comes first).
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let mut show = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.0, WG, "show", name]);
                c
            }
            None => {
                let mut c = Command::new(WG);
                c.args(["show", name]);
                c
            }
        };
        if show.stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap().success() {
            return interface;
        }
        assert!(std::time::Instant::now() < deadline, "wireguard-go never made {name}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_wireguard_handshake_and_traffic_pass_through_a_port_shared_with_quic() {
    if !peers_available(&[WG, WIREGUARD_GO]) {
        return;
    }
    in_netns(|| async {
        let client_ns = NamedNetns::new("wg-client");
        ip(&["link", "add", "w0", "type", "veth", "peer", "name", "w1", "netns", &client_ns.0]);
        ip(&["addr", "add", "10.78.1.1/24", "dev", "w0"]);
        ip(&["link", "set", "w0", "up"]);
        client_ns.ip(&["link", "set", "lo", "up"]);
        client_ns.ip(&["addr", "add", "10.78.1.2/24", "dev", "w1"]);
        client_ns.ip(&["link", "set", "w1", "up"]);

        let (server_key, client_key) = (wg(&["genkey"], None), wg(&["genkey"], None));
        let server_public = wg(&["pubkey"], Some(&server_key));
        let client_public = wg(&["pubkey"], Some(&client_key));
        let keys = tempfile::tempdir().unwrap();
        let (server_file, client_file) = (keys.path().join("server"), keys.path().join("client"));
        std::fs::write(&server_file, &server_key).unwrap();
        std::fs::write(&client_file, &client_key).unwrap();

        // The server, beside serve2, on a port of its own.
        let server_port = free_port().to_string();
        // Their control sockets are files in /var/run/wireguard, which every
        // namespace shares: names of this process's own.
        let (server_if, client_if) = (format!("wgs{}", std::process::id()), format!("wgc{}", std::process::id()));
        let _server = interface(&server_if, None);
        let server_file = server_file.to_string_lossy().into_owned();
        wg(
            &[
                "set",
                &server_if,
                "private-key",
                &server_file,
                "listen-port",
                &server_port,
                "peer",
                &client_public,
                "allowed-ips",
                "10.9.0.2/32",
            ],
            None,
        );
        ip(&["addr", "add", "10.9.0.1/24", "dev", &server_if]);
        ip(&["link", "set", &server_if, "up"]);

        // serve2 on 10.78.1.1, QUIC and WireGuard on one port.
        let body = format!(
            r#""udp": {{"protocols": [
                 {{"kind": "quic", "conf": {{"target": "127.0.0.1:9"}}}},
                 {{"kind": "wireguard", "conf": {{"publicKey": "{server_public}", "target": "127.0.0.1:{server_port}"}}}}
               ]}}"#
        );
        let daemon = UdpDaemon::start_at(&body, "10.78.1.1:0").await;
        let endpoint = daemon.addr.to_string();

        // The client, in its own namespace, with serve2 as its peer's endpoint.
        let _client = interface(&client_if, Some(&client_ns));
        let client_file = client_file.to_string_lossy().into_owned();
        let set = Command::new("ip")
            .args([
                "netns",
                "exec",
                &client_ns.0,
                WG,
                "set",
                &client_if,
                "private-key",
                &client_file,
                "peer",
                &server_public,
            ])
            .args(["endpoint", &endpoint, "allowed-ips", "10.9.0.1/32"])
            .status()
            .unwrap();
        assert!(set.success());
        client_ns.ip(&["addr", "add", "10.9.0.2/24", "dev", &client_if]);
        client_ns.ip(&["link", "set", &client_if, "up"]);

        // A TCP exchange through the tunnel: the first packet triggers the
        // handshake through serve2.
        let listener = std::net::TcpListener::bind("10.9.0.1:7000").unwrap();
        let served = std::thread::spawn(move || {
            let (mut stream, peer) = listener.accept().unwrap();
            let mut buffer = [0u8; 5];
            stream.read_exact(&mut buffer).unwrap();
            stream.write_all(b"pong!").unwrap();
            (buffer, peer)
        });
        let reply = client_ns.run(|| {
            let mut stream = std::net::TcpStream::connect_timeout(&"10.9.0.1:7000".parse().unwrap(), WAIT).unwrap();
            stream.set_read_timeout(Some(WAIT)).unwrap();
            stream.write_all(b"ping!").unwrap();
            let mut buffer = [0u8; 5];
            stream.read_exact(&mut buffer).unwrap();
            buffer
        });
        let (received, peer) = served.join().unwrap();
        assert_eq!((&received, &reply), (b"ping!", b"pong!"));
        assert_eq!(peer.ip().to_string(), "10.9.0.2", "through the tunnel");
        let handshakes = Command::new("ip")
            .args(["netns", "exec", &client_ns.0, WG, "show", &client_if, "latest-handshakes"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&handshakes.stdout);
        assert!(text.split_whitespace().nth(1).is_some_and(|t| t != "0"), "a handshake was made: {text}");
        let status = daemon.status().await;
        let top = crate::support::udp::policy(&status, "top level");
        assert!(top.created >= 1, "{status:#?}");
        daemon.stop().await;
    });
}
