//! The HTTPS client the ACME protocol runs over: hyper's, with rustls and AWS-LC (the provider
//! of the server side), the directory's certificate checked against `acme-ca-root` or the
//! system's CA certificates. Every request is bounded in time, and the `Retry-After` of an
//! error answer is kept for the back-off (instant-acme reads it only while polling an order).

use std::error::Error as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, Request};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, Error, HttpClient};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::config::acme::AcmeConfig;

/// The longest one request to the CA may take, from connecting to the end of the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a connection to the CA may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The client, shared by the account and its orders (cheap to clone).
#[derive(Clone)]
pub(crate) struct Client {
    inner: HyperClient<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>,
    /// The `Retry-After` of the last error answer, until taken.
    retry_after: Arc<Mutex<Option<SystemTime>>>,
}

impl Client {
    /// A client trusting `acme-ca-root` or the system's CAs; the error is the log's line.
    pub(crate) fn new(acme: &AcmeConfig) -> Result<Client, String> {
        let roots = roots(acme)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        Ok(Client {
            inner: HyperClient::builder(TokioExecutor::new()).build(https),
            retry_after: Arc::default(),
        })
    }

    /// How long the CA asked to wait in its last error answer, if it did (and forgets it).
    pub(crate) fn take_retry_after(&self) -> Option<Duration> {
        let at = self
            .retry_after
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        Some(
            at.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
        )
    }
}

/// The CA certificates the directory's certificate must chain to.
fn roots(acme: &AcmeConfig) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = &acme.ca_root {
        let shown = path.display();
        let bytes = std::fs::read(path).map_err(|e| format!("acme-ca-root {shown}: {e}"))?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("acme-ca-root {shown}: the PEM is damaged ({e})"))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!(
                "acme-ca-root {shown}: no CA certificate in this file; give the PEM of the CA \
                 that issued the directory's certificate"
            ));
        }
        return Ok(roots);
    }
    let found = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_string(), |e| e.to_string());
        return Err(format!(
            "no trusted CA certificates on this machine ({why}): install the ca-certificates \
             package, or set acme-ca-root"
        ));
    }
    Ok(roots)
}

/// An error of the client with its causes (hyper's says "client error (Connect)"; rustls's,
/// below it, says which certificate it refused).
#[derive(Debug)]
pub(crate) struct Failed(pub(crate) String);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failed {}

fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `Retry-After` as a time: seconds, or an HTTP date.
fn retry_after(headers: &http::HeaderMap) -> Option<SystemTime> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    match value.parse::<u64>() {
        Ok(secs) => Some(SystemTime::now() + Duration::from_secs(secs)),
        Err(_) => httpdate::parse_http_date(value).ok(),
    }
}

impl HttpClient for Client {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, Error>> + Send>> {
        let sent = self.inner.request(req);
        let slot = self.retry_after.clone();
        Box::pin(async move {
            let response = match tokio::time::timeout(REQUEST_TIMEOUT, sent).await {
                Ok(Ok(response)) => response,
                Ok(Err(e)) => return Err(Error::Other(Box::new(Failed(with_causes(&e))))),
                Err(_) => {
                    return Err(Error::Other(Box::new(Failed(format!(
                        "no answer within {}s",
                        REQUEST_TIMEOUT.as_secs()
                    )))))
                }
            };
            let status = response.status();
            if status.is_client_error() || status.is_server_error() {
                if let Some(at) = retry_after(response.headers()) {
                    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
                }
            }
            // The body is read by instant-acme, within the time the manager gives a whole
            // order.
            Ok(BytesResponse::from(response))
        })
    }
}

/// The text of an error of the ACME client's, with its causes.
pub(crate) fn describe(e: &Error) -> String {
    match e {
        Error::Other(inner) => with_causes(inner.as_ref()),
        other => match other.source() {
            Some(_) => with_causes(other),
            None => other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let mut h = http::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(header::RETRY_AFTER, "120".parse().unwrap());
        let wait = retry_after(&h)
            .unwrap()
            .duration_since(SystemTime::now())
            .unwrap();
        assert!(wait > Duration::from_secs(118) && wait <= Duration::from_secs(120));
        h.insert(
            header::RETRY_AFTER,
            "Fri, 31 Dec 2100 23:59:59 GMT".parse().unwrap(),
        );
        assert!(retry_after(&h).unwrap() > SystemTime::now());
        h.insert(header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
