//! UDP scaffolding: serve2 serving UDP in this process on a `127.0.0.1:0`
//! socket (its control socket in a temporary folder, for status), UDP
//! backends that answer with a tag, and bounded waits.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serve2::Config;
use serve2::config::ListenAddress;
use serve2::udp::UdpStatus;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::WAIT;

/// serve2 serving UDP flows in this process.
pub struct UdpDaemon {
    /// Where clients send.
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl UdpDaemon {
    /// Serves the configuration object `body` (without braces; its
    /// `udpAddress` is set here) on a socket bound to `bind`.
    pub async fn start_at(body: &str, bind: &str) -> UdpDaemon {
        Self::start_with_workers(body, bind, 1).await
    }

    /// [`UdpDaemon::start_at`] with `workers` UDP threads, each serving one
    /// socket of a SO_REUSEPORT group on `bind`.
    pub async fn start_with_workers(body: &str, bind: &str, workers: usize) -> UdpDaemon {
        let dir = tempfile::tempdir().expect("temporary folder");
        let control = dir.path().join("control.sock");
        let text = format!(
            r#"{{"udpAddress": "{bind}", "workers": {workers}, "shutdownTimeout": 0.05, "control": {}, {body}}}"#,
            super::json(control.to_string_lossy())
        );
        let config = Config::parse(Path::new("test.json"), &text).unwrap_or_else(|e| panic!("{e}"));
        let address = serve2::config::parse_listen_address(bind).expect("bind address");
        let sockets = if workers == 1 {
            vec![serve2::udp::socket::bind(&address).expect("bind udp")]
        } else {
            serve2::udp::group::bind_group(&address, workers).expect("bind udp group")
        };
        let local = sockets[0].local_addr().expect("local addr");
        let addr = match address {
            ListenAddress::AllInterfaces(_) => SocketAddr::from(([127, 0, 0, 1], local.port())),
            ListenAddress::Addr(_) => local,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            serve2::daemon::run_with_sockets(config, Vec::new(), sockets, stopped).await.expect("daemon runs");
        });
        let daemon = UdpDaemon { addr, dir, stop: Some(stop), task };
        daemon.wait_for_control().await;
        daemon
    }

    /// [`UdpDaemon::start_at`] on `127.0.0.1:0`.
    pub async fn start(body: &str) -> UdpDaemon {
        Self::start_at(body, "127.0.0.1:0").await
    }

    fn control(&self) -> PathBuf {
        self.dir.path().join("control.sock")
    }

    async fn wait_for_control(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while serve2::control::query(&self.control()).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "the control socket never answered");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The `udp` part of `serve2d status`.
    pub async fn status(&self) -> UdpStatus {
        serve2::control::query(&self.control()).await.expect("status").udp.expect("a udp section")
    }

    /// Polls status until `done` holds, within [`WAIT`]; returns it.
    pub async fn status_until(&self, what: &str, done: impl Fn(&UdpStatus) -> bool) -> UdpStatus {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let status = self.status().await;
            if done(&status) {
                return status;
            }
            assert!(tokio::time::Instant::now() < deadline, "status never showed {what}: {status:#?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops serving (every flow ends) and waits for the daemon.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(WAIT, &mut self.task).await.expect("daemon stops").expect("daemon task");
    }
}

/// The named block's status line.
pub fn policy<'s>(status: &'s UdpStatus, name: &str) -> &'s serve2::udp::stats::UdpPolicyStatus {
    status.policies.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no policy {name}: {status:#?}"))
}

/// A UDP backend on a fresh loopback port: answers every datagram with
/// `tag:` and the datagram, and reports what it received.
pub struct UdpBackend {
    /// Its `host:port`, for `target`.
    pub addr: String,
    received: mpsc::UnboundedReceiver<(Vec<u8>, SocketAddr)>,
}

impl UdpBackend {
    pub async fn start(tag: &'static str) -> UdpBackend {
        Self::start_answering(tag, true).await
    }

    /// A backend that answers only when `answer` is set (a server that
    /// never replies, for idle timeouts).
    pub async fn start_answering(tag: &'static str, answer: bool) -> UdpBackend {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind backend");
        let addr = socket.local_addr().expect("addr").to_string();
        let (tx, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 65_536];
            while let Ok((n, from)) = socket.recv_from(&mut buffer).await {
                let data = buffer[..n].to_vec();
                if answer {
                    let reply = [tag.as_bytes(), b":", &data].concat();
                    let _ = socket.send_to(&reply, from).await;
                }
                if tx.send((data, from)).is_err() {
                    return;
                }
            }
        });
        UdpBackend { addr, received }
    }

    /// The next datagram it received and where from, within [`WAIT`].
    pub async fn next(&mut self) -> (Vec<u8>, SocketAddr) {
        tokio::time::timeout(WAIT, self.received.recv()).await.expect("the backend gets a datagram").expect("open")
    }
}

/// A client socket on loopback (`bind`: `127.0.0.1:0`, `[::1]:0`…).
pub async fn client_at(bind: &str) -> UdpSocket {
    UdpSocket::bind(bind).await.expect("bind client")
}

/// A client socket on `127.0.0.1:0`.
pub async fn client() -> UdpSocket {
    client_at("127.0.0.1:0").await
}

/// Receives one datagram within [`WAIT`]: (data as text, sender).
pub async fn receive(socket: &UdpSocket) -> (String, SocketAddr) {
    let mut buffer = vec![0u8; 65_536];
    let (n, from) =
        tokio::time::timeout(WAIT, socket.recv_from(&mut buffer)).await.expect("a reply in time").expect("recv");
    (String::from_utf8_lossy(&buffer[..n]).into_owned(), from)
}

/// Sends `data` to `to` and returns the reply, asserting it came from
/// exactly `to`.
pub async fn exchange(socket: &UdpSocket, to: SocketAddr, data: &str) -> String {
    socket.send_to(data.as_bytes(), to).await.expect("send");
    let (reply, from) = receive(socket).await;
    assert_eq!(from, to, "the reply must come from the address and port the client sent to");
    reply
}

/// A loopback UDP port nothing is bound to now (bound and released: for
/// peers that cannot be given `:0`).
pub fn free_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr").port()
}
