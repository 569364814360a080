//! serve2d: the serve2 daemon. `serve2d CONFIG.json` serves; `--check`
//! validates the configuration and exits.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use serve2::Config;

/// Transparent protocol multiplexer: one port, every protocol.
#[derive(Debug, Parser)]
#[command(name = "serve2d", version, about)]
struct Cli {
    /// Check the configuration and exit (0 when valid, 1 with the problems).
    #[arg(long)]
    check: bool,
    /// The JSON configuration file (serve2d format).
    config: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if cli.check {
        println!("{}: configuration is valid", cli.config.display());
        return ExitCode::SUCCESS;
    }
    match serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serve2d: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    serve2::logging::init(&config.log)?;
    raise_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async {
        let shutdown = shutdown_signal().context("installing signal handlers")?;
        serve2::run(config, shutdown).await.map_err(anyhow::Error::from)
    })
}

/// Completes on SIGINT or SIGTERM.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        }
    })
}

/// Raises the soft open-file limit to the hard limit, as Go programs (and so
/// serve2d) do: each proxied connection needs two descriptors.
fn raise_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
