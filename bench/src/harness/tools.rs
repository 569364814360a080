//! The load tools, run to completion under a time limit (a stuck peer must
//! not hang the run), and their outputs parsed.

use std::ffi::OsStr;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

/// Time a tool may take beyond its own duration (start-up, draining).
const GRACE: Duration = Duration::from_secs(30);

/// Runs `program` with `args` for at most `duration` + [`GRACE`]; returns
/// its stdout, even when it failed (iperf3 reports errors in its JSON).
fn run_limited(program: &OsStr, args: &[String], duration: Duration) -> anyhow::Result<String> {
    let limit = (duration + GRACE).as_secs();
    let output = Command::new("timeout")
        .arg("--kill-after=5")
        .arg(limit.to_string())
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", program.to_string_lossy()))?;
    if output.status.code() == Some(124) || output.status.code() == Some(137) {
        bail!("{} {} did not finish within {limit} s", program.to_string_lossy(), args.join(" "));
    }
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if stdout.trim().is_empty() && !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!("{} failed ({}): {}", program.to_string_lossy(), output.status, stderr.trim());
    }
    Ok(stdout)
}

/// One iperf3 transfer's receiver-side result.
#[derive(Debug, Clone, Copy)]
pub struct Bulk {
    pub gbps: f64,
    pub bytes: f64,
}

/// `iperf3 -c` through `port` for `seconds` (`reverse`: the server sends).
pub fn iperf3(port: u16, seconds: u64, reverse: bool) -> anyhow::Result<Bulk> {
    let mut args: Vec<String> =
        ["-c", "127.0.0.1", "-p", &port.to_string(), "-t", &seconds.to_string(), "-J"].map(str::to_owned).into();
    args.extend(["--connect-timeout".into(), "5000".into()]);
    if reverse {
        args.push("-R".into());
    }
    parse_iperf3(&run_limited(OsStr::new("iperf3"), &args, Duration::from_secs(seconds))?)
}

fn parse_iperf3(json: &str) -> anyhow::Result<Bulk> {
    let report: serde_json::Value = serde_json::from_str(json).context("iperf3 printed no JSON report")?;
    if let Some(error) = report["error"].as_str() {
        bail!("iperf3: {error}");
    }
    let received = &report["end"]["sum_received"];
    let bits_per_second = received["bits_per_second"].as_f64().context("iperf3: no end.sum_received")?;
    let bytes = received["bytes"].as_f64().context("iperf3: no end.sum_received.bytes")?;
    Ok(Bulk { gbps: bits_per_second / 1e9, bytes })
}

/// One wrk run: requests per second, and every failed request or socket.
#[derive(Debug, Clone, Copy)]
pub struct Http {
    pub rps: f64,
    pub errors: u64,
}

/// wrk with 2 threads and 16 connections; keep-alive unless `close`.
pub fn wrk(port: u16, seconds: u64, close: bool) -> anyhow::Result<Http> {
    let mut args: Vec<String> =
        vec!["-t2".into(), "-c16".into(), format!("-d{seconds}s"), "--timeout".into(), "5s".into()];
    if close {
        args.extend(["-H".into(), "Connection: close".into()]);
    }
    args.push(format!("http://127.0.0.1:{port}/"));
    parse_wrk(&run_limited(OsStr::new("wrk"), &args, Duration::from_secs(seconds))?)
}

fn parse_wrk(text: &str) -> anyhow::Result<Http> {
    let mut rps = None;
    let mut errors = 0;
    for line in text.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("Requests/sec:") {
            rps = value.trim().parse().ok();
        } else if let Some(counts) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            errors += counts.split(',').filter_map(|c| c.split_whitespace().nth(1)?.parse::<u64>().ok()).sum::<u64>();
        } else if let Some(count) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += count.trim().parse::<u64>().unwrap_or(1);
        }
    }
    let rps = rps.with_context(|| format!("wrk printed no Requests/sec: {}", text.trim()))?;
    Ok(Http { rps, errors })
}

/// Runs `serve2-load` to completion and parses its JSON line.
pub fn load(program: &std::path::Path, args: &[String], duration: Duration) -> anyhow::Result<serde_json::Value> {
    let stdout = run_limited(program.as_os_str(), args, duration)?;
    let line = stdout.lines().last().context("serve2-load printed nothing")?;
    serde_json::from_str(line).with_context(|| format!("serve2-load printed {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_errors_are_counted() {
        let text = "Running 2s test @ http://127.0.0.1:1/\n  383173 requests in 2.00s, 32.16MB read\n  \
                    Socket errors: connect 1, read 2, write 0, timeout 3\n  Non-2xx or 3xx responses: 4\n\
                    Requests/sec: 191586.18\nTransfer/sec:     16.08MB\n";
        let http = parse_wrk(text).unwrap();
        assert_eq!(http.errors, 10);
        assert!((http.rps - 191586.18).abs() < 1e-6);
        assert!(parse_wrk("unable to connect to 127.0.0.1:1 Connection refused").is_err());
    }

    #[test]
    fn iperf3_report_and_error() {
        let ok = r#"{"end": {"sum_received": {"bits_per_second": 2.5e10, "bytes": 6.25e9}}}"#;
        let bulk = parse_iperf3(ok).unwrap();
        assert!((bulk.gbps - 25.0).abs() < 1e-9);
        let failed = r#"{"start": {}, "error": "unable to connect to server"}"#;
        assert!(parse_iperf3(failed).unwrap_err().to_string().contains("unable to connect"));
    }
}
