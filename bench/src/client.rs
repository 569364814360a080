//! The client side every load generator shares: spreading source addresses,
//! connecting, and the SSH banner exchange that proves the connection reached
//! the banner origin.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout};

/// What the clients send: an SSH client banner.
pub const CLIENT_BANNER: &[u8] = b"SSH-2.0-bench\r\n";
/// What the banner origin answers; anything else means a misroute.
pub const ORIGIN_BANNER: &[u8] = b"SSH-2.0-origin\r\n";
/// Longest a single connection may take, so a stuck peer cannot hang a run.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(5);
/// Longest banner line read before giving up on finding its end.
const MAX_LINE: usize = 256;

/// Source address number `n` of 127.0.0.2..=127.0.0.254: each has its own
/// ephemeral port range, so fast loops neither run out of ports nor collide
/// with their own TIME_WAIT sockets.
pub fn source_ip(n: usize) -> Ipv4Addr {
    // n % 253 < 253, so the last octet stays within 2..=254.
    Ipv4Addr::new(127, 0, 0, 2 + (n % 253) as u8)
}

/// Connects to `target` with TCP_NODELAY set; to an IPv4 loopback target,
/// from source address number `n` (other targets use the routed source).
pub async fn connect(n: usize, target: SocketAddr) -> io::Result<TcpStream> {
    let socket = if target.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if target.is_ipv4() && target.ip().is_loopback() {
        socket.bind(SocketAddr::new(source_ip(n).into(), 0))?;
    }
    let stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// How a banner exchange went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// The banner origin answered.
    Origin,
    /// Something else answered: the connection went to the wrong backend.
    Misrouted,
}

/// Sends the client banner and reads one line back. Returns which peer
/// answered and when the first reply byte arrived.
pub async fn exchange(stream: &mut TcpStream) -> io::Result<(Reply, Instant)> {
    stream.write_all(CLIENT_BANNER).await?;
    let mut line = Vec::with_capacity(64);
    let mut chunk = [0u8; 64];
    let mut first_byte = None;
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            if line.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            break;
        }
        first_byte.get_or_insert_with(Instant::now);
        line.extend_from_slice(&chunk[..n]);
        if line.windows(2).any(|w| w == b"\r\n") || line.len() >= MAX_LINE {
            break;
        }
    }
    let reply = if line == ORIGIN_BANNER { Reply::Origin } else { Reply::Misrouted };
    Ok((reply, first_byte.unwrap_or_else(Instant::now)))
}

/// Connects from source address number `n` and does the banner exchange,
/// all within [`CONNECTION_DEADLINE`].
pub async fn connect_and_exchange(n: usize, target: SocketAddr) -> io::Result<(TcpStream, Reply)> {
    let attempt = async {
        let mut stream = connect(n, target).await?;
        let (reply, _) = exchange(&mut stream).await?;
        Ok((stream, reply))
    };
    timeout(CONNECTION_DEADLINE, attempt).await.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// Connects from source address number `n`, does the banner exchange and
/// closes, within [`CONNECTION_DEADLINE`]; returns who answered and the time
/// from just before connect() to the first reply byte.
pub async fn timed_exchange(n: usize, target: SocketAddr) -> io::Result<(Reply, Duration)> {
    let attempt = async {
        let started = Instant::now();
        let mut stream = connect(n, target).await?;
        let (reply, first_byte) = exchange(&mut stream).await?;
        Ok((reply, first_byte.duration_since(started)))
    };
    timeout(CONNECTION_DEADLINE, attempt).await.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// Counts of how connections ended, shared by the generators' reports.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Tally {
    pub ok: u64,
    pub errors: u64,
    pub misroutes: u64,
    /// Errors by kind ("TimedOut", "ConnectionReset"…), to tell why.
    pub error_kinds: BTreeMap<String, u64>,
}

impl Tally {
    pub fn record(&mut self, result: &io::Result<Reply>) {
        match result {
            Ok(Reply::Origin) => self.ok += 1,
            Ok(Reply::Misrouted) => self.misroutes += 1,
            Err(e) => self.error(format!("{:?}", e.kind())),
        }
    }

    /// Counts an error of `kind` (an `io::ErrorKind` name, say).
    pub fn error(&mut self, kind: String) {
        self.errors += 1;
        *self.error_kinds.entry(kind).or_default() += 1;
    }

    pub fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.misroutes += other.misroutes;
        for (kind, count) in other.error_kinds {
            *self.error_kinds.entry(kind).or_default() += count;
        }
    }
}
