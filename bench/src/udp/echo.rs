//! `udp-echo`: the UDP origin. One thread sends every datagram back to its
//! sender, a batch at a time.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use serde::Serialize;

use super::batch::Batch;

/// Datagrams taken per `recvmmsg`.
const BATCH: usize = 64;

#[derive(Debug, Serialize)]
struct Ready {
    ready: SocketAddr,
}

/// Binds `listen`, prints the ready line, and echoes until killed.
pub fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let socket = UdpSocket::bind(listen)?;
    crate::print_line(&Ready { ready: socket.local_addr()? })?;
    let fd = socket.as_raw_fd();
    let mut batch = Batch::new(BATCH, 65536, true);
    loop {
        match batch.recv(fd) {
            // A sender gone (ICMP unreachable) is its own business.
            Ok(n) => {
                let _ = batch.echo(fd, n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
