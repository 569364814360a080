//! serve2d: the serve2 daemon. `serve2d CONFIG.json` serves; `--check`
//! validates the configuration and exits; `serve2d status` asks a running
//! daemon what it listens on and steers; `serve2d reload` makes it re-read
//! its configuration; `serve2d schema` prints the configuration's JSON
//! Schema.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serve2::Config;

/// Transparent protocol multiplexer: one port, every protocol.
#[derive(Debug, Parser)]
#[command(name = "serve2d", version, about, args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Check the configuration and exit (0 when valid, 1 with the problems).
    #[arg(long)]
    check: bool,
    /// The JSON configuration file (serve2d format).
    #[arg(required = true)]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show a running daemon's listeners, steered and skipped ports,
    /// policies and kernel counters.
    Status {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
        /// The daemon's control socket (default: from CONFIG, else /run/serve2d.sock).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// The daemon's configuration, to find its control socket.
        config: Option<PathBuf>,
    },
    /// Ask a running daemon to re-read the configuration file it was
    /// started with, check it, and swap it in without dropping a
    /// connection (exit 1 with the reason when it refuses).
    Reload {
        /// The daemon's control socket (default: from CONFIG, else /run/serve2d.sock).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// The daemon's configuration, to find its control socket.
        config: Option<PathBuf>,
    },
    /// Print the JSON Schema of the configuration file (docs/config.schema.json).
    Schema,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Status { json, socket, config }) => return report(status(json, socket, config)),
        Some(Command::Reload { socket, config }) => return report(reload(socket, config)),
        Some(Command::Schema) => return report(print_schema()),
        None => {}
    }
    let Some(path) = cli.config else {
        return ExitCode::FAILURE; // clap requires it; unreachable in practice.
    };
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if cli.check {
        println!("{}: configuration is valid", path.display());
        return ExitCode::SUCCESS;
    }
    report(serve(config))
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serve2d: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The control socket: given, or named by the configuration, or the default.
fn control_socket(socket: Option<PathBuf>, config: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    Ok(match (socket, config) {
        (Some(socket), _) => socket,
        (None, Some(config)) => {
            let config = Config::load(&config)?;
            config.control.context("the configuration disables the control socket (\"control\": \"\")")?
        }
        (None, None) => PathBuf::from(serve2::config::DEFAULT_CONTROL),
    })
}

fn reload(socket: Option<PathBuf>, config: Option<PathBuf>) -> anyhow::Result<()> {
    let socket = control_socket(socket, config)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let answer = runtime.block_on(serve2::control::request_reload(&socket))?;
    anyhow::ensure!(answer.ok, "reload refused: {}", answer.message);
    println!("{}", answer.message);
    Ok(())
}

fn status(json: bool, socket: Option<PathBuf>, config: Option<PathBuf>) -> anyhow::Result<()> {
    let socket = control_socket(socket, config)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let status = runtime.block_on(serve2::control::query(&socket))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{status}");
    }
    Ok(())
}

fn print_schema() -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&serve2::config::schema())?);
    Ok(())
}

fn serve(config: Config) -> anyhow::Result<()> {
    // Kept until exit: dropping it flushes the queued log lines.
    let log = serve2::logging::init(&config.log, config.log_format)?;
    raise_file_limit();
    // The main thread only handles signals and the control socket; the
    // connections run on the worker threads `run` starts.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    let served = runtime.block_on(async {
        let shutdown = shutdown_signal().context("installing signal handlers")?;
        serve2::run(config, shutdown).await.map_err(anyhow::Error::from)
    });
    if log.dropped_lines() > 0 {
        tracing::warn!(dropped = log.dropped_lines(), "log lines dropped: the log writer fell behind");
    }
    served
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
