//! Why an ACME step failed, as one log line a user can act on: the CA's problem document
//! (RFC 8555 §6.7: its type, detail and subproblems) with what to do about it, or what kept
//! the CA from being reached; and whether trying again at once may help.

use std::time::Duration;

use instant_acme::{Error, Problem};

use super::client;

/// A failed step: the log's line, and how to go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) line: String,
    /// Worth trying again in seconds (a nonce the CA rejected too often, an error of the
    /// CA's own); otherwise the back-off decides.
    pub(crate) transient: bool,
    /// A validation failed: the next attempt tries the next challenge type.
    pub(crate) validation: bool,
    /// What the CA's `Retry-After` asked for.
    pub(crate) retry_after: Option<Duration>,
}

impl Failure {
    /// A failure of dragoman's side (the cache, a certificate that does not load).
    pub(crate) fn local(line: String) -> Failure {
        Failure {
            line,
            transient: false,
            validation: false,
            retry_after: None,
        }
    }
}

/// The short name of an ACME error type (`urn:ietf:params:acme:error:badNonce` is
/// `badNonce`).
fn short(kind: &str) -> &str {
    kind.strip_prefix("urn:ietf:params:acme:error:")
        .unwrap_or(kind)
}

/// The CA's problem document, as the log says it: `detail (type, status N; for NAME: ...)`.
pub(crate) fn document(p: &Problem) -> String {
    let mut text = p.detail.clone().unwrap_or_else(|| "no detail given".into());
    let mut facts = Vec::new();
    if let Some(kind) = &p.r#type {
        facts.push(kind.clone());
    }
    if let Some(status) = p.status {
        facts.push(format!("status {status}"));
    }
    for sub in &p.subproblems {
        let whom = sub
            .identifier
            .as_ref()
            .map(|i| i.authorized(false).to_string())
            .unwrap_or_default();
        let kind = sub.r#type.as_deref().map(short).unwrap_or("");
        let detail = sub.detail.as_deref().unwrap_or("");
        facts.push(format!("for {whom}: {detail} ({kind})"));
    }
    if !facts.is_empty() {
        text.push_str(&format!(" [{}]", facts.join("; ")));
    }
    text
}

/// What to do about a problem the CA answered with, by its type.
fn advice(kind: &str) -> &'static str {
    match kind {
        "rejectedIdentifier" | "unsupportedIdentifier" | "caa" => {
            "the CA will not issue for this name: check acme-domain (and the name's CAA records)"
        }
        "invalidContact" | "unsupportedContact" => {
            "the CA refuses the account's contact: fix acme-email"
        }
        "externalAccountRequired" => {
            "this CA needs external account binding: set acme-eab-kid and acme-eab-hmac"
        }
        "rateLimited" => "the CA's rate limit: dragoman waits as long as the CA says",
        "unauthorized" | "connection" | "dns" | "incorrectResponse" | "tls" => {
            "the CA could not validate the name: it must resolve to this server, and port 80 \
             (http-01) or 443 (tls-alpn-01) must reach dragoman"
        }
        "malformed" => "the CA refused the request as malformed",
        _ => "",
    }
}

/// The line for `e`, which happened while `doing` (`ordering a.test`, say).
pub(crate) fn failure(doing: &str, e: &Error, directory: &str) -> Failure {
    match e {
        Error::Api(p) => {
            let kind = p.r#type.as_deref().map(short).unwrap_or("");
            let advice = advice(kind);
            let mut line = format!("{doing}: the CA answered: {}", document(p));
            if !advice.is_empty() {
                line.push_str("; ");
                line.push_str(advice);
            }
            Failure {
                line,
                transient: matches!(kind, "badNonce" | "serverInternal"),
                validation: matches!(
                    kind,
                    "unauthorized" | "connection" | "dns" | "incorrectResponse" | "tls"
                ),
                retry_after: None,
            }
        }
        Error::Timeout(_) => Failure {
            line: format!("{doing}: the CA did not finish in time"),
            transient: false,
            validation: false,
            retry_after: None,
        },
        other => {
            let text = client::describe(other);
            let untrusted = text.contains("invalid peer certificate")
                || text.contains("UnknownIssuer")
                || text.contains("certificate verify");
            let line = if untrusted {
                format!(
                    "{doing}: the TLS certificate of the ACME directory {directory} is not \
                     trusted ({text}); for a private CA, set acme-ca-root to the CA that issued it"
                )
            } else if text.contains("connect")
                || text.contains("dns error")
                || text.contains("no answer within")
            {
                format!("{doing}: cannot reach the ACME directory {directory}: {text}")
            } else {
                format!("{doing}: {text}")
            };
            Failure {
                line,
                transient: false,
                validation: false,
                retry_after: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(json: &str) -> Error {
        Error::Api(serde_json::from_str::<Problem>(json).unwrap())
    }

    #[test]
    fn the_problem_document_and_what_to_do() {
        let e = problem(
            r#"{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"Error creating new order :: Cannot issue for \"bad.test\": forbidden","status":400}"#,
        );
        let f = failure("ordering bad.test", &e, "https://ca/dir");
        assert!(f
            .line
            .starts_with("ordering bad.test: the CA answered: Error creating"));
        assert!(f
            .line
            .contains("urn:ietf:params:acme:error:rejectedIdentifier"));
        assert!(f.line.contains("status 400"));
        assert!(f.line.contains("check acme-domain"));
        assert!(!f.transient && !f.validation);
        let e = problem(
            r#"{"type":"urn:ietf:params:acme:error:malformed","detail":"some names failed","subproblems":[{"type":"urn:ietf:params:acme:error:unauthorized","detail":"wrong answer","identifier":{"type":"dns","value":"a.test"}}]}"#,
        );
        let f = failure("ordering a.test", &e, "https://ca/dir");
        assert!(
            f.line.contains("for a.test: wrong answer (unauthorized)"),
            "{}",
            f.line
        );
        let nonce = problem(r#"{"type":"urn:ietf:params:acme:error:badNonce"}"#);
        assert!(failure("x", &nonce, "d").transient);
        let refused = problem(
            r#"{"type":"urn:ietf:params:acme:error:connection","detail":"connection refused"}"#,
        );
        assert!(failure("x", &refused, "d").validation);
        let contact = problem(r#"{"type":"urn:ietf:params:acme:error:invalidContact"}"#);
        assert!(failure("x", &contact, "d").line.contains("fix acme-email"));
    }

    #[test]
    fn what_kept_the_ca_from_being_reached() {
        let e = Error::Other(Box::new(client::Failed(
            "client error (Connect): tcp connect error: Connection refused (os error 111)".into(),
        )));
        let f = failure("creating the account", &e, "https://127.0.0.1:9/dir");
        assert!(
            f.line
                .contains("cannot reach the ACME directory https://127.0.0.1:9/dir"),
            "{}",
            f.line
        );
        let e = Error::Other(Box::new(client::Failed(
            "client error (Connect): invalid peer certificate: UnknownIssuer".into(),
        )));
        let f = failure("creating the account", &e, "https://ca/dir");
        assert!(f.line.contains("is not trusted"), "{}", f.line);
        assert!(f.line.contains("acme-ca-root"));
    }
}
