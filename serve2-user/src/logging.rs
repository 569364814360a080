//! Log output: `tracing` to stderr, stdout or a file (serve2d's `logStdout`
//! and `logFile`), filtered by `RUST_LOG` (default `info`).

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

use crate::config::LogTarget;

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot open log file {path}: {source}")]
pub struct LoggingError {
    path: String,
    #[source]
    source: std::io::Error,
}

/// Installs the global subscriber. Call once, early.
pub fn init(target: &LogTarget) -> Result<(), LoggingError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // Colours only for a terminal: log files and pipes get plain text.
    match target {
        LogTarget::Stderr => builder.with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr).init(),
        LogTarget::Stdout => builder.with_ansi(std::io::stdout().is_terminal()).with_writer(std::io::stdout).init(),
        LogTarget::File(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| LoggingError { path: path.display().to_string(), source })?;
            builder.with_ansi(false).with_writer(Mutex::new(file)).init();
        }
    }
    Ok(())
}
