//! The rustls configurations a worker serves handshakes with, one per certificate (an https
//! listener's own, each `sni` entry's), and the choice among them by the name the client asks
//! for (SNI): an exact name first, then a wildcard one label up (`*.example.com` for
//! `www.example.com`, not for `a.b.example.com` nor `example.com`, as certificates match),
//! then the listener's own. The choice is made on the ClientHello, before the handshake, so
//! each certificate can have its own ciphers and client CA.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ProducesTickets, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use super::material::{Material, Site};
use crate::config::tls::{TlsConfig, TlsVersion};

/// The configurations of one worker, rebuilt whole when the files are reloaded.
pub(crate) struct Sites {
    /// By https listener.
    listeners: Vec<Arc<ServerConfig>>,
    /// By lower-case name, `*.` names included as written.
    by_name: HashMap<String, Arc<ServerConfig>>,
}

impl Sites {
    /// The configurations for `material`.
    pub(crate) fn new(
        material: &Material,
        tls: &TlsConfig,
        provider: &Arc<CryptoProvider>,
        tickets: &Arc<dyn ProducesTickets>,
    ) -> Result<Sites, String> {
        let make = |site: &Site| server_config(site, tls, provider, tickets);
        let listeners = material
            .listeners
            .iter()
            .map(make)
            .collect::<Result<_, _>>()?;
        let mut by_name = HashMap::new();
        for (name, site) in &material.sni {
            // The first entry for a name wins, as uWSGI's list is searched in order.
            if !by_name.contains_key(name) {
                by_name.insert(name.clone(), make(site)?);
            }
        }
        Ok(Sites { listeners, by_name })
    }

    /// The configuration for a client of https listener `listener` asking for `name`.
    pub(crate) fn choose(&self, listener: u16, name: Option<&str>) -> Option<Arc<ServerConfig>> {
        if let Some(name) = name {
            if let Some(found) = lookup(&self.by_name, name) {
                return Some(found.clone());
            }
        }
        self.listeners.get(usize::from(listener)).cloned()
    }
}

/// The exact name, else the wildcard one label up. `name` is as the client sent it (rustls
/// gives it lower-cased and without a trailing dot).
fn lookup<'a, T>(by_name: &'a HashMap<String, T>, name: &str) -> Option<&'a T> {
    if by_name.is_empty() {
        return None;
    }
    if let Some(found) = by_name.get(name) {
        return Some(found);
    }
    let (_, parent) = name.split_once('.')?;
    if parent.is_empty() {
        return None;
    }
    by_name.get(&format!("*.{parent}"))
}

/// A certificate that is the answer whatever the client asks (the choice was made before).
#[derive(Debug)]
struct One(Arc<CertifiedKey>);

impl ResolvesServerCert for One {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// How many TLS 1.3 tickets a full handshake sends: one is enough for the next connection
/// (browsers keep one per site), and each costs an encryption and a record.
const TLS13_TICKETS: usize = 1;

fn server_config(
    site: &Site,
    tls: &TlsConfig,
    provider: &Arc<CryptoProvider>,
    tickets: &Arc<dyn ProducesTickets>,
) -> Result<Arc<ServerConfig>, String> {
    let provider = match &site.suites {
        Some(suites) => Arc::new(CryptoProvider {
            cipher_suites: suites.clone(),
            ..(**provider).clone()
        }),
        None => provider.clone(),
    };
    let versions: &[&rustls::SupportedProtocolVersion] = match tls.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("no cipher suite for the TLS versions asked for: {e}"))?;
    let builder = match &site.clients {
        Some((roots, required)) => {
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
            if !required {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| format!("the client CA cannot verify certificates: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(One(site.cert.key.clone())));
    config.alpn_protocols = if tls.http2.enabled {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    config.ticketer = tickets.clone();
    config.send_tls13_tickets = TLS13_TICKETS;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_then_one_label_wildcards() {
        let by_name: HashMap<String, u8> = [
            ("www.example.com".to_string(), 1),
            ("*.example.com".to_string(), 2),
            ("example.org".to_string(), 3),
        ]
        .into_iter()
        .collect();
        assert_eq!(lookup(&by_name, "www.example.com"), Some(&1));
        assert_eq!(lookup(&by_name, "api.example.com"), Some(&2));
        assert_eq!(lookup(&by_name, "a.b.example.com"), None);
        assert_eq!(lookup(&by_name, "example.com"), None);
        assert_eq!(lookup(&by_name, "example.org"), Some(&3));
        assert_eq!(lookup(&by_name, "www.example.org"), None);
        assert_eq!(lookup(&by_name, "localhost"), None);
    }
}
