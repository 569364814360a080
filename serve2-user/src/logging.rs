//! Log output: `tracing` to stderr, stdout or a file (serve2d's `logStdout`
//! and `logFile`), as text or JSON lines (`logFormat`), filtered by
//! `RUST_LOG` (default `info`).

mod json;

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::sync::Mutex;

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

/// Installs the global subscriber. Call once, early.
pub fn init(target: &LogTarget, format: LogFormat) -> Result<(), LoggingError> {
    // Colours only for a terminal: log files and pipes get plain text.
    match target {
        LogTarget::Stderr => install(format, std::io::stderr().is_terminal(), std::io::stderr),
        LogTarget::Stdout => install(format, std::io::stdout().is_terminal(), std::io::stdout),
        LogTarget::File(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| LoggingError { path: path.display().to_string(), source })?;
            install(format, false, Mutex::new(file));
        }
    }
    Ok(())
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
