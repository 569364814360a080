//! `cargo xtask bench`: installs what the benchmark drives, builds the
//! release binaries, then hands over to `serve2-bench` (the `bench` crate),
//! which does the measuring. Every argument goes through unchanged; the
//! output folder and docs/PERFORMANCE.md are this workspace's.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use anyhow::bail;

use crate::cmd::{cargo, is_root, run, workspace};
use crate::setup;

/// The bench's own arguments (`--rounds --seconds --quick --only
/// --log-connections`, see `serve2-bench --help`), passed on verbatim.
#[derive(Debug, Clone, clap::Args)]
#[command(disable_help_flag = true)]
pub struct BenchArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

pub fn run_bench(args: &BenchArgs) -> anyhow::Result<()> {
    let help = args.args.iter().any(|arg| arg == "--help" || arg == "-h");
    if !help && !is_root() {
        bail!("cargo xtask bench needs root: it runs in its own network namespace and steers ports with eBPF");
    }
    if !help {
        setup::packages(setup::BENCH_PACKAGES)?;
    }
    setup::toolchain()?;
    run(cargo().args(["build", "--release", "-p", "serve2", "-p", "serve2-bench", "--bins"]))?;
    let release = target_dir().join("release");
    let error = std::process::Command::new(release.join("serve2-bench"))
        .args(&args.args)
        .arg("--bin-dir")
        .arg(&release)
        .arg("--out")
        .arg(target_dir().join("bench"))
        .arg("--docs")
        .arg(workspace().join("docs/PERFORMANCE.md"))
        .exec();
    Err(anyhow::Error::new(error).context("cannot run serve2-bench"))
}

/// Where cargo puts build output: `CARGO_TARGET_DIR` if set, else target/.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace().join(dir),
        None => workspace().join("target"),
    }
}
