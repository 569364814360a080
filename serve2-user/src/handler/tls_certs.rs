//! Several certificates on one `tls` entry (`certs`): the one whose own
//! names (SAN, wildcards as the certificate states them) cover the client's
//! SNI is presented; the first is the default.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, DnsName, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Chooses a certificate by SNI.
#[derive(Debug)]
pub struct CertificatesBySni {
    /// In configuration order; the first is the default.
    keys: Vec<Arc<CertifiedKey>>,
}

impl CertificatesBySni {
    /// Loads each (chain, key) pair with the process's crypto provider.
    /// Errors name the pair's index.
    pub fn new(
        pairs: Vec<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> Result<Self, (usize, rustls::Error)> {
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        let keys = pairs
            .into_iter()
            .enumerate()
            .map(|(i, (chain, key))| CertifiedKey::from_der(chain, key, &provider).map(Arc::new).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { keys })
    }

    /// The certificate for `server_name` (the default when none covers it).
    fn choose(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let name = server_name.and_then(|n| DnsName::try_from(n.to_owned()).ok()).map(ServerName::DnsName);
        let covering = name.and_then(|name| {
            self.keys.iter().find(|key| {
                key.end_entity_cert()
                    .ok()
                    .and_then(|der| webpki::EndEntityCert::try_from(der).ok())
                    .is_some_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
            })
        });
        covering.or(self.keys.first()).cloned()
    }
}

impl ResolvesServerCert for CertificatesBySni {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(client_hello.server_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let cert = rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        (vec![cert.cert.der().clone()], PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into()))
    }

    #[test]
    fn the_certificate_covering_the_name_wins_and_the_first_is_the_default() {
        let resolver = CertificatesBySni::new(vec![pair(&["a.test"]), pair(&["*.b.test"]), pair(&["c.test"])]).unwrap();
        let chosen = |sni: Option<&str>| resolver.choose(sni).unwrap();
        assert!(Arc::ptr_eq(&chosen(Some("a.test")), &resolver.keys[0]));
        assert!(Arc::ptr_eq(&chosen(Some("x.b.test")), &resolver.keys[1]));
        assert!(Arc::ptr_eq(&chosen(Some("C.TEST")), &resolver.keys[2]));
        // Wildcards cover one label only, as in the certificate.
        assert!(Arc::ptr_eq(&chosen(Some("x.y.b.test")), &resolver.keys[0]));
        assert!(Arc::ptr_eq(&chosen(Some("unknown.test")), &resolver.keys[0]));
        assert!(Arc::ptr_eq(&chosen(None), &resolver.keys[0]));
    }
}
