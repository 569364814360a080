//! Installs what building and testing need, once: the nightly toolchain's
//! rust-src (for the eBPF crate's build-std), bpf-linker built against
//! rustc's own LLVM, the Debian packages the tests and benchmarks use, and
//! cargo-fuzz when fuzzing is asked for.
//! Every step checks first, so running it again does nothing.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

use crate::cmd::{is_root, output, run};

/// Debian packages the test suite drives (real peers, namespaces, limits).
pub const TEST_PACKAGES: &[&str] = &[
    "openssh-server",
    "openssh-client",
    "openssl",
    "curl",
    "iproute2",
    "util-linux",
    "procps",
    "haproxy",
    "sslh",
    "nginx-light",
    "postgresql",
    "postgresql-client",
    "openvpn",
    "systemd",
    "fail2ban",
    "wireguard-tools",
    "wireguard-go",
];

/// Debian packages `cargo xtask bench` measures against or drives.
// nginx with its stream module: the UDP peer (Debian 12's sslh has no UDP).
pub const BENCH_PACKAGES: &[&str] = &["haproxy", "sslh", "iperf3", "wrk", "strace", "nginx", "libnginx-mod-stream"];

pub fn toolchain() -> anyhow::Result<()> {
    nightly_rust_src()?;
    bpf_linker()
}

fn nightly_rust_src() -> anyhow::Result<()> {
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"])).context("rustup is required")?;
    if !toolchains.lines().any(|line| line.starts_with("nightly")) {
        return run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]));
    }
    let installed = output(Command::new("rustup").args(["component", "list", "--toolchain", "nightly", "--installed"]))
        .unwrap_or_default();
    // rust-src for build-std (aya-build's `-Z build-std=core`); clippy to
    // lint the kernel crate for its own target.
    for component in ["rust-src", "clippy"] {
        if !installed.lines().any(|line| line.starts_with(component)) {
            run(Command::new("rustup").args(["component", "add", component, "--toolchain", "nightly"]))?;
        }
    }
    Ok(())
}

/// The LLVM major version of the nightly rustc (bpf-linker must match it).
fn nightly_llvm_major() -> anyhow::Result<String> {
    let version = output(Command::new("rustc").args(["+nightly", "-vV"])).context("rustc +nightly -vV")?;
    let llvm = version
        .lines()
        .find_map(|line| line.strip_prefix("LLVM version: "))
        .context("no LLVM version in rustc +nightly -vV")?;
    Ok(llvm.split('.').next().unwrap_or(llvm).to_owned())
}

fn bpf_linker() -> anyhow::Result<()> {
    // rustc runs the linker with the toolchain's libraries on the path.
    if output(Command::new("rustup").args(["run", "nightly", "bpf-linker", "--version"])).is_some() {
        return Ok(());
    }
    // No system LLVM of the right version here: link bpf-linker against
    // rustc's own libLLVM, from a folder that stays put (it becomes rpath).
    let llvm = nightly_llvm_major()?;
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"])).context("nightly sysroot")?;
    let sysroot_lib = PathBuf::from(sysroot.trim()).join("lib");
    let libllvm = std::fs::read_dir(&sysroot_lib)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("libLLVM.so")))
        .with_context(|| format!("no libLLVM.so* in {}", sysroot_lib.display()))?;
    let home = std::env::var_os("HOME").context("HOME")?;
    let prefix = PathBuf::from(home).join(".cache/serve2/rust-llvm");
    std::fs::create_dir_all(prefix.join("lib"))?;
    // `libLLVM.so` to link against, and the library's own name to load by.
    let soname = libllvm.file_name().context("libLLVM file name")?;
    for name in [std::ffi::OsStr::new("libLLVM.so"), soname] {
        let link = prefix.join("lib").join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&libllvm, &link)?;
    }
    run(Command::new("cargo")
        .args(["install", "bpf-linker", "--force", "--locked", "--no-default-features", "--features"])
        .arg(format!("llvm-{llvm}"))
        .env("LLVM_PREFIX", &prefix))
}

/// The nightly toolchain alone (what `cargo xtask fuzz` needs of it).
pub fn nightly() -> anyhow::Result<()> {
    nightly_rust_src()
}

/// cargo-fuzz, for `cargo xtask fuzz` and the smoke run of `cargo xtask test`.
pub fn cargo_fuzz() -> anyhow::Result<()> {
    if output(Command::new("rustup").args(["run", "nightly", "cargo", "fuzz", "--version"])).is_some() {
        return Ok(());
    }
    run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))
}

fn installed(package: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))
        .is_some_and(|status| status.ends_with("install ok installed"))
}

/// Installs the missing Debian packages among `packages` (root only).
pub fn packages(packages: &[&str]) -> anyhow::Result<()> {
    if output(Command::new("dpkg-query").arg("--version")).is_none() {
        eprintln!("xtask: not a Debian system; make sure these are installed: {}", packages.join(" "));
        return Ok(());
    }
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!("missing Debian packages {missing:?}; install them as root (apt-get install {})", missing.join(" "));
    }
    // Never let a package's install script start its service (sshd, haproxy)
    // on the host: the tests start their own, in their own namespaces.
    let policy = PathBuf::from("/usr/sbin/policy-rc.d");
    let own_policy = !policy.exists();
    if own_policy {
        std::fs::write(&policy, "#!/bin/sh\nexit 101\n")?;
        run(Command::new("chmod").arg("755").arg(&policy))?;
    }
    let result =
        run(Command::new("apt-get").args(["update", "-q"]).env("DEBIAN_FRONTEND", "noninteractive")).and_then(|()| {
            run(Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"))
        });
    if own_policy {
        let _ = std::fs::remove_file(&policy);
    }
    result
}
