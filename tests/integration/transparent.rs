//! `transparent`: serve2 connects to the backend from the client's own
//! address. Three network namespaces: the client's, serve2's (this test
//! thread's) and the backend's, joined by veth pairs; the backend's replies
//! to the client's address come back to serve2's namespace, where the
//! README's policy route delivers them locally to serve2's transparent socket.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use crate::support::*;

const BANNER: &[u8] = include_bytes!("../fixtures/openssh-client-banner.bin");

/// A named network namespace, deleted when dropped.
pub(crate) struct NamedNetns(pub(crate) String);

impl NamedNetns {
    pub(crate) fn new(role: &str) -> NamedNetns {
        let name = format!("serve2-test-{}-{role}", std::process::id());
        ip(&["netns", "add", &name]);
        NamedNetns(name)
    }

    /// Runs `f` on a thread inside this namespace: sockets it creates stay
    /// there after the thread is gone.
    pub(crate) fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let file = std::fs::File::open(format!("/run/netns/{}", self.0)).expect("netns file");
        std::thread::spawn(move || {
            // SAFETY: setns moves only this new thread into the namespace.
            let entered = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(entered, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("thread in netns")
    }

    pub(crate) fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", self.0.as_str()];
        full.extend_from_slice(args);
        ip(&full);
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn the_backend_sees_the_clients_own_address() {
    in_netns(|| async {
        let client_ns = NamedNetns::new("client");
        let backend_ns = NamedNetns::new("backend");
        // serve2's namespace (this thread's): 10.77.1.1 towards the client,
        // 10.77.2.1 towards the backend.
        ip(&["link", "add", "c0", "type", "veth", "peer", "name", "c1", "netns", &client_ns.0]);
        ip(&["link", "add", "b0", "type", "veth", "peer", "name", "b1", "netns", &backend_ns.0]);
        for (dev, addr) in [("c0", "10.77.1.1/24"), ("b0", "10.77.2.1/24")] {
            ip(&["addr", "add", addr, "dev", dev]);
            ip(&["link", "set", dev, "up"]);
        }
        for (ns, dev, addr, via) in
            [(&client_ns, "c1", "10.77.1.2/24", "10.77.1.1"), (&backend_ns, "b1", "10.77.2.2/24", "10.77.2.1")]
        {
            ns.ip(&["link", "set", "lo", "up"]);
            ns.ip(&["addr", "add", addr, "dev", dev]);
            ns.ip(&["link", "set", dev, "up"]);
            ns.ip(&["route", "add", "default", "via", via]);
        }
        // The routing set-up of the README: what comes back from the backend
        // for a client address is delivered locally, to serve2's socket.
        ip(&["rule", "add", "iif", "b0", "lookup", "100"]);
        ip(&["route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100"]);

        let backend = backend_ns.run(|| std::net::TcpListener::bind("10.77.2.2:0").expect("bind backend"));
        backend.set_nonblocking(true).unwrap();
        let backend = tokio::net::TcpListener::from_std(backend).unwrap();
        let backend_addr = backend.local_addr().unwrap();
        let config = format!(
            r#"{{"address": ":0", "protocols": [{{"kind": "ssh", "conf": {{"target": "{backend_addr}", "transparent": true}}}}]}}"#
        );
        let daemon = Daemon::start_at(&config, "10.77.1.1:0").await;
        let daemon_addr = daemon.addr;
        let socket = client_ns.run(|| {
            let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
            socket.set_nonblocking(true).expect("nonblocking");
            socket
        });
        let mut client = tokio::net::TcpSocket::from_std_stream(socket.into()).connect(daemon_addr).await.unwrap();
        let client_addr: SocketAddr = client.local_addr().unwrap();
        assert_eq!(client_addr.ip().to_string(), "10.77.1.2");
        send(&mut client, BANNER).await;
        let (mut server, seen) = tokio::time::timeout(WAIT, backend.accept()).await.expect("backend reached").unwrap();
        assert_eq!(seen.ip(), client_addr.ip(), "the backend sees the client's address");
        assert_eq!(read_exact(&mut server, BANNER.len()).await, BANNER);
        send(&mut server, b"SSH-2.0-backend\r\n").await;
        assert_eq!(read_exact(&mut client, 17).await, b"SSH-2.0-backend\r\n");
        daemon.stop().await;
    });
}
