//! The failure matrix: bad clients and bad backends against the serve2d
//! binary. Each test asserts what the client sees and that the daemon's
//! open descriptors return to their baseline afterwards.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::certs::TestPki;
use crate::support::process::Serve2d;
use crate::support::*;

/// serve2d on `body` (a JSON object body) with one worker, and its
/// descriptor count once it serves.
struct Subject {
    _dir: tempfile::TempDir,
    daemon: Serve2d,
    addr: std::net::SocketAddr,
    baseline: usize,
}

impl Subject {
    async fn start(body: &str) -> Subject {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf.json");
        let config = format!(r#"{{"address": "127.0.0.1:0", "workers": 1, "control": "", "logStdout": true, {body}}}"#);
        std::fs::write(&path, config).unwrap();
        let mut daemon = Serve2d::spawn(&[], &path);
        let addr = daemon.listening_addr().await;
        daemon.wait_for_line("serving").await;
        let mut subject = Subject { _dir: dir, daemon, addr, baseline: 0 };
        subject.baseline = subject.fds();
        subject
    }

    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.daemon.pid())).map(|d| d.count()).unwrap_or(usize::MAX)
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.daemon.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    /// Waits (bounded) until the daemon holds no more descriptors than at
    /// start, and checks it still serves.
    async fn settles(mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.fds() > self.baseline {
            if tokio::time::Instant::now() >= deadline {
                let links: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", self.daemon.pid()))
                    .unwrap()
                    .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .map(|p| p.display().to_string())
                    .collect();
                panic!("fds {} never returned to {}: {links:?}", self.fds(), self.baseline);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(self.daemon.child.try_wait().unwrap().is_none(), "daemon died");
        self.daemon.child.kill().await.unwrap();
    }
}

/// Reads until the daemon closes the connection (end-of-stream or reset),
/// returning what arrived first.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut buf)).await.expect("closed in time") {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

const SSH_ONLY: &str = r#""protocols": [{"kind": "ssh", "conf": {"target": "127.0.0.1:9"}}]"#;

#[test]
fn a_silent_client_is_closed_at_the_deadline_and_leaves_nothing_behind() {
    in_netns(|| async {
        let subject = Subject::start(&format!(r#""detectTimeout": 0.3, {SSH_ONLY}"#)).await;
        let mut clients = Vec::new();
        for _ in 0..20 {
            clients.push(subject.connect().await);
        }
        for client in &mut clients {
            assert_eq!(until_closed(client).await, b"");
        }
        subject.settles().await;
    });
}

#[test]
fn a_slowloris_drip_is_cut_at_the_absolute_deadline() {
    in_netns(|| async {
        // An unanchored pattern can only be refused at maxRead: a drip
        // would hold detection forever if each byte extended the deadline.
        let subject = Subject::start(
            r#""detectTimeout": 0.5, "maxRead": 100000, "protocols": [{"kind": "regex", "conf": {"patterns": ["jabber"], "target": "127.0.0.1:9"}}]"#,
        )
        .await;
        let mut client = subject.connect().await;
        let started = std::time::Instant::now();
        let mut closed = false;
        for _ in 0..200 {
            if client.write_all(b"x").await.is_err() {
                closed = true;
                break;
            }
            let mut byte = [0u8; 1];
            match tokio::time::timeout(Duration::from_millis(25), client.read(&mut byte)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    closed = true;
                    break;
                }
                Ok(Ok(_)) => panic!("unexpected reply"),
                Err(_) => {}
            }
        }
        assert!(closed, "still open after {:?} of dripping", started.elapsed());
        assert!(started.elapsed() < Duration::from_secs(3), "cut only after {:?}", started.elapsed());
        subject.settles().await;
    });
}

#[test]
fn huge_truncated_and_malformed_client_hellos_are_closed_cleanly() {
    in_netns(|| async {
        let pki = TestPki::new();
        let body = format!(
            r#""detectTimeout": 2, "protocols": [{{"kind": "tls", "conf": {{"cert": {}, "key": {}}}}}, {{"kind": "echo"}}]"#,
            json(pki.cert_path().to_string_lossy()),
            json(pki.key_path().to_string_lossy())
        );
        let subject = Subject::start(&body).await;
        let hello = include_bytes!("../fixtures/curl-openssl3-clienthello.bin");
        let mut malformed = hello.to_vec();
        malformed[9..40].fill(0xff); // body lengths that do not add up
        let cases: [(&str, Vec<u8>, bool); 4] = [
            ("declares 70,000 bytes", b"\x16\x03\x01\x40\x00\x01\x01\x11\x70".to_vec(), false),
            ("truncated, then FIN", hello[..hello.len() / 2].to_vec(), true),
            ("malformed body", malformed, false),
            ("a hello then garbage records", [hello.as_slice(), b"\x16\x03\x03\x00\x02zz"].concat(), false),
        ];
        for (name, flight, half_close) in cases {
            let mut client = subject.connect().await;
            client.write_all(&flight).await.unwrap();
            if half_close {
                client.shutdown().await.unwrap();
            }
            let reply = until_closed(&mut client).await;
            // Never echoed: the bytes are not ECHO; at most a TLS alert.
            assert!(!reply.starts_with(b"ECHO"), "{name}: {reply:02x?}");
        }
        subject.settles().await;
    });
}

#[test]
fn garbage_is_closed_and_the_daemon_serves_on() {
    in_netns(|| async {
        let subject =
            Subject::start(r#""protocols": [{"kind": "echo"}, {"kind": "ssh", "conf": {"target": "127.0.0.1:9"}}]"#)
                .await;
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..50 {
            let garbage: Vec<u8> = (0..4096)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let mut client = subject.connect().await;
            // The daemon may close before taking it all: a reset is fine.
            let _ = client.write_all(&garbage).await;
            assert_eq!(until_closed(&mut client).await, b"");
        }
        let mut client = subject.connect().await;
        send(&mut client, b"ECHO alive").await;
        assert_eq!(read_exact(&mut client, 10).await, b"ECHO alive");
        drop(client);
        subject.settles().await;
    });
}

#[test]
fn a_slow_reading_backend_keeps_the_daemons_memory_bounded() {
    in_netns(|| async {
        let (backend, addr) = backend().await;
        let body = format!(r#""protocols": [{{"kind": "ssh", "conf": {{"target": {}}}}}]"#, json(&addr));
        let subject = Subject::start(&body).await;
        let before = subject.rss_kib();
        let mut client = subject.connect().await;
        send(&mut client, b"SSH-2.0-push\r\n").await;
        let mut server = accept(&backend).await;
        // The backend reads 1 MB/s (64 KiB every 64 ms) until told to stop.
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut total = 0u64;
            while stopped.try_recv().is_err() {
                match server.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n as u64,
                }
                tokio::time::sleep(Duration::from_millis(64)).await;
            }
            total
        });
        // The client pushes as fast as it can for 3 s (it would take 1 GB
        // if the daemon buffered it).
        let chunk = vec![0x42u8; 1 << 20];
        let mut peak = before;
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            let _ = tokio::time::timeout(Duration::from_millis(100), client.write_all(&chunk)).await;
            peak = peak.max(subject.rss_kib());
        }
        assert!(peak - before < 32 * 1024, "RSS grew from {before} KiB to {peak} KiB");
        stop.send(()).unwrap();
        drop(client);
        let received = tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();
        assert!(received > 1 << 20, "the backend got {received} bytes");
        subject.settles().await;
    });
}
