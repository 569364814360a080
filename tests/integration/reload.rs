//! Hot reload: SIGHUP and `serve2d reload` swap the configuration with no
//! connection dropped or misrouted; a broken file changes nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::process::{Serve2d, binary};
use crate::support::*;

/// A backend that greets every connection with `tag\n`, then echoes.
async fn tagged_backend(tag: &'static str) -> String {
    let (listener, addr) = backend().await;
    tokio::spawn(serve_tagged(listener, tag));
    addr
}

async fn serve_tagged(listener: TcpListener, tag: &'static str) {
    while let Ok((mut stream, _)) = listener.accept().await {
        tokio::spawn(async move {
            if stream.write_all(format!("{tag}\n").as_bytes()).await.is_err() {
                return;
            }
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = stream.read(&mut buf).await {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Connects to `addr`, sends an SSH banner, returns the backend's tag.
async fn tag_of(addr: impl tokio::net::ToSocketAddrs) -> std::io::Result<String> {
    let mut client = TcpStream::connect(addr).await?;
    client.write_all(b"SSH-2.0-reload\r\n").await?;
    let mut tag = [0u8; 2];
    tokio::time::timeout(WAIT, client.read_exact(&mut tag))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no tag"))??;
    Ok(String::from_utf8_lossy(&tag[..1]).into_owned())
}

struct Daemon {
    dir: tempfile::TempDir,
    serve2d: Serve2d,
    /// The plain listener's address, if any.
    addr: Option<std::net::SocketAddr>,
}

impl Daemon {
    fn config_path(&self) -> PathBuf {
        self.dir.path().join("conf.json")
    }
    fn socket(&self) -> PathBuf {
        self.dir.path().join("control.sock")
    }
    fn write(&self, body: &str) {
        write_config(self.dir.path(), body);
    }
    async fn start(body: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        write_config(dir.path(), body);
        let mut serve2d = Serve2d::spawn(&[], &dir.path().join("conf.json"));
        let addr = if body.contains("\"address\"") { Some(serve2d.listening_addr().await) } else { None };
        serve2d.wait_for_line("serving").await;
        Daemon { dir, serve2d, addr }
    }
}

/// Writes `conf.json` in `dir` from a JSON object body, with a control
/// socket beside it.
fn write_config(dir: &Path, body: &str) {
    let control = json(dir.join("control.sock").to_string_lossy());
    std::fs::write(dir.join("conf.json"), format!(r#"{{"logStdout": true, "control": {control}, {body}}}"#)).unwrap();
}

async fn reload(socket: &Path) -> std::process::Output {
    let command = tokio::process::Command::new(binary()).arg("reload").arg("--socket").arg(socket).output();
    tokio::time::timeout(WAIT, command).await.expect("reload answers").unwrap()
}

fn plain(backend: &str) -> String {
    format!(r#""address": "127.0.0.1:0", "protocols": [{{"kind": "ssh", "conf": {{"target": {}}}}}]"#, json(backend))
}

#[test]
fn sighup_swaps_the_config_and_open_connections_keep_theirs() {
    in_netns(|| async {
        let (x, y) = (tagged_backend("x").await, tagged_backend("y").await);
        let mut daemon = Daemon::start(&plain(&x)).await;
        let addr = daemon.addr.unwrap();
        let mut open = TcpStream::connect(addr).await.unwrap();
        open.write_all(b"SSH-2.0-open\r\n").await.unwrap();
        assert_eq!(read_exact(&mut open, 2).await, b"x\n");
        daemon.write(&plain(&y));
        // SAFETY: a signal to the child this test started.
        unsafe { libc::kill(daemon.serve2d.pid() as i32, libc::SIGHUP) };
        daemon.serve2d.wait_for_line("reloaded").await;
        assert_eq!(tag_of(addr).await.unwrap(), "y");
        // The connection opened before still reaches its backend.
        open.write_all(b"still here").await.unwrap();
        // The banner's echo, then this: still the first backend's echo.
        assert_eq!(read_exact(&mut open, 24).await, b"SSH-2.0-open\r\nstill here");
        assert!(daemon.serve2d.child.try_wait().unwrap().is_none(), "SIGHUP must not end the daemon");
    });
}

#[test]
fn a_broken_file_or_a_fixed_key_changes_nothing_and_reload_says_why() {
    in_netns(|| async {
        let (x, y) = (tagged_backend("x").await, tagged_backend("y").await);
        let mut daemon = Daemon::start(&plain(&x)).await;
        let addr = daemon.addr.unwrap();
        std::fs::write(daemon.config_path(), "{\"address\": \"127.0.0.1:0\", \"protocols\": [}").unwrap();
        let output = reload(&daemon.socket()).await;
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("reload refused:") && stderr.contains("conf.json:1:"), "{stderr}");
        assert_eq!(tag_of(addr).await.unwrap(), "x");
        // `workers` needs a restart: refused by name.
        daemon.write(&format!(r#""workers": 7, {}"#, plain(&y)));
        let output = reload(&daemon.socket()).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("workers cannot change while running; restart serve2d"), "{stderr}");
        assert_eq!(tag_of(addr).await.unwrap(), "x");
        // A good file then goes through, and says so.
        daemon.write(&plain(&y));
        let output = reload(&daemon.socket()).await;
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(String::from_utf8_lossy(&output.stdout).contains("reloaded"));
        assert_eq!(tag_of(addr).await.unwrap(), "y");
        let line = daemon.serve2d.wait_for_line("reload requested").await;
        assert!(line.contains("requester=pid ") && line.contains(" uid 0"), "{line}");
    });
}

#[test]
fn only_root_or_the_daemons_own_user_may_reload() {
    in_netns(|| async {
        let x = tagged_backend("x").await;
        let daemon = Daemon::start(&plain(&x)).await;
        // Open the socket to everyone, so the credential check itself decides.
        std::fs::set_permissions(daemon.socket(), std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
        std::fs::set_permissions(daemon.dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let command = tokio::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(binary())
            .arg("reload")
            .arg("--socket")
            .arg(daemon.socket())
            .output();
        let output = tokio::time::timeout(WAIT, command).await.unwrap().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("uid 65534 may not reload this daemon"), "{stderr}");
    });
}

/// A steered configuration: `first` and `second` tag the two policies'
/// backends; `extra` steers port 9103 too, in the second policy.
fn steered(first: &str, second: &str, extra: bool) -> String {
    let route = |target: &str| format!(r#"[{{"kind": "ssh", "conf": {{"target": {}}}}}]"#, json(target));
    let more = if extra { r#", 9103"# } else { "" };
    format!(
        r#""steer": {{"ports": [9101, 9102{more}]}}, "protocols": {top}, "policies": [
            {{"name": "one", "ports": [9101], "protocols": {one}}},
            {{"name": "two", "ports": [9102{more}], "protocols": {two}}}
        ]"#,
        top = route(first),
        one = route(first),
        two = route(second),
    )
}

#[test]
fn a_hundred_reloads_under_load_move_ports_without_a_failed_or_misrouted_connection() {
    in_netns(|| async {
        let (x, y) = (tagged_backend("x").await, tagged_backend("y").await);
        let daemon = Daemon::start(&steered(&x, &y, false)).await;
        // A long-lived connection relays throughout.
        let mut open = TcpStream::connect("127.0.0.1:9101").await.unwrap();
        open.write_all(b"SSH-2.0-long\r\n").await.unwrap();
        assert_eq!(read_exact(&mut open, 2).await, b"x\n");
        assert_eq!(read_exact(&mut open, 14).await, b"SSH-2.0-long\r\n");
        // Load: connections on both ports, each must reach one of the two
        // backends its port has under either configuration.
        let (stop, failures, served) =
            (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut load = Vec::new();
        for port in [9101u16, 9102] {
            let (stop, failures, served) = (stop.clone(), failures.clone(), served.clone());
            load.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match tag_of(("127.0.0.1", port)).await {
                        Ok(tag) if tag == "x" || tag == "y" => served.fetch_add(1, Ordering::Relaxed),
                        _ => failures.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }));
        }
        let started = std::time::Instant::now();
        for i in 0..100 {
            let swapped = i % 2 == 0;
            let body = if swapped { steered(&y, &x, true) } else { steered(&x, &y, false) };
            daemon.write(&body);
            let answer = serve2::control::request_reload(&daemon.socket()).await.unwrap();
            assert!(answer.ok, "reload {i}: {}", answer.message);
            // Connections accepted after the swap see only the new config.
            let (one, two) = if swapped { ("y", "x") } else { ("x", "y") };
            assert_eq!(tag_of("127.0.0.1:9101").await.unwrap(), one, "reload {i}");
            assert_eq!(tag_of("127.0.0.1:9102").await.unwrap(), two, "reload {i}");
            match tag_of("127.0.0.1:9103").await {
                Ok(tag) => assert!(swapped && tag == "x", "reload {i}: 9103 reached {tag}"),
                Err(e) => assert!(!swapped && e.kind() == std::io::ErrorKind::ConnectionRefused, "reload {i}: {e}"),
            }
            open.write_all(b"ping").await.unwrap();
            assert_eq!(read_exact(&mut open, 4).await, b"ping", "the open connection flows (reload {i})");
        }
        let elapsed = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        for task in load {
            task.await.unwrap();
        }
        let (failed, ok) = (failures.load(Ordering::Relaxed), served.load(Ordering::Relaxed));
        eprintln!("100 reloads in {elapsed:?}; {ok} connections served under load, {failed} failed or misrouted");
        assert_eq!(failed, 0);
        assert!(ok > 100, "the load generator ran ({ok})");
    });
}
