//! The serve2d binary serving UDP on `udpAddress`: `serve2d status` (text
//! and `--json`), the summary line per flow, and reload.

use std::net::SocketAddr;
use std::path::Path;
use tokio::process::Command;

use crate::support::process::{Serve2d, binary};
use crate::support::udp::*;
use crate::support::{WAIT, in_netns, json};

/// Writes `conf.json` (the object `body` plus logging and a control
/// socket) in `dir`.
fn write_config(dir: &Path, body: &str) {
    let control = json(dir.join("control.sock").to_string_lossy());
    let text = format!(r#"{{"logStdout": true, "control": {control}, {body}}}"#);
    std::fs::write(dir.join("conf.json"), text).unwrap();
}

/// serve2d on `body`; the UDP address it bound.
async fn start(body: &str) -> (tempfile::TempDir, Serve2d, SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), body);
    let mut serve2d = Serve2d::spawn(&[], &dir.path().join("conf.json"));
    let line = serve2d.wait_for_line("udp listening").await;
    let addr = line.split("local=").nth(1).and_then(|rest| rest.split_whitespace().next()?.parse().ok());
    let addr = addr.unwrap_or_else(|| panic!("no address in {line:?}"));
    serve2d.wait_for_line("serving").await;
    (dir, serve2d, addr)
}

/// `serve2d ARGS --socket <the daemon's>`, within [`WAIT`].
async fn serve2d(dir: &Path, args: &[&str]) -> std::process::Output {
    let command = Command::new(binary()).args(args).arg("--socket").arg(dir.join("control.sock")).output();
    tokio::time::timeout(WAIT, command).await.expect("serve2d answers").unwrap()
}

/// `serve2d status --json`, polled until `done` holds (within [`WAIT`]).
async fn status_json_until(dir: &Path, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let output = serve2d(dir, &["status", "--json"]).await;
        assert!(output.status.success(), "status: {}", String::from_utf8_lossy(&output.stderr));
        let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        if done(&status) {
            return status;
        }
        assert!(tokio::time::Instant::now() < deadline, "status never got there: {status:#}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[test]
fn status_shows_udp_flows_per_policy_and_each_flow_ends_with_a_summary_line() {
    in_netns(|| async {
        let backend = UdpBackend::start("a").await;
        let body = format!(
            r#""udpAddress": "127.0.0.1:0",
               "udp": {{"protocols": [{{"kind": "prefix", "conf": {{"prefix": "A", "target": "{}"}}}}]}}"#,
            backend.addr
        );
        let (dir, mut daemon, addr) = start(&body).await;
        let (matching, unmatched) = (client().await, client().await);
        assert_eq!(exchange(&matching, addr, "A1").await, "a:A1");
        unmatched.send_to(b"nope", addr).await.unwrap();
        let line = daemon.wait_for_line("udp flow").await;
        let unmatched_at = unmatched.local_addr().unwrap();
        for field in
            [format!("client={unmatched_at}"), format!("dialled={addr}"), "via=-".into(), "end=undetected".into()]
        {
            assert!(line.contains(&field), "{field} in {line}");
        }
        let status = status_json_until(dir.path(), |s| s["udp"]["policies"][0]["undetected"] == 1).await;
        let udp = &status["udp"];
        assert_eq!(udp["flows"], 1);
        assert_eq!(udp["listeners"], serde_json::json!([addr.to_string()]));
        assert_eq!(udp["max_flows"], 65536);
        assert_eq!(udp["policies"][0]["name"], "top level");
        assert_eq!(udp["policies"][0]["flows"], 1);
        assert_eq!(udp["policies"][0]["created"], 2);
        assert_eq!(udp["dropped"]["undetected"], 1);
        let text = String::from_utf8(serve2d(dir.path(), &["status"]).await.stdout).unwrap();
        assert!(text.contains(&format!("udp: 1 flows (max 65536, 1024 per source), sockets: {addr}")), "{text}");
        assert!(text.contains("  top level: every other port -> prefix: 1 flows, 2 created, 1 undetected"), "{text}");
        // At shutdown every open flow logs its line.
        // SAFETY: a signal to the child this test started.
        unsafe { libc::kill(daemon.pid() as i32, libc::SIGTERM) };
        let line = daemon.wait_for_line("udp flow").await;
        for field in
            ["kind=prefix", "via=match", "up_datagrams=1", "down_datagrams=1", "up=2", "down=4", "end=shutdown"]
        {
            assert!(line.contains(field), "{field} in {line}");
        }
        assert!(line.contains(&format!("target={}", backend.addr)), "{line}");
    });
}

#[test]
fn reload_swaps_udp_blocks_for_new_flows_and_refuses_a_new_udp_address_by_name() {
    in_netns(|| async {
        let (x, y) = (UdpBackend::start("x").await, UdpBackend::start("y").await);
        let forward = |backend: &UdpBackend, address: &str| {
            format!(r#""udpAddress": "{address}", "udp": {{"forward": {{"target": "{}"}}}}"#, backend.addr)
        };
        let (dir, _daemon, addr) = start(&forward(&x, "127.0.0.1:0")).await;
        let before = client().await;
        assert_eq!(exchange(&before, addr, "1").await, "x:1");
        write_config(dir.path(), &forward(&y, "127.0.0.1:0"));
        let output = serve2d(dir.path(), &["reload"]).await;
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let after = client().await;
        assert_eq!(exchange(&after, addr, "2").await, "y:2");
        // A flow from before the reload keeps its route.
        assert_eq!(exchange(&before, addr, "3").await, "x:3");
        write_config(dir.path(), &forward(&y, "127.0.0.1:5353"));
        let output = serve2d(dir.path(), &["reload"]).await;
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("udpAddress cannot change while running; restart serve2d"), "{stderr}");
        assert_eq!(exchange(&client().await, addr, "4").await, "y:4");
    });
}
