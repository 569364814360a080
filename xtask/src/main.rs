//! Project tasks: `cargo xtask setup | build | run | test | bench | fuzz`.
//!
//! `run` and `test` do the setup themselves (it is idempotent), so on a
//! fresh machine the two commands in the README are all it takes.

mod bench;
mod cmd;
mod fuzz;
mod setup;

use std::process::Command;

use anyhow::Context;
use clap::{Parser, Subcommand};

use cmd::{cargo, run, workspace};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "serve2 project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install what is missing: nightly rust-src, bpf-linker, Debian packages.
    Setup,
    /// Build everything (kernel and user side), release mode.
    Build,
    /// Build, then run serve2d on example_conf.json (as root for steering).
    Run {
        /// Extra arguments for serve2d.
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Set up, then check formatting and lints, run every test, and fuzz
    /// every target briefly (about a minute).
    Test {
        /// Skip formatting and lint checks.
        #[arg(long)]
        no_lint: bool,
        /// Extra arguments for `cargo test`.
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Benchmark serve2d against direct connections, HAProxy and sslh
    /// (writes target/bench/ and docs/PERFORMANCE.md): installs and builds,
    /// then runs `serve2-bench` with these arguments (`--help` for them).
    Bench(bench::BenchArgs),
    /// Fuzz every target (cargo-fuzz, nightly) for a few minutes each,
    /// seeded from tests/fixtures (writes target/fuzz/summary.md).
    Fuzz(fuzz::FuzzArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Setup => {
            setup::toolchain()?;
            setup::packages(setup::TEST_PACKAGES)
        }
        Task::Build => {
            setup::toolchain()?;
            build()
        }
        Task::Run { args } => {
            setup::toolchain()?;
            build()?;
            let binary = workspace().join("target/release/serve2d");
            run(Command::new(binary).arg("example_conf.json").args(args).current_dir(workspace()))
        }
        Task::Test { no_lint, args } => {
            setup::toolchain()?;
            setup::packages(setup::TEST_PACKAGES)?;
            if !no_lint {
                lint()?;
            }
            // The library without kernel steering must keep compiling.
            run(cargo().args(["build", "-p", "serve2", "--no-default-features", "--lib"]))?;
            run(cargo().args(["test", "--workspace"]).args(args).env("SERVE2_REQUIRE_PEERS", "1"))?;
            fuzz::smoke()
        }
        Task::Bench(args) => bench::run_bench(&args),
        Task::Fuzz(args) => fuzz::fuzz(&args),
    }
}

/// The default members: everything but the kernel crate, which serve2's
/// build script builds for the kernel itself.
fn build() -> anyhow::Result<()> {
    run(cargo().args(["build", "--release"]))
}

fn lint() -> anyhow::Result<()> {
    // `--all` and `--workspace` take in the kernel crate too (its host stub).
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    // And once more as the kernel gets it: the bpf target's cfgs, nightly
    // with build-std (as aya-build builds it), its own target folder.
    run(Command::new("rustup")
        .args(["run", "nightly", "cargo", "clippy", "--package", "serve2-ebpf", "--release"])
        .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core", "--", "-D", "warnings"])
        .current_dir(workspace())
        .env("CARGO_TARGET_DIR", workspace().join("target/ebpf")))
    .context("linting serve2-ebpf for the bpf target")
}
