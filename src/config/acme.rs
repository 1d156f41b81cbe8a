//! The ACME options (`acme-*`): which names get certificates from an ACME CA, from which
//! directory, with which account, cached where, by which challenges; parsed and checked into
//! an [`AcmeConfig`]. Nothing touches the network or the disk here: the certificate manager
//! ([`crate::acme`]) does, in its own process, and says in the log what goes wrong there.

use std::path::PathBuf;

use base64::Engine;

use super::defaults::{LETS_ENCRYPT, LETS_ENCRYPT_STAGING};
use super::resolve::{bad_value, Resolved};
use super::source::{ConfigError, Origin, Setting};
use super::values::{valid_sni_name, Secret};

/// Everything ACME: present when at least one `acme-domain` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AcmeConfig {
    /// One per `acme-domain`: the names one certificate covers.
    pub(crate) certificates: Vec<AcmeCertificate>,
    /// `acme-email`: the account's contact (without `mailto:`).
    pub(crate) email: Option<String>,
    /// The directory URL (`acme-directory`, `acme-staging`, or Let's Encrypt's).
    pub(crate) directory: String,
    /// `acme-ca-root`: the CA bundle the directory's certificate is checked against instead of
    /// the system's.
    pub(crate) ca_root: Option<PathBuf>,
    /// `acme-cache`: the account, the certificates, the challenges and the locks.
    pub(crate) cache: PathBuf,
    /// `acme-eab-kid` and `acme-eab-hmac`: external account binding.
    pub(crate) eab: Option<Eab>,
    /// `acme-challenge`: the challenges offered, in order of preference.
    pub(crate) challenges: Vec<Challenge>,
}

/// One certificate: the names of one `acme-domain` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AcmeCertificate {
    /// Lower-case host names, the first one naming the certificate in the cache.
    pub(crate) names: Vec<String>,
    pub(crate) origin: Origin,
}

/// External account binding: the key id and the HMAC key the CA gave (RFC 8555 §7.3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Eab {
    pub(crate) kid: String,
    /// The HMAC key as the CA gave it, in base64url (checked to decode), without padding.
    pub(crate) hmac: Secret,
}

/// A challenge type dragoman can answer by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// A file under `/.well-known/acme-challenge/`, on port 80 (a plain listener).
    Http01,
    /// A special certificate for the ALPN protocol `acme-tls/1`, on port 443 (an https
    /// listener).
    TlsAlpn01,
}

impl Challenge {
    /// As ACME names it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Challenge::Http01 => "http-01",
            Challenge::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

/// The ACME options, `None` without `acme-domain`. `plain_listener`: whether an `http` or
/// `http-to-https` listener exists (HTTP-01 is answered there).
pub(crate) fn acme(
    r: &Resolved<'_>,
    plain_listener: bool,
    warnings: &mut Vec<String>,
) -> Result<Option<AcmeConfig>, ConfigError> {
    let domains = r.all("acme-domain");
    if domains.is_empty() {
        for name in [
            "acme-email",
            "acme-directory",
            "acme-staging",
            "acme-ca-root",
            "acme-cache",
            "acme-eab-kid",
            "acme-eab-hmac",
            "acme-challenge",
        ] {
            if let Some(s) = r.last(name) {
                warnings.push(format!(
                    "{}: '{name}' is set but no `acme-domain` is: no certificate is ordered; add \
                     `acme-domain = example.com`",
                    s.origin
                ));
                break;
            }
        }
        return Ok(None);
    }
    let mut certificates: Vec<AcmeCertificate> = Vec::new();
    for s in domains {
        let names = domain_names(s)?;
        for name in &names {
            if let Some(other) = certificates.iter().find(|c| c.names.contains(name)) {
                return Err(ConfigError(format!(
                    "{}: {name} is already in the acme-domain of {}; each name belongs to one \
                     certificate: write it once",
                    s.origin, other.origin
                )));
            }
        }
        certificates.push(AcmeCertificate {
            names,
            origin: s.origin.clone(),
        });
    }
    Ok(Some(AcmeConfig {
        certificates,
        email: email(r)?,
        directory: directory(r)?,
        ca_root: r.path("acme-ca-root", "/etc/ssl/my-ca.pem")?,
        cache: cache(r)?,
        eab: eab(r)?,
        challenges: challenges(r, plain_listener, warnings)?,
    }))
}

/// `acme-domain = a.example,www.a.example`: host names, lower-cased, without trailing dots.
fn domain_names(s: &Setting) -> Result<Vec<String>, ConfigError> {
    let example = "example.com,www.example.com";
    let expected = "host names separated by commas (the names one certificate covers)";
    let mut names: Vec<String> = Vec::new();
    for raw in s.value.split(',') {
        let name = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        if name.starts_with("*.") {
            return Err(ConfigError(format!(
                "{}: option 'acme-domain': {name} is a wildcard, which ACME issues only with the \
                 DNS-01 challenge, and dragoman answers HTTP-01 and TLS-ALPN-01; list the names, \
                 as in {}",
                s.origin,
                s.origin.example(s.spec, "example.com,www.example.com")
            )));
        }
        if name.parse::<std::net::IpAddr>().is_ok() {
            return Err(ConfigError(format!(
                "{}: option 'acme-domain': {name} is an IP address; dragoman orders certificates \
                 for host names only (write the name that points to it)",
                s.origin
            )));
        }
        if !valid_sni_name(&name) {
            return Err(bad_value(s, expected, example));
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// `acme-email`: an address (a `mailto:` in front is taken off).
fn email(r: &Resolved<'_>) -> Result<Option<String>, ConfigError> {
    let Some(s) = r.last("acme-email") else {
        return Ok(None);
    };
    let value = s.value.trim();
    let value = value.strip_prefix("mailto:").unwrap_or(value);
    let valid = match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && value
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"<>(),;:\"[]\\".contains(&b))
        }
        None => false,
    };
    if !valid {
        return Err(bad_value(
            s,
            "an email address for the CA's notices (one, without spaces)",
            "admin@example.com",
        ));
    }
    Ok(Some(value.to_string()))
}

/// `acme-directory`, or Let's Encrypt's (staging with `acme-staging`).
fn directory(r: &Resolved<'_>) -> Result<String, ConfigError> {
    let staging = r.flag("acme-staging", false);
    let Some(s) = r.last("acme-directory") else {
        return Ok(if staging {
            LETS_ENCRYPT_STAGING
        } else {
            LETS_ENCRYPT
        }
        .to_string());
    };
    if staging {
        return Err(ConfigError(format!(
            "{}: acme-directory and acme-staging are both set; acme-staging means Let's \
             Encrypt's staging directory ({LETS_ENCRYPT_STAGING}): keep one of the two",
            s.origin
        )));
    }
    let url = s.value.trim();
    let host = url.strip_prefix("https://").unwrap_or("");
    if host.is_empty() || host.starts_with('/') || url.contains(char::is_whitespace) {
        return Err(bad_value(
            s,
            "the https:// URL of an ACME directory (ACME runs over HTTPS only)",
            LETS_ENCRYPT_STAGING,
        ));
    }
    Ok(url.to_string())
}

/// `acme-cache`, or `$XDG_DATA_HOME/dragoman/acme` (`~/.local/share/dragoman/acme`). With
/// `uid`, the directory must be given: the home of the user dragoman starts as is seldom the
/// service user's.
fn cache(r: &Resolved<'_>) -> Result<PathBuf, ConfigError> {
    if let Some(path) = r.path("acme-cache", "/var/lib/dragoman/acme")? {
        return Ok(path);
    }
    let domain = r.last("acme-domain").expect("acme() has domains");
    if let Some(uid) = r.last("uid") {
        return Err(ConfigError(format!(
            "{}: acme-domain with `uid` ({}) needs acme-cache: a directory the service user can \
             write, kept across restarts, as in {}",
            domain.origin,
            uid.origin,
            domain.origin.example(
                super::options::lookup("acme-cache").expect("an option"),
                "/var/lib/dragoman/acme"
            )
        )));
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".local/share"))
        });
    match data {
        Some(data) => Ok(data.join("dragoman/acme")),
        None => Err(ConfigError(format!(
            "{}: acme-domain needs acme-cache (HOME is not set, so there is no default): a \
             directory kept across restarts, as in `acme-cache = /var/lib/dragoman/acme`",
            domain.origin
        ))),
    }
}

/// `acme-eab-kid` and `acme-eab-hmac`, both or neither.
fn eab(r: &Resolved<'_>) -> Result<Option<Eab>, ConfigError> {
    match (r.last("acme-eab-kid"), r.last("acme-eab-hmac")) {
        (None, None) => Ok(None),
        (Some(kid), Some(hmac)) => {
            let text = hmac.value.trim().trim_end_matches('=');
            let decodes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text)
                .is_ok_and(|k| !k.is_empty());
            if !decodes {
                return Err(bad_value(
                    hmac,
                    "the HMAC key the CA gave, in base64url",
                    "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W",
                ));
            }
            if kid.value.trim().is_empty() {
                return Err(bad_value(kid, "the key id the CA gave", "kid-1"));
            }
            Ok(Some(Eab {
                kid: kid.value.trim().to_string(),
                hmac: Secret(text.to_string()),
            }))
        }
        (Some(s), None) | (None, Some(s)) => Err(ConfigError(format!(
            "{}: external account binding needs both acme-eab-kid and acme-eab-hmac (the CA \
             gives the two together); set the other one",
            s.origin
        ))),
    }
}

/// `acme-challenge = http-01,tls-alpn-01`. By default both, but HTTP-01 only with a plain
/// listener to answer it on.
fn challenges(
    r: &Resolved<'_>,
    plain_listener: bool,
    warnings: &mut Vec<String>,
) -> Result<Vec<Challenge>, ConfigError> {
    let Some(s) = r.last("acme-challenge") else {
        let mut all = vec![Challenge::TlsAlpn01];
        if plain_listener {
            all.insert(0, Challenge::Http01);
        }
        return Ok(all);
    };
    let mut chosen = Vec::new();
    for name in s.value.split(',').map(str::trim) {
        let challenge =
            match name.to_ascii_lowercase().as_str() {
                "http-01" => Challenge::Http01,
                "tls-alpn-01" => Challenge::TlsAlpn01,
                "dns-01" => {
                    return Err(ConfigError(format!(
                    "{}: option 'acme-challenge': dns-01 needs the API of a DNS provider, which \
                     dragoman does not have; use http-01 or tls-alpn-01, as in {}",
                    s.origin,
                    s.origin.example(s.spec, "http-01,tls-alpn-01")
                )))
                }
                _ => return Err(bad_value(
                    s,
                    "http-01, tls-alpn-01 or both, separated by a comma, in order of preference",
                    "http-01,tls-alpn-01",
                )),
            };
        if !chosen.contains(&challenge) {
            chosen.push(challenge);
        }
    }
    if chosen.contains(&Challenge::Http01) && !plain_listener {
        warnings.push(format!(
            "{}: http-01 is answered on a plain listener (`http` or `http-to-https`, on port 80 \
             for the CA), and there is none: add `http-to-https = :80`",
            s.origin
        ));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::super::{load, Config, Loaded, Wire};
    use super::*;

    fn load_run(args: &[&str]) -> Result<Config, ConfigError> {
        let mut all = vec!["app".to_string()];
        all.extend(args.iter().map(|s| s.to_string()));
        match load(&all, &[])? {
            Loaded::Run(c) => Ok(*c),
            other => panic!("expected a config, got {other:?}"),
        }
    }

    #[test]
    fn one_line_gets_a_listener_and_the_defaults() {
        let c = load_run(&[
            "--acme-domain",
            "Example.COM.,www.example.com",
            "--acme-cache",
            "/c",
        ])
        .unwrap();
        let acme = c.tls.acme.as_ref().unwrap();
        assert_eq!(
            acme.certificates[0].names,
            ["example.com", "www.example.com"]
        );
        assert_eq!(acme.directory, LETS_ENCRYPT);
        assert_eq!(acme.cache, PathBuf::from("/c"));
        // No https listener was written: one on :443 serves the certificates.
        let https: Vec<_> = c
            .listeners
            .iter()
            .filter(|l| matches!(l.wire, Wire::Https(_)))
            .collect();
        assert_eq!(https.len(), 1);
        assert_eq!(https[0].addr.to_string(), "0.0.0.0:443");
        assert_eq!(c.tls.listeners, [None]);
        // No plain listener either: http-to-https on :80 (and no default http listener), so
        // HTTP-01 is offered first.
        let plain: Vec<_> = c
            .listeners
            .iter()
            .filter(|l| matches!(l.wire, Wire::Http | Wire::Redirect(_)))
            .collect();
        assert_eq!(plain.len(), 1);
        assert_eq!(plain[0].wire, Wire::Redirect(None));
        assert_eq!(plain[0].addr.to_string(), "0.0.0.0:80");
        assert_eq!(acme.challenges, [Challenge::Http01, Challenge::TlsAlpn01]);
        // With a plain listener of its own, none is added.
        let c = load_run(&[
            "--http",
            ":8000",
            "--acme-domain",
            "a.test",
            "--acme-cache",
            "/c",
        ])
        .unwrap();
        assert!(!c
            .listeners
            .iter()
            .any(|l| matches!(l.wire, Wire::Redirect(_))));
    }

    #[test]
    fn https_without_files_is_served_by_acme() {
        let c = load_run(&[
            "--https",
            "127.0.0.1:8443",
            "--acme-domain",
            "a.test",
            "--acme-domain",
            "b.test",
            "--acme-staging",
            "--acme-email",
            "mailto:me@a.test",
            "--acme-challenge",
            "tls-alpn-01",
            "--acme-cache",
            "/c",
        ])
        .unwrap();
        let acme = c.tls.acme.as_ref().unwrap();
        assert_eq!(c.tls.listeners, [None]);
        assert_eq!(acme.certificates.len(), 2);
        assert_eq!(acme.directory, LETS_ENCRYPT_STAGING);
        assert_eq!(acme.email.as_deref(), Some("me@a.test"));
        assert_eq!(acme.challenges, [Challenge::TlsAlpn01]);
        // Only https listeners: no default http one, so no HTTP-01 by default.
        let c = load_run(&[
            "--https",
            ":8443",
            "--acme-domain",
            "a.test",
            "--acme-cache",
            "/c",
        ])
        .unwrap();
        assert_eq!(c.tls.acme.unwrap().challenges, [Challenge::TlsAlpn01]);
    }

    #[test]
    fn bad_acme_options_name_the_option_and_the_fix() {
        let e = |args: &[&str]| load_run(args).unwrap_err().0;
        let with = |extra: &[&str]| {
            let mut all = vec!["--acme-domain", "a.test", "--acme-cache", "/c"];
            all.extend_from_slice(extra);
            e(&all)
        };
        assert!(e(&["--acme-domain", "*.a.test"]).contains("DNS-01"));
        assert!(e(&["--acme-domain", "127.0.0.1"]).contains("IP address"));
        assert!(e(&["--acme-domain", "a b.test"]).contains("option 'acme-domain' expects"));
        let twice = e(&[
            "--acme-domain",
            "a.test",
            "--acme-domain",
            "www.a.test,a.test",
        ]);
        assert!(
            twice.contains("a.test is already in the acme-domain"),
            "{twice}"
        );
        assert!(with(&["--acme-email", "nobody"]).contains("option 'acme-email' expects"));
        assert!(with(&["--acme-email", "a b@x.test"]).contains("acme-email"));
        assert!(with(&["--acme-directory", "http://ca/dir"]).contains("https:// URL"));
        let both = with(&["--acme-directory", "https://ca/dir", "--acme-staging"]);
        assert!(both.contains("keep one of the two"), "{both}");
        assert!(with(&["--acme-eab-kid", "k"]).contains("needs both"));
        assert!(with(&["--acme-eab-kid", "k", "--acme-eab-hmac", "!!"]).contains("base64url"));
        assert!(with(&["--acme-challenge", "dns-01"]).contains("DNS provider"));
        assert!(with(&["--acme-challenge", "http-02"]).contains("http-01, tls-alpn-01"));
        let uid = e(&["--acme-domain", "a.test", "--uid", "www-data"]);
        assert!(uid.contains("needs acme-cache"), "{uid}");
        let c = load_run(&["--acme-email", "me@a.test"]).unwrap();
        assert!(c.warnings.iter().any(|w| w.contains("no `acme-domain`")));
        let c = load_run(&[
            "--https",
            ":8443",
            "--acme-domain",
            "a.test",
            "--acme-cache",
            "/c",
            "--acme-challenge",
            "http-01",
        ])
        .unwrap();
        assert!(c.warnings.iter().any(|w| w.contains("http-to-https = :80")));
        let c = load_run(&[
            "--acme-domain",
            "a.test",
            "--acme-cache",
            "/c",
            "--acme-eab-kid",
            "kid-1",
            "--acme-eab-hmac",
            "aGVsbG8",
        ])
        .unwrap();
        assert_eq!(c.tls.acme.unwrap().eab.unwrap().kid, "kid-1");
    }
}
