//! Thousands of proxied connections held at once and released: every one
//! relays, the daemon holds exactly two descriptors each, and gives them
//! all back. The count is what this machine's descriptor limit allows:
//! 20,000 per process is the hard limit here, and the daemon needs two per
//! proxied connection plus a few of its own.

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::support::process::Serve2d;
use crate::support::*;

/// Proxied connections held at once.
const HELD: usize = 9_900;

/// A backend in its own process (its descriptors count against its own
/// limit): holds every connection, answers each with one byte, and closes
/// it when the client's end-of-stream arrives.
const BACKEND: &str = r#"
import selectors, socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(4096)
s.setblocking(False)
print(s.getsockname()[1], flush=True)
sel = selectors.DefaultSelector()
sel.register(s, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        if key.fileobj is s:
            c, _ = s.accept()
            c.sendall(b"!")
            sel.register(c, selectors.EVENT_READ)
        else:
            try:
                data = key.fileobj.recv(65536)
            except OSError:
                data = b""
            if not data:
                sel.unregister(key.fileobj)
                key.fileobj.close()
"#;

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(usize::MAX)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn thousands_of_proxied_connections_are_held_and_released() {
    in_netns(|| async {
        if !peers_available(&["/usr/bin/python3"]) {
            return;
        }
        let mut backend = tokio::process::Command::new("/usr/bin/python3")
            .args(["-c", BACKEND])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut ready = BufReader::new(backend.stdout.take().unwrap()).lines();
        let port = tokio::time::timeout(WAIT, ready.next_line()).await.unwrap().unwrap().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf.json");
        let config = format!(
            r#"{{"address": "127.0.0.1:0", "control": "", "logStdout": true, "protocols": [{{"kind": "ssh", "conf": {{"target": "127.0.0.1:{port}"}}}}]}}"#
        );
        std::fs::write(&path, config).unwrap();
        let mut daemon = Serve2d::spawn(&[], &path);
        let addr = daemon.listening_addr().await;
        daemon.wait_for_line("serving").await;
        let pid = daemon.pid();
        let baseline = fds(pid);
        let rss_before = rss_kib(pid);
        let started = Instant::now();
        let mut clients = Vec::with_capacity(HELD);
        for _ in 0..HELD {
            let mut client = TcpStream::connect(addr).await.unwrap();
            client.write_all(b"SSH-2.0-many\r\n").await.unwrap();
            clients.push(client);
        }
        // Every one relayed: the backend's byte came back through each.
        for client in &mut clients {
            assert_eq!(read_exact(client, 1).await, b"!");
        }
        let opened = started.elapsed();
        let held_fds = fds(pid);
        let rss_held = rss_kib(pid);
        assert_eq!(held_fds, baseline + 2 * HELD, "two descriptors per proxied connection");
        let released = Instant::now();
        drop(clients);
        let deadline = tokio::time::Instant::now() + WAIT;
        while fds(pid) > baseline {
            assert!(tokio::time::Instant::now() < deadline, "fds {} never returned to {baseline}", fds(pid));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let release = released.elapsed();
        eprintln!(
            "{HELD} proxied connections: opened and relayed in {opened:?}; daemon {held_fds} fds \
             (baseline {baseline}), RSS {rss_before} KiB -> {rss_held} KiB ({:.2} KiB per connection); \
             all released in {release:?}",
            (rss_held.saturating_sub(rss_before)) as f64 / HELD as f64
        );
        assert!(daemon.child.try_wait().unwrap().is_none(), "daemon died");
        daemon.child.kill().await.unwrap();
    });
}
