//! What the TLS configuration's files hold, read and checked in one go: each https listener's
//! certificate, each `sni` entry's, the client CAs; with the stamps of the files read, to
//! notice when they change. Loaded by the master at startup (a failure stops dragoman with
//! one line), and again on SIGHUP and when a file changes (a failure then keeps what was
//! loaded before, and says why). The workers add the ACME certificates of the cache
//! ([`Material::with_acme`]), which never stop anything: one that is missing or does not load
//! is not served, and the certificate manager orders it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;

use super::acme::{self, AcmeSite};
use super::certs::{self, Site};
use super::ciphers;
use crate::config::tls::{CertFiles, TlsConfig};

/// Everything loaded.
#[derive(Clone)]
pub(crate) struct Material {
    /// By https listener (`Wire::Https(i)`); `None` for a listener of ACME's certificates.
    pub(crate) listeners: Vec<Option<Site>>,
    /// `sni` entries: (name, site), in the configuration's order.
    pub(crate) sni: Vec<(String, Site)>,
    /// `acme-domain` certificates, in a worker (see [`Material::with_acme`]).
    pub(crate) acme: Vec<AcmeSite>,
    /// The files read, and their stamps then.
    pub(crate) stamps: Vec<(PathBuf, Option<Stamp>)>,
}

/// A file's modification time, length and inode.
pub(crate) type Stamp = (SystemTime, u64, u64);

impl Material {
    /// Reads and checks every file the configuration names. The error is one line: the
    /// setting, the file and the problem.
    pub(crate) fn load(tls: &TlsConfig, provider: &CryptoProvider) -> Result<Material, String> {
        let now = SystemTime::now();
        let mut stamps = Vec::new();
        let mut site = |files: &CertFiles| -> Result<Site, String> {
            let in_setting = |e: String| format!("{}: {e}", files.origin);
            let mut paths = vec![files.cert.clone(), files.key.clone()];
            let cert =
                certs::load(files, tls.key_password.as_ref(), provider, now).map_err(in_setting)?;
            let clients = match &files.client_ca {
                Some(ca) => {
                    paths.push(ca.path.clone());
                    let roots = certs::read_roots(&ca.path).map_err(in_setting)?;
                    Some((Arc::new(roots), ca.required))
                }
                None => None,
            };
            let suites = ciphers::select(files.ciphers.as_deref())
                .map_err(|e| in_setting(format!("CIPHERS: {e}")))?;
            for path in paths {
                let stamp = certs::stamp(&path);
                if !stamps.iter().any(|(p, _)| *p == path) {
                    stamps.push((path, stamp));
                }
            }
            Ok(Site {
                cert,
                clients,
                suites,
            })
        };
        let listeners = tls
            .listeners
            .iter()
            .map(|files| files.as_ref().map(&mut site).transpose())
            .collect::<Result<_, _>>()?;
        let sni = tls
            .sni
            .iter()
            .map(|entry| Ok((entry.name.clone(), site(&entry.files)?)))
            .collect::<Result<_, String>>()?;
        Ok(Material {
            listeners,
            sni,
            acme: Vec::new(),
            stamps,
        })
    }

    /// These certificates and the ACME ones the cache holds now, whose files are then watched
    /// too. Read in the workers only, as the service user: the cache is the service user's.
    pub(crate) fn with_acme(&self, tls: &TlsConfig, provider: &CryptoProvider) -> Material {
        let mut material = self.clone();
        if let Some(config) = &tls.acme {
            material.acme = acme::load(config, provider);
            for site in &material.acme {
                material
                    .stamps
                    .push((site.path.clone(), certs::stamp(&site.path)));
            }
        }
        material
    }

    /// Whether a file read changed since (or can no longer be seen).
    pub(crate) fn changed(&self) -> Option<&PathBuf> {
        self.stamps
            .iter()
            .find(|(path, stamp)| certs::stamp(path) != *stamp)
            .map(|(path, _)| path)
    }

    /// What the log says about what was loaded: each certificate's subject and end date.
    pub(crate) fn describe(&self) -> Vec<String> {
        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let line = |what: String, site: &Site| {
            let days = site.cert.not_after.saturating_sub(now) / 86_400;
            format!(
                "{what}: {} (valid {days} more days){}",
                certs::subject(&site.cert.key),
                match &site.clients {
                    Some((_, true)) => ", client certificates required",
                    Some((_, false)) => ", client certificates asked for",
                    None => "",
                }
            )
        };
        let mut lines: Vec<String> = self
            .listeners
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                Some(s) => line(format!("https listener {}", i + 1), s),
                None => format!("https listener {}: the ACME certificates", i + 1),
            })
            .collect();
        lines.extend(
            self.sni
                .iter()
                .map(|(name, s)| line(format!("sni {name}"), s)),
        );
        lines.extend(self.acme.iter().map(|a| {
            let what = format!("acme {}", a.names.join(","));
            match &a.site {
                Some(s) => line(what, s),
                None => format!("{what}: no certificate in the cache yet"),
            }
        }));
        lines
    }
}
