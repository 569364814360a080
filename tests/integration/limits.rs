//! Running out of file descriptors: the daemon survives, recovers, and
//! gives every descriptor back.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::support::process::Serve2d;
use crate::support::*;

const OFFERED: usize = 300;
const NOFILE: &str = "--nofile=48:48";

/// Polls `condition` every few milliseconds until it holds or `WAIT` passes.
async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

#[test]
fn far_fewer_descriptors_than_connections_survives_and_recovers() {
    in_netns(|| async {
        let (backend, addr) = backend().await;
        // The backend holds every connection it gets.
        let held = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = backend.accept().await {
                held.push(stream);
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf.json");
        let config = format!(
            r#"{{"address": "127.0.0.1:0", "protocols": [{{"kind": "echo"}}, {{"kind": "proxy", "conf": {{"magic": "SSH", "target": {}}}}}]}}"#,
            json(&addr)
        );
        std::fs::write(&path, config).unwrap();
        let mut daemon = Serve2d::spawn(&["prlimit", NOFILE], &path);
        let listen = daemon.listening_addr().await;

        let echo = |listen| async move {
            let mut client = TcpStream::connect(listen).await.unwrap();
            send(&mut client, b"ECHO ping").await;
            assert_eq!(read_exact(&mut client, 9).await, b"ECHO ping");
        };
        echo(listen).await;
        let pid = daemon.pid();
        let fds = move || std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(usize::MAX);
        let baseline = fds();

        // Far more proxied connections than descriptors.
        let mut clients = Vec::new();
        for _ in 0..OFFERED {
            let mut client = TcpStream::connect(listen).await.unwrap();
            send(&mut client, b"SSH-2.0-flood\r\n").await;
            clients.push(client);
        }
        assert!(daemon.child.try_wait().unwrap().is_none(), "daemon died");
        daemon.wait_for_line("Too many open files").await;

        drop(clients);
        held.abort();
        assert!(daemon.child.try_wait().unwrap().is_none(), "daemon died");
        // Recovers: serves again, and its descriptor count returns to where it was.
        echo(listen).await;
        assert!(eventually(|| fds() <= baseline).await, "fds {} never returned to {baseline}", fds());
        daemon.child.kill().await.unwrap();
    });
}

/// CPU time (user + system, in clock ticks) process `pid` has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn out_of_descriptors_the_control_socket_backs_off_and_status_times_out() {
    in_netns(|| async {
        let (backend, addr) = backend().await;
        let held = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = backend.accept().await {
                held.push(stream);
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let control = dir.path().join("control.sock");
        let path = dir.path().join("conf.json");
        let config = format!(
            r#"{{"address": "127.0.0.1:0", "workers": 1, "control": {}, "protocols": [{{"kind": "proxy", "conf": {{"magic": "SSH", "target": {}}}}}]}}"#,
            json(control.to_string_lossy()),
            json(&addr)
        );
        std::fs::write(&path, config).unwrap();
        let mut daemon = Serve2d::spawn(&["prlimit", NOFILE], &path);
        let listen = daemon.listening_addr().await;
        daemon.wait_for_line("serving").await;
        let mut clients = Vec::new();
        for _ in 0..OFFERED {
            let mut client = TcpStream::connect(listen).await.unwrap();
            send(&mut client, b"SSH-2.0-flood\r\n").await;
            clients.push(client);
        }
        daemon.wait_for_line("Too many open files").await;
        // Requests queue on the control socket the daemon cannot accept.
        let mut requests = Vec::new();
        for _ in 0..3 {
            requests.push(tokio::net::UnixStream::connect(&control).await.unwrap());
        }
        daemon.wait_for_line("control socket: accept failed; backing off").await;
        // Backing off, not spinning: well under a fifth of a core over a second.
        let pid = daemon.pid();
        let before = cpu_ticks(pid);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let used = cpu_ticks(pid) - before;
        assert!(used < 20, "the daemon used {used} ticks (of 100) in one second while out of descriptors");
        // `serve2d status` gives up on its own rather than hanging.
        let status = tokio::process::Command::new(crate::support::process::binary())
            .arg("status")
            .arg("--socket")
            .arg(&control)
            .output();
        let output = tokio::time::timeout(WAIT, status).await.expect("status returns by itself").unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("no answer within 5s"), "{stderr}");
        drop(clients);
        held.abort();
        daemon.child.kill().await.unwrap();
    });
}

#[test]
fn bytes_that_arrived_while_the_daemon_was_stopped_are_read_before_a_timeout() {
    in_netns(|| async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf.json");
        let config = r#"{"address": "127.0.0.1:0", "control": "", "logStdout": true, "detectTimeout": 1, "protocols": [{"kind": "echo"}, {"kind": "discard", "default": true}]}"#;
        std::fs::write(&path, config).unwrap();
        let mut daemon = Serve2d::spawn(&[], &path);
        let listen = daemon.listening_addr().await;
        daemon.wait_for_line("serving").await;
        let pid = daemon.pid() as i32;
        // Accepted and waiting for bytes when the daemon stops.
        let mut waiting = Vec::new();
        for i in 0..40 {
            let mut client = TcpStream::connect(listen).await.unwrap();
            if i % 2 == 0 {
                // Half a flight before the stop, the rest during it.
                send(&mut client, b"EC").await;
            }
            waiting.push(client);
        }
        // A probe connection proves the daemon has accepted the others.
        let mut probe = TcpStream::connect(listen).await.unwrap();
        send(&mut probe, b"ECHO probe").await;
        assert_eq!(read_exact(&mut probe, 10).await, b"ECHO probe");
        // SAFETY: signals to the child this test started.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        // Queued while it is stopped: one accepted before, one not yet.
        let mut late = TcpStream::connect(listen).await.unwrap();
        for (i, client) in waiting.iter_mut().enumerate() {
            send(client, if i % 2 == 0 { b"HO hi".as_slice() } else { b"ECHO hi" }).await;
        }
        send(&mut late, b"ECHO hi").await;
        // Past every detection deadline while stopped.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGCONT) };
        for client in waiting.iter_mut().chain(std::iter::once(&mut late)) {
            assert_eq!(read_exact(client, 7).await, b"ECHO hi");
        }
        daemon.child.kill().await.unwrap();
    });
}

/// A client that sent `ECHO` to `addr` and got it back, or `None` if the
/// daemon turned it away (a reset may even fail the connect: the daemon
/// resets as soon as it accepts).
async fn echoed(addr: std::net::SocketAddr) -> Option<TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut client = TcpStream::connect(addr).await.ok()?;
    client.write_all(b"ECHO y").await.ok()?;
    let mut reply = [0u8; 6];
    tokio::time::timeout(WAIT, client.read_exact(&mut reply)).await.ok()?.ok()?;
    (&reply == b"ECHO y").then_some(client)
}

/// Whether a client of `addr` is turned away at once (refused, reset or
/// closed before any reply).
async fn refused(addr: std::net::SocketAddr) -> bool {
    use tokio::io::AsyncWriteExt;
    let Ok(mut client) = TcpStream::connect(addr).await else { return true };
    let _ = client.write_all(b"ECHO x").await;
    turned_away(&mut client).await
}

/// Whether the daemon turned `client` away at once: a reset or a close
/// before any reply.
async fn turned_away(client: &mut TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut byte = [0u8; 1];
    matches!(tokio::time::timeout(WAIT, client.read(&mut byte)).await, Ok(Ok(0) | Err(_)))
}

#[test]
fn a_flood_on_one_policy_does_not_lock_out_another() {
    in_netns(|| async {
        let (held, held_addr) = backend().await;
        let (other, other_addr) = backend().await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf.json");
        let config = format!(
            r#"{{"logStdout": true, "control": "", "steer": {{"ports": [9301, 9302]}}, "protocols": [{{"kind": "echo"}}], "policies": [
                {{"name": "flooded", "ports": [9301], "maxConnections": 5, "protocols": [{{"kind": "ssh", "conf": {{"target": {}}}}}]}},
                {{"name": "other", "ports": [9302], "protocols": [{{"kind": "ssh", "conf": {{"target": {}}}}}]}}
            ]}}"#,
            json(&held_addr),
            json(&other_addr)
        );
        std::fs::write(&path, config).unwrap();
        let mut daemon = Serve2d::spawn(&[], &path);
        daemon.wait_for_line("serving").await;
        let mut flood = Vec::new();
        let mut servers = Vec::new();
        for _ in 0..5 {
            let mut client = TcpStream::connect("127.0.0.1:9301").await.unwrap();
            send(&mut client, b"SSH-2.0-flood\r\n").await;
            servers.push(accept(&held).await);
            flood.push(client);
        }
        // The sixth on the full policy is turned away at once…
        assert!(refused("127.0.0.1:9301".parse().unwrap()).await);
        daemon.wait_for_line("connections refused: limit reached").await;
        // …while the other policy serves as usual.
        let mut client = TcpStream::connect("127.0.0.1:9302").await.unwrap();
        send(&mut client, b"SSH-2.0-other\r\n").await;
        let mut server = accept(&other).await;
        assert_eq!(read_exact(&mut server, 15).await, b"SSH-2.0-other\r\n");
        // One closes: the policy takes a new one.
        drop(flood.pop());
        drop(servers.pop());
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            // Until the slot is back, a try may be reset (even at connect).
            let mut client = TcpStream::connect("127.0.0.1:9301").await.ok();
            if let Some(client) = &mut client {
                let _ = tokio::io::AsyncWriteExt::write_all(client, b"SSH-2.0-again\r\n").await;
            }
            if let Ok(Ok((mut server, _))) = tokio::time::timeout(Duration::from_millis(200), held.accept()).await {
                assert_eq!(read_exact(&mut server, 15).await, b"SSH-2.0-again\r\n");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the policy never took a connection again");
        }
        daemon.child.kill().await.unwrap();
    });
}

#[test]
fn max_detecting_bounds_a_silent_flood_and_max_connections_all() {
    in_netns(|| async {
        let daemon = Daemon::start(
            r#"{"address": ":0", "maxDetecting": 10, "maxConnections": 15, "protocols": [{"kind": "echo"}]}"#,
        )
        .await;
        let mut silent = Vec::new();
        for _ in 0..10 {
            silent.push(daemon.connect().await);
        }
        // Accepted in order: with ten in detection, the next is turned
        // away, even a real client.
        assert!(refused(daemon.addr).await, "an eleventh client in detection was let in");
        // Silent ones leaving free their slots; echo clients done with
        // detection do not hold one.
        drop(silent.drain(..5));
        let mut echoes = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        while echoes.len() < 5 {
            match echoed(daemon.addr).await {
                Some(client) => echoes.push(client),
                None => assert!(tokio::time::Instant::now() < deadline, "slots never came back"),
            }
        }
        // 5 silent + 5 echoing = 10 open; 5 more reach maxConnections 15.
        for i in 0..5 {
            echoes.push(echoed(daemon.addr).await.unwrap_or_else(|| panic!("client {i} under the limit refused")));
        }
        assert!(refused(daemon.addr).await, "a sixteenth connection was let in");
        daemon.stop().await;
    });
}

#[test]
fn sigterm_serves_the_queued_connections_cuts_the_open_at_shutdown_timeout_and_exits_0() {
    in_netns(|| async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf.json");
        let config = r#"{"address": "127.0.0.1:0", "control": "", "logStdout": true, "shutdownTimeout": 0.5, "protocols": [{"kind": "echo"}]}"#;
        std::fs::write(&path, config).unwrap();
        let mut daemon = Serve2d::spawn(&[], &path);
        let listen = daemon.listening_addr().await;
        daemon.wait_for_line("serving").await;
        let pid = daemon.pid() as i32;
        let mut open = TcpStream::connect(listen).await.unwrap();
        send(&mut open, b"ECHO open").await;
        assert_eq!(read_exact(&mut open, 9).await, b"ECHO open");
        // Queued while the daemon cannot run: handshakes done by the
        // kernel, bytes sent, nothing accepted yet.
        // SAFETY: signals to the child this test started.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        let mut queued = Vec::new();
        for i in 0..300 {
            let mut client = TcpStream::connect(listen).await.unwrap();
            send(&mut client, format!("ECHO {i:03}").as_bytes()).await;
            queued.push(client);
        }
        // SAFETY: as above.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
            libc::kill(pid, libc::SIGCONT);
        }
        for (i, client) in queued.iter_mut().enumerate() {
            assert_eq!(read_exact(client, 8).await, format!("ECHO {i:03}").as_bytes(), "queued client {i}");
        }
        // The open connection is cut once shutdownTimeout has passed…
        let cut = read_to_end(&mut open).await;
        assert!(cut.is_err() || cut.is_ok_and(|rest| rest.is_empty()));
        // …and the daemon exits 0.
        let status = tokio::time::timeout(WAIT, daemon.child.wait()).await.expect("exits").unwrap();
        assert_eq!(status.code(), Some(0));
    });
}
