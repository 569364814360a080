//! Log output: `tracing` to stderr, stdout or a file (serve2d's `logStdout`
//! and `logFile`), as text or JSON lines (`logFormat`), filtered by
//! `RUST_LOG` (default `info`).

mod json;
mod queue;

use std::fs::OpenOptions;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::JsonFields;

pub use json::FlatJson;

use crate::config::{LogFormat, LogTarget};

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The log file cannot be opened.
    #[error("cannot open log file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The writer thread cannot be started.
    #[error("cannot start the log writer thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Keeps the log writer thread; dropping it writes what is queued.
#[derive(Debug)]
pub struct LogGuard {
    _thread: queue::WriterThread,
    writer: queue::QueuedWriter,
}

impl LogGuard {
    /// Lines dropped because the writer fell behind (the queue was full).
    pub fn dropped_lines(&self) -> usize {
        self.writer.dropped_lines()
    }
}

/// Installs the global subscriber. Call once, early; keep the guard until
/// exit.
///
/// Lines are formatted on the thread that logs them and written by a
/// background thread (`queue.rs`): a connection's worker never waits for
/// the disk.
pub fn init(target: &LogTarget, format: LogFormat) -> Result<LogGuard, LoggingError> {
    // Colours only for a terminal: log files and pipes get plain text.
    let ((writer, thread), ansi) = match target {
        LogTarget::Stderr => {
            (queue::start(std::io::stderr()).map_err(LoggingError::Thread)?, std::io::stderr().is_terminal())
        }
        LogTarget::Stdout => {
            (queue::start(std::io::stdout()).map_err(LoggingError::Thread)?, std::io::stdout().is_terminal())
        }
        LogTarget::File(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| LoggingError::File { path: path.display().to_string(), source })?;
            (queue::start(file).map_err(LoggingError::Thread)?, false)
        }
    };
    install(format, ansi, writer.clone());
    Ok(LogGuard { _thread: thread, writer })
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
