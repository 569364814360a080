//! `tls`: terminate TLS and detect again on the decrypted stream; and the
//! TLS configurations serve2 builds from PEM files.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::conn::{Conn, Stream, TlsInfo};
use crate::protocol::{Handled, Handler, HandlerError, HandlerFuture};

/// Terminates TLS; the decrypted stream goes through detection again.
#[derive(Clone)]
pub struct TlsTerminator {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for TlsTerminator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTerminator").finish_non_exhaustive()
    }
}

impl TlsTerminator {
    /// A terminator using `config` (certificate, key, ALPN protocols).
    pub fn new(config: Arc<rustls::ServerConfig>) -> Self {
        Self { acceptor: TlsAcceptor::from(config) }
    }
}

impl Handler for TlsTerminator {
    fn handle(&self, conn: Conn) -> HandlerFuture<'_> {
        Box::pin(async move {
            let mut info = conn.info().clone();
            // The handshake counts against the detection deadline: a client
            // that stalls mid-handshake is as silent as one that sends nothing.
            let handshake = tokio::time::timeout_at(info.detect_deadline, self.acceptor.accept(conn))
                .await
                .map_err(|_| HandlerError::Tls(std::io::ErrorKind::TimedOut.into()))?
                .map_err(HandlerError::Tls)?;
            let session = handshake.get_ref().1;
            info.tls = Some(TlsInfo {
                server_name: session.server_name().map(|n| n.to_ascii_lowercase()),
                alpn: session.alpn_protocol().map(<[u8]>::to_vec),
            });
            info.depth += 1;
            Ok(Handled::Redetect(Conn::new(Stream::boxed(handshake), info)))
        })
    }
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// A PEM file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file holds no usable item.
    #[error("{path}: {what}")]
    Content {
        /// The file.
        path: String,
        /// What is wrong with it.
        what: String,
    },
    /// rustls refused the certificate/key pair or the settings.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

fn read_pem(path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read { path: path.display().to_string(), source })
}

/// Reads every certificate in a PEM file.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let pem = read_pem(path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::Content { path: path.display().to_string(), what: e.to_string() })?;
    if certs.is_empty() {
        let what = "no PEM certificate (BEGIN CERTIFICATE) found".to_owned();
        return Err(TlsConfigError::Content { path: path.display().to_string(), what });
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let pem = read_pem(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| TlsConfigError::Content { path: path.display().to_string(), what: e.to_string() })?
        .ok_or_else(|| TlsConfigError::Content {
            path: path.display().to_string(),
            what: "no PEM private key (BEGIN PRIVATE KEY) found".to_owned(),
        })
}

/// A server configuration presenting, by SNI, one of `pairs` (certificate
/// chain and key; the first is the default), advertising `alpn` protocols.
/// The error gives the index of the pair rustls refused.
pub fn server_config(
    pairs: Vec<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    alpn: &[String],
) -> Result<rustls::ServerConfig, (usize, rustls::Error)> {
    let resolver = super::tls_certs::CertificatesBySni::new(pairs)?;
    let mut config = rustls::ServerConfig::builder().with_no_client_auth().with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(config)
}

/// How serve2 checks the certificate of a backend it dials over TLS.
#[derive(Debug, Clone, Default)]
pub enum BackendVerification {
    /// Against the system's trusted roots.
    #[default]
    SystemRoots,
    /// Against the CA certificates in a PEM file.
    CaFile(std::path::PathBuf),
    /// Not at all (a backend with a self-signed certificate on a trusted path).
    Insecure,
}

/// A client configuration for dialling backends over TLS.
pub fn client_config(verification: &BackendVerification) -> Result<rustls::ClientConfig, TlsConfigError> {
    let builder = rustls::ClientConfig::builder();
    let config = match verification {
        BackendVerification::SystemRoots => {
            let mut roots = rustls::RootCertStore::empty();
            // Unreadable system certificates only shrink the trust store.
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        BackendVerification::CaFile(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in load_certificates(path)? {
                roots.add(cert)?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        BackendVerification::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(insecure::AcceptAnyCertificate::new()))
            .with_no_client_auth(),
    };
    Ok(config)
}

mod insecure {
    //! A verifier that accepts any backend certificate, still checking that
    //! handshake signatures are valid for the key presented.
    use rustls::DigitallySignedStruct;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    #[derive(Debug)]
    pub struct AcceptAnyCertificate(CryptoProvider);

    impl AcceptAnyCertificate {
        pub fn new() -> Self {
            Self(rustls::crypto::aws_lc_rs::default_provider())
        }
    }

    impl ServerCertVerifier for AcceptAnyCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
