//! Embedding serve2 and registering custom protocols.
//!
//! Run: `cargo run -p serve2 --example custom_protocol -- 127.0.0.1:7000`, then
//! `printf 'HELLO world\n' | nc 127.0.0.1 7000` answers `Hello, world!`, and
//! `printf 'SECRET\nHELLO world\n' | nc 127.0.0.1 7000` goes through the
//! `SECRET` transport first (chain `secret>greeting`). Anything else is echoed.

use std::time::Duration;

use serve2::conn::Conn;
use serve2::detect::{DetectContext, Detector, MagicDetector, Verdict};
use serve2::handler::EchoHandler;
use serve2::protocol::{
    DetectLimits, End, Handled, Handler, HandlerError, HandlerFuture, Protocol, ProtocolSet, Report,
};
use serve2::{Router, Server};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Detects `HELLO <name>\n`: a pure function of the bytes buffered so far.
#[derive(Debug)]
struct GreetingDetector;

impl Detector for GreetingDetector {
    fn detect(&self, prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        const MAGIC: &[u8] = b"HELLO ";
        let known = prefix.len().min(MAGIC.len());
        if prefix[..known] != MAGIC[..known] {
            return Verdict::NoMatch; // Rule ourselves out as early as possible.
        }
        if prefix.len() < MAGIC.len() {
            return Verdict::need(MAGIC.len());
        }
        match prefix[MAGIC.len()..].iter().position(|&b| b == b'\n') {
            Some(_) => Verdict::MATCH,
            // At least one more byte, as many as the engine allows (maxRead).
            None => Verdict::need_up_to(prefix.len() + 1, usize::MAX),
        }
    }
}

/// Answers the greeting. The detected bytes are still in `conn` to be read.
#[derive(Debug)]
struct GreetingHandler;

impl Handler for GreetingHandler {
    fn handle(&self, conn: Conn) -> HandlerFuture<'_> {
        Box::pin(async move {
            let mut conn = BufReader::new(conn);
            let mut line = String::new();
            conn.read_line(&mut line).await.map_err(HandlerError::Client)?;
            let name = line.trim_end().trim_start_matches("HELLO ");
            conn.write_all(format!("Hello, {name}!\n").as_bytes()).await.map_err(HandlerError::Client)?;
            conn.shutdown().await.map_err(HandlerError::Client)?;
            Ok(Handled::Done(Report::from_conn(conn.get_ref(), End::Closed)))
        })
    }
}

/// A transport: strips a `SECRET\n` header and sends the rest back through
/// detection, as the TLS handler does with the decrypted stream.
#[derive(Debug)]
struct StripHeader;

impl Handler for StripHeader {
    fn handle(&self, mut conn: Conn) -> HandlerFuture<'_> {
        Box::pin(async move {
            // Read the header through the Conn: it yields the detected bytes
            // first, wherever detection left them.
            let mut header = [0u8; 7];
            conn.read_exact(&mut header).await.map_err(HandlerError::Client)?;
            let (stream, buffered, mut info) = conn.into_parts();
            info.depth += 1;
            Ok(Handled::Redetect(Conn::with_buffered(stream, buffered, info)))
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:7000".into());
    let secret = MagicDetector::new(["SECRET\n"]).ok_or_else(|| anyhow::anyhow!("empty magic"))?;
    let protocols = vec![
        Protocol::new("secret", secret, StripHeader),
        Protocol::new("greeting", GreetingDetector, GreetingHandler),
    ];
    let limits = DetectLimits { max_read: 64, timeout: Duration::from_secs(3), ..DetectLimits::default() };
    let set = ProtocolSet::new(protocols, Some(Protocol::fallback("echo", EchoHandler)), limits)?;

    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("listening on {}", listener.local_addr()?);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    Server::new(Router::new(set)).serve(vec![listener], shutdown).await;
    Ok(())
}
