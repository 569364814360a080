//! The tokio relay shared by [`crate::epoll`] and [`crate::hybrid`]: a plain
//! read/write loop per direction, so both measure the same relay.

use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Relays between `client` and `backend` until both directions ended (or
/// one failed), then closes both. `up` and `down` are the directions'
/// buffers.
pub async fn relay(mut client: TcpStream, mut backend: TcpStream, mut up: Box<[u8]>, mut down: Box<[u8]>) {
    let (mut client_read, mut client_write) = client.split();
    let (mut backend_read, mut backend_write) = backend.split();
    let (up_ended, down_ended) = (AtomicBool::new(false), AtomicBool::new(false));
    let mut upward = pin!(pump(&mut client_read, &mut backend_write, &mut up, [&up_ended, &down_ended]));
    let mut downward = pin!(pump(&mut backend_read, &mut client_write, &mut down, [&down_ended, &up_ended]));
    // A failed direction ends the other too: its sockets are closed below.
    tokio::select! {
        ended = &mut upward => if ended.is_ok() { let _ = downward.await; },
        ended = &mut downward => if ended.is_ok() { let _ = upward.await; },
    }
}

/// Copies `from` to `to` until `from` ends, then shuts `to` down for
/// writing — unless the other direction ended first: both sockets are
/// closed at once then (the io_uring relay does the same).
/// `ended` = [this direction's flag, the other's] (atomics only because
/// tokio::spawn wants Send: both directions run in one task).
async fn pump<R, W>(from: &mut R, to: &mut W, buffer: &mut [u8], ended: [&AtomicBool; 2]) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        let n = from.read(buffer).await?;
        if n == 0 {
            ended[0].store(true, Ordering::Relaxed);
            return if ended[1].load(Ordering::Relaxed) { Ok(()) } else { to.shutdown().await };
        }
        to.write_all(&buffer[..n]).await?;
    }
}

/// A fresh pair of relay buffers (up, down).
pub fn buffers() -> (Box<[u8]>, Box<[u8]>) {
    (vec![0; crate::BUFFER].into_boxed_slice(), vec![0; crate::BUFFER].into_boxed_slice())
}
