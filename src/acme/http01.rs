//! HTTP-01 answers, in the workers: a request for `/.well-known/acme-challenge/TOKEN` gets the
//! key authorization the certificate manager wrote in the cache for that token (RFC 8555
//! §8.3), before any other route (static mounts, the application, the `http-to-https`
//! redirect). A token the cache does not have goes on to the other routes, so a site that
//! serves its own challenge files (certbot's webroot) still does.
//!
//! The answer is read from the cache for each request: validations are rare, the file is a
//! line, and reading it is what lets any instance sharing the cache answer for the one that
//! ordered.

use std::path::PathBuf;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};

use crate::config::acme::{AcmeConfig, Challenge};
use crate::http::{Body, RequestBody, Route};
use crate::tls::acme_cache as cache;

/// Where ACME's HTTP-01 validations ask (RFC 8555 §8.3).
pub(crate) const PREFIX: &str = "/.well-known/acme-challenge/";

/// A worker's HTTP-01 answers.
pub(crate) struct Http01 {
    dir: PathBuf,
}

impl Http01 {
    /// The answers, when HTTP-01 is among the challenges offered.
    pub(crate) fn new(acme: Option<&AcmeConfig>) -> Option<Http01> {
        let acme = acme.filter(|a| a.challenges.contains(&Challenge::Http01))?;
        Some(Http01 {
            dir: cache::http01_dir(&acme.cache),
        })
    }

    /// The answer to `req`, if it is a validation of a challenge under way.
    pub(crate) fn answer<B>(&self, req: &Request<B>) -> Option<Response<Body>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return None;
        }
        let token = req.uri().path().strip_prefix(PREFIX)?;
        if !cache::valid_token(token) {
            return None;
        }
        let answer = std::fs::read(self.dir.join(token)).ok()?;
        let mut response = Response::new(Body::full(answer));
        *response.status_mut() = StatusCode::OK;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        Some(response)
    }
}

/// The challenges answer before anything else (static mounts, the application, the
/// http-to-https redirect).
impl Route for Http01 {
    fn route(&self, req: &Request<RequestBody>) -> Option<Response<Body>> {
        self.answer(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Request<()> {
        Request::builder().uri(path).body(()).unwrap()
    }

    #[test]
    fn answers_the_tokens_under_way_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let answers = Http01 {
            dir: dir.path().to_path_buf(),
        };
        std::fs::write(dir.path().join("tok-EN_1"), "tok-EN_1.thumb").unwrap();
        std::fs::write(dir.path().join("secret"), "not an answer").unwrap();
        let r = answers
            .answer(&get("/.well-known/acme-challenge/tok-EN_1"))
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(matches!(r.body(), Body::Full(Some(b)) if b.as_ref() == b"tok-EN_1.thumb"));
        assert!(answers
            .answer(&get("/.well-known/acme-challenge/unknown"))
            .is_none());
        assert!(answers
            .answer(&get("/.well-known/acme-challenge/../secret"))
            .is_none());
        assert!(answers.answer(&get("/tok-EN_1")).is_none());
        let post = Request::builder()
            .method(Method::POST)
            .uri("/.well-known/acme-challenge/tok-EN_1")
            .body(())
            .unwrap();
        assert!(answers.answer(&post).is_none());
    }
}
