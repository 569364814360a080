//! Real peers end to end through serve2, each in a namespace of its own:
//! `ssh` and a 50 MiB `scp` to a real sshd, `curl` over HTTP/2 and HTTP/1.1
//! over TLS terminated by serve2 (to the built-in `http` handler and to a
//! real nginx behind `proxy` and `h2c`), and an `openssl s_client` SNI ×
//! ALPN matrix against `tlsmatcher`. PostgreSQL and OpenVPN (TCP and UDP) are
//! in the submodules. (SSH over TLS with `s_client` as the ProxyCommand is in
//! `openssh.rs`.)

mod openvpn;
mod postgres;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::Command;

use crate::openssh::{Sshd, start_sshd};
use crate::support::certs::TestPki;
use crate::support::*;

/// Runs `command` to its end within `limit` (killed when it overruns).
async fn run(command: &mut Command, limit: Duration) -> Output {
    let output = command.stdin(Stdio::null()).kill_on_drop(true).output();
    tokio::time::timeout(limit, output)
        .await
        .unwrap_or_else(|_| panic!("{command:?} did not finish within {limit:?}"))
        .expect("spawn")
}

/// Like [`run`], and it must exit 0; its standard output.
async fn run_ok(command: &mut Command, limit: Duration) -> String {
    let output = run(command, limit).await;
    assert!(output.status.success(), "{command:?}: {}\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A backend answering every connection's first line with `"{name} heard {line}"`.
fn greeter(listener: TcpListener, name: &'static str) {
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                let mut read = BufReader::new(read);
                if tokio::time::timeout(WAIT, read.read_line(&mut line)).await.is_ok() {
                    let _ = write.write_all(format!("{name} heard {line}").as_bytes()).await;
                }
                let _ = write.shutdown().await;
            });
        }
    });
}

/// A minimal HTTP/1 origin answering every request with `body`.
fn http_origin(listener: TcpListener, body: &'static str) {
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                let reply =
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = stream.write_all(reply.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
}

fn ssh_options(sshd: &Sshd) -> Vec<String> {
    let mut options: Vec<String> = ["BatchMode=yes", "StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"]
        .into_iter()
        .chain(["ConnectTimeout=10", "LogLevel=ERROR"])
        .flat_map(|o| ["-o".to_owned(), o.to_owned()])
        .collect();
    options.extend(["-i".to_owned(), sshd.client_key.display().to_string()]);
    options
}

/// `sha256sum FILE`'s hash.
async fn sha256(file: &Path) -> String {
    let out = run_ok(Command::new("sha256sum").arg(file), WAIT).await;
    out.split_whitespace().next().expect("a hash").to_owned()
}

#[test]
fn ssh_runs_a_command_and_scp_copies_50_mib_both_ways_on_a_port_shared_with_http() {
    in_netns(|| async {
        let tools = ["/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/scp", "/usr/bin/ssh-keygen", "/usr/bin/curl"];
        if !peers_available(&tools) {
            return;
        }
        let sshd = start_sshd().await;
        let (web, web_addr) = backend().await;
        http_origin(web, "web behind httproute\n");
        let config = format!(
            r#"{{"address": ":0", "protocols": [
                {{"kind": "httproute", "conf": {{"target": {}}}}},
                {{"kind": "ssh", "conf": {{"target": "127.0.0.1:22"}}}}
            ]}}"#,
            json(&web_addr)
        );
        let daemon = Daemon::start(&config).await;
        let port = daemon.addr.port().to_string();

        let echo = run_ok(
            Command::new("ssh").args(ssh_options(&sshd)).args([
                "-p",
                &port,
                "root@localhost",
                "echo hello-through-serve2; echo $SSH_CONNECTION",
            ]),
            WAIT,
        )
        .await;
        let mut lines = echo.lines();
        assert_eq!(lines.next(), Some("hello-through-serve2"), "{echo:?}");
        // sshd saw serve2's connection to its port 22, not the client's.
        assert!(lines.next().unwrap_or_default().ends_with(" 127.0.0.1 22"), "{echo:?}");

        let web_page = run_ok(
            Command::new("curl").args(["-sS", "--max-time", "10"]).arg(format!("http://127.0.0.1:{port}/")),
            WAIT,
        )
        .await;
        assert_eq!(web_page, "web behind httproute\n");

        let local = tempfile::tempdir().unwrap();
        let remote = tempfile::tempdir().unwrap();
        let original = local.path().join("random.bin");
        {
            let mut urandom = std::io::Read::take(std::fs::File::open("/dev/urandom").unwrap(), 50 << 20);
            let mut file = std::fs::File::create(&original).unwrap();
            assert_eq!(std::io::copy(&mut urandom, &mut file).unwrap(), 50 << 20);
        }
        let uploaded = remote.path().join("uploaded.bin");
        let downloaded = local.path().join("downloaded.bin");
        let started = std::time::Instant::now();
        // Up with the SFTP protocol (scp's default), back with the legacy
        // SCP protocol (-O), each over a connection of its own through serve2.
        let limit = Duration::from_secs(20);
        run_ok(
            Command::new("scp")
                .args(ssh_options(&sshd))
                .args(["-q", "-P", &port])
                .arg(&original)
                .arg(format!("root@localhost:{}", uploaded.display())),
            limit,
        )
        .await;
        let up = started.elapsed();
        let remote_sum = run_ok(
            Command::new("ssh")
                .args(ssh_options(&sshd))
                .args(["-p", &port, "root@localhost", "sha256sum"])
                .arg(&uploaded),
            WAIT,
        )
        .await;
        run_ok(
            Command::new("scp")
                .args(ssh_options(&sshd))
                .args(["-q", "-O", "-P", &port])
                .arg(format!("root@localhost:{}", uploaded.display()))
                .arg(&downloaded),
            limit,
        )
        .await;
        eprintln!("scp 50 MiB through serve2: up {up:?}, down {:?}", started.elapsed() - up);

        let sum = sha256(&original).await;
        assert_eq!(remote_sum.split_whitespace().next(), Some(sum.as_str()), "the server's copy: {remote_sum:?}");
        assert_eq!(sha256(&downloaded).await, sum, "the copy back");
        assert_eq!(std::fs::metadata(&downloaded).unwrap().len(), 50 << 20);
        daemon.stop().await;
    });
}

/// `curl VERSION --cacert CA -o OUT -w '%{http_version}' URL` against
/// `localhost:port`; the negotiated version it reports.
async fn curl_tls(pki: &TestPki, version: &str, port: u16, file: &str, out: &Path) -> String {
    let mut command = Command::new("curl");
    command
        .args(["--silent", "--show-error", "--fail", "--max-time", "10", version, "--cacert"])
        .arg(pki.ca_path())
        .arg("--resolve")
        .arg(format!("localhost:{port}:127.0.0.1"))
        .args(["-w", "%{http_version} %header{server}", "-o"])
        .arg(out)
        .arg(format!("https://localhost:{port}/{file}"));
    run_ok(&mut command, WAIT).await
}

/// A web root with `file.bin`: 300 KiB of numbered lines.
fn web_root() -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let body: Vec<u8> = (0..20_000).flat_map(|i| format!("line {i:09}\n").into_bytes()).collect();
    std::fs::write(dir.path().join("file.bin"), &body).unwrap();
    (dir, body)
}

fn tls_conf(pki: &TestPki) -> String {
    format!(
        r#"{{"kind": "tls", "conf": {{"cert": {}, "key": {}, "protos": ["h2", "http/1.1"]}}}}"#,
        json(pki.cert_path().to_string_lossy()),
        json(pki.key_path().to_string_lossy())
    )
}

#[test]
fn curl_http2_and_http1_over_tls_to_the_http_handler() {
    in_netns(|| async {
        if !peers_available(&["/usr/bin/curl"]) {
            return;
        }
        let pki = TestPki::new();
        let (www, body) = web_root();
        let config = format!(
            r#"{{"address": ":0", "protocols": [{}, {{"kind": "http", "conf": {{"path": {}}}}}]}}"#,
            tls_conf(&pki),
            json(www.path().to_string_lossy())
        );
        let daemon = Daemon::start(&config).await;
        let out = tempfile::tempdir().unwrap();
        for (flag, expected) in [("--http2", "2 "), ("--http1.1", "1.1 ")] {
            let path = out.path().join(flag);
            let version = curl_tls(&pki, flag, daemon.addr.port(), "file.bin", &path).await;
            assert_eq!(version, expected, "{flag}: negotiated version and Server header");
            assert!(std::fs::read(&path).unwrap() == body, "{flag}: the body differs");
        }
        daemon.stop().await;
    });
}

#[test]
fn curl_http2_and_http1_over_tls_to_nginx_behind_proxy_and_h2c() {
    in_netns(|| async {
        if !peers_available(&["/usr/bin/curl", "/usr/sbin/nginx"]) {
            return;
        }
        let pki = TestPki::new();
        let (www, body) = web_root();
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name).display().to_string();
        let (h1, h2) = (free_port(), free_port());
        // nginx 1.22 has no `http2 on`: a cleartext `listen … http2` speaks
        // only prior-knowledge HTTP/2, so HTTP/1 and h2c get a port each.
        let temp_paths: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
            .iter()
            .map(|t| format!("{t}_temp_path {};\n", at(t)))
            .collect();
        let conf = format!(
            "daemon off; master_process off; error_log stderr; pid {pid};\nevents {{}}\nhttp {{\n{temp_paths}\
             server {{ listen 127.0.0.1:{h1}; listen 127.0.0.1:{h2} http2; root {root}; access_log {log}; }}\n}}\n",
            pid = at("nginx.pid"),
            root = www.path().display(),
            log = at("access.log"),
        );
        std::fs::write(at("nginx.conf"), conf).unwrap();
        let mut nginx = Command::new("/usr/sbin/nginx")
            .args(["-e", "stderr", "-p", &at(""), "-c", &at("nginx.conf")])
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        wait_listening(h1).await;
        wait_listening(h2).await;
        assert!(nginx.try_wait().unwrap().is_none(), "nginx exited");

        let methods = r#"["GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "OPTIONS ", "PATCH ", "TRACE ", "CONNECT "]"#;
        let config = format!(
            r#"{{"address": ":0", "protocols": [{tls},
                {{"kind": "h2c", "conf": {{"target": "127.0.0.1:{h2}"}}}},
                {{"kind": "proxy", "conf": {{"magic": {methods}, "target": "127.0.0.1:{h1}"}}}}
            ]}}"#,
            tls = tls_conf(&pki)
        );
        let daemon = Daemon::start(&config).await;
        let out = tempfile::tempdir().unwrap();
        for (flag, expected) in [("--http2", "2 nginx/1"), ("--http1.1", "1.1 nginx/1")] {
            let path = out.path().join(flag);
            let version = curl_tls(&pki, flag, daemon.addr.port(), "file.bin", &path).await;
            assert!(version.starts_with(expected), "{flag}: {version:?} (version and Server header)");
            assert!(std::fs::read(&path).unwrap() == body, "{flag}: the body differs");
        }
        // nginx saw each version on its own port's protocol.
        let log = std::fs::read_to_string(at("access.log")).unwrap();
        let requests: Vec<&str> = log.lines().filter_map(|l| l.split('"').nth(1)).collect();
        assert_eq!(requests, ["GET /file.bin HTTP/2.0", "GET /file.bin HTTP/1.1"], "{log}");
        daemon.stop().await;
    });
}

#[test]
fn openssl_s_client_sni_alpn_matrix_against_tlsmatcher() {
    in_netns(|| async {
        if !peers_available(&["/usr/bin/openssl"]) {
            return;
        }
        let pki = TestPki::new();
        let mut targets = std::collections::HashMap::new();
        for name in ["a-h2", "a", "b-none", "h2", "no-alpn", "default"] {
            let (listener, addr) = backend().await;
            greeter(listener, name);
            targets.insert(name, json(addr));
        }
        let config = format!(
            r#"{{"address": ":0", "protocols": [
                {{"kind": "tls", "conf": {{"cert": {cert}, "key": {key}, "protos": ["h2", "http/1.1", "ssh"]}}}},
                {{"kind": "tlsmatcher", "conf": {{"serverNames": ["a.test"], "negotiatedProtocols": ["h2"], "target": {a_h2}}}}},
                {{"kind": "tlsmatcher", "conf": {{"serverNames": ["A.Test"], "target": {a}}}}},
                {{"kind": "tlsmatcher", "conf": {{"serverNames": ["b.test"], "negotiatedProtocols": [""], "target": {b_none}}}}},
                {{"kind": "tlsmatcher", "conf": {{"negotiatedProtocols": ["h2"], "target": {h2}}}}},
                {{"kind": "tlsmatcher", "conf": {{"negotiatedProtocolIsMutual": false, "target": {no_alpn}}}}},
                {{"kind": "proxy", "default": true, "conf": {{"target": {default}}}}}
            ]}}"#,
            cert = json(pki.cert_path().to_string_lossy()),
            key = json(pki.key_path().to_string_lossy()),
            a_h2 = targets["a-h2"],
            a = targets["a"],
            b_none = targets["b-none"],
            h2 = targets["h2"],
            no_alpn = targets["no-alpn"],
            default = targets["default"],
        );
        let daemon = Daemon::start(&config).await;
        let expected = [
            ("a.test", "h2", "a-h2"),
            ("a.test", "http/1.1", "a"),
            ("a.test", "", "a"),
            ("b.test", "h2", "h2"),
            ("b.test", "http/1.1", "default"),
            ("b.test", "", "b-none"),
            ("localhost", "h2", "h2"),
            ("localhost", "http/1.1", "default"),
            ("localhost", "", "no-alpn"),
        ];
        let mut runs = tokio::task::JoinSet::new();
        for (sni, alpn, _) in expected {
            let mut command = Command::new("openssl");
            command
                .args(["s_client", "-quiet", "-verify_return_error", "-connect"])
                .arg(daemon.addr.to_string())
                .args(["-servername", sni, "-CAfile"])
                .arg(pki.ca_path());
            if !alpn.is_empty() {
                command.args(["-alpn", alpn]);
            }
            let mut child = command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            runs.spawn(async move {
                // The clear stream's first line: every detector says no to
                // it at once, so the default needs no timeout.
                stdin.write_all(b"ping\n").await.unwrap();
                drop(stdin);
                let output =
                    tokio::time::timeout(WAIT, child.wait_with_output()).await.expect("s_client ends").unwrap();
                let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
                (sni, alpn, stdout, String::from_utf8_lossy(&output.stderr).into_owned())
            });
        }
        let mut got = Vec::new();
        while let Some(run) = runs.join_next().await {
            got.push(run.unwrap());
        }
        got.sort();
        let mut wrong = Vec::new();
        for (sni, alpn, expect) in expected {
            let (_, _, stdout, stderr) = got.iter().find(|g| g.0 == sni && g.1 == alpn).unwrap();
            if *stdout != format!("{expect} heard ping\n") {
                wrong.push(format!("SNI {sni} ALPN {alpn:?}: expected {expect}, got {stdout:?} ({})", stderr.trim()));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        daemon.stop().await;
    });
}
