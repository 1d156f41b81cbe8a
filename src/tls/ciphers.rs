//! uWSGI's `CIPHERS` field (an OpenSSL cipher list) read against what rustls offers. rustls
//! has only forward-secret AEAD suites (ECDHE with AES-GCM or ChaCha20-Poly1305, and TLS
//! 1.3's three), so what OpenSSL lists mostly do (exclude the weak: `!aNULL:!MD5:!RC4`, or
//! pick classes: `HIGH`, `ECDHE+AESGCM`) rustls already does. A list that names suites
//! restricts them to those it names (in rustls's order of preference); a list that names no
//! suite rustls has, while naming suites, is refused: the file asked for something dragoman
//! cannot give.

use rustls::crypto::aws_lc_rs::cipher_suite as cs;
use rustls::SupportedCipherSuite;

/// OpenSSL's and IANA's names of the suites rustls offers.
const NAMES: &[(&str, &str)] = &[
    ("TLS_AES_256_GCM_SHA384", "TLS13_AES_256_GCM_SHA384"),
    ("TLS_AES_128_GCM_SHA256", "TLS13_AES_128_GCM_SHA256"),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS13_CHACHA20_POLY1305_SHA256",
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
];

fn suite(rustls_name: &str) -> Option<SupportedCipherSuite> {
    rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES
        .iter()
        .copied()
        .find(|s| format!("{:?}", s.suite()) == rustls_name)
}

/// The suites a cipher list allows (`None`: rustls's defaults), or why none of them can be.
pub(crate) fn select(list: Option<&str>) -> Result<Option<Vec<SupportedCipherSuite>>, String> {
    let Some(list) = list else {
        return Ok(None);
    };
    let mut named = Vec::new();
    let mut unknown = Vec::new();
    for token in list
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        // Exclusions, orderings and strengths: rustls has nothing weak to exclude.
        if token.starts_with(['!', '-', '+', '@']) {
            continue;
        }
        let upper = token.to_ascii_uppercase();
        match NAMES
            .iter()
            .find(|(openssl, iana)| upper == *openssl || upper == *iana)
        {
            Some((_, rustls_name)) => {
                if let Some(s) = suite(rustls_name) {
                    named.push(s);
                }
            }
            // A suite's name (OpenSSL's have a `-` or start with TLS_), as opposed to a class
            // such as HIGH or ECDHE+AESGCM.
            None if upper.starts_with("TLS_") || (upper.contains('-') && !upper.contains('+')) => {
                unknown.push(token.to_string())
            }
            // A class (HIGH, ECDHE+AESGCM, DEFAULT...) selects by kind of suite, and every
            // suite rustls has is of the kinds such lists keep: the defaults.
            None => return Ok(None),
        }
    }
    if named.is_empty() {
        if unknown.is_empty() {
            return Ok(None);
        }
        return Err(format!(
            "none of the ciphers {} is offered by dragoman (rustls offers ECDHE with AES-GCM or \
             ChaCha20-Poly1305 in TLS 1.2, and TLS 1.3's suites): leave CIPHERS empty for that \
             safe default, or name some of {}",
            unknown.join(", "),
            NAMES
                .iter()
                .map(|(openssl, _)| *openssl)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // TLS 1.3's suites are not chosen by OpenSSL's cipher list (it has `ciphersuites` for
    // them): kept unless the list names some.
    if !named
        .iter()
        .any(|s| matches!(s, SupportedCipherSuite::Tls13(_)))
    {
        named.extend(
            [
                cs::TLS13_AES_256_GCM_SHA384,
                cs::TLS13_AES_128_GCM_SHA256,
                cs::TLS13_CHACHA20_POLY1305_SHA256,
            ]
            .iter()
            .copied(),
        );
    }
    Ok(Some(named))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_keep_the_defaults_names_restrict_unknown_names_are_refused() {
        assert!(select(None).unwrap().is_none());
        assert!(select(Some("HIGH:!aNULL:!MD5")).unwrap().is_none());
        assert!(select(Some("ECDHE+AESGCM:!RC4")).unwrap().is_none());
        let some = select(Some("ECDHE-RSA-AES128-GCM-SHA256:!aNULL"))
            .unwrap()
            .unwrap();
        assert_eq!(some[0], cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256);
        assert!(some.len() == 4, "the one named and TLS 1.3's three");
        let e = select(Some("RC4-SHA:DES-CBC3-SHA")).unwrap_err();
        assert!(e.contains("RC4-SHA, DES-CBC3-SHA"), "{e}");
        // Names rustls lacks beside ones it has: the ones it has.
        let some = select(Some("AES128-SHA:ECDHE-ECDSA-AES256-GCM-SHA384"))
            .unwrap()
            .unwrap();
        assert_eq!(some[0], cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384);
        let tls13 = select(Some("TLS_AES_128_GCM_SHA256")).unwrap().unwrap();
        assert_eq!(tls13, vec![cs::TLS13_AES_128_GCM_SHA256]);
    }
}
