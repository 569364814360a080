//! dist/serve2d.service: `systemd-analyze verify` finds nothing to say, its
//! `--check` lines gate start and reload, and serve2d speaks sd_notify
//! (READY=1 once serving, STOPPING=1 at SIGTERM).

use std::path::{Path, PathBuf};
use std::process::Command;

use tokio::net::UnixDatagram;

use crate::support::process::{Serve2d, binary};
use crate::support::*;

const SYSTEMD_ANALYZE: &str = "/usr/bin/systemd-analyze";

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn unit_text() -> String {
    std::fs::read_to_string(workspace().join("dist/serve2d.service")).unwrap()
}

/// The values of `key=` in the unit, in order.
fn values<'u>(unit: &'u str, key: &str) -> Vec<&'u str> {
    unit.lines().filter_map(|line| line.strip_prefix(key)?.strip_prefix('=')).collect()
}

/// The unit with its binary and configuration paths replaced by the built
/// serve2d and `config`, written as `dir/serve2d.service`.
fn installed_unit(dir: &Path, config: &Path) -> PathBuf {
    let unit = unit_text()
        .replace("/usr/local/bin/serve2d", binary())
        .replace("/etc/serve2d/config.json", config.to_str().unwrap());
    let path = dir.join("serve2d.service");
    std::fs::write(&path, unit).unwrap();
    path
}

/// Runs `systemd-analyze ARGS`, returning its exit success and every line
/// it printed (on stdout or stderr).
fn systemd_analyze(args: &[&str], unit: &Path) -> (bool, Vec<String>) {
    // Log to the console even where a journal is reachable, so warnings
    // reach this test.
    let output =
        Command::new(SYSTEMD_ANALYZE).args(args).arg(unit).env("SYSTEMD_LOG_TARGET", "console").output().unwrap();
    let text = [output.stdout, output.stderr].concat();
    (output.status.success(), String::from_utf8_lossy(&text).lines().map(str::to_owned).collect())
}

/// `systemd-analyze verify` on `unit`: the lines about it (any line naming
/// the unit or its folder is a warning about it).
fn verify(unit: &Path) -> (bool, Vec<String>) {
    let (ok, lines) = systemd_analyze(&["verify"], unit);
    let folder = unit.parent().unwrap().to_str().unwrap().to_owned();
    let about: Vec<String> =
        lines.into_iter().filter(|line| line.contains("serve2d.service") || line.contains(&folder)).collect();
    (ok, about)
}

#[test]
fn the_unit_verifies_cleanly_and_checks_before_start_and_reload() {
    if !peers_available(&[SYSTEMD_ANALYZE]) {
        return;
    }
    let unit = unit_text();
    assert_eq!(values(&unit, "Type"), ["notify"]);
    assert_eq!(values(&unit, "ExecStart"), ["/usr/local/bin/serve2d /etc/serve2d/config.json"]);
    assert_eq!(values(&unit, "ExecStartPre"), ["/usr/local/bin/serve2d --check /etc/serve2d/config.json"]);
    assert_eq!(
        values(&unit, "ExecReload"),
        ["/usr/local/bin/serve2d --check /etc/serve2d/config.json", "/bin/kill -HUP $MAINPID"]
    );
    assert_eq!(values(&unit, "AmbientCapabilities"), ["CAP_BPF CAP_NET_ADMIN CAP_NET_BIND_SERVICE"]);
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("PrivateTmp", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ] {
        assert_eq!(values(&unit, key), [value], "{key}");
    }

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"address": ":8080", "protocols": [{"kind": "echo"}]}"#).unwrap();
    let path = installed_unit(dir.path(), &config);
    let (ok, warnings) = verify(&path);
    assert!(ok && warnings.is_empty(), "systemd-analyze verify: {warnings:#?}");
    // Its hardening scores "OK" or better (exposure at most 2.5 of 10).
    let (ok, lines) = systemd_analyze(&["security", "--offline=yes", "--threshold=25"], &path);
    assert!(ok, "systemd-analyze security:\n{}", lines.join("\n"));

    // The verification is not blind: a unit with a mistake is reported.
    let broken = tempfile::tempdir().unwrap();
    let broken_unit = installed_unit(broken.path(), &config);
    let text = std::fs::read_to_string(&broken_unit).unwrap().replace("Type=notify", "Type=notfy");
    std::fs::write(&broken_unit, text).unwrap();
    let (_, warnings) = verify(&broken_unit);
    assert!(warnings.iter().any(|w| w.contains("notfy")), "{warnings:?}");

    // ExecStartPre and the first ExecReload pass a valid configuration and
    // stop a broken one (a reload then never reaches the daemon).
    let installed = std::fs::read_to_string(&path).unwrap();
    let checks = [values(&installed, "ExecStartPre")[0], values(&installed, "ExecReload")[0]];
    for check in checks {
        let run = || {
            let mut words = check.split_whitespace();
            Command::new(words.next().unwrap()).args(words).output().unwrap()
        };
        let output = run();
        assert!(output.status.success(), "{check}: {}", String::from_utf8_lossy(&output.stderr));
        std::fs::write(&config, r#"{"address": ":8080", "protocols": [{"kind": "ehco"}]}"#).unwrap();
        let output = run();
        assert_eq!(output.status.code(), Some(1), "{check} passed a broken configuration");
        assert!(String::from_utf8_lossy(&output.stderr).contains("protocols[0].kind"), "{output:?}");
        std::fs::write(&config, r#"{"address": ":8080", "protocols": [{"kind": "echo"}]}"#).unwrap();
    }
}

/// Receives one notification (bounded), as its `KEY=VALUE` lines.
async fn notification(socket: &UnixDatagram) -> Vec<String> {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, socket.recv(&mut buf)).await.expect("a notification in time").unwrap();
    String::from_utf8_lossy(&buf[..n]).lines().map(str::to_owned).collect()
}

#[test]
fn serve2d_notifies_ready_once_serving_reloading_around_a_reload_and_stopping_at_sigterm() {
    in_netns(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        std::fs::write(
            &config,
            r#"{"address": "127.0.0.1:8080", "control": "", "workers": 2, "protocols": [{"kind": "echo"}]}"#,
        )
        .unwrap();
        let socket_path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&socket_path).unwrap();
        let mut daemon = Serve2d::spawn_with(&[], &config, |command| {
            command.env("NOTIFY_SOCKET", &socket_path);
        });

        let ready = notification(&socket).await;
        assert!(ready.iter().any(|l| l == "READY=1"), "{ready:?}");
        // READY=1 means serving: the line is logged and a client is served
        // at once, without waiting for anything else.
        daemon.wait_for_line("serving").await;
        let mut client = tokio::net::TcpStream::connect("127.0.0.1:8080").await.unwrap();
        send(&mut client, b"ECHO ready").await;
        assert_eq!(read_exact(&mut client, 10).await, b"ECHO ready");
        drop(client);

        // SIGHUP: RELOADING=1 (with its timestamp), then READY=1 again.
        // SAFETY: kill only sends a signal to our own child.
        assert_eq!(unsafe { libc::kill(daemon.pid() as i32, libc::SIGHUP) }, 0);
        let reloading = notification(&socket).await;
        assert!(reloading.iter().any(|l| l == "RELOADING=1"), "{reloading:?}");
        assert!(reloading.iter().any(|l| l.starts_with("MONOTONIC_USEC=")), "{reloading:?}");
        let ready = notification(&socket).await;
        assert_eq!(ready, ["READY=1"]);
        daemon.wait_for_line("reloaded").await;

        // SIGTERM: STOPPING=1 comes first, then the daemon exits cleanly.
        // SAFETY: kill only sends a signal to our own child.
        assert_eq!(unsafe { libc::kill(daemon.pid() as i32, libc::SIGTERM) }, 0);
        let stopping = notification(&socket).await;
        assert_eq!(stopping, ["STOPPING=1"]);
        let status = tokio::time::timeout(WAIT, daemon.child.wait()).await.expect("serve2d exits").unwrap();
        assert!(status.success(), "{status}");
        daemon.wait_for_line("stopped").await;
    });
}
