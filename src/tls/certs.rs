//! Certificate files read and checked: a PEM chain, its private key (PKCS#8, PKCS#1, SEC1, or
//! PKCS#8 encrypted with `ssl-key-password`), the key matching the certificate, the
//! certificate's dates; and client CA files. Every refusal is one line that names the file
//! and the problem, and says what to do: a site that starts with a wrong certificate is a
//! site whose visitors see a browser warning, so nothing here is a warning.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use x509_cert::der::Decode;

use crate::config::tls::CertFiles;
use crate::config::values::Secret;

/// A certificate chain and its key, checked, ready for rustls.
#[derive(Clone)]
pub(crate) struct Loaded {
    pub(crate) key: Arc<CertifiedKey>,
    /// When the server certificate stops being valid (seconds since the epoch).
    pub(crate) not_after: u64,
}

/// Reads a file whole, with the error said as a user can act on it.
fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| {
        let fix = match e.kind() {
            std::io::ErrorKind::NotFound => "check the path".to_string(),
            std::io::ErrorKind::PermissionDenied => {
                // SAFETY: geteuid has no preconditions.
                let uid = unsafe { libc::geteuid() };
                format!(
                    "make it readable by uid {uid} (dragoman reads certificates before dropping \
                     privileges at startup, and as the service user on reloads)"
                )
            }
            _ => "check the file".to_string(),
        };
        format!("{}: cannot read the {what}: {e}; {fix}", path.display())
    })
}

/// Loads `files` (certificate chain and key) and checks that they make a usable pair today.
pub(crate) fn load(
    files: &CertFiles,
    password: Option<&Secret>,
    provider: &CryptoProvider,
    now: SystemTime,
) -> Result<Loaded, String> {
    let chain = read_chain(&files.cert, "certificate")?;
    let key_der = read_key(&files.key, password)?;
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| {
            format!(
                "{}: the private key is not one TLS can use ({e}); use an RSA (2048 bits or \
                 more), ECDSA P-256/P-384 or Ed25519 key",
                files.key.display()
            )
        })?;
    let not_after = check_dates(&files.cert, &chain[0], now)?;
    let key = CertifiedKey::new(chain, signing);
    match key.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(format!(
                "{}: the private key does not match the certificate {} (its public key is \
                 another); give the key the certificate was issued for",
                files.key.display(),
                files.cert.display()
            ))
        }
        // A key type whose public half rustls cannot derive: the handshake itself will fail
        // if it does not match, which the first client would see; refuse only what is known.
        Err(_) => {}
    }
    Ok(Loaded {
        key: Arc::new(key),
        not_after,
    })
}

/// The certificates of a PEM file, in order; at least one. `what`: the certificate, or the
/// CA certificate.
fn read_chain(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read(path, what)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: the PEM is damaged ({e})", path.display()))?;
    if chain.is_empty() {
        let hint = if bytes.first() == Some(&0x30) {
            "it looks like DER: convert it with `openssl x509 -inform der -in FILE -out FILE.pem`"
        } else if contains(&bytes, b"PRIVATE KEY-----") {
            "it holds a private key only: give the certificate file here and the key to the key option"
        } else {
            "give the PEM file with -----BEGIN CERTIFICATE----- blocks, the site's certificate first"
        };
        return Err(format!(
            "{}: no {what} in this file; {hint}",
            path.display()
        ));
    }
    for (i, der) in chain.iter().enumerate() {
        x509_cert::Certificate::from_der(der).map_err(|e| {
            format!(
                "{}: certificate {} of the file is not a valid X.509 certificate ({e})",
                path.display(),
                i + 1
            )
        })?;
    }
    Ok(chain)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// The private key of a PEM file, decrypted with `password` when it is encrypted.
fn read_key(path: &Path, password: Option<&Secret>) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read(path, "private key")?;
    let shown = path.display();
    if contains(&bytes, b"Proc-Type: 4,ENCRYPTED") {
        return Err(format!(
            "{shown}: the key is encrypted in OpenSSL's legacy format (DEK-Info), which dragoman \
             does not read; convert it to encrypted PKCS#8: `openssl pkcs8 -topk8 -v2 aes-256-cbc \
             -in {shown} -out {shown}.p8` (and set ssl-key-password)"
        ));
    }
    if contains(&bytes, b"-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        let Some(password) = password else {
            return Err(format!(
                "{shown}: the key is encrypted; set ssl-key-password (or give an unencrypted key)"
            ));
        };
        return decrypt(path, &bytes, password);
    }
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(rustls::pki_types::pem::Error::NoItemsFound) => Err(format!(
            "{shown}: no private key in this file (a PEM block PRIVATE KEY, RSA PRIVATE KEY or EC \
             PRIVATE KEY); give the key file"
        )),
        Err(e) => Err(format!("{shown}: the PEM is damaged ({e})")),
    }
}

/// Decrypts an `ENCRYPTED PRIVATE KEY` (PKCS#8, PBES2) block.
fn decrypt(path: &Path, bytes: &[u8], password: &Secret) -> Result<PrivateKeyDer<'static>, String> {
    let shown = path.display();
    let text = std::str::from_utf8(bytes)
        .map_err(|_| format!("{shown}: the PEM is damaged (not text)"))?;
    let begin = text
        .find("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        .expect("checked by the caller");
    let end_marker = "-----END ENCRYPTED PRIVATE KEY-----";
    let end = text[begin..]
        .find(end_marker)
        .map(|at| begin + at + end_marker.len())
        .ok_or_else(|| format!("{shown}: the PEM is damaged (no END line)"))?;
    let (_, doc) = pkcs8::der::Document::from_pem(&text[begin..end])
        .map_err(|e| format!("{shown}: the PEM is damaged ({e})"))?;
    let info = pkcs8::EncryptedPrivateKeyInfo::from_der(doc.as_bytes())
        .map_err(|e| format!("{shown}: the encrypted key is damaged ({e})"))?;
    let wrong = || {
        format!(
            "{shown}: ssl-key-password does not decrypt the key (a wrong password); give the \
             password the key was encrypted with"
        )
    };
    let plain = info.decrypt(password.0.as_bytes()).map_err(|e| match e {
        // A wrong password shows as bad padding (pkcs5 0.7 calls it an encryption failure);
        // or, once in about 500 passwords, as padding that happens to be valid around bytes
        // that are no DER document (the key parsed as DER before it was encrypted).
        pkcs8::Error::EncryptedPrivateKey(
            pkcs8::pkcs5::Error::DecryptFailed | pkcs8::pkcs5::Error::EncryptFailed,
        )
        | pkcs8::Error::Asn1(_) => wrong(),
        other => format!(
            "{shown}: cannot decrypt the key ({other}); re-encrypt it with `openssl pkcs8 -topk8 \
             -v2 aes-256-cbc`"
        ),
    })?;
    // Padding that happens to be valid with a wrong password: the result is no key.
    pkcs8::PrivateKeyInfo::from_der(plain.as_bytes()).map_err(|_| wrong())?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        plain.as_bytes().to_vec(),
    )))
}

/// Refuses a certificate outside its validity dates; returns its end (seconds since the
/// epoch).
fn check_dates(path: &Path, der: &CertificateDer<'_>, now: SystemTime) -> Result<u64, String> {
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| format!("{}: not a valid X.509 certificate ({e})", path.display()))?;
    let validity = &cert.tbs_certificate.validity;
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let not_before = validity.not_before.to_unix_duration();
    let not_after = validity.not_after.to_unix_duration();
    let subject = one_line(&cert.tbs_certificate.subject);
    if now < not_before {
        return Err(format!(
            "{}: the certificate ({subject}) is not valid yet: from {} on; check the machine's \
             clock, or use a certificate valid today",
            path.display(),
            validity.not_before
        ));
    }
    if now > not_after {
        return Err(format!(
            "{}: the certificate ({subject}) expired on {}; renew it",
            path.display(),
            validity.not_after
        ));
    }
    Ok(not_after.as_secs())
}

/// A distinguished name as OpenSSL's `X509_NAME_oneline` writes it (`/C=FR/O=Org/CN=name`),
/// which is what uWSGI passes as `HTTPS_DN`.
pub(crate) fn one_line(name: &x509_cert::name::Name) -> String {
    let mut out = String::new();
    for rdn in name.0.iter() {
        for atv in rdn.0.iter() {
            out.push('/');
            out.push_str(short_name(&atv.oid.to_string()));
            out.push('=');
            push_value(&mut out, &atv.value);
        }
    }
    out
}

/// OpenSSL's short names for the attributes certificates use.
fn short_name(oid: &str) -> &str {
    match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.42" => "GN",
        "2.5.4.46" => "dnQualifier",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        other => other,
    }
}

/// An attribute's value as text, as OpenSSL writes it: printable ASCII as is, other bytes as
/// `\xHH` (so a name cannot smuggle control characters into the environ).
fn push_value(out: &mut String, value: &x509_cert::der::Any) {
    for &b in value.value() {
        if (0x20..0x7f).contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
}

/// The client's certificate, as the application sees it: `HTTPS_DN`, and `HTTPS_CC` (PEM)
/// with `https-export-cert`.
pub(crate) fn client_environ(der: &CertificateDer<'_>, export: bool) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    if let Ok(cert) = x509_cert::Certificate::from_der(der) {
        vars.push((
            "HTTPS_DN".to_string(),
            one_line(&cert.tbs_certificate.subject),
        ));
    }
    if export {
        vars.push(("HTTPS_CC".to_string(), pem(der)));
    }
    vars
}

/// A certificate as PEM text.
fn pem(der: &[u8]) -> String {
    use std::fmt::Write;
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len() * 4 / 3 + 4);
    for chunk in der.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        let _ = writeln!(out, "{}", std::str::from_utf8(line).unwrap_or_default());
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The certificates of a client CA file, for verifying client certificates.
pub(crate) fn read_roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let chain = read_chain(path, "CA certificate")?;
    let mut roots = rustls::RootCertStore::empty();
    for der in chain {
        roots.add(der).map_err(|e| {
            format!(
                "{}: a CA certificate rustls cannot use as a trust anchor ({e})",
                path.display()
            )
        })?;
    }
    Ok(roots)
}

/// The file's identity and version, to notice a change: (modified, length, inode).
pub(crate) fn stamp(path: &PathBuf) -> Option<(SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// The subject of a certificate chain's first certificate, for log lines.
pub(crate) fn subject(key: &CertifiedKey) -> String {
    key.cert
        .first()
        .and_then(|der| x509_cert::Certificate::from_der(der).ok())
        .map(|c| one_line(&c.tbs_certificate.subject))
        .unwrap_or_default()
}

/// One certificate with how its clients are treated: what a TLS handshake is served with.
#[derive(Clone)]
pub(crate) struct Site {
    pub(crate) cert: Loaded,
    /// Client certificates: the CA, and whether one is required.
    pub(crate) clients: Option<(Arc<rustls::RootCertStore>, bool)>,
    /// The suites offered (`None`: rustls's defaults).
    pub(crate) suites: Option<Vec<rustls::SupportedCipherSuite>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway P-256 key, encrypted with the password `right` (`openssl pkcs8 -topk8 -v2
    /// aes-256-cbc -iter 1`), and a wrong password whose decryption has valid padding.
    const ENCRYPTED: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----
MIHrMFYGCSqGSIb3DQEFDTBJMCgGCSqGSIb3DQEFDDAbBAjTZFVg2vTrEwIBATAM
BggqhkiG9w0CCQUAMB0GCWCGSAFlAwQBKgQQuIRIWp/nCjN5kq8veiOvPASBkIV0
cuqIwkp/MjEGx/Cu/cb1M/oLbb1d2VedZ4jW55ELD916jiGO/xyqhL7srYenxL9c
D8r3f2fC/GTbhNHB0cfFA5Dc3hhCsu5MeDb773bmOFtbtTo8J56folzlRHCEt/KI
EoNiY5YcCkAh3By8ZVxSU7b87Yu4YRdunoNWoINTEo4bpnYp84B0D3Tt2eOrjA==
-----END ENCRYPTED PRIVATE KEY-----
";

    #[test]
    fn a_wrong_password_is_called_wrong_even_when_its_padding_is_valid() {
        let path = Path::new("site.key");
        let key = |pw: &str| decrypt(path, ENCRYPTED.as_bytes(), &Secret(pw.into()));
        assert!(key("right").is_ok());
        for pw in ["wrong", "wrong-0"] {
            let e = key(pw).unwrap_err();
            assert!(
                e.contains("does not decrypt the key (a wrong password)"),
                "{pw}: {e}"
            );
        }
    }

    #[test]
    fn pem_is_base64_in_lines_of_64() {
        let der: Vec<u8> = (0u8..=100).collect();
        let text = pem(&der);
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(text
            .lines()
            .all(|l| l.len() <= 64 || l.starts_with("-----")));
        let back = CertificateDer::from_pem_slice(text.as_bytes()).unwrap();
        assert_eq!(back.as_ref(), &der[..]);
        assert!(body.ends_with("Y2Q="), "{body}");
    }
}
