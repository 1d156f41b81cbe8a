//! One certificate ordered (RFC 8555 §7.4): the order, one challenge per name answered
//! through the cache (the workers of any instance sharing it answer the CA's validation), the
//! CSR with a new key, the chain. The challenge files are removed whatever happens.

use std::path::PathBuf;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewOrder,
    OrderStatus, RetryPolicy,
};

use super::client::Client;
use super::problem::{document, failure, Failure};
use crate::config::acme::{AcmeCertificate, AcmeConfig, Challenge};
use crate::tls::acme_cache as cache;

/// How long the CA gets to validate, then to issue: polled from half a second on, less and
/// less often.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(500))
    .backoff(1.5)
    .timeout(Duration::from_secs(120));

/// What an order gave: the file the cache keeps (the key, then the chain).
pub(crate) struct Issued {
    pub(crate) pem: String,
    /// The challenge the CA validated, when it asked for one (it may reuse a validation).
    pub(crate) challenge: Option<Challenge>,
}

/// Files written for the CA's validation, removed when dropped.
#[derive(Default)]
struct Answers(Vec<PathBuf>);

impl Drop for Answers {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Orders the certificate of `cert`, answering with `prefer` when the CA offers it (else the
/// next challenge of acme-challenge). `replaces`: the certificate it renews (ARI).
pub(crate) async fn issue(
    account: &Account,
    client: &Client,
    acme: &AcmeConfig,
    cert: &AcmeCertificate,
    prefer: Challenge,
    replaces: Option<CertificateIdentifier<'static>>,
) -> Result<Issued, Failure> {
    let names = cert.names.join(",");
    let doing = format!("ordering {names}");
    let fail = |e: instant_acme::Error| {
        let mut f = failure(&doing, &e, &acme.directory);
        f.retry_after = client.take_retry_after();
        f
    };
    let identifiers: Vec<Identifier> = cert.names.iter().cloned().map(Identifier::Dns).collect();
    let mut new = NewOrder::new(&identifiers);
    if let Some(replaces) = replaces {
        new = new.replaces(replaces);
    }
    let mut order = account.new_order(&new).await.map_err(fail)?;
    let mut answers = Answers::default();
    let mut used = None;
    let mut preference = vec![prefer];
    preference.extend(acme.challenges.iter().filter(|c| **c != prefer));
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization.map_err(fail)?;
        match authorization.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            status => {
                return Err(Failure::local(format!(
                    "{doing}: the CA's authorization for {} is {status:?}",
                    authorization.identifier()
                )))
            }
        }
        let name = authorization.identifier().to_string();
        let offered: Vec<ChallengeType> = authorization
            .challenges
            .iter()
            .map(|c| c.r#type.clone())
            .collect();
        let Some(kind) = preference
            .iter()
            .copied()
            .find(|c| offered.contains(&challenge_type(*c)))
        else {
            return Err(Failure::local(format!(
                "{doing}: the CA offers none of the challenges of acme-challenge for {name} \
                 (it offers {offered:?})"
            )));
        };
        let mut challenge = authorization
            .challenge(challenge_type(kind))
            .expect("offered, checked above");
        let key_authorization = challenge.key_authorization();
        let path = match kind {
            Challenge::Http01 => {
                let token = &challenge.token;
                if !cache::valid_token(token) {
                    return Err(Failure::local(format!(
                        "{doing}: the CA's HTTP-01 token for {name} is not base64url"
                    )));
                }
                let path = cache::http01_dir(&acme.cache).join(token);
                (path, key_authorization.as_str().as_bytes().to_vec())
            }
            Challenge::TlsAlpn01 => {
                let pem = tls_alpn01_certificate(&name, key_authorization.digest().as_ref())
                    .map_err(|e| Failure::local(format!("{doing}: {e}")))?;
                (cache::tls_alpn01_file(&acme.cache, &name), pem.into_bytes())
            }
        };
        let (path, bytes) = path;
        cache::write_atomic(&path, &bytes)
            .map_err(|e| Failure::local(cache::unwritable(path.parent().unwrap_or(&path), &e)))?;
        answers.0.push(path);
        used = Some(kind);
        challenge.set_ready().await.map_err(fail)?;
    }
    let status = order.poll_ready(&POLL).await.map_err(fail)?;
    if status != OrderStatus::Ready {
        return Err(why_invalid(&mut order, &doing, used).await);
    }
    let key = rcgen::KeyPair::generate().map_err(|e| Failure::local(format!("{doing}: {e}")))?;
    let mut params = rcgen::CertificateParams::new(cert.names.clone())
        .map_err(|e| Failure::local(format!("{doing}: {e}")))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .map_err(|e| Failure::local(format!("{doing}: {e}")))?;
    order.finalize_csr(csr.der()).await.map_err(fail)?;
    let chain = order.poll_certificate(&POLL).await.map_err(fail)?;
    drop(answers);
    Ok(Issued {
        pem: format!("{}{chain}", key.serialize_pem()),
        challenge: used,
    })
}

/// ACME's name for a challenge.
fn challenge_type(c: Challenge) -> ChallengeType {
    match c {
        Challenge::Http01 => ChallengeType::Http01,
        Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
    }
}

/// Why an order went invalid: the problem of the challenge that failed, as the CA says it.
async fn why_invalid(
    order: &mut instant_acme::Order,
    doing: &str,
    used: Option<Challenge>,
) -> Failure {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        if authorization.refresh().await.is_err() {
            continue;
        }
        let name = authorization.identifier().to_string();
        for challenge in &authorization.challenges {
            if let Some(problem) = &challenge.error {
                reasons.push(format!("{name}: {}", document(problem)));
            }
        }
    }
    let via = used.map_or(String::new(), |c| format!(" by {}", c.name()));
    let why = if reasons.is_empty() {
        "the CA gave no reason".to_string()
    } else {
        reasons.join("; ")
    };
    Failure {
        line: format!(
            "{doing}: the validation{via} failed: {why}; the name must resolve to this \
             server, and port 80 (http-01) or 443 (tls-alpn-01) must reach dragoman"
        ),
        transient: false,
        validation: true,
        retry_after: None,
    }
}

/// The TLS-ALPN-01 certificate of `name` (RFC 8737 §3): self-signed, for `name` alone, with
/// the SHA-256 of the key authorization in the critical acmeIdentifier extension; its key
/// first, as the other files of the cache.
pub(crate) fn tls_alpn01_certificate(name: &str, digest: &[u8]) -> Result<String, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(vec![name.to_string()]).map_err(|e| e.to_string())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(digest));
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    Ok(format!("{}{}", key.serialize_pem(), cert.pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_cert::der::{Decode, Encode};

    #[test]
    fn the_tls_alpn01_certificate_carries_the_digest() {
        let digest = [7u8; 32];
        let pem = tls_alpn01_certificate("a.test", &digest).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let cert = x509_cert::Certificate::from_der(&der).unwrap();
        let ext = cert
            .tbs_certificate
            .extensions
            .unwrap()
            .into_iter()
            .find(|e| e.extn_id.to_string() == "1.3.6.1.5.5.7.1.31")
            .expect("the acmeIdentifier extension");
        assert!(ext.critical);
        // An OCTET STRING of the digest.
        let inner = x509_cert::der::asn1::OctetString::from_der(ext.extn_value.as_bytes())
            .unwrap()
            .to_der()
            .unwrap();
        assert!(inner.ends_with(&digest));
    }
}
