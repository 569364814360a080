use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::JsonFields;

use super::FlatJson;
use crate::detect::engine::Unmatched;
use crate::protocol::{End, HandlerError, Report};
use crate::summary::Summary;

/// A writer the test reads back.
#[derive(Debug, Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

impl Buffer {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap().lines().map(str::to_owned).collect()
    }
}

/// The JSON lines `log` writes, parsed, with their key order.
fn json_lines(log: impl FnOnce()) -> Vec<(Vec<String>, Value)> {
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(buffer.clone())
        .with_ansi(false)
        .fmt_fields(JsonFields::new())
        .event_format(FlatJson)
        .finish();
    tracing::subscriber::with_default(subscriber, log);
    buffer
        .lines()
        .iter()
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            // serde_json sorts keys; read the order from the text instead.
            let order: serde_json::Map<String, Value> = value.as_object().unwrap().clone();
            let mut keys: Vec<(usize, String)> = order
                .keys()
                .map(|k| (line.find(&format!("{}:", serde_json::to_string(k).unwrap())).unwrap(), k.clone()))
                .collect();
            keys.sort();
            (keys.into_iter().map(|(_, k)| k).collect(), value)
        })
        .collect()
}

/// The text lines `log` writes with the default formatter.
fn text_lines(log: impl FnOnce()) -> Vec<String> {
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt().with_writer(buffer.clone()).with_ansi(false).finish();
    tracing::subscriber::with_default(subscriber, log);
    buffer.lines()
}

#[test]
fn span_fields_are_flattened_in_order() {
    let lines = json_lines(|| {
        let peer: SocketAddr = "127.0.0.2:40000".parse().unwrap();
        let span = tracing::info_span!("conn", %peer, port = 8080u16);
        let _entered = span.enter();
        tracing::info!(target: "serve2::conn", chain = "echo", target = "-", up = 5u64, ms = 1.5, ok = true, "connection");
    });
    assert_eq!(lines.len(), 1);
    let (keys, value) = &lines[0];
    assert_eq!(keys, &["timestamp", "level", "message", "peer", "port", "chain", "target", "up", "ms", "ok", "logger"]);
    assert_eq!(value["level"], "INFO");
    assert_eq!(value["message"], "connection");
    assert_eq!(value["peer"], "127.0.0.2:40000");
    assert_eq!(value["port"], 8080);
    assert_eq!(value["target"], "-");
    assert_eq!(value["up"], 5);
    assert_eq!(value["ms"], 1.5);
    assert_eq!(value["ok"], true);
    assert_eq!(value["logger"], "serve2::conn");
    assert!(value["timestamp"].as_str().unwrap().ends_with('Z'), "{value}");
}

#[test]
fn inner_values_win_and_keys_stay_unique() {
    let lines = json_lines(|| {
        let outer = tracing::info_span!("outer", a = 1u64, b = 1u64);
        let _outer = outer.enter();
        let inner = tracing::info_span!("inner", b = 2u64);
        let _inner = inner.enter();
        tracing::info!(a = 3u64, "x");
    });
    let (keys, value) = &lines[0];
    assert_eq!(keys, &["timestamp", "level", "message", "a", "b", "logger"]);
    assert_eq!((value["a"].as_u64(), value["b"].as_u64()), (Some(3), Some(2)));
}

#[test]
fn hostile_strings_stay_inside_their_value() {
    let nasty = "a\"b\\c\nd\u{1}e\",\"peer\":\"6.6.6.6:1";
    let lines = json_lines(|| {
        tracing::info!(sni = nasty, display = %nasty, "line\nbreak");
    });
    assert_eq!(lines.len(), 1, "one event, one line");
    let (keys, value) = &lines[0];
    assert!(!keys.contains(&"peer".to_owned()), "{keys:?}");
    assert_eq!(value["sni"], nasty);
    assert_eq!(value["display"], nasty);
    assert_eq!(value["message"], "line\nbreak");
}

/// One summary of each kind: closed unmatched, a clean connection, a
/// client-caused failure, a backend failure.
fn summaries() -> Vec<Summary> {
    let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let now = tokio::time::Instant::now();
    let mut unmatched = Summary::new(local, now, None);
    unmatched.unmatched = Some(Unmatched::Refused);
    unmatched.closed_unmatched(12);
    let mut clean = Summary::new(local, now, None);
    clean.push("echo");
    clean.finish(Report { from_client: 3, to_client: 3, end: End::Closed, ..Report::default() });
    let mut tls = Summary::new(local, now, None);
    tls.push("tls");
    tls.finish_failed(HandlerError::Tls(std::io::Error::other("bad record")));
    let mut backend = Summary::new(local, now, None);
    backend.unmatched = Some(Unmatched::Timeout);
    backend.push("ssh");
    backend.finish_failed(HandlerError::Backend {
        target: "127.0.0.1:22".into(),
        source: std::io::Error::other("refused"),
    });
    vec![unmatched, clean, tls, backend]
}

fn log_in_span(summaries: &[Summary]) {
    let peer: SocketAddr = "127.0.0.2:40000".parse().unwrap();
    for summary in summaries {
        tracing::info_span!("conn", %peer, port = 8080u16).in_scope(|| summary.log());
    }
}

const STABLE: [&str; 9] = ["peer", "port", "chain", "target", "up", "down", "ms", "end", "fallback"];

#[test]
fn every_summary_line_has_the_stable_fields_in_both_formats() {
    let summaries = summaries();
    let json = json_lines(|| log_in_span(&summaries));
    assert_eq!(json.len(), summaries.len());
    for (keys, value) in &json {
        for field in STABLE {
            assert!(keys.iter().any(|k| k == field), "no {field} in {value}");
        }
        assert_eq!(value["peer"], "127.0.0.2:40000");
        assert!(value["ms"].is_number() && value["up"].is_number() && value["port"].is_number(), "{value}");
    }
    let messages: Vec<&str> = json.iter().map(|(_, v)| v["message"].as_str().unwrap()).collect();
    assert_eq!(messages, ["closed: no protocol matched", "connection", "connection failed", "connection failed"]);
    assert_eq!((json[0].1["fallback"].as_str(), json[0].1["end"].as_str()), (Some("no-match"), Some("no-match")));
    assert_eq!((json[1].1["fallback"].as_str(), json[1].1["target"].as_str()), (Some("-"), Some("-")));
    assert_eq!(json[3].1["target"], "127.0.0.1:22");
    assert_eq!(json[3].1["level"], "WARN");

    let text = text_lines(|| log_in_span(&summaries));
    assert_eq!(text.len(), summaries.len());
    for line in &text {
        assert!(line.contains("conn{peer=127.0.0.2:40000 port=8080}: serve2::conn: "), "{line}");
        for field in STABLE {
            assert!(
                line.contains(&format!(" {field}=")) || line.contains(&format!("{{{field}=")),
                "no {field} in {line}"
            );
        }
    }
    assert!(text[0].contains(" fallback=no-match ") && text[3].contains(" fallback=detect-timeout "), "{text:?}");
}
