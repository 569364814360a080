//! The serve2d binary: --check, --version, serve2d's own example.

use std::process::Command;

use crate::support::process::{Serve2d, binary};
use crate::support::*;

fn write_config(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conf.json");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn check_accepts_a_valid_config_and_rejects_an_invalid_one_readably() {
    let (_dir, valid) = write_config(r#"{"address": ":8080", "protocols": [{"kind": "echo"}]}"#);
    let output = Command::new(binary()).arg("--check").arg(&valid).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));

    let (_dir, invalid) = write_config(
        "{\n  \"address\": \":8080\",\n  \"protocols\": [{\"kind\": \"tls\", \"conf\": {\"cert\": \"missing.pem\", \"key\": \"missing.pem\"}}],\n  \"logStdout\": true, \"logFile\": \"x\"\n}",
    );
    let output = Command::new(binary()).arg("--check").arg(&invalid).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let file = invalid.display().to_string();
    assert!(stderr.contains(&format!("{file}: invalid configuration (3 problems)")), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{file}:3:50: protocols[0].conf.cert: `missing.pem` (relative to the working directory"
        )),
        "{stderr}"
    );
    assert!(
        stderr
            .contains(&format!("{file}:3:72: protocols[0].conf.key: `missing.pem` (relative to the working directory")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("{file}:4:33: logFile: logStdout and logFile cannot both be set")), "{stderr}");

    let output = Command::new(binary()).arg("--check").arg("/nonexistent/conf.json").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/conf.json: cannot read configuration"));
}

#[test]
fn version_and_usage() {
    let output = Command::new(binary()).arg("--version").output().unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("serve2d "));
    let output = Command::new(binary()).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("<CONFIG>"));
}

/// serve2d's own example_conf.json, byte for byte.
const SERVE2D_EXAMPLE: &str = "{\n   \"address\": \":8080\",\n   \"maxRead\": 32,\n   \"logStdout\": true,\n   \"protocols\": [\n      {\n         \"kind\": \"echo\"\n      },\n      {\n         \"kind\": \"discard\",\n         \"default\": true\n      },\n      {\n         \"kind\": \"proxy\",\n         \"conf\": {\n            \"magic\": \"SSH\",\n            \"target\": \"localhost:22\"\n         }\n      }\n   ]\n}\n";

#[test]
fn serve2d_example_config_starts_unchanged() {
    in_netns(|| async {
        let (_dir, path) = write_config(SERVE2D_EXAMPLE);
        let mut daemon = Serve2d::spawn(&[], &path);
        let addr = daemon.listening_addr().await;
        assert_eq!(addr.port(), 8080);
        // Both families on ":8080".
        for target in ["127.0.0.1:8080", "[::1]:8080"] {
            let mut client = tokio::net::TcpStream::connect(target).await.unwrap();
            send(&mut client, b"ECHO hi").await;
            assert_eq!(read_exact(&mut client, 7).await, b"ECHO hi");
        }
        // Nothing on localhost:22 in this namespace: the SSH client is closed,
        // and the summary line says why.
        let mut ssh = tokio::net::TcpStream::connect("127.0.0.1:8080").await.unwrap();
        send(&mut ssh, b"SSH-2.0-test\r\n").await;
        assert_closed_silently(&mut ssh).await;
        let line = daemon.wait_for_line("connection failed").await;
        assert!(line.contains("chain=proxy ") && line.contains("localhost:22") && line.contains("refused"), "{line}");
        daemon.child.kill().await.unwrap();
    });
}

#[test]
fn the_repository_example_config_is_valid() {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let output =
        Command::new(binary()).arg("--check").arg("example_conf.json").current_dir(workspace).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn a_second_daemon_on_the_same_address_is_refused() {
    in_netns(|| async {
        let (_dir, path) =
            write_config(r#"{"address": "127.0.0.1:7777", "control": "", "protocols": [{"kind": "echo"}]}"#);
        let mut first = Serve2d::spawn(&[], &path);
        first.listening_addr().await;
        // Its sockets use SO_REUSEPORT; a second daemon must not join them.
        let second = tokio::process::Command::new(binary()).arg(&path).kill_on_drop(true).output();
        let second = tokio::time::timeout(WAIT, second).await.expect("the second daemon exits at once").unwrap();
        assert_eq!(second.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&second.stderr);
        assert!(stderr.contains("cannot listen on 127.0.0.1:7777") && stderr.contains("in use"), "{stderr}");
        first.child.kill().await.unwrap();
    });
}
