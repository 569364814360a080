//! QUIC through serve2 by SNI, with real peers: two quinn servers
//! (`a.example.test`, `b.example.test`, each with its own certificate)
//! behind two `quic` entries of one UDP port that WireGuard shares, and a
//! quinn client whose rustls (aws-lc-rs) offers X25519MLKEM768 first, so
//! its ClientHello spans two Initial datagrams. The split is shown first on
//! the wire (a recorder socket and serve2's own detector), then each name
//! must reach its own server, and a name or ALPN no entry lists must reach
//! neither.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{HandshakeData, QuicClientConfig, QuicServerConfig};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serve2_detect::DatagramVerdict;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::support::udp::{UdpBackend, UdpDaemon, client, policy};
use crate::support::{WAIT, in_netns};

/// Both servers' ALPN; the `b` entry asks for it.
const H3: &str = "h3";

/// The client's idle timeout, which also bounds a handshake that never
/// gets an answer (a flow serve2 dropped).
const IDLE: Duration = Duration::from_secs(1);

/// rustls with aws-lc-rs and its default key exchange groups (the crate's
/// `prefer-post-quantum` feature puts X25519MLKEM768 first).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A throwaway CA: the client trusts it, each server has a certificate of
/// its own from it.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "serve2 QUIC test CA");
        Pki { ca: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        roots
    }

    /// A certificate for `name` alone, and its key.
    fn leaf(&self, name: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (vec![cert.der().clone()], PrivatePkcs8KeyDer::from(key.serialize_der()).into())
    }
}

/// A quinn server on `127.0.0.1:0` answering every bidirectional stream
/// with its own name; it reports the SNI of every handshake it completes.
struct QuicServer {
    addr: SocketAddr,
    handshakes: mpsc::UnboundedReceiver<String>,
    endpoint: quinn::Endpoint,
}

impl QuicServer {
    fn start(pki: &Pki, name: &'static str) -> QuicServer {
        let (chain, key) = pki.leaf(name);
        let mut crypto = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        crypto.alpn_protocols = vec![H3.as_bytes().to_vec()];
        let config = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(crypto).unwrap()));
        let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = endpoint.local_addr().unwrap();
        let (reported, handshakes) = mpsc::unbounded_channel();
        let accepting = endpoint.clone();
        tokio::spawn(async move {
            while let Some(incoming) = accepting.accept().await {
                let reported = reported.clone();
                tokio::spawn(async move {
                    let Ok(connection) = incoming.await else { return };
                    let sni = connection
                        .handshake_data()
                        .and_then(|data| data.downcast::<HandshakeData>().ok())
                        .and_then(|data| data.server_name)
                        .unwrap_or_default();
                    let _ = reported.send(sni);
                    // Until the client closes: the answer stays retransmittable.
                    while let Ok((mut send, mut recv)) = connection.accept_bi().await {
                        let _ = recv.read_to_end(64).await;
                        let _ = send.write_all(name.as_bytes()).await;
                        let _ = send.finish();
                    }
                });
            }
        });
        QuicServer { addr, handshakes, endpoint }
    }

    /// The SNIs of the handshakes it completed so far.
    fn handshakes(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.handshakes.try_recv().ok()).collect()
    }
}

/// A client endpoint on a socket of its own (serve2's flows are per client
/// address, and one quinn endpoint sends every connection from one socket)
/// offering `alpn`, trusting `roots`.
fn client_endpoint(roots: &RootCertStore, alpn: &str) -> quinn::Endpoint {
    let mut crypto = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    crypto.alpn_protocols = vec![alpn.as_bytes().to_vec()];
    let mut config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(crypto).unwrap()));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(IDLE.try_into().unwrap()));
    config.transport_config(Arc::new(transport));
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(config);
    endpoint
}

/// Connects to `to` asking for `sni` and returns the name the server
/// answers on a stream, or why the connection failed; within [`WAIT`].
async fn ask(roots: &RootCertStore, to: SocketAddr, sni: &str, alpn: &str) -> Result<String, quinn::ConnectionError> {
    let endpoint = client_endpoint(roots, alpn);
    let asked = async {
        let connection = endpoint.connect(to, sni).unwrap().await?;
        let (mut send, mut recv) = connection.open_bi().await?;
        send.write_all(b"who are you?").await.unwrap();
        send.finish().unwrap();
        let answer = recv.read_to_end(64).await.unwrap();
        connection.close(0u32.into(), b"done");
        Ok(String::from_utf8(answer).unwrap())
    };
    let answered = async {
        let answer = asked.await;
        // The close reaches the server before the socket goes.
        endpoint.wait_idle().await;
        answer
    };
    tokio::time::timeout(WAIT, answered).await.expect("the QUIC client ends within WAIT")
}

/// The first two datagrams the client sends for `sni`, caught by a plain
/// socket that never answers.
async fn first_flight(roots: &RootCertStore, sni: &str) -> [Vec<u8>; 2] {
    let recorder = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let endpoint = client_endpoint(roots, H3);
    let _connecting = endpoint.connect(recorder.local_addr().unwrap(), sni).unwrap();
    let mut buffer = vec![0u8; 65_536];
    let mut next = async || {
        let (n, _) = tokio::time::timeout(WAIT, recorder.recv_from(&mut buffer)).await.unwrap().unwrap();
        buffer[..n].to_vec()
    };
    [next().await, next().await]
}

/// What serve2's `quic` kind says, with `serverNames` [`name`], about each
/// prefix of `flight`.
fn verdicts(name: &str, flight: &[Vec<u8>]) -> Vec<DatagramVerdict> {
    let kind = serve2_detect::udp_registry::udp_kind("quic").unwrap();
    let detector = kind.build(serde_json::json!({"serverNames": [name]})).unwrap();
    let datagrams: Vec<&[u8]> = flight.iter().map(Vec::as_slice).collect();
    (1..=datagrams.len()).map(|n| detector.detect(&datagrams[..n])).collect()
}

#[test]
fn a_post_quantum_client_hello_spans_two_initials_and_each_sni_reaches_its_own_quic_server() {
    in_netns(|| async {
        let group = provider().kx_groups.first().map(|g| g.name());
        assert_eq!(group, Some(rustls::NamedGroup::X25519MLKEM768), "the client's first key share");
        let pki = Pki::new();
        let roots = pki.roots();

        // On the wire: the hello needs both datagrams, and it names a.
        let flight = first_flight(&roots, "a.example.test").await;
        assert!(flight.iter().all(|d| d.len() >= 1200), "padded Initials: {:?}", flight.map(|d| d.len()));
        use DatagramVerdict::{Match, NeedMore, NoMatch};
        assert_eq!(verdicts("a.example.test", &flight), [NeedMore, Match], "the first datagram alone is not enough");
        assert_eq!(verdicts("b.example.test", &flight), [NeedMore, NoMatch]);

        let (mut a, mut b) = (QuicServer::start(&pki, "a.example.test"), QuicServer::start(&pki, "b.example.test"));
        let mut wireguard = UdpBackend::start("wg").await;
        let body = format!(
            r#""udp": {{"protocols": [
                 {{"kind": "quic", "conf": {{"serverNames": ["a.example.test"], "target": "{a}"}}}},
                 {{"kind": "quic", "conf": {{"serverNames": ["b.example.test"], "alpn": ["{H3}"], "target": "{b}"}}}},
                 {{"kind": "wireguard", "conf": {{"target": "{wg}"}}}}
               ]}}"#,
            a = a.addr,
            b = b.addr,
            wg = wireguard.addr,
        );
        let daemon = UdpDaemon::start(&body).await;

        for (sni, server) in [("a.example.test", &mut a), ("b.example.test", &mut b)] {
            assert_eq!(ask(&roots, daemon.addr, sni, H3).await.unwrap(), sni, "the server that answered");
            assert_eq!(server.handshakes(), [sni]);
        }
        let status = daemon.status().await;
        assert_eq!(policy(&status, "top level").created, 2, "{status:#?}");

        // A name no entry lists, and b's name without b's ALPN: no default,
        // so serve2 drops them and the handshake times out.
        for (sni, alpn) in [("c.example.test", H3), ("b.example.test", "hq-interop")] {
            let refused = ask(&roots, daemon.addr, sni, alpn).await;
            assert!(matches!(refused, Err(quinn::ConnectionError::TimedOut)), "{sni} {alpn}: {refused:?}");
        }
        assert_eq!((a.handshakes(), b.handshakes()), (vec![], vec![]), "neither server saw them");
        // Each refused attempt (and each retransmission of its Initials) is
        // an undetected flow, forgotten at once: only a's and b's remain.
        daemon
            .status_until("a's and b's flows open, every other one undetected", |s| {
                let top = policy(s, "top level");
                top.undetected >= 2 && top.flows == 2 && top.created == 2 + top.undetected
            })
            .await;

        // The same port takes WireGuard too.
        let capture = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/udp/wireguard/wireguard-go-0.0.20220316-initiation-server1.udp"),
        )
        .unwrap();
        let initiation = serve2_detect::testing::decode_datagrams(&capture).unwrap().remove(0);
        client().await.send_to(&initiation, daemon.addr).await.unwrap();
        assert_eq!(wireguard.next().await.0, initiation);

        a.endpoint.close(0u32.into(), b"");
        b.endpoint.close(0u32.into(), b"");
        daemon.stop().await;
    });
}
