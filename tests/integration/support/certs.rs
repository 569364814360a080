//! A throwaway CA and certificates for TLS tests, written as PEM files.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A CA and one server certificate for localhost and `*.test` names.
pub struct TestPki {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Names the server certificate is valid for.
pub const NAMES: [&str; 5] = ["localhost", "a.test", "b.test", "git.test", "backend.test"];

impl TestPki {
    pub fn new() -> TestPki {
        Self::with_second_certificate(&[])
    }

    /// Also signs a second certificate for `names`, written to
    /// [`TestPki::second_paths`] (none when `names` is empty).
    pub fn with_second_certificate(names: &[&str]) -> TestPki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Distinct subjects: OpenSSL takes issuer == subject for self-signed.
        ca_params.distinguished_name.push(DnType::CommonName, "serve2 test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key")).expect("ca");
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(NAMES.map(String::from).to_vec()).expect("params");
        params.distinguished_name.push(DnType::CommonName, "serve2 test server");
        let cert = params.signed_by(&key, &ca).expect("sign");
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = TestPki { dir, ca_pem: ca.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() };
        std::fs::write(pki.ca_path(), &pki.ca_pem).expect("write ca");
        std::fs::write(pki.cert_path(), &pki.cert_pem).expect("write cert");
        std::fs::write(pki.key_path(), &pki.key_pem).expect("write key");
        if !names.is_empty() {
            let key = KeyPair::generate().expect("key");
            let mut params =
                CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("params");
            params.distinguished_name.push(DnType::CommonName, "serve2 second test server");
            let cert = params.signed_by(&key, &ca).expect("sign");
            let (cert_path, key_path) = pki.second_paths();
            std::fs::write(cert_path, cert.pem()).expect("write cert");
            std::fs::write(key_path, key.serialize_pem()).expect("write key");
        }
        pki
    }

    /// The second certificate and its key.
    pub fn second_paths(&self) -> (PathBuf, PathBuf) {
        (self.dir.path().join("second-cert.pem"), self.dir.path().join("second-key.pem"))
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }
    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    /// A client trusting the test CA, offering `alpn`.
    pub fn connector(&self, alpn: &[&str]) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).expect("ca der")).expect("add ca");
        let mut config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        TlsConnector::from(Arc::new(config))
    }

    /// A TLS server (for backends) with the test certificate, accepting `alpn`.
    pub fn acceptor(&self, alpn: &[&str]) -> TlsAcceptor {
        let chain = vec![CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).expect("cert der")];
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("key der");
        let mut config =
            rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key).expect("server config");
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        TlsAcceptor::from(Arc::new(config))
    }

    /// Connects over TLS to `addr` asking for `sni`, offering `alpn`.
    pub async fn connect(
        &self,
        addr: std::net::SocketAddr,
        sni: &str,
        alpn: &[&str],
    ) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from(sni.to_owned()).expect("server name");
        tokio::time::timeout(super::WAIT, self.connector(alpn).connect(name, tcp))
            .await
            .expect("handshake in time")
            .expect("handshake")
    }
}
