//! Log output: `tracing` to stderr, stdout or a file (serve2d's `logStdout`
//! and `logFile`), as text or JSON lines (`logFormat`), filtered by
//! `RUST_LOG` (default `info`).

mod json;

use std::fs::OpenOptions;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::JsonFields;

pub use json::FlatJson;

use crate::config::{LogFormat, LogTarget};

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot open log file {path}: {source}")]
pub struct LoggingError {
    path: String,
    #[source]
    source: std::io::Error,
}

/// Keeps the log writer thread; dropping it flushes what is queued.
#[derive(Debug)]
pub struct LogGuard {
    _worker: tracing_appender::non_blocking::WorkerGuard,
    dropped: tracing_appender::non_blocking::ErrorCounter,
}

impl LogGuard {
    /// Lines dropped because the writer fell behind (the queue was full).
    pub fn dropped_lines(&self) -> usize {
        self.dropped.dropped_lines()
    }
}

/// Lines the writer thread may have queued before new ones are dropped
/// (and counted) rather than stall a worker on a slow disk or pipe.
const QUEUED_LINES: usize = 128 * 1024;

/// The writer thread drains every queued line before it flushes: buffered,
/// a burst of lines costs one `write` rather than one per line, and a lone
/// line is still written at once.
fn batched<W: std::io::Write>(writer: W) -> std::io::BufWriter<W> {
    std::io::BufWriter::with_capacity(64 * 1024, writer)
}

/// Installs the global subscriber. Call once, early; keep the guard until
/// exit.
///
/// Lines are formatted on the thread that logs them and written by a
/// background thread through a bounded queue: a connection's worker never
/// waits for the disk.
pub fn init(target: &LogTarget, format: LogFormat) -> Result<LogGuard, LoggingError> {
    let queue = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("serve2-log");
    // Colours only for a terminal: log files and pipes get plain text.
    let (writer, worker, ansi) = match target {
        LogTarget::Stderr => {
            let (writer, worker) = queue.finish(batched(std::io::stderr()));
            (writer, worker, std::io::stderr().is_terminal())
        }
        LogTarget::Stdout => {
            let (writer, worker) = queue.finish(batched(std::io::stdout()));
            (writer, worker, std::io::stdout().is_terminal())
        }
        LogTarget::File(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| LoggingError { path: path.display().to_string(), source })?;
            let (writer, worker) = queue.finish(batched(file));
            (writer, worker, false)
        }
    };
    let dropped = writer.error_counter();
    install(format, ansi, writer);
    Ok(LogGuard { _worker: worker, dropped })
}

fn install<W>(format: LogFormat, ansi: bool, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Text => builder.with_ansi(ansi).init(),
        LogFormat::Json => builder.with_ansi(false).fmt_fields(JsonFields::new()).event_format(FlatJson).init(),
    }
}
