//! A minimal HTTP/1.1 responder, fast enough that wrk measures the proxy in
//! front of it: every complete request in the buffer is answered, and the
//! answers go out in one write (pipelined requests included).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, world!";
const CLOSING_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, world!";
/// A request head longer than this is not one of our load generators'.
const MAX_PENDING: usize = 64 * 1024;

pub async fn serve(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut pending = Vec::with_capacity(4096);
    let mut replies = Vec::with_capacity(4096);
    loop {
        let (consumed, close) = answer_complete(&pending, &mut replies);
        pending.drain(..consumed);
        if !replies.is_empty() {
            stream.write_all(&replies).await?;
            replies.clear();
        }
        if close {
            return stream.shutdown().await;
        }
        if pending.len() > MAX_PENDING {
            return Ok(());
        }
        pending.reserve(4096);
        if stream.read_buf(&mut pending).await? == 0 {
            return Ok(());
        }
    }
}

/// Appends a response to `replies` for each complete request head in
/// `pending`; returns the bytes consumed and whether a request asked to close
/// (nothing after it is answered).
fn answer_complete(pending: &[u8], replies: &mut Vec<u8>) -> (usize, bool) {
    let mut consumed = 0;
    while let Some(end) = find(&pending[consumed..], b"\r\n\r\n") {
        let head = &pending[consumed..consumed + end];
        consumed += end + 4;
        if asks_to_close(head) {
            replies.extend_from_slice(CLOSING_RESPONSE);
            return (consumed, true);
        }
        replies.extend_from_slice(RESPONSE);
    }
    (consumed, false)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn asks_to_close(head: &[u8]) -> bool {
    const HEADER: &[u8] = b"\r\nconnection: close";
    head.windows(HEADER.len()).any(|w| w.eq_ignore_ascii_case(HEADER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_pipelined_requests_and_keeps_partial_ones() {
        let mut replies = Vec::new();
        let pending = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HT";
        let (consumed, close) = answer_complete(pending, &mut replies);
        assert_eq!(consumed, pending.len() - 8);
        assert!(!close);
        assert_eq!(replies, [RESPONSE, RESPONSE].concat());
    }

    #[test]
    fn connection_close_is_honoured_case_insensitively() {
        let mut replies = Vec::new();
        let pending = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        let (_, close) = answer_complete(pending, &mut replies);
        assert!(close);
        assert_eq!(replies, CLOSING_RESPONSE);
    }
}
