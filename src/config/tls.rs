//! The TLS and HTTP/2 options: `https` listeners (uWSGI's `ADDR,CERT,KEY[,CIPHERS[,CLIENT_CA]]`
//! and the separate `ssl-*` options), `sni`, `http-to-https`, `hsts` and the HTTP/2 limits,
//! parsed and checked into a [`TlsConfig`]. Nothing is read from disk here: the certificate
//! files are loaded (and refused with the file and the problem) by [`crate::tls`] at startup,
//! so a configuration loads the same on any machine (the corpus test reads real ini files
//! whose certificates are elsewhere).

use std::path::PathBuf;

use super::listen::{parse_listen, Listen, ListenAddr, Wire};
use super::resolve::{bad_value, count, Resolved};
use super::source::{ConfigError, Origin, Setting};
use super::values::{valid_sni_name, Secret};

/// Everything TLS and HTTP/2.
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsConfig {
    /// One per https listener: the listener `Wire::Https(i)` serves `listeners[i]`'s
    /// certificate by default (`None`: a listener for ACME's certificates alone).
    pub(crate) listeners: Vec<Option<CertFiles>>,
    /// `sni = NAME,CERT,KEY[,CIPHERS[,CLIENT_CA]]`: certificates chosen by the name the client
    /// asks for, on every https listener.
    pub(crate) sni: Vec<SniEntry>,
    /// `ssl-key-password`: decrypts encrypted (PKCS#8) keys.
    pub(crate) key_password: Option<Secret>,
    /// `ssl-min-version`: 1.2 or 1.3.
    pub(crate) min_version: TlsVersion,
    /// `https-export-cert`: the client certificate goes to the application as `HTTPS_CC`.
    pub(crate) export_cert: bool,
    /// `hsts`: the `Strict-Transport-Security` header of HTTPS responses.
    pub(crate) hsts: Option<Hsts>,
    pub(crate) http2: Http2,
    /// Certificates from an ACME CA (`acme-*`, [`super::acme`]).
    pub(crate) acme: Option<super::acme::AcmeConfig>,
}

/// A certificate, its key and how clients are checked: an https listener's default, or an
/// `sni` entry's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertFiles {
    /// The certificate chain (PEM, the server's certificate first).
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    /// OpenSSL-style cipher list (`CIPHERS` of uWSGI's syntax); `None`: the safe default.
    pub(crate) ciphers: Option<String>,
    pub(crate) client_ca: Option<ClientCa>,
    /// The setting that named these files, for errors.
    pub(crate) origin: Origin,
}

/// Client certificates, verified against a CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientCa {
    pub(crate) path: PathBuf,
    /// `!` before the path (uWSGI's syntax): a client without a certificate is refused.
    /// Otherwise a certificate is asked for and verified when given.
    pub(crate) required: bool,
}

/// An `sni` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SniEntry {
    /// Lower-case; `*.example.com` matches one label in front of `example.com`.
    pub(crate) name: String,
    pub(crate) files: CertFiles,
}

/// The oldest TLS version offered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum TlsVersion {
    #[default]
    Tls12,
    Tls13,
}

/// `Strict-Transport-Security`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hsts {
    pub(crate) max_age: u64,
    pub(crate) include_subdomains: bool,
    pub(crate) preload: bool,
}

impl Hsts {
    /// The header's value.
    pub(crate) fn value(&self) -> String {
        let mut v = format!("max-age={}", self.max_age);
        if self.include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if self.preload {
            v.push_str("; preload");
        }
        v
    }
}

/// HTTP/2: whether it is offered and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Http2 {
    /// `http2`: offered with ALPN on https listeners.
    pub(crate) enabled: bool,
    /// `http2-cleartext`: HTTP/2 with prior knowledge (h2c) on plain http listeners.
    pub(crate) cleartext: bool,
    pub(crate) max_concurrent_streams: u32,
    pub(crate) max_header_list_size: u32,
    pub(crate) stream_window: u32,
    pub(crate) connection_window: u32,
}

impl Default for Http2 {
    fn default() -> Self {
        Http2 {
            enabled: true,
            cleartext: false,
            max_concurrent_streams: d::HTTP2_MAX_CONCURRENT_STREAMS,
            max_header_list_size: d::BUFFER_SIZE as u32,
            stream_window: d::HTTP2_STREAM_WINDOW,
            connection_window: d::HTTP2_CONNECTION_WINDOW,
        }
    }
}

use super::defaults as d;

const HTTPS_EXAMPLE: &str = ":443,/etc/ssl/site.crt,/etc/ssl/site.key";

/// The TLS options; the https and http-to-https listeners go into `listeners` (after the
/// http and uwsgi ones), each address speaking one protocol.
pub(crate) fn tls(
    r: &Resolved<'_>,
    listeners: &mut Vec<Listen>,
    warnings: &mut Vec<String>,
) -> Result<TlsConfig, ConfigError> {
    let shared_cert = r.path("ssl-certificate", "/etc/ssl/site.crt")?;
    let shared_key = r.path("ssl-key", "/etc/ssl/site.key")?;
    let shared_ca = r
        .last("ssl-client-ca")
        .map(|s| client_ca(s, s.value.trim()))
        .transpose()?;
    // With acme-domain, an https listener may name no files: it serves ACME's certificates.
    let acme_domain = r.last("acme-domain");
    let mut certs = Vec::new();
    for s in r.all("https") {
        let fields: Vec<&str> = s.value.splitn(5, ',').map(str::trim).collect();
        let expected = "ADDR,CERT,KEY[,CIPHERS[,CLIENT_CA]] (or ADDR alone with ssl-certificate \
                        and ssl-key set, or with acme-domain)";
        let addr = fields[0];
        let (cert, key) = match (fields.get(1), fields.get(2), &shared_cert, &shared_key) {
            (Some(c), Some(k), _, _) if !c.is_empty() && !k.is_empty() => {
                (PathBuf::from(c), PathBuf::from(k))
            }
            (None, None, Some(c), Some(k)) => (c.clone(), k.clone()),
            (None, None, None, None) if acme_domain.is_some() => {
                let index = u16::try_from(certs.len())
                    .map_err(|_| ConfigError(format!("{}: too many https listeners", s.origin)))?;
                certs.push(None);
                let addrs = parse_listen(addr)
                    .map_err(|why| bad_value(s, &format!("ADDR ({why})"), ":443"))?;
                for addr in addrs {
                    add_listener(listeners, addr, Wire::Https(index), s)?;
                }
                continue;
            }
            _ => return Err(bad_value(s, expected, HTTPS_EXAMPLE)),
        };
        let ciphers = fields
            .get(3)
            .filter(|c| !c.is_empty())
            .map(|c| c.to_string());
        let client_ca = match fields.get(4).filter(|c| !c.is_empty()) {
            Some(ca) => Some(client_ca(s, ca)?),
            None => shared_ca.clone(),
        };
        let addrs = parse_listen(addr).map_err(|why| {
            bad_value(s, &format!("{expected}; the address: {why}"), HTTPS_EXAMPLE)
        })?;
        let index = u16::try_from(certs.len())
            .map_err(|_| ConfigError(format!("{}: too many https listeners", s.origin)))?;
        certs.push(Some(CertFiles {
            cert,
            key,
            ciphers,
            client_ca,
            origin: s.origin.clone(),
        }));
        for addr in addrs {
            add_listener(listeners, addr, Wire::Https(index), s)?;
        }
    }
    for s in r.all("http-to-https") {
        let example = ":80";
        let (addr, port) = match s.value.split_once(',') {
            Some((a, p)) => {
                let port = p.trim().parse::<u16>().map_err(|_| {
                    bad_value(s, "ADDR[,HTTPS_PORT] (the port a number)", ":80,8443")
                })?;
                (a.trim(), Some(port))
            }
            None => (s.value.trim(), None),
        };
        let addrs = parse_listen(addr)
            .map_err(|why| bad_value(s, &format!("ADDR[,HTTPS_PORT] ({why})"), example))?;
        for addr in addrs {
            add_listener(listeners, addr, Wire::Redirect(port), s)?;
        }
    }
    if let Some(s) = acme_domain {
        acme_listeners(listeners, &mut certs, s)?;
    }
    let plain = listeners
        .iter()
        .any(|l| matches!(l.wire, Wire::Http | Wire::Redirect(_)));
    let acme = super::acme::acme(r, plain, warnings)?;
    let mut sni = Vec::new();
    for s in r.all("sni") {
        let example = "www.example.com,/etc/ssl/www.crt,/etc/ssl/www.key";
        let fields: Vec<&str> = s.value.splitn(5, ',').map(str::trim).collect();
        let expected = "NAME,CERT,KEY[,CIPHERS[,CLIENT_CA]], the name a host name or *.domain";
        if fields.len() < 3 || fields[1].is_empty() || fields[2].is_empty() {
            return Err(bad_value(s, expected, example));
        }
        let name = fields[0].trim_end_matches('.').to_ascii_lowercase();
        if !valid_sni_name(&name) {
            return Err(bad_value(s, expected, example));
        }
        let client_ca = match fields.get(4).filter(|c| !c.is_empty()) {
            Some(ca) => Some(client_ca(s, ca)?),
            None => shared_ca.clone(),
        };
        sni.push(SniEntry {
            name,
            files: CertFiles {
                cert: PathBuf::from(fields[1]),
                key: PathBuf::from(fields[2]),
                ciphers: fields
                    .get(3)
                    .filter(|c| !c.is_empty())
                    .map(|c| c.to_string()),
                client_ca,
                origin: s.origin.clone(),
            },
        });
    }
    if certs.is_empty() {
        // Certificates with no https listener to use them would leave the site in clear text
        // while the file says HTTPS: said, not silently ignored.
        for name in ["sni", "ssl-certificate", "ssl-key", "ssl-client-ca"] {
            if let Some(s) = r.last(name) {
                warnings.push(format!(
                    "{}: '{name}' is set but no `https` listener is: nothing is served over TLS; \
                     add `https = :443` (it uses ssl-certificate and ssl-key)",
                    s.origin
                ));
                break;
            }
        }
    }
    Ok(TlsConfig {
        listeners: certs,
        sni,
        key_password: r.last("ssl-key-password").map(|s| Secret(s.value.clone())),
        min_version: min_version(r)?,
        export_cert: r.flag("https-export-cert", false),
        hsts: hsts(r, warnings)?,
        http2: http2(r)?,
        acme,
    })
}

/// `acme-domain` alone serves HTTPS, as Caddy does: with no `https` listener, one on `:443`
/// serves the certificates; with no plain listener either, `http-to-https = :80` answers
/// HTTP-01 challenges and sends the rest to HTTPS. Both named after the acme-domain setting.
fn acme_listeners(
    listeners: &mut Vec<Listen>,
    certs: &mut Vec<Option<CertFiles>>,
    s: &Setting,
) -> Result<(), ConfigError> {
    if !certs.is_empty() {
        return Ok(());
    }
    let plain = listeners
        .iter()
        .any(|l| matches!(l.wire, Wire::Http | Wire::Redirect(_)));
    certs.push(None);
    for addr in parse_listen(":443").expect("a valid address") {
        add_listener(listeners, addr, Wire::Https(0), s)?;
    }
    if !plain {
        for addr in parse_listen(":80").expect("a valid address") {
            add_listener(listeners, addr, Wire::Redirect(None), s)?;
        }
    }
    Ok(())
}

/// `CLIENT_CA`, `!` first when required.
fn client_ca(s: &Setting, value: &str) -> Result<ClientCa, ConfigError> {
    let (path, required) = match value.strip_prefix('!') {
        Some(p) => (p.trim(), true),
        None => (value, false),
    };
    if path.is_empty() {
        return Err(bad_value(
            s,
            "a CA file (PEM), `!` in front to require a client certificate",
            "!/etc/ssl/clients-ca.pem",
        ));
    }
    Ok(ClientCa {
        path: PathBuf::from(path),
        required,
    })
}

/// Adds a TLS or redirect listener; an address already taken by another protocol is an error.
fn add_listener(
    listeners: &mut Vec<Listen>,
    addr: ListenAddr,
    wire: Wire,
    s: &Setting,
) -> Result<(), ConfigError> {
    let ephemeral = matches!(addr, ListenAddr::Tcp(a) if a.port() == 0);
    if let Some(taken) = listeners.iter().find(|l| l.addr == addr && !ephemeral) {
        return Err(ConfigError(format!(
            "{}: {addr} is already a listener ({}); one address speaks one protocol: give `{}` \
             an address of its own",
            s.origin,
            taken
                .origin
                .as_ref()
                .map_or_else(|| "the default".to_string(), |o| o.to_string()),
            s.spec.name
        )));
    }
    listeners.push(Listen {
        addr,
        wire,
        origin: Some(s.origin.clone()),
    });
    Ok(())
}

fn min_version(r: &Resolved<'_>) -> Result<TlsVersion, ConfigError> {
    let Some(s) = r.last("ssl-min-version") else {
        return Ok(TlsVersion::Tls12);
    };
    let v = s.value.trim().to_ascii_lowercase();
    match v.trim_start_matches("tlsv").trim_start_matches("tls") {
        "1.2" => Ok(TlsVersion::Tls12),
        "1.3" => Ok(TlsVersion::Tls13),
        "1" | "1.0" | "1.1" => Err(bad_value(
            s,
            "1.2 or 1.3 (TLS 1.0 and 1.1 are broken and not offered; browsers dropped them in 2020)",
            "1.2",
        )),
        _ => Err(bad_value(s, "1.2 or 1.3", "1.2")),
    }
}

fn hsts(r: &Resolved<'_>, warnings: &mut Vec<String>) -> Result<Option<Hsts>, ConfigError> {
    let Some(max_age) = r.optional_count("hsts", "31536000")? else {
        return Ok(None);
    };
    let hsts = Hsts {
        max_age,
        include_subdomains: r.flag("hsts-include-subdomains", false),
        preload: r.flag("hsts-preload", false),
    };
    if hsts.preload && (!hsts.include_subdomains || hsts.max_age < 31_536_000) {
        let s = r.last("hsts-preload").expect("set, since preload is on");
        warnings.push(format!(
            "{}: browsers' preload lists only take `hsts` of at least 31536000 (a year) with \
             `hsts-include-subdomains`; the header says preload without them",
            s.origin
        ));
    }
    Ok(Some(hsts))
}

fn http2(r: &Resolved<'_>) -> Result<Http2, ConfigError> {
    let window = |name: &str, default: u32| -> Result<u32, ConfigError> {
        match r.last(name) {
            None => Ok(default),
            Some(s) => {
                let n = count(s, 65_535, "1048576")?;
                u32::try_from(n)
                    .ok()
                    .filter(|n| *n < 1 << 31)
                    .ok_or_else(|| bad_value(s, "a window of 65535 to 2147483647 bytes", "1048576"))
            }
        }
    };
    let to_u32 = |name: &str, n: usize| {
        u32::try_from(n).map_err(|_| {
            let s = r.last(name).expect("a number that large was set");
            bad_value(s, "a number below 4294967296", "128")
        })
    };
    let streams = r.count(
        "http2-max-concurrent-streams",
        1,
        "128",
        d::HTTP2_MAX_CONCURRENT_STREAMS as usize,
    )?;
    let head = r.count("buffer-size", 1024, "32768", d::BUFFER_SIZE)?;
    let header_list = r.count("http2-max-header-list-size", 1024, "32768", head)?;
    Ok(Http2 {
        enabled: r.flag("http2", true),
        cleartext: r.flag("http2-cleartext", false),
        max_concurrent_streams: to_u32("http2-max-concurrent-streams", streams)?,
        max_header_list_size: to_u32("http2-max-header-list-size", header_list)?,
        stream_window: window("http2-stream-window", d::HTTP2_STREAM_WINDOW)?,
        connection_window: window("http2-connection-window", d::HTTP2_CONNECTION_WINDOW)?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{load, Config, Loaded};
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
    fn https_in_uwsgi_syntax_and_with_separate_options() {
        let c = load_run(&[
            "--https",
            "127.0.0.1:8443,/c/site.crt,/c/site.key,,!/c/ca.pem",
            "--http-to-https",
            "127.0.0.1:8080",
        ])
        .unwrap();
        let https: Vec<_> = c
            .listeners
            .iter()
            .filter(|l| matches!(l.wire, Wire::Https(_)))
            .collect();
        assert_eq!(https.len(), 1);
        assert_eq!(https[0].wire, Wire::Https(0));
        let files = c.tls.listeners[0].as_ref().unwrap();
        assert_eq!(files.cert, PathBuf::from("/c/site.crt"));
        assert_eq!(files.ciphers, None);
        let ca = files.client_ca.as_ref().unwrap();
        assert!(ca.required && ca.path == std::path::Path::new("/c/ca.pem"));
        assert!(c.listeners.iter().any(|l| l.wire == Wire::Redirect(None)));
        let c = load_run(&[
            "--https",
            ":8443",
            "--ssl-certificate",
            "/c/a.crt",
            "--ssl-key",
            "/c/a.key",
            "--ssl-client-ca",
            "/c/ca.pem",
            "--http-to-https",
            ":8080,8443",
        ])
        .unwrap();
        let files = c.tls.listeners[0].as_ref().unwrap();
        assert_eq!(files.key, PathBuf::from("/c/a.key"));
        assert!(!files.client_ca.as_ref().unwrap().required);
        assert!(c
            .listeners
            .iter()
            .any(|l| l.wire == Wire::Redirect(Some(8443))));
        // Defaults: HTTP/2 offered, TLS 1.2 and up, no HSTS.
        assert!(c.tls.http2.enabled && !c.tls.http2.cleartext);
        assert_eq!(c.tls.min_version, TlsVersion::Tls12);
        assert_eq!(c.tls.hsts, None);
    }

    #[test]
    fn bad_tls_options_name_the_option_and_the_fix() {
        let e = load_run(&["--https", ":8443"]).unwrap_err();
        assert!(e.0.contains("option 'https' expects ADDR,CERT,KEY"), "{e}");
        assert!(e.0.contains("ssl-certificate"), "{e}");
        let e = load_run(&["--https", "nowhere:x,a,b"]).unwrap_err();
        assert!(e.0.contains("is not a port number"), "{e}");
        let e = load_run(&["--sni", "bad name,a,b"]).unwrap_err();
        assert!(e.0.contains("option 'sni' expects NAME,CERT,KEY"), "{e}");
        let e = load_run(&["--ssl-min-version", "1.1"]).unwrap_err();
        assert!(e.0.contains("TLS 1.0 and 1.1 are broken"), "{e}");
        let e = load_run(&["--http2-stream-window", "100"]).unwrap_err();
        assert!(e.0.contains("at least 65535"), "{e}");
        let e =
            load_run(&["--http", "127.0.0.1:9443", "--https", "127.0.0.1:9443,a,b"]).unwrap_err();
        assert!(e.0.contains("one address speaks one protocol"), "{e}");
        let c = load_run(&["--sni", "x.example,a,b"]).unwrap();
        assert!(
            c.warnings[0].contains("no `https` listener"),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn sni_names_hsts_and_http2_limits() {
        let c = load_run(&[
            "--https",
            ":8443,a,b",
            "--sni",
            "*.Example.COM.,w.crt,w.key",
            "--hsts",
            "31536000",
            "--hsts-include-subdomains",
            "--http2-max-concurrent-streams",
            "10",
            "--http2=false",
        ])
        .unwrap();
        assert_eq!(c.tls.sni[0].name, "*.example.com");
        assert_eq!(
            c.tls.hsts.as_ref().unwrap().value(),
            "max-age=31536000; includeSubDomains"
        );
        assert_eq!(c.tls.http2.max_concurrent_streams, 10);
        assert!(!c.tls.http2.enabled);
        assert!(
            valid_sni_name("a-b.example.com") && !valid_sni_name("*.") && !valid_sni_name("a..b")
        );
    }
}
