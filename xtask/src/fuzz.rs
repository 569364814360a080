//! `cargo xtask fuzz`: the cargo-fuzz targets in fuzz/, seeded from the
//! captured first flights in tests/fixtures/, run one after the other with
//! bounded time, memory and per-input time; and the short smoke run that
//! `cargo xtask test` ends with.
//!
//! Corpora live in fuzz/corpus/TARGET/ (gitignored; what libFuzzer finds
//! stays there for the next run), crashes in fuzz/artifacts/TARGET/, logs
//! and target/fuzz/summary.md in target/fuzz/.

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cmd::{run, workspace};
use crate::setup;

/// The fuzz targets, in the order they run.
pub const TARGETS: &[&str] = &["detectors", "client_hello", "proxy_header", "config"];

/// Seconds per target in the smoke run of `cargo xtask test` (about a
/// minute in all).
const SMOKE_SECONDS: u64 = 12;

/// Kind indexes of the `detectors` target (fuzz/src/lib.rs `kinds()`: the
/// registry's kinds, then magic, http, tls, tlsmatcher, never). Each
/// captured flight is seeded behind every one; a stale count only makes the
/// seeding uneven, the target takes the index modulo its own count.
const DETECTOR_KINDS: u8 = 19;

/// libFuzzer's limits: memory (whole process, and any one allocation) and
/// seconds per input; over any of them is a failure like a crash.
const LIMITS: [&str; 3] = ["-rss_limit_mb=2048", "-malloc_limit_mb=512", "-timeout=5"];

#[derive(Debug, clap::Args)]
pub struct FuzzArgs {
    /// Minutes to fuzz each target.
    #[arg(long, default_value_t = 3.0)]
    minutes: f64,
    /// Fuzz only this target (detectors, client_hello, proxy_header, config).
    #[arg(long)]
    target: Option<String>,
}

/// `cargo xtask fuzz`.
pub fn fuzz(args: &FuzzArgs) -> anyhow::Result<()> {
    let targets: Vec<&'static str> = match &args.target {
        Some(name) => {
            let target = TARGETS
                .iter()
                .find(|t| **t == name)
                .with_context(|| format!("unknown fuzz target `{name}`; the targets are {}", TARGETS.join(", ")))?;
            vec![target]
        }
        None => TARGETS.to_vec(),
    };
    if !(args.minutes > 0.0 && args.minutes <= 24.0 * 60.0) {
        bail!("--minutes must be above 0 and at most a day");
    }
    let seconds = ((args.minutes * 60.0).round() as u64).max(1);
    campaign(&targets, seconds, None, "cargo xtask fuzz")
}

/// The smoke run at the end of `cargo xtask test`: every target for
/// [`SMOKE_SECONDS`]; any crash fails the run. A fixed libFuzzer seed keeps
/// the run the same from one CI run to the next; `cargo xtask fuzz` explores.
pub fn smoke() -> anyhow::Result<()> {
    campaign(TARGETS, SMOKE_SECONDS, Some(SMOKE_SEED), "smoke run of cargo xtask test")
}

/// The smoke run's libFuzzer seed.
const SMOKE_SEED: u64 = 2026;

fn campaign(targets: &[&'static str], seconds: u64, fuzzer_seed: Option<u64>, what: &str) -> anyhow::Result<()> {
    setup::nightly()?;
    setup::cargo_fuzz()?;
    let dir = fuzz_dir();
    let out = workspace().join("target/fuzz");
    std::fs::create_dir_all(&out)?;
    for target in targets {
        let seeds = seed(target)?;
        eprintln!("xtask fuzz: {target}: {seeds} seeds in {}", corpus(target).display());
    }
    // One build for every target (cargo fuzz run would build each anyway).
    run(nightly_cargo_fuzz(&dir).arg("build"))?;
    let mut results = Vec::new();
    for target in targets {
        let result = run_target(target, seconds, fuzzer_seed, &out)?;
        eprintln!("xtask fuzz: {}", result.line());
        results.push(result);
    }
    let summary = summary(&results, seconds, what);
    std::fs::write(out.join("summary.md"), &summary)?;
    eprint!("{summary}");
    let failed: Vec<&str> = results.iter().filter(|r| !r.passed()).map(|r| r.target).collect();
    if !failed.is_empty() {
        bail!("fuzzing found problems in {} (see target/fuzz/summary.md and the logs there)", failed.join(", "));
    }
    Ok(())
}

fn fuzz_dir() -> PathBuf {
    workspace().join("fuzz")
}

fn corpus(target: &str) -> PathBuf {
    fuzz_dir().join("corpus").join(target)
}

/// `cargo +nightly fuzz` in fuzz/, without what the outer cargo set for
/// xtask (its toolchain, its target folder): cargo-fuzz builds its own
/// target in fuzz/target.
fn nightly_cargo_fuzz(dir: &Path) -> Command {
    let mut command = Command::new("rustup");
    command.args(["run", "nightly", "cargo", "fuzz"]).current_dir(dir);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let outer = key.starts_with("CARGO")
            || key.starts_with("RUSTC")
            || matches!(key.as_ref(), "RUSTFLAGS" | "RUSTDOCFLAGS" | "RUSTUP_TOOLCHAIN");
        if outer && key != "CARGO_HOME" {
            command.env_remove(key.as_ref());
        }
    }
    command
}

/// Every captured first flight, by a file-name-safe name.
fn fixtures() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let root = workspace().join("tests/fixtures");
    let mut flights = Vec::new();
    let mut folders = vec![root.clone()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).with_context(|| format!("reading {}", folder.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "bin") {
                let name = path.strip_prefix(&root).unwrap_or(&path).with_extension("");
                let name = name.to_string_lossy().replace('/', "-");
                flights.push((name, std::fs::read(&path)?));
            }
        }
    }
    flights.sort();
    if flights.is_empty() {
        bail!("no captured flights (*.bin) in {}", root.display());
    }
    Ok(flights)
}

/// PROXY headers, v1 and v2, each followed by a client's first bytes.
fn proxy_headers() -> Vec<(String, Vec<u8>)> {
    let v2 = |family_protocol: u8, command: u8, addresses: &[u8]| {
        let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        header.push(0x20 | command);
        header.push(family_protocol);
        let len = u16::try_from(addresses.len()).unwrap_or(u16::MAX);
        header.extend_from_slice(&len.to_be_bytes());
        header.extend_from_slice(addresses);
        header
    };
    let ipv4 = [192, 0, 2, 7, 198, 51, 100, 1, 0x9c, 0x40, 0, 22];
    let mut ipv6 = [0u8; 36];
    ipv6[..2].copy_from_slice(&[0x20, 0x01]);
    ipv6[15] = 7;
    ipv6[16..18].copy_from_slice(&[0x20, 0x01]);
    ipv6[31] = 1;
    ipv6[32..].copy_from_slice(&[0x9c, 0x40, 0x01, 0xbb]);
    let mut tlv = ipv4.to_vec();
    tlv.extend_from_slice(&[0x02, 0x00, 0x0c]); // PP2_TYPE_AUTHORITY
    tlv.extend_from_slice(b"example.test");
    let headers: [(&str, Vec<u8>); 7] = [
        ("v1-tcp4", b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 22\r\n".to_vec()),
        ("v1-tcp6", b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\n".to_vec()),
        ("v1-unknown", b"PROXY UNKNOWN\r\n".to_vec()),
        ("v2-tcp4", v2(0x11, 1, &ipv4)),
        ("v2-tcp6", v2(0x21, 1, &ipv6)),
        ("v2-tcp4-authority", v2(0x11, 1, &tlv)),
        ("v2-local", v2(0x00, 0, &[])),
    ];
    headers
        .into_iter()
        .map(|(name, mut header)| {
            header.extend_from_slice(b"SSH-2.0-OpenSSH_9.2p1\r\n");
            (format!("proxy-{name}"), header)
        })
        .collect()
}

/// Configurations: the example, and one of each kind family.
fn configs() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let example = workspace().join("example_conf.json");
    let mut configs = vec![("example_conf".to_owned(), std::fs::read(&example)?)];
    let written: [(&str, &str); 6] = [
        ("minimal", r#"{"address": ":8080", "protocols": [{"kind": "echo"}]}"#),
        (
            "routed",
            r#"{"address": "127.0.0.1:2222", "maxRead": 256, "protocols": [
                {"kind": "ssh", "conf": {"target": "127.0.0.1:22", "proxyProtocol": "v2"}},
                {"kind": "tlsroute", "conf": {"target": "[::1]:443", "serverNames": ["*.example.test"], "alpn": ["h2"]}},
                {"kind": "httproute", "conf": {"target": "127.0.0.1:80", "hosts": ["localhost"]}},
                {"kind": "regex", "conf": {"target": "127.0.0.1:7", "patterns": ["^HELO ", "(?m)^X-Foo: .*$"]}},
                {"kind": "discard", "default": true}]}"#,
        ),
        (
            "steer",
            r#"{"steer": {"ports": [22, "8000-8099", "all"], "exclude": [8099], "addresses": ["10.0.0.0/8", "::1/128"]},
               "policies": [{"name": "ssh", "ports": [22], "protocols": [{"kind": "proxy", "conf": {"magic": ["SSH-"], "target": "127.0.0.1:22"}}],
                             "acceptProxy": ["192.0.2.0/24"], "detectTimeout": 2.5}],
               "protocols": [{"kind": "proxy", "default": true, "conf": {"target": "127.0.0.1:8022", "transparent": true}}]}"#,
        ),
        (
            "tls",
            r#"{"address": ":8443", "relay": "copy", "workers": 2, "protocols": [
                {"kind": "tls", "conf": {"cert": "demo/tls/cert.pem", "key": "demo/tls/key.pem", "protos": ["h2"]}},
                {"kind": "tlsmatcher", "conf": {"serverNames": "a.example.test", "target": "127.0.0.1:443", "dialTLS": true, "insecureSkipVerify": true}},
                {"kind": "http", "conf": {"path": "demo/www", "notFoundMsg": "no\n"}}]}"#,
        ),
        (
            "routes",
            r#"{"address": "[::1]:0", "forward": {"target": "127.0.0.1:9"}, "onTimeout": {"target": "127.0.0.1:10", "proxyProtocol": "v1"},
               "stallTimeout": 30, "idleTimeout": 600, "connectTimeout": 1, "logFile": "", "control": "", "protocols": []}"#,
        ),
        (
            "broken",
            r#"{"address": ":8080", "protocols": [{"kind": "regex", "conf": {"patterns": ["a$"], "bogus": 1}}], }"#,
        ),
    ];
    configs.extend(written.into_iter().map(|(name, text)| (name.to_owned(), text.as_bytes().to_vec())));
    Ok(configs)
}

/// Writes `target`'s seeds into its corpus (overwriting earlier seeds, not
/// touching what libFuzzer added); returns how many.
fn seed(target: &str) -> anyhow::Result<usize> {
    let dir = corpus(target);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let seeds: Vec<(String, Vec<u8>)> = match target {
        // The kind index and conf variant bytes, then the flight.
        "detectors" => fixtures()?
            .into_iter()
            .flat_map(|(name, flight)| {
                (0..DETECTOR_KINDS).map(move |kind| {
                    let mut input = vec![kind, 0];
                    input.extend_from_slice(&flight);
                    (format!("{name}-kind{kind:02}"), input)
                })
            })
            .collect(),
        "client_hello" => fixtures()?,
        "proxy_header" => fixtures()?.into_iter().chain(proxy_headers()).collect(),
        "config" => configs()?.into_iter().chain(fixtures()?).collect(),
        other => bail!("no seeds for fuzz target `{other}`"),
    };
    for (name, bytes) in &seeds {
        let path = dir.join(format!("seed-{name}"));
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(seeds.len())
}

/// What one target's run came to.
#[derive(Debug)]
struct TargetResult {
    target: &'static str,
    /// libFuzzer's exit status was success.
    success: bool,
    elapsed: Duration,
    executions: Option<u64>,
    per_second: Option<u64>,
    new_units: Option<u64>,
    peak_rss_mb: Option<u64>,
    corpus: usize,
    /// Crash, timeout and out-of-memory reproducers written.
    artifacts: Vec<String>,
    /// The first line saying what went wrong, if anything did.
    problem: Option<String>,
    log: PathBuf,
}

impl TargetResult {
    fn passed(&self) -> bool {
        self.success && self.artifacts.is_empty()
    }

    fn line(&self) -> String {
        let executions = self.executions.map_or("?".to_owned(), |n| n.to_string());
        let verdict = if self.passed() {
            "ok".to_owned()
        } else {
            format!("FAILED: {}", self.problem.as_deref().unwrap_or("libFuzzer failed"))
        };
        format!(
            "{}: {executions} executions in {:.0} s, corpus {}, {} crashes: {verdict}",
            self.target,
            self.elapsed.as_secs_f64(),
            self.corpus,
            self.artifacts.len()
        )
    }
}

fn run_target(target: &'static str, seconds: u64, seed: Option<u64>, out: &Path) -> anyhow::Result<TargetResult> {
    let log_path = out.join(format!("{target}.log"));
    let log = File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let mut command = nightly_cargo_fuzz(&fuzz_dir());
    command
        .args(["run", target])
        .arg(corpus(target))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .args(seed.map(|seed| format!("-seed={seed}")))
        .arg("-print_final_stats=1")
        .args(LIMITS)
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null());
    eprintln!("xtask fuzz: {target} for {seconds} s (log: {})", log_path.display());
    let started = Instant::now();
    let status = command.status().context("cannot start cargo fuzz run")?;
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&std::fs::read(&log_path).unwrap_or_default()).into_owned();
    let result = TargetResult {
        target,
        success: status.success(),
        elapsed,
        executions: final_stat(&text, "number_of_executed_units"),
        per_second: final_stat(&text, "average_exec_per_sec"),
        new_units: final_stat(&text, "new_units_added"),
        peak_rss_mb: final_stat(&text, "peak_rss_mb"),
        corpus: std::fs::read_dir(corpus(target)).map_or(0, Iterator::count),
        artifacts: artifacts(&text),
        problem: problem(&text),
        log: log_path,
    };
    if !result.passed() {
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        eprintln!("xtask fuzz: {target} failed; the end of {}:", result.log.display());
        for line in tail.iter().rev() {
            eprintln!("    {line}");
        }
        for artifact in &result.artifacts {
            minimize(target, artifact);
        }
    }
    Ok(result)
}

/// One of the `stat::NAME: VALUE` lines of `-print_final_stats=1`.
fn final_stat(log: &str, name: &str) -> Option<u64> {
    log.lines()
        .find_map(|line| line.strip_prefix("stat::")?.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|value| value.trim().parse().ok())
}

/// The reproducers libFuzzer wrote (crash-, timeout-, oom-, leak-…; not the
/// slow-unit- files, which are no failures).
fn artifacts(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| line.split_once("Test unit written to ").map(|(_, path)| path.trim().to_owned()))
        .filter(|path| !path.contains("slow-unit-"))
        .collect()
}

/// The first line of a log saying what went wrong; for a panic, with the
/// panic's message (the line after).
fn problem(log: &str) -> Option<String> {
    let lines: Vec<&str> = log.lines().collect();
    let at = lines.iter().position(|line| {
        line.contains("panicked at") || line.contains("ERROR: libFuzzer") || line.contains("ERROR: AddressSanitizer")
    })?;
    let mut problem = lines[at].trim().to_owned();
    if problem.contains("panicked at")
        && let Some(message) = lines.get(at + 1)
    {
        problem.push(' ');
        problem.push_str(message.trim());
    }
    Some(problem)
}

/// Shrinks a crashing input with `cargo fuzz tmin` (bounded; best effort:
/// the original reproducer stays either way).
fn minimize(target: &str, artifact: &str) {
    let path = fuzz_dir().join(artifact);
    let artifact = if path.exists() { path } else { PathBuf::from(artifact) };
    let status = nightly_cargo_fuzz(&fuzz_dir())
        .args(["tmin", target])
        .arg(&artifact)
        .args(["--", "-max_total_time=60"])
        .args(LIMITS)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let folder = artifact.parent().map_or_else(|| fuzz_dir().join("artifacts").join(target), Path::to_path_buf);
    match status {
        Ok(_) => eprintln!("xtask fuzz: minimized reproducers (minimized-from-*) are in {}", folder.display()),
        Err(e) => eprintln!("xtask fuzz: cannot run cargo fuzz tmin: {e}"),
    }
}

fn summary(results: &[TargetResult], seconds: u64, what: &str) -> String {
    let mut text = format!("# Fuzzing summary\n\n{what}: {seconds} s per target.\n\n");
    text.push_str(
        "| target | executions | exec/s | time (s) | new units | corpus | peak RSS (MB) | crashes | result |\n",
    );
    text.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
    let show = |n: Option<u64>| n.map_or("?".to_owned(), |n| n.to_string());
    for r in results {
        let _ = writeln!(
            text,
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
            r.target,
            show(r.executions),
            show(r.per_second),
            r.elapsed.as_secs_f64(),
            show(r.new_units),
            r.corpus,
            show(r.peak_rss_mb),
            r.artifacts.len(),
            if r.passed() { "ok" } else { "FAILED" }
        );
    }
    for r in results.iter().filter(|r| !r.passed()) {
        let _ = writeln!(text, "\n## {}\n\n{}\n", r.target, r.problem.as_deref().unwrap_or("libFuzzer failed"));
        for artifact in &r.artifacts {
            let _ = writeln!(text, "- reproducer: `{artifact}` (`cargo +nightly fuzz run {} {artifact}`)", r.target);
        }
        if !r.artifacts.is_empty() {
            let _ = writeln!(text, "- minimized (cargo fuzz tmin): `fuzz/artifacts/{}/minimized-from-*`", r.target);
        }
        let _ = writeln!(text, "- log: `{}`", r.log.display());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRASH_LOG: &str = "\
INFO: Seed: 1
#2\tINITED cov: 10 ft: 10 corp: 1/1b exec/s: 0 rss: 30Mb
thread '<unnamed>' (1) panicked at fuzz_targets/detectors.rs:9:5:
ssh {}: decided at 3 bytes, changed at 4
==1== ERROR: libFuzzer: deadly signal
artifact_prefix='/w/fuzz/artifacts/detectors/'; Test unit written to /w/fuzz/artifacts/detectors/crash-ab12
Test unit written to /w/fuzz/artifacts/detectors/slow-unit-cd34
stat::number_of_executed_units: 4242
stat::average_exec_per_sec:     1000
stat::new_units_added:          7
stat::peak_rss_mb:              55
";

    #[test]
    fn final_stats_reproducers_and_the_panic_are_read_from_the_log() {
        assert_eq!(final_stat(CRASH_LOG, "number_of_executed_units"), Some(4242));
        assert_eq!(final_stat(CRASH_LOG, "average_exec_per_sec"), Some(1000));
        assert_eq!(final_stat(CRASH_LOG, "new_units_added"), Some(7));
        assert_eq!(final_stat(CRASH_LOG, "peak_rss_mb"), Some(55));
        assert_eq!(final_stat(CRASH_LOG, "slowest_unit_time_sec"), None);
        assert_eq!(artifacts(CRASH_LOG), ["/w/fuzz/artifacts/detectors/crash-ab12"]);
        assert_eq!(
            problem(CRASH_LOG).as_deref(),
            Some(
                "thread '<unnamed>' (1) panicked at fuzz_targets/detectors.rs:9:5: \
                 ssh {}: decided at 3 bytes, changed at 4"
            )
        );
        assert_eq!(problem("INFO: all good\n"), None);
    }

    #[test]
    fn proxy_header_seeds_are_whole_headers() {
        for (name, seed) in proxy_headers() {
            let received = serve2::proxy_header::receive(&seed);
            let serve2::proxy_header::Received::Complete { len, addresses } = received else {
                panic!("{name}: {received:?}");
            };
            assert_eq!(&seed[len..], b"SSH-2.0-OpenSSH_9.2p1\r\n", "{name}");
            assert_eq!(addresses.is_none(), name.ends_with("unknown") || name.ends_with("local"), "{name}");
        }
    }

    #[test]
    fn config_seeds_are_json_but_the_broken_one() {
        for (name, text) in configs().unwrap() {
            let parsed = serde_json::from_slice::<serde_json::Value>(&text);
            assert_eq!(parsed.is_ok(), name != "broken", "{name}: {parsed:?}");
        }
    }

    #[test]
    fn detector_kinds_are_the_registry_and_five_builtins() {
        // fuzz/src/lib.rs kinds(): the registry's kinds, then magic, http,
        // tls, tlsmatcher and never.
        assert_eq!(usize::from(DETECTOR_KINDS), serve2_detect::registry::KINDS.len() + 5);
    }
}
