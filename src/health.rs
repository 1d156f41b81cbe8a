//! The health check (`health-check = /healthz`), answered by dragoman itself before static
//! files and the application: 200 once every worker has accepted connections, 503 while the
//! server starts and from the moment it begins to stop (SIGTERM), so that a load balancer
//! stops sending before the listeners close (see `shutdown-delay`). The answer is the
//! master's [`Phase`], read from the scoreboard; no Python runs.
//!
//! One path, used as a readiness check (a load balancer's, Kubernetes' readinessProbe). A
//! separate liveness path would answer the same thing but during a stop, when it matters to
//! no one: the process is going away either way.

use http::{header, HeaderValue, Method, Request, Response, StatusCode};

use crate::http::{Body, RequestBody, Route};
use crate::metrics::RouteKind;
use crate::scoreboard::{Phase, ServerState};

/// The health-check route.
pub(crate) struct Health {
    path: String,
    server: &'static ServerState,
}

impl Health {
    pub(crate) fn new(path: String, server: &'static ServerState) -> Health {
        Health { path, server }
    }

    /// The answer for the server's phase.
    fn answer(&self, method: &Method) -> Response<Body> {
        let (status, text) = match self.server.phase() {
            Phase::Ready => (StatusCode::OK, "ok\n"),
            Phase::Starting => (StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
            Phase::Draining => (StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        };
        let allowed = *method == Method::GET || *method == Method::HEAD;
        let (status, text) = if allowed {
            (status, text)
        } else {
            (StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n")
        };
        let mut response = Response::new(Body::full(text));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        // A proxy's cache must not answer for the server.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if !allowed {
            headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        if self.server.phase() == Phase::Draining {
            // The balancer's next check comes on a new connection, perhaps to another server.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl Route for Health {
    fn route(&self, req: &Request<RequestBody>) -> Option<Response<Body>> {
        (req.uri().path() == self.path).then(|| self.answer(req.method()))
    }

    fn kind(&self) -> RouteKind {
        RouteKind::Health
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoreboard::Scoreboard;

    #[test]
    fn the_answer_follows_the_phase() {
        let board = Scoreboard::map().unwrap();
        let health = Health::new("/healthz".into(), board.server());
        let get = |path: &str, method: Method| {
            let req = Request::builder()
                .method(method)
                .uri(path)
                .body(RequestBody::Empty)
                .unwrap();
            health.route(&req).map(|r| r.status())
        };
        assert_eq!(get("/", Method::GET), None);
        assert_eq!(get("/healthz/x", Method::GET), None);
        assert_eq!(
            get("/healthz", Method::GET),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        board.server().set(Phase::Ready);
        assert_eq!(get("/healthz?full=1", Method::GET), Some(StatusCode::OK));
        assert_eq!(get("/healthz", Method::HEAD), Some(StatusCode::OK));
        assert_eq!(
            get("/healthz", Method::POST),
            Some(StatusCode::METHOD_NOT_ALLOWED)
        );
        board.server().set(Phase::Draining);
        assert_eq!(
            get("/healthz", Method::GET),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        // Draining is final.
        board.server().set(Phase::Ready);
        assert_eq!(board.server().phase(), Phase::Draining);
    }
}
