//! Ties the kernel build to the `bpf-linker` it links with.
//!
//! The object depends on a binary cargo knows nothing about: rebuild when
//! the `bpf-linker` on PATH changes (a reinstall after a nightly's LLVM
//! moved on), and say what to run when there is none. Host builds of this
//! crate (the stub `main` that `--workspace` lints and tests) link with the
//! host linker and need nothing.

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    if std::env::var("CARGO_CFG_TARGET_ARCH").context("CARGO_CFG_TARGET_ARCH")? != "bpf" {
        return Ok(());
    }
    let bpf_linker = which::which("bpf-linker")
        .context("bpf-linker is not on PATH: run `cargo xtask setup` (it links bpf-linker against nightly's LLVM)")?;
    println!("cargo:rerun-if-changed={}", bpf_linker.display());
    Ok(())
}
