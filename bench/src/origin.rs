//! The origins: the backends every benchmarked system forwards to, so every
//! system is measured against the same servers.

mod http;

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::OriginMode;
use crate::client::ORIGIN_BANNER;

/// Accept queue length asked for (the kernel caps it at somaxconn): the
/// connection-rate test must not be limited by the origin's queue.
const BACKLOG: u32 = 4096;

#[derive(Debug, Serialize)]
struct Ready {
    ready: SocketAddr,
}

/// Listens on `listen`, prints the ready line, and serves until killed.
pub async fn serve(listen: SocketAddr, mode: OriginMode) -> anyhow::Result<()> {
    let listener = bind(listen)?;
    crate::print_line(&Ready { ready: listener.local_addr()? })?;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(async move {
                    // A client going away mid-exchange is its own business.
                    let _ = match mode {
                        OriginMode::Banner => serve_banner(stream).await,
                        OriginMode::Http => http::serve(stream).await,
                    };
                });
            }
            // Out of descriptors or similar: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Reads the client's banner line, answers with ours, then drains until the
/// client closes (held connections stay open this way).
async fn serve_banner(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut seen = Vec::with_capacity(32);
    let mut chunk = [0u8; 256];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        seen.extend_from_slice(&chunk[..n]);
        if seen.windows(2).any(|w| w == b"\r\n") {
            break;
        }
    }
    drop(seen);
    stream.write_all(ORIGIN_BANNER).await?;
    while stream.read(&mut chunk).await? > 0 {}
    Ok(())
}
