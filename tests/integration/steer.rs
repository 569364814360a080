//! Kernel steering: the serve2d binary as root in a fresh network namespace,
//! with its sk_lookup program attached to that namespace only.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::support::process::{Serve2d, binary};
use crate::support::*;

/// Writes `config` (a JSON object body, without braces) plus a control
/// socket in a fresh folder, and starts serve2d on it.
pub(crate) async fn start(body: &str) -> (tempfile::TempDir, Serve2d) {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("control.sock");
    let config = format!(r#"{{"logStdout": true, "control": {}, {body}}}"#, json(control.to_string_lossy()));
    let path = dir.path().join("conf.json");
    std::fs::write(&path, config).unwrap();
    let mut daemon = Serve2d::spawn(&[], &path);
    daemon.wait_for_line("steering attached").await;
    daemon.wait_for_line("serving").await;
    (dir, daemon)
}

pub(crate) fn status(dir: &tempfile::TempDir) -> String {
    let output =
        Command::new(binary()).arg("status").arg("--socket").arg(dir.path().join("control.sock")).output().unwrap();
    assert!(output.status.success(), "status: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

pub(crate) async fn echo_through(addr: SocketAddr, text: &str) {
    let mut client = tokio::time::timeout(WAIT, TcpStream::connect(addr)).await.expect("connect in time").unwrap();
    let message = format!("ECHO {text}");
    send(&mut client, message.as_bytes()).await;
    assert_eq!(read_exact(&mut client, message.len()).await, message.as_bytes(), "{addr}");
}

/// The local ports of the listening sockets process `pid` holds in this
/// namespace, one entry per socket.
fn listeners_of(pid: u32) -> Vec<u16> {
    let mut listening = std::collections::BTreeMap::new();
    for table in ["/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"] {
        for row in std::fs::read_to_string(table).unwrap().lines().skip(1) {
            let fields: Vec<&str> = row.split_whitespace().collect();
            if fields[3] == "0A" {
                let port = u16::from_str_radix(fields[1].rsplit(':').next().unwrap(), 16).unwrap();
                listening.insert(fields[9].to_owned(), port);
            }
        }
    }
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| target.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned))
        .filter_map(|inode| listening.get(&inode).copied())
        .collect()
}

/// A small xorshift generator: random ports, reproducible from the seed.
pub(crate) fn random_ports(count: usize, exclude: &[u16]) -> Vec<u16> {
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("random port seed {seed}");
    let mut ports = BTreeSet::new();
    while ports.len() < count {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let port = (seed % 65535) as u16 + 1;
        if !exclude.contains(&port) {
            ports.insert(port);
        }
    }
    ports.into_iter().collect()
}

#[test]
fn all_ports_reach_one_listener_that_sees_the_dialled_port() {
    in_netns(|| async {
        let excluded = [7, 2222, 6000, 6001, 6002];
        let (dir, mut daemon) = start(
            r#""workers": 1, "steer": {"ports": ["all"], "exclude": [7, 2222, "6000-6002"]}, "protocols": [{"kind": "echo"}]"#,
        )
        .await;
        let listener_port = status(&dir)
            .lines()
            .find_map(|l| l.strip_prefix("listeners: "))
            .and_then(|l| l.split(' ').next()?.rsplit(':').next()?.parse::<u16>().ok())
            .unwrap();
        let mut avoid = excluded.to_vec();
        avoid.push(listener_port);
        let ports = random_ports(1000, &avoid);
        for &port in &ports {
            echo_through(SocketAddr::from(([127, 0, 0, 1], port)), &port.to_string()).await;
        }
        for &port in ports.iter().take(50) {
            echo_through(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)), &port.to_string()).await;
        }
        // Every connection's summary names the port the client dialled.
        let mut seen = BTreeSet::new();
        while seen.len() < ports.len() {
            let line = daemon.wait_for_line("chain=echo").await;
            let port =
                line.split("local=127.0.0.1:").nth(1).and_then(|rest| rest.split(' ').next()?.parse::<u16>().ok());
            seen.extend(port);
        }
        assert_eq!(seen, ports.iter().copied().collect::<BTreeSet<u16>>());
        assert_eq!(listeners_of(daemon.pid()), [listener_port], "the daemon holds exactly one listening socket");
        let status = status(&dir);
        assert!(status.contains("steering: 65530 ports"), "{status}");
        assert!(status.contains("excluded: 7,2222,6000-6002"), "{status}");
        assert!(status.contains("steered 1050"), "{status}");
        daemon.child.kill().await.unwrap();
    });
}

#[test]
fn policies_pick_protocols_by_dialled_port_on_ipv4_and_ipv6() {
    in_netns(|| async {
        let (ssh_backend, ssh_addr) = backend().await;
        let www = tempfile::tempdir().unwrap();
        std::fs::write(www.path().join("index.html"), "policy web").unwrap();
        let body = format!(
            r#""steer": {{"ports": [80, 2222, "8000-8010"]}},
               "policies": [
                 {{"name": "web", "ports": [80], "protocols": [{{"kind": "http", "conf": {{"path": {www}}}}}]}},
                 {{"name": "ssh", "ports": [2222], "protocols": [{{"kind": "proxy", "conf": {{"magic": "SSH-", "target": {ssh}}}}}]}}
               ],
               "protocols": [{{"kind": "echo"}}]"#,
            www = json(www.path().to_string_lossy()),
            ssh = json(&ssh_addr),
        );
        let (dir, mut daemon) = start(&body).await;
        // One worker per CPU, each with a socket of one SO_REUSEPORT group:
        // still a single listening port for every steered port.
        let ports = listeners_of(daemon.pid());
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(ports.len(), workers, "{ports:?}");
        assert!(ports.iter().all(|&p| p == ports[0]), "{ports:?}");
        for host in ["127.0.0.1", "[::1]"] {
            let at = |port: u16| -> SocketAddr { format!("{host}:{port}").parse().unwrap() };
            // Port 80 speaks HTTP only: an SSH banner is not proxied.
            let mut client = TcpStream::connect(at(80)).await.unwrap();
            send(&mut client, b"SSH-2.0-OpenSSH_9.2\r\n").await;
            assert_closed_silently(&mut client).await;
            let mut client = TcpStream::connect(at(80)).await.unwrap();
            send(&mut client, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
            let response = String::from_utf8(read_to_end(&mut client).await.unwrap()).unwrap();
            assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("policy web"), "{response}");
            // Port 2222 proxies SSH only.
            let mut client = TcpStream::connect(at(2222)).await.unwrap();
            send(&mut client, b"SSH-2.0-OpenSSH_9.2\r\n").await;
            let mut server = accept(&ssh_backend).await;
            assert_eq!(read_exact(&mut server, 21).await, b"SSH-2.0-OpenSSH_9.2\r\n");
            let mut client = TcpStream::connect(at(2222)).await.unwrap();
            send(&mut client, b"GET / HTTP/1.1\r\n\r\n").await;
            assert_closed_silently(&mut client).await;
            // The range without a policy gets the top-level protocols.
            echo_through(at(8005), "top level").await;
        }
        // The summary reports the dialled IPv6 address and port.
        let line = daemon.wait_for_line("local=[::1]:2222").await;
        assert!(line.contains("port=2222"), "{line}");
        let status = status(&dir);
        assert!(status.contains("web: ports 80 -> http"), "{status}");
        assert!(status.contains("ssh: ports 2222 -> proxy"), "{status}");
        assert!(status.contains("top level: every other port -> echo"), "{status}");
        daemon.child.kill().await.unwrap();
    });
}

/// A listener that answers every connection with `name` and closes.
async fn named_listener(port: u16, name: &'static str) -> tokio::task::JoinHandle<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(name.as_bytes()).await;
        }
    })
}

async fn first_bytes(port: u16) -> Vec<u8> {
    let mut client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut buf = vec![0u8; 32];
    let n = tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read(&mut client, &mut buf)).await.unwrap().unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn excluded_and_already_listening_ports_answer_themselves() {
    in_netns(|| async {
        let _in_use = named_listener(5000, "already here").await;
        let _listed = named_listener(7000, "taken over").await;
        let (dir, mut daemon) =
            start(r#""steer": {"ports": ["all", 7000], "exclude": [6000]}, "protocols": [{"kind": "echo"}]"#).await;
        // Logged during start-up, before "serving".
        let warning =
            daemon.log.iter().find(|l| l.contains("another socket already listens")).cloned().unwrap_or_default();
        assert!(warning.contains("ports=5000"), "{warning}");
        let _excluded = named_listener(6000, "excluded").await;
        assert_eq!(first_bytes(5000).await, b"already here");
        assert_eq!(first_bytes(6000).await, b"excluded");
        // Listed one by one, a port is taken even where something listens.
        echo_through(SocketAddr::from(([127, 0, 0, 1], 7000)), "steered").await;
        let status = status(&dir);
        assert!(status.contains("skipped (another socket listened at start): 5000"), "{status}");
        assert!(status.contains("excluded: 6000"), "{status}");
        daemon.child.kill().await.unwrap();
    });
}

#[test]
fn killing_the_daemon_leaves_no_port_hanging() {
    in_netns(|| async {
        let _own = named_listener(9005, "own listener").await;
        let (_dir, mut daemon) =
            start(r#""steer": {"ports": [9005, "9000-9010"]}, "protocols": [{"kind": "echo"}]"#).await;
        echo_through(SocketAddr::from(([127, 0, 0, 1], 9005)), "alive").await;
        echo_through(SocketAddr::from(([127, 0, 0, 1], 9001)), "alive").await;
        daemon.child.start_kill().unwrap(); // SIGKILL
        daemon.child.wait().await.unwrap();
        // Each port refuses at once or reaches its own listener.
        assert_eq!(first_bytes(9005).await, b"own listener");
        for port in [9000, 9001, 9010] {
            let started = std::time::Instant::now();
            let result = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(("127.0.0.1", port))).await;
            let error = result.expect("no hang").expect_err("nothing listens");
            assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused, "{port}: {error}");
            assert!(started.elapsed() < Duration::from_secs(1));
        }
    });
}

#[test]
fn a_stopped_daemon_leaves_no_port_hanging_and_steers_again_when_continued() {
    in_netns(|| async {
        let _own = named_listener(9005, "own listener").await;
        let (_dir, daemon) = start(r#""steer": {"ports": [9005, "9000-9010"]}, "protocols": [{"kind": "echo"}]"#).await;
        echo_through(SocketAddr::from(([127, 0, 0, 1], 9005)), "alive").await;
        let pid = daemon.pid() as i32;
        // SAFETY: signals to the child this test started.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        // Past the heartbeat's limit (1 s): the program stops steering.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(first_bytes(9005).await, b"own listener");
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect("127.0.0.1:9001")).await;
        let error = result.expect("no hang").expect_err("nothing else listens");
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused, "{error}");
        assert!(started.elapsed() < Duration::from_secs(1));
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGCONT) };
        // Steered again once it beats (bounded).
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(mut client) = TcpStream::connect("127.0.0.1:9001").await {
                send(&mut client, b"ECHO back").await;
                assert_eq!(read_exact(&mut client, 9).await, b"ECHO back");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "not steered again after SIGCONT");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

#[test]
fn without_privileges_steering_fails_clearly_and_plain_mode_still_works() {
    in_netns(|| async {
        let dir = tempfile::tempdir().unwrap();
        // The unprivileged user must be able to read the configurations.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let steer = dir.path().join("steer.json");
        std::fs::write(&steer, r#"{"control": "", "steer": {"ports": [8080]}, "protocols": [{"kind": "echo"}]}"#)
            .unwrap();
        let output = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(binary())
            .arg(&steer)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("kernel steering needs CAP_BPF and CAP_NET_ADMIN; missing CAP_BPF and CAP_NET_ADMIN"),
            "{stderr}"
        );

        let plain = dir.path().join("plain.json");
        std::fs::write(&plain, r#"{"address": "127.0.0.1:0", "control": "", "protocols": [{"kind": "echo"}]}"#)
            .unwrap();
        let mut daemon = Serve2d::spawn(&["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"], &plain);
        let addr = daemon.listening_addr().await;
        echo_through(addr, "unprivileged").await;
        daemon.child.kill().await.unwrap();
    });
}

#[test]
fn address_scoping_steers_only_the_listed_local_addresses() {
    in_netns(|| async {
        let (dir, _daemon) = start(
            r#""steer": {"ports": ["all"], "addresses": ["127.0.0.2/32", "::1"]}, "protocols": [{"kind": "echo"}]"#,
        )
        .await;
        echo_through("127.0.0.2:4000".parse().unwrap(), "in scope").await;
        echo_through("[::1]:4000".parse().unwrap(), "in scope").await;
        // 127.0.0.1 is local but out of scope: the normal lookup refuses it.
        let error = TcpStream::connect("127.0.0.1:4000").await.expect_err("not steered");
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
        let output = Command::new(binary())
            .args(["status", "--json", "--socket"])
            .arg(dir.path().join("control.sock"))
            .output()
            .unwrap();
        let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let counters = &status["steering"]["counters"];
        assert_eq!(counters["steered"], 2, "{status}");
        assert_eq!(counters["out_of_scope"], 1, "{status}");
        assert_eq!(status["steering"]["scope"], serde_json::json!(["127.0.0.2/32", "::1/128"]));
    });
}

#[test]
fn on_sigterm_steering_goes_first_while_open_connections_drain() {
    in_netns(|| async {
        let (_dir, mut daemon) = start(r#""steer": {"ports": ["9000-9010"]}, "protocols": [{"kind": "echo"}]"#).await;
        // A connection still open keeps the daemon in its grace period.
        let mut open = TcpStream::connect(("127.0.0.1", 9003)).await.unwrap();
        send(&mut open, b"ECHO ").await;
        assert_eq!(read_exact(&mut open, 5).await, b"ECHO ");
        // SAFETY: signals the child we started.
        assert_eq!(unsafe { libc::kill(daemon.pid() as i32, libc::SIGTERM) }, 0);
        daemon.wait_for_line("steering detached").await;
        // New connections no longer reach the draining daemon: refused at once.
        let error = TcpStream::connect(("127.0.0.1", 9004)).await.expect_err("steering is gone");
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
        // The open one still works until it ends.
        send(&mut open, b"still here").await;
        assert_eq!(read_exact(&mut open, 10).await, b"still here");
        drop(open);
        let status = tokio::time::timeout(WAIT, daemon.child.wait()).await.expect("daemon exits").unwrap();
        assert!(status.success(), "{status}");
    });
}

#[test]
fn after_the_privilege_drop_no_capability_is_left_and_reload_still_moves_ports() {
    in_netns(|| async {
        let dir = tempfile::tempdir().unwrap();
        // The service user must be able to read the configuration on reload.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let control = dir.path().join("control.sock");
        let path = dir.path().join("conf.json");
        let write = |ports: &str| {
            let config = format!(
                r#"{{"logStdout": true, "control": {}, "user": "nobody", "group": "nogroup", "steer": {{"ports": {ports}}}, "protocols": [{{"kind": "echo"}}]}}"#,
                json(control.to_string_lossy())
            );
            std::fs::write(&path, config).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        };
        write("[9401]");
        let mut daemon = Serve2d::spawn(&[], &path);
        daemon.wait_for_line("dropped privileges").await;
        daemon.wait_for_line("serving").await;
        let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap()
                .split_whitespace()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(field("Uid:"), "65534 65534 65534 65534");
        assert_eq!(field("Gid:"), "65534 65534 65534 65534");
        for caps in ["CapEff:", "CapPrm:", "CapAmb:", "CapInh:", "CapBnd:"] {
            assert_eq!(field(caps), "0000000000000000", "{caps}");
        }
        assert_eq!(field("NoNewPrivs:"), "1");
        echo_through(SocketAddr::from(([127, 0, 0, 1], 9401)), "before").await;
        assert!(TcpStream::connect("127.0.0.1:9402").await.is_err(), "9402 is not steered yet");
        // A reload still changes the kernel's port map, through the
        // descriptors kept from before the drop.
        write("[9401, 9402]");
        let answer = serve2::control::request_reload(&control).await.unwrap();
        assert!(answer.ok, "{}", answer.message);
        echo_through(SocketAddr::from(([127, 0, 0, 1], 9402)), "after").await;
        echo_through(SocketAddr::from(([127, 0, 0, 1], 9401)), "after").await;
        daemon.child.kill().await.unwrap();
    });
}
