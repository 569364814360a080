//! How replies reach the client from exactly the address and port it sent
//! to.
//!
//! - On `udpAddress` the daemon's own socket is bound to that port; a reply
//!   leaves through it with the dialled address as source (IP_PKTINFO), so
//!   a wildcard bind on a host with several addresses still answers from
//!   the right one.
//! - On a steered port the daemon's socket is bound to port 0, so each
//!   dialled address:port gets one unconnected socket bound there, shared by
//!   all its flows and closed with the last of them; replies are `sendto`
//!   the client. Inbound datagrams still arrive on the daemon's socket: the
//!   kernel finds no connected socket for them and the steering program
//!   assigns the daemon's socket before the unconnected lookup could pick
//!   this one. Should steering stop (detached, or the daemon's heartbeat
//!   stale), the kernel delivers the port's datagrams to this socket
//!   instead; they are read and handled as if they came the usual way.
//! - With several workers, each worker's dispatcher binds its own reply
//!   socket for a dialled address:port its flows use (SO_REUSEADDR on all
//!   of them lets them share it). While steering assigns, none of them
//!   receives anything: the kernel's UDP lookup (`__udp4_lib_lookup`,
//!   `__udp6_lib_lookup`) takes a *connected* socket first, then the
//!   sk_lookup program's choice — the daemon's SO_REUSEPORT group, where
//!   the 4-tuple hash sends a client to the same worker every time — and
//!   only without one the best unconnected match, a reply socket. So a
//!   stray never reaches a worker that does not own its flow while
//!   steering is attached. Once it is not (shutdown, a stale heartbeat),
//!   the kernel hands a dialled address's datagrams to one of the reply
//!   sockets bound there, whichever worker's it is: a flow of another
//!   worker then starts afresh on this one (a new backend socket), once.
//!
//! docs/ARCHITECTURE.md ("UDP") has the measurements behind this choice
//! over one connected socket per flow.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Weak};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::mmsg::Destination;

/// A datagram that arrived on a reply socket: (data, client, dialled).
pub(super) type Stray = (Vec<u8>, SocketAddr, SocketAddr);

/// How a flow's replies leave.
#[derive(Debug, Clone)]
pub(super) enum ReplyPath {
    /// Through the daemon's socket, from `from` (the dialled address).
    Main { socket: Arc<UdpSocket>, ipv6_socket: bool, from: IpAddr },
    /// Through the socket bound to the dialled address:port.
    Bound(Arc<ReplySocket>),
}

impl ReplyPath {
    /// Sends `datagrams` to `to` in order, a batch per system call, without
    /// waiting; returns how many were refused (dropped).
    pub fn send_batch(&self, datagrams: &[&[u8]], to: SocketAddr) -> usize {
        // SAFETY: an all-zero sockaddr_storage is a valid (AF_UNSPEC) value.
        let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        match self {
            ReplyPath::Main { socket, ipv6_socket, from } => {
                let name_len = super::socket::write_socket_addr(&mut name, to, *ipv6_socket);
                let Ok((control, control_len)) = super::socket::source_control(*from) else {
                    return datagrams.len();
                };
                let to = Destination { name: Some((&name, name_len)), control: Some(&control), control_len };
                super::mmsg::send_all(socket.as_raw_fd(), datagrams, to)
            }
            ReplyPath::Bound(reply) => {
                let ipv6_socket = reply.socket.local_addr().is_ok_and(|a| a.is_ipv6());
                let name_len = super::socket::write_socket_addr(&mut name, to, ipv6_socket);
                let to = Destination { name: Some((&name, name_len)), ..Destination::CONNECTED };
                super::mmsg::send_all(reply.socket.as_raw_fd(), datagrams, to)
            }
        }
    }
}

/// A socket bound to one dialled address:port; its reader stops with it.
#[derive(Debug)]
pub(super) struct ReplySocket {
    socket: Arc<UdpSocket>,
    reader: AbortHandle,
}

impl Drop for ReplySocket {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The reply sockets of a steered server, by dialled address:port.
#[derive(Debug)]
pub(super) struct ReplySockets {
    bound: HashMap<SocketAddr, Weak<ReplySocket>>,
    strays: mpsc::Sender<Stray>,
}

impl ReplySockets {
    /// Datagrams arriving on reply sockets go to `strays`.
    pub fn new(strays: mpsc::Sender<Stray>) -> Self {
        Self { bound: HashMap::new(), strays }
    }

    /// The socket for `dialled`, bound now if no flow holds one.
    pub fn for_dialled(&mut self, dialled: SocketAddr) -> io::Result<Arc<ReplySocket>> {
        if let Some(socket) = self.bound.get(&dialled).and_then(Weak::upgrade) {
            return Ok(socket);
        }
        let socket = Arc::new(UdpSocket::from_std(super::socket::bind_reply(dialled)?)?);
        let reader = tokio::spawn(read_strays(socket.clone(), dialled, self.strays.clone())).abort_handle();
        let reply = Arc::new(ReplySocket { socket, reader });
        self.bound.insert(dialled, Arc::downgrade(&reply));
        Ok(reply)
    }

    /// Forgets the sockets no flow holds any more.
    pub fn prune(&mut self) {
        self.bound.retain(|_, socket| socket.strong_count() > 0);
    }
}

/// Hands what arrives on a reply socket to the dispatcher (see the module
/// docs: only when steering is not in the way).
async fn read_strays(socket: Arc<UdpSocket>, dialled: SocketAddr, strays: mpsc::Sender<Stray>) {
    loop {
        if socket.readable().await.is_err() {
            return;
        }
        let received = super::socket::with_receive_buffer(|buffer| {
            let (n, client) = socket.try_recv_from(buffer)?;
            Ok::<_, io::Error>((buffer[..n].to_vec(), super::socket::canonical(client)))
        });
        match received {
            Ok((data, client)) => {
                if strays.try_send((data, client, dialled)).is_err() {
                    tracing::debug!(%dialled, "udp: dispatcher busy, stray datagram dropped");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => tracing::debug!(%dialled, error = %e, "udp: reply socket"),
        }
    }
}
