//! `echo` and `discard`, the test protocols (RFC 862/863 behind a magic).

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::conn::Conn;
use crate::protocol::{End, Handled, Handler, HandlerError, HandlerFuture, Report};

const BUFFER_SIZE: usize = 4096;

/// Sends every byte back, the detected magic included, until the client
/// closes its side.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoHandler;

impl Handler for EchoHandler {
    fn handle(&self, mut conn: Conn) -> HandlerFuture<'_> {
        Box::pin(async move {
            let mut buf = [0u8; BUFFER_SIZE];
            loop {
                let n = conn.read(&mut buf).await.map_err(HandlerError::Client)?;
                if n == 0 {
                    break;
                }
                conn.write_all(&buf[..n]).await.map_err(HandlerError::Client)?;
            }
            conn.shutdown().await.map_err(HandlerError::Client)?;
            Ok(Handled::Done(Report::from_conn(&conn, End::Closed)))
        })
    }
}

/// Reads and drops everything until the client closes.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiscardHandler;

impl Handler for DiscardHandler {
    fn handle(&self, mut conn: Conn) -> HandlerFuture<'_> {
        Box::pin(async move {
            let mut buf = [0u8; BUFFER_SIZE];
            while conn.read(&mut buf).await.map_err(HandlerError::Client)? > 0 {}
            Ok(Handled::Done(Report::from_conn(&conn, End::Closed)))
        })
    }
}
