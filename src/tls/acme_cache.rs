//! The cache directory (`acme-cache`): where the certificate manager keeps the account, the
//! certificates, the challenge answers and the locks, and where the workers read the
//! certificates and answer the challenges from. It is the only thing the two share, so several
//! dragoman instances on one cache (one machine, or a shared volume) share all of it: one
//! orders, any answers the CA's validation, all serve the result.
//!
//! ```text
//! acme-cache/                          0700
//!   acme-v02.api.letsencrypt.org-directory/   one directory per ACME directory URL
//!     account.json                     the account's key and URL (0600)
//!     certificates/example.com.pem     the key, then the chain (0600), named by the first name
//!     locks/example.com.lock           who orders it now, until when (see lease.rs)
//!   challenges/
//!     http-01/TOKEN                    the key authorization, for /.well-known/acme-challenge/
//!     tls-alpn-01/example.com.pem      the acme-tls/1 certificate and its key
//! ```
//!
//! Every file is written whole to a temporary name and renamed into place, so a reader (a
//! worker watching the certificate, another instance) sees the old file or the new one,
//! never half of one.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::acme::{AcmeCertificate, AcmeConfig};

/// The directory of one ACME directory URL: its host and path, with every character that is
/// not a letter, a digit, `.` or `-` made a `-` (`127.0.0.1-14000-dir`).
pub(crate) fn directory_dir(acme: &AcmeConfig) -> PathBuf {
    let url = acme.directory.trim_start_matches("https://");
    let name: String = url
        .trim_end_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    acme.cache.join(name)
}

/// The file a certificate is kept in: the key, then the chain.
pub(crate) fn certificate_file(acme: &AcmeConfig, cert: &AcmeCertificate) -> PathBuf {
    directory_dir(acme)
        .join("certificates")
        .join(format!("{}.pem", cert.names[0]))
}

/// The account's file.
pub(crate) fn account_file(acme: &AcmeConfig) -> PathBuf {
    directory_dir(acme).join("account.json")
}

/// The lock of what is named `name` (a certificate's first name, or `account`).
pub(crate) fn lock_file(acme: &AcmeConfig, name: &str) -> PathBuf {
    directory_dir(acme)
        .join("locks")
        .join(format!("{name}.lock"))
}

/// Where HTTP-01 answers are, one file per token.
pub(crate) fn http01_dir(cache: &Path) -> PathBuf {
    cache.join("challenges").join("http-01")
}

/// Where TLS-ALPN-01 certificates are, one file per name.
pub(crate) fn tls_alpn01_dir(cache: &Path) -> PathBuf {
    cache.join("challenges").join("tls-alpn-01")
}

/// The TLS-ALPN-01 certificate of `name`.
pub(crate) fn tls_alpn01_file(cache: &Path, name: &str) -> PathBuf {
    tls_alpn01_dir(cache).join(format!("{name}.pem"))
}

/// Whether `token` may name a file: a challenge token is base64url (RFC 8555 §8.1), so
/// nothing else is looked up (no `..`, no `/`).
pub(crate) fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Makes `dir` and its parents, private (0700) where this creates them.
pub(crate) fn make_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `bytes` to `path` whole, private (0600): to a temporary file next to it, synced,
/// then renamed over it.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    make_dir(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// Whether this process can write in `dir` (made if missing): the check before an order, so
/// a certificate is never ordered that could not be kept (it would count against the CA's
/// limits for nothing). The error is the line the log says.
pub(crate) fn check_writable(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!(".probe.{}", std::process::id()));
    let result = make_dir(dir)
        .and_then(|()| write_atomic(&probe, b""))
        .map(|()| {
            let _ = fs::remove_file(&probe);
        });
    result.map_err(|e| unwritable(dir, &e))
}

/// The log's words for a cache directory that cannot be written.
pub(crate) fn unwritable(dir: &Path, e: &io::Error) -> String {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    format!(
        "cannot write in the cache directory {}: {e}; make it writable by uid {uid} (the service \
         user), or set acme-cache to one that is",
        dir.display()
    )
}

/// Whether the cache directory is private; the log warns when it is not (it holds keys).
pub(crate) fn is_private(dir: &Path) -> bool {
    fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o077 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::acme::Challenge;
    use crate::config::defaults::LETS_ENCRYPT;
    use crate::config::Origin;

    fn config(directory: &str) -> AcmeConfig {
        AcmeConfig {
            certificates: vec![AcmeCertificate {
                names: vec!["a.test".into(), "www.a.test".into()],
                origin: Origin::Positional,
            }],
            email: None,
            directory: directory.into(),
            ca_root: None,
            cache: PathBuf::from("/cache"),
            eab: None,
            challenges: vec![Challenge::Http01],
        }
    }

    #[test]
    fn one_directory_per_acme_directory() {
        let le = config(LETS_ENCRYPT);
        assert_eq!(
            certificate_file(&le, &le.certificates[0]),
            Path::new("/cache/acme-v02.api.letsencrypt.org-directory/certificates/a.test.pem")
        );
        let pebble = config("https://127.0.0.1:14000/dir/");
        assert_eq!(
            account_file(&pebble),
            Path::new("/cache/127.0.0.1-14000-dir/account.json")
        );
        assert_eq!(
            lock_file(&pebble, "a.test"),
            Path::new("/cache/127.0.0.1-14000-dir/locks/a.test.lock")
        );
    }

    #[test]
    fn tokens_name_no_other_file() {
        assert!(valid_token("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"));
        for bad in ["", "..", "a/b", "a.b", "%2e%2e", &"a".repeat(257)] {
            assert!(!valid_token(bad), "{bad}");
        }
    }

    #[test]
    fn writes_are_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/deeper/file.pem");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(is_private(&dir.path().join("new")));
        // Nothing left beside it.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
        assert!(check_writable(&dir.path().join("other")).is_ok());
    }
}
