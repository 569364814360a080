//! `tls` termination with detection on the clear stream, and `tlsmatcher`.

use tokio::io::AsyncWriteExt;

use crate::support::certs::TestPki;
use crate::support::*;

const BANNER: &[u8] = include_bytes!("../fixtures/openssh-client-banner.bin");

fn www() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<h1>served over TLS</h1>\n").unwrap();
    dir
}

fn tls_config(pki: &TestPki, protos: &str, www: &std::path::Path, ssh_target: &str, extra: &str) -> String {
    format!(
        r#"{{"address": ":0", "protocols": [
            {{"kind": "tls", "conf": {{"cert": {cert}, "key": {key}, "protos": {protos}}}}},
            {extra}
            {{"kind": "http", "conf": {{"path": {www}}}}},
            {{"kind": "proxy", "conf": {{"magic": "SSH", "target": {ssh}}}}}
        ]}}"#,
        cert = json(pki.cert_path().to_string_lossy()),
        key = json(pki.key_path().to_string_lossy()),
        www = json(www.to_string_lossy()),
        ssh = json(ssh_target),
    )
}

#[test]
fn curl_fetches_a_file_over_https() {
    in_netns(|| async {
        let pki = TestPki::new();
        let www = www();
        let daemon = Daemon::start(&tls_config(&pki, r#"["h2", "http/1.1"]"#, www.path(), "127.0.0.1:9", "")).await;
        for http_version in ["--http1.1", "--http2"] {
            let output = tokio::process::Command::new("curl")
                .args(["--silent", "--show-error", "--max-time", "10", http_version, "--cacert"])
                .arg(pki.ca_path())
                .arg(format!("https://localhost:{}/", daemon.addr.port()))
                .arg("--resolve")
                .arg(format!("localhost:{}:127.0.0.1", daemon.addr.port()))
                .output()
                .await
                .expect("run curl");
            assert!(output.status.success(), "curl {http_version}: {}", String::from_utf8_lossy(&output.stderr));
            assert_eq!(output.stdout, b"<h1>served over TLS</h1>\n", "{http_version}");
        }
        daemon.stop().await;
    });
}

#[test]
fn ssh_over_tls_reaches_the_proxy_backend_in_clear() {
    in_netns(|| async {
        let pki = TestPki::new();
        let www = www();
        let (backend, addr) = backend().await;
        let daemon = Daemon::start(&tls_config(&pki, r#"["ssh"]"#, www.path(), &addr, "")).await;
        let mut tls = pki.connect(daemon.addr, "localhost", &["ssh"]).await;
        tls.write_all(BANNER).await.unwrap();
        tls.flush().await.unwrap();
        let mut server = accept(&backend).await;
        assert_eq!(read_exact(&mut server, BANNER.len()).await, BANNER);
        send(&mut server, b"SSH-2.0-backend\r\n").await;
        assert_eq!(read_exact(&mut tls, 17).await, b"SSH-2.0-backend\r\n");
        daemon.stop().await;
    });
}

/// Runs a TLS backend; returns what its first client asked for (SNI, ALPN)
/// and the first bytes it sent.
async fn tls_backend(
    pki: &TestPki,
    listener: tokio::net::TcpListener,
    expect: usize,
) -> (Option<String>, Option<Vec<u8>>, Vec<u8>) {
    let tcp = accept(&listener).await;
    let mut tls = pki.acceptor(&["x-git", "h2"]).accept(tcp).await.expect("backend handshake");
    let (_, session) = tls.get_ref();
    let sni = session.server_name().map(str::to_owned);
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let bytes = read_exact(&mut tls, expect).await;
    (sni, alpn, bytes)
}

#[test]
fn tlsmatcher_routes_by_sni_and_by_alpn_with_and_without_dial_tls() {
    in_netns(|| async {
        let pki = TestPki::new();
        let www = www();
        let (by_sni, by_sni_addr) = backend().await;
        let (by_alpn, by_alpn_addr) = backend().await;
        let matchers = format!(
            r#"{{"kind": "tlsmatcher", "conf": {{"serverNames": ["GIT.test"], "target": {sni}}}}},
               {{"kind": "tlsmatcher", "conf": {{"negotiatedProtocols": ["x-git"], "negotiatedProtocolIsMutual": true,
                 "target": {alpn}, "dialTLS": true, "caFile": {ca}}}}},"#,
            sni = json(&by_sni_addr),
            alpn = json(&by_alpn_addr),
            ca = json(pki.ca_path().to_string_lossy()),
        );
        let config = tls_config(&pki, r#"["x-git", "h2", "http/1.1"]"#, www.path(), "127.0.0.1:9", &matchers);
        let daemon = Daemon::start(&config).await;

        // By SNI, plain TCP to the backend: it gets the decrypted bytes.
        let mut client = pki.connect(daemon.addr, "git.test", &[]).await;
        client.write_all(b"clear text for git").await.unwrap();
        client.flush().await.unwrap();
        let mut server = accept(&by_sni).await;
        assert_eq!(read_exact(&mut server, 18).await, b"clear text for git");
        send(&mut server, b"ok").await;
        assert_eq!(read_exact(&mut client, 2).await, b"ok");

        // By ALPN, re-encrypted with the client's SNI and ALPN.
        let mut client = pki.connect(daemon.addr, "b.test", &["x-git"]).await;
        client.write_all(b"re-encrypted").await.unwrap();
        client.flush().await.unwrap();
        let (sni, alpn, bytes) = tls_backend(&pki, by_alpn, 12).await;
        assert_eq!(sni.as_deref(), Some("b.test"));
        assert_eq!(alpn.as_deref(), Some(&b"x-git"[..]));
        assert_eq!(bytes, b"re-encrypted");

        // Neither: falls through to the clear-text detectors (HTTP here).
        let mut client = pki.connect(daemon.addr, "a.test", &["http/1.1"]).await;
        client.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n").await.unwrap();
        let response = read_to_end(&mut client).await.unwrap();
        let response = String::from_utf8_lossy(&response);
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        assert!(response.ends_with("<h1>served over TLS</h1>\n"), "{response}");
        daemon.stop().await;
    });
}

#[test]
fn a_failed_handshake_does_not_disturb_the_daemon() {
    in_netns(|| async {
        let pki = TestPki::new();
        let www = www();
        let daemon = Daemon::start(&tls_config(&pki, "[]", www.path(), "127.0.0.1:9", "")).await;
        // A ClientHello, then garbage.
        let hello = include_bytes!("../fixtures/curl-openssl3-clienthello.bin");
        let mut client = daemon.connect().await;
        send(&mut client, hello).await;
        send(&mut client, b"\x16\x03\x03\x00\x02garbage").await;
        let _ = read_to_end(&mut client).await;
        let mut tls = pki.connect(daemon.addr, "localhost", &[]).await;
        tls.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        let response = read_to_end(&mut tls).await.unwrap();
        let response = String::from_utf8_lossy(&response);
        assert!(response.starts_with("HTTP/1.") && response.contains(" 200 OK"), "{response}");
        daemon.stop().await;
    });
}

#[test]
fn a_post_quantum_client_hello_in_several_segments_gets_a_server_hello() {
    in_netns(|| async {
        let pki = TestPki::new();
        let www = www();
        // maxRead 32: far below the 1955-byte ClientHello.
        let config = tls_config(&pki, r#"["h2", "http/1.1"]"#, www.path(), "127.0.0.1:9", "")
            .replace(r#""address": ":0","#, r#""address": ":0", "maxRead": 32,"#);
        let daemon = Daemon::start(&config).await;
        let hello = include_bytes!("../fixtures/chromium-156-x25519mlkem768-clienthello.bin");
        let mut client = daemon.connect().await;
        client.set_nodelay(true).unwrap();
        for segment in hello.chunks(700) {
            send(&mut client, segment).await;
            tokio::task::yield_now().await;
        }
        // A TLS record carrying a ServerHello (handshake type 2) comes back.
        let reply = read_exact(&mut client, 6).await;
        assert_eq!((reply[0], reply[1], reply[5]), (0x16, 0x03, 0x02), "{reply:02x?}");
        daemon.stop().await;
    });
}

#[test]
fn certs_are_chosen_by_sni_against_each_certificates_own_names() {
    in_netns(|| async {
        let pki = TestPki::with_second_certificate(&["*.other.test"]);
        let (second_cert, second_key) = pki.second_paths();
        let config = format!(
            r#"{{"address": ":0", "protocols": [
                {{"kind": "tls", "conf": {{"cert": {}, "key": {}, "certs": [{{"cert": {}, "key": {}}}]}}}},
                {{"kind": "echo"}}
            ]}}"#,
            json(pki.cert_path().to_string_lossy()),
            json(pki.key_path().to_string_lossy()),
            json(second_cert.to_string_lossy()),
            json(second_key.to_string_lossy()),
        );
        let daemon = Daemon::start(&config).await;
        // The client verifies the name: each handshake succeeds only if the
        // certificate covering it was presented.
        for sni in ["www.other.test", "a.test", "localhost"] {
            let mut tls = pki.connect(daemon.addr, sni, &[]).await;
            tls.write_all(b"ECHO hi").await.unwrap();
            assert_eq!(read_exact(&mut tls, 7).await, b"ECHO hi", "{sni}");
        }
        daemon.stop().await;
    });
}

#[test]
fn a_request_for_another_host_than_the_tls_session_is_misdirected() {
    in_netns(|| async {
        let pki = TestPki::new();
        let www = www();
        let (fronted, fronted_addr) = backend().await;
        let (default, default_addr) = backend().await;
        let config = format!(
            r#"{{"address": ":0", "maxRead": 512, "protocols": [
                {{"kind": "tls", "conf": {{"cert": {cert}, "key": {key}}}}},
                {{"kind": "httproute", "conf": {{"hosts": ["b.test"], "target": {fronted}}}}},
                {{"kind": "http", "conf": {{"path": {www}}}}},
                {{"kind": "proxy", "default": true, "conf": {{"target": {default}}}}}
            ]}}"#,
            cert = json(pki.cert_path().to_string_lossy()),
            key = json(pki.key_path().to_string_lossy()),
            fronted = json(&fronted_addr),
            www = json(www.path().to_string_lossy()),
            default = json(&default_addr),
        );
        let daemon = Daemon::start(&config).await;
        // SNI b.test, Host b.test: routed by host.
        let mut tls = pki.connect(daemon.addr, "b.test", &[]).await;
        let request = b"GET / HTTP/1.1\r\nHost: b.test\r\n\r\n";
        tls.write_all(request).await.unwrap();
        let mut server = accept(&fronted).await;
        assert_eq!(read_exact(&mut server, request.len()).await, request);
        // SNI a.test, Host b.test: not carried to b.test's backend; the file
        // server behind answers 421 Misdirected Request.
        let mut tls = pki.connect(daemon.addr, "a.test", &[]).await;
        tls.write_all(b"GET / HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n").await.unwrap();
        let response = String::from_utf8_lossy(&read_to_end(&mut tls).await.unwrap()).into_owned();
        assert!(response.starts_with("HTTP/1.1 421"), "{response}");
        // SNI a.test, Host a.test:8443: served.
        let mut tls = pki.connect(daemon.addr, "a.test", &[]).await;
        tls.write_all(b"GET / HTTP/1.1\r\nHost: A.test:8443\r\nConnection: close\r\n\r\n").await.unwrap();
        let response = String::from_utf8_lossy(&read_to_end(&mut tls).await.unwrap()).into_owned();
        assert!(response.starts_with("HTTP/1.1 200") && response.contains("served over TLS"), "{response}");
        assert!(tokio::time::timeout(std::time::Duration::from_millis(100), default.accept()).await.is_err());
        daemon.stop().await;
    });
}
