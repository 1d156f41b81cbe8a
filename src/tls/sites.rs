//! The rustls configurations a worker serves handshakes with, one per certificate (an https
//! listener's own, each `sni` entry's), and the choice among them by the name the client asks
//! for (SNI): an exact name first, then a wildcard one label up (`*.example.com` for
//! `www.example.com`, not for `a.b.example.com` nor `example.com`, as certificates match),
//! then the listener's own. The choice is made on the ClientHello, before the handshake, so
//! each certificate can have its own ciphers and client CA. ACME's certificates are chosen by
//! name as the `sni` entries are (an `sni` entry for the same name wins); a name of theirs not
//! issued yet gets the listener's own certificate if it has one, and a refusal otherwise.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ProducesTickets, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use super::acme;
use super::certs::Site;
use super::material::Material;
use crate::config::acme::Challenge;
use crate::config::tls::{TlsConfig, TlsVersion};

/// The configurations of one worker, rebuilt whole when the files are reloaded.
pub(crate) struct Sites {
    /// By https listener; `None` for a listener of ACME's certificates alone.
    listeners: Vec<Option<Arc<ServerConfig>>>,
    /// By lower-case name, `*.` names included as written.
    by_name: HashMap<String, Arc<ServerConfig>>,
    /// ACME names with no certificate yet.
    pending: HashSet<String>,
    /// The first ACME certificate the cache has: what a listener without a certificate of its
    /// own serves to clients asking for no name, or another one.
    acme_default: Option<Arc<ServerConfig>>,
    /// The cache, when TLS-ALPN-01 challenges are answered.
    challenges: Option<PathBuf>,
    /// Ends a handshake with an alert (a name with no certificate yet).
    refusal: Arc<ServerConfig>,
    provider: Arc<CryptoProvider>,
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
            .map(|site| site.as_ref().map(make).transpose())
            .collect::<Result<_, _>>()?;
        let mut by_name = HashMap::new();
        for (name, site) in &material.sni {
            // The first entry for a name wins, as uWSGI's list is searched in order.
            if !by_name.contains_key(name) {
                by_name.insert(name.clone(), make(site)?);
            }
        }
        let mut pending = HashSet::new();
        let mut acme_default = None;
        for acme in &material.acme {
            let Some(site) = &acme.site else {
                pending.extend(acme.names.iter().cloned());
                continue;
            };
            let config = make(site)?;
            for name in &acme.names {
                by_name
                    .entry(name.clone())
                    .or_insert_with(|| config.clone());
            }
            acme_default.get_or_insert(config);
        }
        let challenges = tls
            .acme
            .as_ref()
            .filter(|a| a.challenges.contains(&Challenge::TlsAlpn01))
            .map(|a| a.cache.clone());
        Ok(Sites {
            listeners,
            by_name,
            pending,
            acme_default,
            challenges,
            refusal: acme::refusal(provider)?,
            provider: provider.clone(),
        })
    }

    /// The configuration for a client of https listener `listener` asking for `name`; the
    /// error says why there is none (the handshake is then refused with an alert).
    pub(crate) fn choose(
        &self,
        listener: u16,
        name: Option<&str>,
    ) -> Result<Arc<ServerConfig>, String> {
        if let Some(name) = name {
            if let Some(found) = lookup(&self.by_name, name) {
                return Ok(found.clone());
            }
        }
        let own = match self.listeners.get(usize::from(listener)) {
            Some(own) => own.clone(),
            None => {
                return Err(
                    "no certificate for this listener (its configuration changed on reload)".into(),
                )
            }
        };
        match (own, name) {
            (Some(own), _) => Ok(own),
            (None, Some(name)) if self.pending.contains(name) => Err(format!(
                "no certificate for {name} yet (ACME has not issued it); the handshake is refused"
            )),
            (None, _) => self.acme_default.clone().ok_or_else(|| {
                format!(
                    "no certificate for {} yet (ACME has issued none); the handshake is refused",
                    name.unwrap_or("a client asking for no name")
                )
            }),
        }
    }

    /// The configuration that refuses a handshake with a TLS alert.
    pub(crate) fn refusal(&self) -> Arc<ServerConfig> {
        self.refusal.clone()
    }

    /// The configuration that answers a TLS-ALPN-01 validation for `name`.
    pub(crate) fn acme_challenge(&self, name: Option<&str>) -> Result<Arc<ServerConfig>, String> {
        match &self.challenges {
            Some(cache) => acme::challenge_config(cache, name, &self.provider),
            None => Err("a TLS-ALPN-01 validation, but acme-challenge does not offer it".into()),
        }
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
