//! Real OpenSSH through serve2: plain SSH multiplexed with HTTP on one port,
//! and SSH over TLS with `openssl s_client` as the transport (serve2d's own
//! README recipe).

use std::path::PathBuf;
use std::process::Stdio;

use tokio::process::Command;

use crate::support::certs::TestPki;
use crate::support::*;

pub(crate) struct Sshd {
    _dir: tempfile::TempDir,
    pub(crate) client_key: PathBuf,
    _child: tokio::process::Child,
}

/// Starts sshd on 127.0.0.1:22 of this namespace with fresh keys, allowing
/// root in with a fresh client key (and SFTP, for `scp`).
pub(crate) async fn start_sshd() -> Sshd {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    for key in ["host_key", "client_key"] {
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path(key))
            .status()
            .await
            .unwrap();
        assert!(status.success());
    }
    std::fs::copy(path("client_key.pub"), path("authorized_keys")).unwrap();
    // sshd insists on its privilege separation folder (its service unit
    // creates it the same way).
    std::fs::create_dir_all("/run/sshd").unwrap();
    let config = format!(
        "ListenAddress 127.0.0.1:22\nHostKey {}\nAuthorizedKeysFile {}\nPermitRootLogin yes\nStrictModes no\n\
         UsePAM no\nSubsystem sftp internal-sftp\nPidFile none\nPasswordAuthentication no\nLogLevel QUIET\n",
        path("host_key").display(),
        path("authorized_keys").display()
    );
    std::fs::write(path("sshd_config"), config).unwrap();
    let mut child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(path("sshd_config"))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Ready when it accepts.
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::net::TcpStream::connect("127.0.0.1:22").await.is_err() {
        assert!(child.try_wait().unwrap().is_none(), "sshd exited");
        assert!(tokio::time::Instant::now() < deadline, "sshd never listened");
        tokio::task::yield_now().await;
    }
    Sshd { client_key: path("client_key"), _dir: dir, _child: child }
}

async fn ssh(sshd: &Sshd, extra: &[String]) -> String {
    let output = Command::new("ssh")
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", "-i"])
        .arg(&sshd.client_key)
        .args(extra)
        .args(["root@localhost", "echo", "hello-through-serve2"])
        .stdin(Stdio::null())
        .output();
    let output = tokio::time::timeout(WAIT, output).await.expect("ssh finishes").unwrap();
    assert!(output.status.success(), "ssh failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn openssh_reaches_sshd_through_a_port_shared_with_http() {
    in_netns(|| async {
        if !peers_available(&["/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/ssh-keygen"]) {
            return;
        }
        let sshd = start_sshd().await;
        let www = tempfile::tempdir().unwrap();
        std::fs::write(www.path().join("index.html"), "web").unwrap();
        let config = format!(
            r#"{{"address": ":0", "protocols": [
                {{"kind": "http", "conf": {{"path": {}}}}},
                {{"kind": "proxy", "conf": {{"magic": "SSH-", "target": "127.0.0.1:22"}}}}
            ]}}"#,
            json(www.path().to_string_lossy())
        );
        let daemon = Daemon::start(&config).await;
        let port = daemon.addr.port().to_string();
        assert_eq!(ssh(&sshd, &["-p".into(), port]).await, "hello-through-serve2\n");
        daemon.stop().await;
    });
}

#[test]
fn openssh_over_tls_with_openssl_s_client_as_transport() {
    in_netns(|| async {
        if !peers_available(&["/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/ssh-keygen", "/usr/bin/openssl"]) {
            return;
        }
        let sshd = start_sshd().await;
        let pki = TestPki::new();
        let config = format!(
            r#"{{"address": ":0", "protocols": [
                {{"kind": "tls", "conf": {{"cert": {}, "key": {}, "protos": ["ssh"]}}}},
                {{"kind": "proxy", "conf": {{"magic": "SSH-", "target": "127.0.0.1:22"}}}}
            ]}}"#,
            json(pki.cert_path().to_string_lossy()),
            json(pki.key_path().to_string_lossy())
        );
        let daemon = Daemon::start(&config).await;
        let proxy_command = format!(
            "ProxyCommand=openssl s_client -quiet -verify_return_error -connect 127.0.0.1:{} -servername localhost -alpn ssh -CAfile {}",
            daemon.addr.port(),
            pki.ca_path().display()
        );
        assert_eq!(ssh(&sshd, &["-o".into(), proxy_command]).await, "hello-through-serve2\n");
        daemon.stop().await;
    });
}
