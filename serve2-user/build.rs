//! Builds the `sk_lookup` program (serve2-ebpf) for the kernel with
//! aya-build and leaves the object in `OUT_DIR`, where `src/steer` embeds it
//! from.
//!
//! aya-build runs `rustup run nightly cargo build --package serve2-ebpf
//! --target bpfel-unknown-none -Z build-std=core --release` in this
//! workspace, with its own target folder under `OUT_DIR`; that needs the
//! nightly toolchain with `rust-src` and `bpf-linker`, which `cargo xtask
//! setup` installs. Set `SERVE2_EBPF_OBJECT=/path/to/object` to embed a
//! prebuilt object instead, or build without the default `steer` feature to
//! leave eBPF out.

fn main() -> anyhow::Result<()> {
    #[cfg(feature = "steer")]
    steer::build_or_copy_object()?;
    Ok(())
}

#[cfg(feature = "steer")]
mod steer {
    use std::path::PathBuf;

    use anyhow::{Context, anyhow};

    /// The kernel crate; aya-build names its object after the crate's one
    /// binary target, which has the same name.
    const EBPF_PACKAGE: &str = "serve2-ebpf";

    pub fn build_or_copy_object() -> anyhow::Result<()> {
        println!("cargo:rerun-if-env-changed=SERVE2_EBPF_OBJECT");
        if let Some(prebuilt) = std::env::var_os("SERVE2_EBPF_OBJECT") {
            println!("cargo:rerun-if-changed={}", prebuilt.display());
            let out = PathBuf::from(std::env::var_os("OUT_DIR").context("OUT_DIR")?).join(EBPF_PACKAGE);
            std::fs::copy(&prebuilt, &out).with_context(|| format!("copying {prebuilt:?}"))?;
            return Ok(());
        }
        let package = find_ebpf_package()?;
        let root_dir =
            package.manifest_path.parent().ok_or_else(|| anyhow!("no folder for {}", package.manifest_path))?;
        // aya-build watches the kernel crate's folder; its local
        // dependencies (serve2-common) are not build-dependencies of this
        // crate, so cargo would not rerun this script when they change.
        for local in package.dependencies.iter().filter_map(|dependency| dependency.path.as_ref()) {
            println!("cargo:rerun-if-changed={local}");
        }
        // aya-build passes the inner cargo's every status line on as a
        // `cargo:warning`, which reads like a problem with this crate;
        // compiler diagnostics and errors still come through.
        // SAFETY: nothing else runs in this build script yet (no threads).
        unsafe { std::env::set_var("CARGO_TERM_QUIET", "true") };
        let ebpf = aya_build::Package { name: EBPF_PACKAGE, root_dir: root_dir.as_str(), ..Default::default() };
        aya_build::build_ebpf([ebpf], aya_build::Toolchain::default()).context(
            "building the eBPF program (serve2-ebpf) failed. It needs the nightly toolchain with rust-src and \
             bpf-linker: run `cargo xtask setup`, or build with --no-default-features to leave steering out",
        )
    }

    /// The kernel crate as this workspace declares it (where it lives, what
    /// it depends on), from `cargo metadata`.
    fn find_ebpf_package() -> anyhow::Result<cargo_metadata::Package> {
        let metadata = cargo_metadata::MetadataCommand::new().no_deps().exec().context("cargo metadata")?;
        metadata
            .packages
            .into_iter()
            .find(|package| package.name.as_str() == EBPF_PACKAGE)
            .ok_or_else(|| anyhow!("no package {EBPF_PACKAGE} in the workspace"))
    }
}
