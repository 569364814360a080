//! Every proxy over real sockets in a fresh network namespace: the first
//! bytes are replayed, the reply relayed, half-closes passed on, bulk data
//! relayed intact both ways, and a refused backend ends the client's
//! connection instead of hanging it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::thread;
use std::time::Duration;

use uring_experiment::uring::EngineOptions;
use uring_experiment::{bind_group_for, epoll, hybrid, uring};

/// Upper bound on any single blocking read or write; never a sleep.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
enum Kind {
    Epoll,
    Uring,
    UringPlain,
    UringPlainSyncShutdown,
    Hybrid,
}

const KINDS: [Kind; 5] = [Kind::Epoll, Kind::Uring, Kind::UringPlain, Kind::UringPlainSyncShutdown, Kind::Hybrid];

/// Moves this thread (and the threads it starts) into a new network
/// namespace with `lo` up; false (and why, printed) if that cannot be done.
fn enter_fresh_netns() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "a fresh network namespace needs root");
        eprintln!("SKIPPED: not root: a fresh network namespace needs CAP_SYS_ADMIN");
        return false;
    }
    // SAFETY: unshare only changes this thread's namespace membership.
    assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare: {}", std::io::Error::last_os_error());
    let status = Command::new("ip").args(["link", "set", "lo", "up"]).status().expect("run ip");
    assert!(status.success(), "ip link set lo up");
    true
}

/// Starts a proxy of `kind` on 127.0.0.1:0 towards `target`, two workers.
fn start(kind: Kind, target: SocketAddr) -> SocketAddr {
    let listeners = bind_group_for("127.0.0.1:0".parse().unwrap(), 2).unwrap();
    let addr = listeners[0].local_addr().unwrap();
    // Serves until the test process exits.
    thread::spawn(move || match kind {
        Kind::Epoll => epoll::serve(listeners, target),
        Kind::Uring => uring::serve(listeners, target, options(true, false)),
        Kind::UringPlain => uring::serve(listeners, target, options(false, false)),
        Kind::UringPlainSyncShutdown => uring::serve(listeners, target, options(false, true)),
        Kind::Hybrid => hybrid::serve(listeners, target),
    });
    addr
}

fn options(direct: bool, sync_shutdown: bool) -> EngineOptions {
    EngineOptions { direct, defer_taskrun: direct, hand_off: false, sync_shutdown }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}

fn accept(listener: &TcpListener) -> TcpStream {
    let (stream, _) = listener.accept().unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}

#[test]
fn banner_exchange_replays_relays_and_passes_half_closes() {
    if !enter_fresh_netns() {
        return;
    }
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    for kind in KINDS {
        let proxy = start(kind, backend.local_addr().unwrap());
        let mut client = connect(proxy);
        client.write_all(b"SSH-2.0-test\r\n").unwrap();
        let mut origin = accept(&backend);
        let mut banner = [0u8; 14];
        origin.read_exact(&mut banner).unwrap();
        assert_eq!(&banner, b"SSH-2.0-test\r\n", "{kind:?}: replayed bytes");
        origin.write_all(b"SSH-2.0-origin\r\n").unwrap();
        let mut reply = [0u8; 16];
        client.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"SSH-2.0-origin\r\n", "{kind:?}: relayed reply");
        // The client's end of stream reaches the backend, whose later
        // bytes still reach the client.
        client.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        origin.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "{kind:?}: nothing after the banner");
        origin.write_all(b"bye").unwrap();
        drop(origin);
        let mut tail = Vec::new();
        client.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, b"bye", "{kind:?}: bytes after the client's half-close");
    }
}

#[test]
fn bulk_data_is_relayed_intact_both_ways() {
    if !enter_fresh_netns() {
        return;
    }
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    // Not a multiple of the relay buffer, with a pattern that shows reordering.
    let payload: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i: u32| (i % 251) as u8).collect();
    for kind in KINDS {
        let proxy = start(kind, backend.local_addr().unwrap());
        let client = connect(proxy);
        let mut sender = client.try_clone().unwrap();
        let upload = payload.clone();
        let writer = thread::spawn(move || {
            sender.write_all(&upload).unwrap();
            sender.shutdown(Shutdown::Write).unwrap();
        });
        let mut origin = accept(&backend);
        // The backend echoes everything back, then closes.
        let echo = thread::spawn(move || {
            let mut received = Vec::new();
            origin.read_to_end(&mut received).unwrap();
            origin.write_all(&received).unwrap();
            received
        });
        let mut echoed = Vec::new();
        (&client).read_to_end(&mut echoed).unwrap();
        writer.join().unwrap();
        let received = echo.join().unwrap();
        assert!(received == payload, "{kind:?}: upload of {} bytes arrived as {}", payload.len(), received.len());
        assert!(echoed == payload, "{kind:?}: download of {} bytes arrived as {}", payload.len(), echoed.len());
    }
}

#[test]
fn refused_backend_ends_the_client_connection() {
    if !enter_fresh_netns() {
        return;
    }
    // A port nothing listens on: bound, then closed.
    let refused = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    for kind in KINDS {
        let proxy = start(kind, refused);
        let mut client = connect(proxy);
        client.write_all(b"SSH-2.0-test\r\n").unwrap();
        let mut rest = Vec::new();
        // End of stream or a reset, but no timeout.
        match client.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "{kind:?}: bytes from nowhere"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{kind:?}: {e}"),
        }
    }
}
