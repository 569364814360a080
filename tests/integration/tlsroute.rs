//! `tlsroute`: TLS passthrough by SNI and ALPN over real sockets, for
//! hellos split over many segments and records, larger than 16 KiB, and
//! post-quantum hellos from rustls and Chromium.

use tokio::io::AsyncWriteExt;

use crate::support::*;

const CHROMIUM_PQ: &[u8] = include_bytes!("../fixtures/chromium-156-x25519mlkem768-clienthello.bin");
const RUSTLS_PQ: &[u8] = include_bytes!("../fixtures/rustls-aws-lc-rs-x25519mlkem768-clienthello.bin");
const OPENSSL: &[u8] = include_bytes!("../fixtures/openssl3-s_client-clienthello.bin");

/// Re-frames a one-record ClientHello into records of `chunk` bytes.
fn split_into_records(hello: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for part in hello[5..].chunks(chunk) {
        out.extend_from_slice(&[0x16, hello[1], hello[2]]);
        out.extend_from_slice(&u16::try_from(part.len()).unwrap().to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// A TLS 1.2-style ClientHello for `sni` padded past `size` bytes, in
/// records of at most 16 KiB.
fn huge_hello(sni: &str, size: usize) -> Vec<u8> {
    let name = sni.as_bytes();
    let mut sni_ext = Vec::new();
    sni_ext.extend_from_slice(&u16::try_from(name.len() + 3).unwrap().to_be_bytes());
    sni_ext.push(0);
    sni_ext.extend_from_slice(&u16::try_from(name.len()).unwrap().to_be_bytes());
    sni_ext.extend_from_slice(name);
    let mut extensions = vec![0, 0];
    extensions.extend_from_slice(&u16::try_from(sni_ext.len()).unwrap().to_be_bytes());
    extensions.extend_from_slice(&sni_ext);
    extensions.extend_from_slice(&[0, 21]); // padding
    extensions.extend_from_slice(&u16::try_from(size).unwrap().to_be_bytes());
    extensions.resize(extensions.len() + size, 0);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]); // random
    body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]); // session id, suites, compression
    body.extend_from_slice(&u16::try_from(extensions.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&extensions);
    let len = u32::try_from(body.len()).unwrap().to_be_bytes();
    let mut message = vec![1, len[1], len[2], len[3]];
    message.extend_from_slice(&body);
    let mut out = Vec::new();
    for part in message.chunks(16 * 1024) {
        out.extend_from_slice(&[0x16, 3, 1]);
        out.extend_from_slice(&u16::try_from(part.len()).unwrap().to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

#[test]
fn routes_by_sni_and_alpn_across_segments_records_and_sizes() {
    in_netns(|| async {
        let (pq, pq_addr) = backend().await;
        let (alpn, alpn_addr) = backend().await;
        let (big, big_addr) = backend().await;
        let (other, other_addr) = backend().await;
        let config = format!(
            r#"{{"address": ":0", "maxRead": 16, "protocols": [
                {{"kind": "tlsroute", "conf": {{"serverNames": ["PQ.example.test"], "target": {}}}}},
                {{"kind": "tlsroute", "conf": {{"alpn": ["h2"], "serverNames": ["*.example.test"], "target": {}}}}},
                {{"kind": "tlsroute", "conf": {{"serverNames": ["big.example.test"], "target": {}}}}},
                {{"kind": "proxy", "default": true, "conf": {{"target": {}}}}}
            ]}}"#,
            json(&pq_addr),
            json(&alpn_addr),
            json(&big_addr),
            json(&other_addr)
        );
        let daemon = Daemon::start(&config).await;
        let huge = huge_hello("big.example.test", 40_000);
        assert!(huge.len() > 40_000);
        let cases: [(&str, Vec<u8>, usize, &tokio::net::TcpListener); 6] = [
            ("chromium pq whole", CHROMIUM_PQ.to_vec(), CHROMIUM_PQ.len(), &pq),
            ("rustls pq in 1-byte segments", RUSTLS_PQ.to_vec(), 1, &pq),
            ("chromium pq in 100-byte records, 7-byte segments", split_into_records(CHROMIUM_PQ, 100), 7, &pq),
            ("openssl: example.test is not *.example.test", OPENSSL.to_vec(), 50, &other),
            ("over 16 KiB in three records", huge.clone(), 1000, &big),
            ("openssl in 1-byte records", split_into_records(OPENSSL, 1), 64, &other),
        ];
        for (name, flight, segment, expected) in cases {
            let mut client = daemon.connect().await;
            client.set_nodelay(true).unwrap();
            for part in flight.chunks(segment) {
                send(&mut client, part).await;
                client.flush().await.unwrap();
            }
            let mut server = accept(expected).await;
            assert_eq!(read_exact(&mut server, flight.len()).await, flight, "{name}");
        }
        // ALPN: a hello for a.example.test offering h2 goes to the alpn route.
        let pki = crate::support::certs::TestPki::new();
        let connector = pki.connector(&["h2"]);
        let tcp = tokio::net::TcpStream::connect(daemon.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("a.example.test").unwrap();
        let handshake = tokio::spawn(async move { connector.connect(name, tcp).await });
        let server = accept(&alpn).await;
        drop(server);
        let _ = handshake.await;
        daemon.stop().await;
    });
}
