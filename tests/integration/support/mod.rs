//! Shared test scaffolding: a fresh network namespace per test, an
//! in-process daemon on a `:0` port, certificates, small backends.

pub mod certs;
pub mod process;
pub mod udp;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serve2::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Upper bound for any single wait in a test; generous, never a sleep.
pub const WAIT: Duration = Duration::from_secs(10);

/// Moves the calling thread into a new network namespace with `lo` up.
/// Each test runs on its own thread, so each gets its own namespace and
/// never touches the host's network.
pub fn enter_fresh_netns() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root: a fresh network namespace needs CAP_SYS_ADMIN".into());
    }
    // SAFETY: unshare only changes this thread's namespace membership.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!("unshare(CLONE_NEWNET): {}", std::io::Error::last_os_error()));
    }
    // A child forked from this thread lives in its namespace.
    ip(&["link", "set", "lo", "up"]);
    Ok(())
}

/// Runs `ip ARGS` in the current thread's namespace; panics on failure.
pub fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip (iproute2)");
    assert!(status.success(), "ip {args:?} failed");
}

/// Whether a test that cannot run must fail instead of skipping: under CI
/// (`CI=true`) and `cargo xtask test` (`SERVE2_REQUIRE_PEERS`), where root
/// and every peer are there by construction.
pub fn skips_fail() -> bool {
    std::env::var_os("SERVE2_REQUIRE_PEERS").is_some() || std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Runs `test` on a current-thread runtime in a fresh network namespace,
/// or prints why it is skipped.
pub fn in_netns<F, Fut>(test: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    if let Err(reason) = enter_fresh_netns() {
        assert!(!skips_fail(), "cannot run a network test: {reason}");
        eprintln!("SKIPPED: {reason}");
        return;
    }
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info").try_init();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), test()).await.expect("test took over 60 s");
    });
}

/// serve2 running in this process on `127.0.0.1:0`.
pub struct Daemon {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Daemon {
    /// Starts serving the configuration text (its `address` is ignored; its
    /// policies apply by the listener's port, as on a steered port).
    /// `SERVE2_TEST_RELAY=splice|copy` overrides the relay mode of
    /// configurations that do not set one, to run a suite against a mode.
    pub async fn start(config: &str) -> Daemon {
        Self::start_at(config, "127.0.0.1:0").await
    }

    /// Like [`Daemon::start`], listening on `bind`: the real daemon
    /// (`serve2::run_with`: policies by local port, routes, limits), one
    /// worker, without kernel steering.
    pub async fn start_at(config: &str, bind: &str) -> Daemon {
        let config = with_test_defaults(config);
        let config = Config::parse(Path::new("test.json"), &config).unwrap_or_else(|e| panic!("{e}"));
        let address = serve2::config::ListenAddress::Addr(bind.parse().expect("bind address"));
        let listener = serve2::listener::bind_group(&address, 1).expect("bind").remove(0);
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            serve2::run_with(config, vec![listener], stopped).await.expect("daemon runs");
        });
        Daemon { addr, stop: Some(stop), task }
    }

    pub async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.expect("connect to daemon")
    }

    /// Stops accepting and waits for the server to return.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(WAIT, &mut self.task).await.expect("server stops").expect("server task");
    }
}

/// Fills in what tests want unless the configuration says otherwise: one
/// worker, no control socket, a short shutdown (tests leave clients open),
/// and the relay mode of `SERVE2_TEST_RELAY`.
fn with_test_defaults(config: &str) -> String {
    let mut value: serde_json::Value = serde_json::from_str(config).expect("test config is JSON");
    if let Some(object) = value.as_object_mut() {
        object.entry("workers").or_insert(1.into());
        object.entry("control").or_insert("".into());
        object.entry("shutdownTimeout").or_insert(0.05.into());
        if let Ok(mode) = std::env::var("SERVE2_TEST_RELAY") {
            object.entry("relay").or_insert(serde_json::Value::String(mode));
        }
    }
    value.to_string()
}

/// A listener on a fresh loopback port and its `host:port`.
pub async fn backend() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind backend");
    let addr = listener.local_addr().expect("addr").to_string();
    (listener, addr)
}

/// A `host:port` on loopback where nothing listens (connections refused).
pub async fn refusing_address() -> String {
    let (listener, addr) = backend().await;
    drop(listener);
    addr
}

/// Accepts one connection within [`WAIT`].
pub async fn accept(listener: &TcpListener) -> TcpStream {
    tokio::time::timeout(WAIT, listener.accept()).await.expect("backend gets a connection").expect("accept").0
}

/// Reads exactly `n` bytes within [`WAIT`].
pub async fn read_exact(stream: &mut (impl AsyncReadExt + Unpin), n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    tokio::time::timeout(WAIT, stream.read_exact(&mut buf)).await.expect("bytes arrive in time").expect("read");
    buf
}

/// Reads until end-of-stream within [`WAIT`].
pub async fn read_to_end(stream: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut buf)).await.expect("stream ends in time")?;
    Ok(buf)
}

/// Writes all of `bytes`.
pub async fn send(stream: &mut (impl AsyncWriteExt + Unpin), bytes: &[u8]) {
    stream.write_all(bytes).await.expect("write");
}

/// Closes `stream` with a reset instead of a FIN.
pub fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)).expect("SO_LINGER 0");
    drop(stream);
}

/// Asserts that reading from `stream` ends in a reset within [`WAIT`].
pub async fn assert_reset(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut buf)).await.expect("reset arrives in time") {
            Ok(0) => panic!("clean end-of-stream where a reset was expected"),
            Ok(_) => continue,
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
                return;
            }
        }
    }
}

/// Asserts the peer closed `stream` (end-of-stream or reset) within [`WAIT`],
/// after sending nothing.
pub async fn assert_closed_silently(stream: &mut TcpStream) {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(WAIT, stream.read(&mut buf)).await.expect("closed in time") {
        Ok(0) => {}
        Ok(n) => panic!("unexpected {n} bytes: {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}

/// JSON-quotes a string for splicing into a configuration.
pub fn json(s: impl AsRef<str>) -> String {
    serde_json::to_string(s.as_ref()).expect("string")
}

/// The tools a real-peer test needs, or why it cannot run. Missing tools
/// fail the test when `SERVE2_REQUIRE_PEERS` is set (as `cargo xtask test`
/// does after installing them) and skip it otherwise.
pub fn peers_available(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|tool| !Path::new(tool).exists()).collect();
    if missing.is_empty() {
        return true;
    }
    assert!(!skips_fail(), "missing {missing:?} (cargo xtask setup installs them)");
    eprintln!("SKIPPED: missing {missing:?}");
    false
}

/// Waits (bounded by [`WAIT`]) until something listens on TCP `port` in
/// this namespace: for peers that print nothing when ready.
pub async fn wait_listening(port: u16) {
    let needle = format!(":{port:04X} ");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let listening = ["/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"].iter().any(|table| {
            std::fs::read_to_string(table).unwrap_or_default().lines().any(|row| {
                row.split_whitespace().nth(1).is_some_and(|l| l.ends_with(needle.trim_end()))
                    && row.split_whitespace().nth(3) == Some("0A")
            })
        });
        if listening {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "nothing listens on port {port}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A loopback port nothing listens on now (bound and released: for peers
/// that cannot be given `:0`).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}
