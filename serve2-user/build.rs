//! Builds the `sk_lookup` program (serve2-ebpf) for the kernel and puts the
//! object where `src/steer` embeds it from.
//!
//! The kernel crate needs the nightly toolchain with `rust-src` and
//! `bpf-linker`; `cargo xtask setup` installs them. Set
//! `SERVE2_EBPF_OBJECT=/path/to/object` to embed a prebuilt object instead,
//! or build without the default `steer` feature to leave eBPF out.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

const OBJECT: &str = "serve2-ebpf.o";

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=SERVE2_EBPF_OBJECT");
    if std::env::var_os("CARGO_FEATURE_STEER").is_none() {
        return Ok(());
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").context("OUT_DIR")?).join(OBJECT);
    if let Some(prebuilt) = std::env::var_os("SERVE2_EBPF_OBJECT") {
        std::fs::copy(&prebuilt, &out).with_context(|| format!("copying {prebuilt:?}"))?;
        return Ok(());
    }
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?);
    let workspace = manifest.parent().context("workspace folder")?;
    let ebpf = workspace.join("serve2-ebpf");
    for watched in ["src", "Cargo.toml", "Cargo.lock", ".cargo/config.toml"] {
        println!("cargo:rerun-if-changed={}", ebpf.join(watched).display());
    }
    println!("cargo:rerun-if-changed={}", workspace.join("serve2-common/src").display());
    // One target folder for every host profile, so the object is built once.
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace.join("target"), PathBuf::from);
    let target = target.join("ebpf");
    build_kernel_crate(&ebpf, &target)?;
    let built = target.join("bpfel-unknown-none/release/serve2");
    std::fs::copy(&built, &out).with_context(|| format!("copying {}", built.display()))?;
    Ok(())
}

fn build_kernel_crate(ebpf: &Path, target: &Path) -> anyhow::Result<()> {
    let mut command = Command::new("rustup");
    command.args(["run", "nightly", "cargo", "build", "--release", "--target-dir"]).arg(target).current_dir(ebpf);
    // The outer cargo's settings are for the host build, not this one.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let host_only = key.starts_with("CARGO_")
            || key.starts_with("RUSTC")
            || matches!(
                key.as_ref(),
                "RUSTFLAGS" | "RUSTDOCFLAGS" | "RUSTUP_TOOLCHAIN" | "TARGET" | "HOST" | "OUT_DIR"
            );
        if host_only && key != "CARGO_HOME" {
            command.env_remove(key.as_ref());
        }
    }
    let status = command.status().context("running `rustup run nightly cargo build` for serve2-ebpf")?;
    if !status.success() {
        bail!(
            "building the eBPF program (serve2-ebpf) failed. It needs the nightly toolchain with rust-src and \
             bpf-linker: run `cargo xtask setup`, or build with --no-default-features to leave steering out"
        );
    }
    Ok(())
}
