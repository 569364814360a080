use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::conn::TlsInfo;
use crate::conn::testing::pipe;
use crate::detect::{ClientHelloDetector, Detector, HttpDetector, MagicDetector, TlsStateMatcher};
use crate::protocol::{DetectLimits, Handled, Handler, HandlerFuture, Protocol};

#[derive(Debug)]
struct Unused;
impl Handler for Unused {
    fn handle(&self, _conn: Conn) -> HandlerFuture<'_> {
        Box::pin(async { Ok(Handled::Done(Default::default())) })
    }
}

fn set_of(protocols: Vec<Protocol>, max_read: usize) -> ProtocolSet {
    let limits = DetectLimits { max_read, ..DetectLimits::default() };
    ProtocolSet::new(protocols, None, limits).unwrap()
}

fn magic(m: &'static str) -> Protocol {
    Protocol::new(m, MagicDetector::new([m]).unwrap(), Unused)
}

fn with(name: &'static str, d: impl Detector) -> Protocol {
    Protocol::new(name, d, Unused)
}

/// Detects on a client that writes `chunks` one by one (then closes if
/// `close`); returns the result, the bytes buffered, and what detection left
/// unread in the stream.
async fn run(set: &ProtocolSet, chunks: &[&[u8]], close: bool) -> (Detected, Vec<u8>, Vec<u8>) {
    let (mut conn, mut client) = pipe();
    let writes: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
    let writer = tokio::spawn(async move {
        for chunk in writes {
            client.write_all(&chunk).await.unwrap();
            tokio::task::yield_now().await;
        }
        if close {
            client.shutdown().await.unwrap();
        }
        client
    });
    let detected = detect(&mut conn, set).await.unwrap().detected;
    let buffered = conn.buffered().to_vec();
    let client = writer.await.unwrap();
    let mut rest = Vec::new();
    if close {
        let (mut stream, _, _) = conn.into_parts();
        stream.read_to_end(&mut rest).await.unwrap();
    }
    drop(client);
    (detected, buffered, rest)
}

fn bytes(flight: &[u8]) -> Vec<&[u8]> {
    flight.chunks(1).collect()
}

#[tokio::test]
async fn first_match_in_config_order_wins_whatever_the_segmentation() {
    let set = set_of(vec![magic("SSH-2.0-OpenSSH"), magic("SSH")], 128);
    let banner = b"SSH-2.0-OpenSSH_9.2\r\n";
    assert_eq!(run(&set, &[banner], true).await.0, matched(0));
    assert_eq!(run(&set, &bytes(banner), true).await.0, matched(0));
    let dropbear = b"SSH-2.0-dropbear\r\n";
    assert_eq!(run(&set, &[dropbear], true).await.0, matched(1));
    assert_eq!(run(&set, &bytes(dropbear), true).await.0, matched(1));
}

#[tokio::test]
async fn reads_stop_at_what_detectors_can_use() {
    let set = set_of(vec![magic("SSH"), with("http", HttpDetector)], 128);
    let (detected, buffered, rest) = run(&set, &[b"SSH-2.0-x\r\nmore bytes"], true).await;
    assert_eq!(detected, matched(0));
    // HTTP needs 4 bytes to rule itself out, so at most 4 were read.
    assert!(buffered.len() <= 4 && buffered.starts_with(b"SSH"), "{buffered:?}");
    let mut all = buffered.clone();
    all.extend_from_slice(&rest);
    assert_eq!(all, b"SSH-2.0-x\r\nmore bytes");
}

#[tokio::test]
async fn a_client_that_closes_early_settles_on_the_first_remaining_match() {
    let set = set_of(vec![magic("ECHOLONG"), magic("ECH"), magic("DISCARD")], 128);
    let (detected, buffered, _) = run(&set, &[b"ECH"], true).await;
    assert_eq!(detected, matched(1));
    assert_eq!(buffered, b"ECH");
    let (detected, buffered, _) = run(&set, &[b"EC"], true).await;
    assert_eq!(detected, Detected::Unmatched(Unmatched::PeerClosed));
    assert_eq!(buffered, b"EC");
}

#[tokio::test]
async fn everyone_refusing_ends_detection_without_waiting() {
    let set = set_of(vec![magic("SSH"), with("http", HttpDetector)], 128);
    // The client keeps its side open: refusal must not need more bytes.
    let (detected, buffered, _) = run(&set, &[b"XYZ"], false).await;
    assert_eq!(detected, Detected::Unmatched(Unmatched::Refused));
    assert!(buffered.starts_with(b"X") && buffered.len() <= 4, "{buffered:?}");
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_times_out_at_the_deadline_with_its_bytes_kept() {
    let set = set_of(vec![magic("DISCARD")], 128);
    let (mut conn, mut client) = pipe();
    client.write_all(b"DIS").await.unwrap();
    let started = tokio::time::Instant::now();
    let detected = detect(&mut conn, &set).await.unwrap().detected;
    assert_eq!(detected, Detected::Unmatched(Unmatched::Timeout));
    assert_eq!(conn.buffered(), b"DIS");
    assert!(started.elapsed() >= Duration::from_secs(5));
}

#[tokio::test]
async fn max_read_caps_plaintext_detectors_but_not_tls() {
    let set = set_of(vec![magic("ABCDEFGHIJ"), with("tls", ClientHelloDetector)], 4);
    assert_eq!(run(&set, &[b"ABCDEFGHIJ"], false).await.0, Detected::Unmatched(Unmatched::Refused));
    let hello = include_bytes!("../../../../tests/fixtures/chromium-156-x25519mlkem768-clienthello.bin");
    let segments: Vec<&[u8]> = hello.chunks(500).collect();
    let (detected, buffered, _) = run(&set, &segments, true).await;
    assert_eq!(detected, matched(1));
    assert_eq!(buffered, hello);
}

#[tokio::test]
async fn connection_state_matchers_decide_before_any_read() {
    let set = set_of(vec![with("tlsmatcher", TlsStateMatcher::new().server_names(["a.test"]))], 128);
    let (conn, _client) = pipe();
    let (stream, buffered, mut info) = conn.into_parts();
    info.tls = Some(TlsInfo { server_name: Some("a.test".into()), alpn: None });
    let mut conn = Conn::with_buffered(stream, buffered, info);
    assert_eq!(detect(&mut conn, &set).await.unwrap().detected, matched(0));
}

fn matched(index: usize) -> Detected {
    Detected::Matched { index, learned: crate::detect::Learned::NOTHING }
}
