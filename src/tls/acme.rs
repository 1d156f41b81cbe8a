//! The TLS side of ACME, in the workers: the certificates the certificate manager
//! ([`crate::acme`]) keeps in the cache, read as the service user (never by the master, which
//! may still be root when it loads the other certificates), and the answer to TLS-ALPN-01
//! challenges (RFC 8737): a ClientHello that offers only the ALPN protocol `acme-tls/1` gets
//! the challenge certificate the manager wrote for the name it asks for, and nothing else.
//!
//! A name with no certificate yet (the first order is under way, or failed) is served by the
//! listener's own certificate when it has one (the fallback), and otherwise its handshakes
//! fail with a TLS alert (access denied): a clean refusal, never a wait.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use super::acme_cache as cache;
use super::certs::{self, Site};
use crate::config::acme::AcmeConfig;
use crate::config::tls::CertFiles;

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737 §6.2).
pub(crate) const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// One `acme-domain` certificate as the cache holds it now.
#[derive(Clone)]
pub(crate) struct AcmeSite {
    pub(crate) names: Vec<String>,
    pub(crate) path: PathBuf,
    /// `None`: not issued yet, or the file does not load (expired, damaged); the manager
    /// says why in the log and orders a new one.
    pub(crate) site: Option<Site>,
}

/// Reads every ACME certificate of the cache.
pub(crate) fn load(acme: &AcmeConfig, provider: &CryptoProvider) -> Vec<AcmeSite> {
    let now = SystemTime::now();
    acme.certificates
        .iter()
        .map(|cert| {
            let path = cache::certificate_file(acme, cert);
            let files = CertFiles {
                cert: path.clone(),
                key: path.clone(),
                ciphers: None,
                client_ca: None,
                origin: cert.origin.clone(),
            };
            let site = certs::load(&files, None, provider, now)
                .ok()
                .map(|cert| Site {
                    cert,
                    clients: None,
                    suites: None,
                });
            AcmeSite {
                names: cert.names.clone(),
                path,
                site,
            }
        })
        .collect()
}

/// Whether a ClientHello is a TLS-ALPN-01 validation: it offers `acme-tls/1` and nothing
/// else (RFC 8737 §3).
pub(crate) fn is_challenge(hello: &ClientHello<'_>) -> bool {
    let Some(mut protocols) = hello.alpn() else {
        return false;
    };
    let mut any = false;
    protocols.all(|p| {
        any = true;
        p == ACME_TLS_ALPN
    }) && any
}

/// The configuration that answers the TLS-ALPN-01 challenge of `name`, from the certificate
/// the manager wrote in `dir`. The error says why there is none, for the log.
pub(crate) fn challenge_config(
    cache_dir: &Path,
    name: Option<&str>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<ServerConfig>, String> {
    let name = name.ok_or("a TLS-ALPN-01 validation without a server name")?;
    // The name becomes a file name: a host name only (rustls checked it is one; this says
    // why here).
    if name.starts_with("*.") || !crate::config::values::valid_sni_name(name) {
        return Err(format!(
            "a TLS-ALPN-01 validation for {name:?}, which is no host name"
        ));
    }
    let path = cache::tls_alpn01_file(cache_dir, name);
    let files = CertFiles {
        cert: path.clone(),
        key: path.clone(),
        ciphers: None,
        client_ca: None,
        origin: crate::config::Origin::Positional,
    };
    let loaded = certs::load(&files, None, provider, SystemTime::now()).map_err(|why| {
        format!("a TLS-ALPN-01 validation for {name}, which has no challenge under way ({why})")
    })?;
    // RFC 8737 §3: TLS 1.2 or later, the one protocol acme-tls/1.
    let mut config = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS-ALPN-01: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(loaded.key)));
    config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    Ok(Arc::new(config))
}

/// The one certificate of a challenge.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// No certificate: rustls then ends the handshake with an `access_denied` alert, which is how
/// a name without a certificate yet is refused.
#[derive(Debug)]
struct NoCertificate;

impl ResolvesServerCert for NoCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        None
    }
}

/// The configuration that refuses a handshake with an alert.
pub(crate) fn refusal(provider: &Arc<CryptoProvider>) -> Result<Arc<ServerConfig>, String> {
    let config = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(NoCertificate));
    Ok(Arc::new(config))
}
