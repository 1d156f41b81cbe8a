//! The hyper service of one connection: request checks hyper leaves to the server, then the app
//! bridge, then the headers every response gets.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{header, HeaderValue, Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;

use super::upgrade::{Handoff, Upgraded};
use super::websocket;
use super::{error_response, Answer, App, Body, LocalFuture, RequestBody, Route, SERVER};
use crate::access::{AccessLog, End, Pending};
use crate::config::Limits;
use crate::conn::lifecycle::{InFlight, Lifecycle};
use crate::conn::zerocopy::ZeroCopy;
use crate::conn::ConnInfo;
use crate::forwarded::{self, TrustedProxies};
use crate::metrics::{Mark, RouteKind};

/// Where a worker's requests go: the routes before the application (ACME's HTTP-01
/// challenges, then static files), then the application; the limits they are checked
/// against; the access log they are written to.
pub(crate) struct Routes {
    pub(crate) app: Rc<dyn App>,
    /// Answered before the application, in order.
    pub(crate) before_app: Vec<Rc<dyn Route>>,
    pub(crate) limits: Limits,
    /// `forwarded-allow-ips`: whose X-Forwarded-* and Forwarded headers are believed.
    pub(crate) proxies: TrustedProxies,
    /// `None` when no request is logged: then nothing is kept per request.
    pub(crate) access: Option<Rc<AccessLog>>,
    /// `add-header`: added to every response of the routes and the application.
    pub(crate) add_headers: Vec<(header::HeaderName, HeaderValue)>,
}

/// Serves the requests of one connection.
pub(crate) struct HttpService {
    routes: Rc<Routes>,
    conn: Arc<ConnInfo>,
    life: Rc<Lifecycle>,
    /// The connection's queue for file bodies sent with sendfile, when its transport can.
    zero_copy: Option<Rc<ZeroCopy>>,
    /// `Strict-Transport-Security`, on HTTPS connections with `hsts`.
    hsts: Option<HeaderValue>,
    /// Where an upgrade's session waits for the connection (HTTP/1 through hyper only).
    handoff: Option<Handoff>,
    /// The peer is a trusted proxy: its requests' forwarding headers are read.
    from_proxy: bool,
}

impl HttpService {
    pub(crate) fn new(
        routes: Rc<Routes>,
        conn: ConnInfo,
        life: Rc<Lifecycle>,
        zero_copy: Option<Rc<ZeroCopy>>,
    ) -> Self {
        // A uwsgi peer (nginx) passed REMOTE_ADDR itself: its headers are the client's.
        let from_proxy = !conn.one_request && routes.proxies.trusts(conn.peer.map(|p| p.ip()));
        HttpService {
            routes,
            conn: Arc::new(conn),
            life,
            zero_copy,
            hsts: None,
            handoff: None,
            from_proxy,
        }
    }

    /// WebSocket upgrades may be accepted: their sessions are left in `handoff`.
    pub(crate) fn with_handoff(mut self, handoff: Handoff) -> Self {
        self.handoff = Some(handoff);
        self
    }

    /// Every response gets `Strict-Transport-Security: value` (unless the app set one).
    pub(crate) fn with_hsts(mut self, value: Option<HeaderValue>) -> Self {
        self.hsts = value;
        self
    }
}

impl hyper::service::Service<Request<Incoming>> for HttpService {
    type Response = Response<Sent>;
    type Error = Infallible;
    type Future = WithServer;

    fn call(&self, req: Request<Incoming>) -> WithServer {
        WithServer(self.respond(req.map(RequestBody::Hyper)))
    }
}

/// A response on its way to hyper, which writes the headers it is given: the `Server` header
/// goes into them (unless the app set its own). The connection's own HTTP/1 path writes it
/// while encoding the head instead ([`super::h1::encode_head`]), without touching the map.
pub(crate) struct WithServer(ServiceFuture);

impl Future for WithServer {
    type Output = Result<Response<Sent>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Ok(mut response) = ready!(Pin::new(&mut self.get_mut().0).poll(cx));
        response
            .headers_mut()
            .entry(header::SERVER)
            .or_insert(HeaderValue::from_static(SERVER));
        Poll::Ready(Ok(response))
    }
}

impl HttpService {
    /// The response to a request, parsed by hyper or by the connection's own HTTP/1 path.
    pub(crate) fn respond(&self, mut req: Request<RequestBody>) -> ServiceFuture {
        let routes = &*self.routes;
        if self.from_proxy {
            // What the proxy says, for every bridge and the access log.
            let peer = self.conn.peer.map(|p| p.ip());
            if let Some(found) = forwarded::resolve(req.headers(), peer, &routes.proxies) {
                req.extensions_mut().insert(found);
            }
        }
        let mut track = self.track(&req);
        if let Err((status, why)) = check_request(&req, routes.limits.line_bytes) {
            let response = error_response(status, why, true);
            track.metrics.routed(RouteKind::Server);
            return ServiceFuture::Ready(Some((response, track)));
        }
        if req.uri().authority().is_some() {
            use_target_host(&mut req);
        }
        for route in &routes.before_app {
            if let Some(mut response) = route.route(&req) {
                self.prepare(&mut response);
                track.metrics.routed(route.kind());
                // The routes before the application serve files: logged as static files.
                track.log = track.log.and_then(Pending::for_static);
                return ServiceFuture::Ready(Some((response, track)));
            }
        }
        let answer = match &self.handoff {
            Some(handoff) if routes.app.serves_websockets() && websocket::asks_upgrade(&req) => {
                let handoff = handoff.clone();
                routes
                    .app
                    .clone()
                    .websocket(req, self.conn.clone(), handoff)
            }
            _ => routes.app.clone().call(req, self.conn.clone()),
        };
        self.answer(answer, track)
    }

    /// [`Self::respond`] for the own HTTP/1 path: the response itself when it is ready at
    /// once (the usual request: a static file, or an app that answered during the call), so
    /// that only a response still to come is awaited as a future.
    #[inline]
    pub(crate) fn respond_now(&self, req: Request<RequestBody>) -> Now {
        match self.respond(req) {
            ServiceFuture::Ready(Some((response, track))) => Now::Ready(sent(response, track)),
            later => Now::Later(later),
        }
    }

    /// What a request holds until its response is done: see [`Track`].
    fn track<B>(&self, req: &Request<B>) -> Track {
        Track {
            in_flight: self.life.begin_request(),
            log: self
                .routes
                .access
                .as_ref()
                .map(|log| log.begin(req, &self.conn)),
            metrics: Mark::begin(req.method()),
        }
    }

    /// A WebSocket over an HTTP/2 stream (RFC 8441's extended CONNECT): the bridge answers
    /// it; once a 200 is out, the stream is the session's (hyper's upgrade of the stream,
    /// unlike HTTP/1's, needs nothing of the connection's transport).
    pub(crate) fn websocket_h2(
        &self,
        mut req: Request<Incoming>,
    ) -> LocalFuture<Result<Response<Sent>, Infallible>> {
        let routes = &*self.routes;
        if !routes.app.serves_websockets() {
            let refused = error_response(
                StatusCode::NOT_IMPLEMENTED,
                "this application does not serve WebSockets",
                false,
            );
            let mut track = self.track(&req);
            track.metrics.routed(RouteKind::Server);
            let answer = self.answer(Answer::Now(refused), track);
            return Box::pin(WithServer(answer));
        }
        let track = self.track(&req);
        let upgrade = hyper::upgrade::on(&mut req);
        let handoff = Handoff::default();
        let answer = routes.app.clone().websocket(
            req.map(RequestBody::Hyper),
            self.conn.clone(),
            handoff.clone(),
        );
        let response = WithServer(self.answer(answer, track));
        let life = self.life.clone();
        Box::pin(async move {
            let Ok(response) = response.await;
            if response.status().is_success() {
                if let Some(session) = handoff.take() {
                    tokio::task::spawn_local(async move {
                        if let Ok(stream) = upgrade.await {
                            let upgraded = Upgraded {
                                io: Box::new(hyper_util::rt::TokioIo::new(stream)),
                                prefix: bytes::Bytes::new(),
                                life,
                            };
                            session(upgraded).await;
                        }
                    });
                }
            }
            Ok(response)
        })
    }

    /// The future of an application's answer. Inlined into `respond`, its one caller: 25
    /// instructions less a request (callgrind).
    #[inline(always)]
    fn answer(&self, answer: Answer, track: Track) -> ServiceFuture {
        match answer {
            Answer::Now(mut response) => {
                self.prepare(&mut response);
                ServiceFuture::Ready(Some((response, track)))
            }
            Answer::Later(response) => ServiceFuture::App {
                response,
                life: self.life.clone(),
                zero_copy: self.zero_copy.clone(),
                hsts: self.hsts.clone(),
                routes: self.routes.clone(),
                track: Some(track),
            },
        }
    }

    fn prepare(&self, response: &mut Response<Body>) {
        prepare(
            response,
            &self.life,
            self.zero_copy.as_ref(),
            self.hsts.as_ref(),
            &self.routes.add_headers,
        );
    }

    /// What logs the requests hyper refuses itself, once the service is hyper's.
    pub(crate) fn refusals(&self) -> Refusals {
        Refusals {
            log: self.routes.access.clone(),
            conn: self.conn.clone(),
        }
    }
}
/// Logs a request hyper answered without calling the service: a head it could not parse
/// (400) or too large (431).
pub(crate) struct Refusals {
    log: Option<Rc<AccessLog>>,
    conn: Arc<ConnInfo>,
}

impl Refusals {
    /// The connection ended with `error`: a line for the request it refused, if it did.
    pub(crate) fn ended(&self, error: &hyper::Error) {
        let status = if error.is_parse_too_large() {
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        } else if error.is_parse() {
            StatusCode::BAD_REQUEST
        } else {
            return;
        };
        if let Some(log) = &self.log {
            log.refused(&self.conn, status.as_u16());
        }
    }
}

/// What a request holds from its head to the end of its response: its place among the
/// connection's requests in flight, its access-log line to be and its count in the metrics.
pub(crate) struct Track {
    in_flight: InFlight,
    log: Option<Box<Pending>>,
    metrics: Mark,
}

/// What [`HttpService::respond_now`] has: the response, or its future.
pub(crate) enum Now {
    Ready(Response<Sent>),
    Later(ServiceFuture),
}

/// A response ready at once (a rejected request, a static file, an app's immediate answer)
/// or the app's still to come, without a second box.
pub(crate) enum ServiceFuture {
    Ready(Option<(Response<Body>, Track)>),
    App {
        response: LocalFuture<Response<Body>>,
        /// While the worker drains, responses close their connection.
        life: Rc<Lifecycle>,
        zero_copy: Option<Rc<ZeroCopy>>,
        hsts: Option<HeaderValue>,
        routes: Rc<Routes>,
        track: Option<Track>,
    },
}

impl Future for ServiceFuture {
    type Output = Result<Response<Sent>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (response, track) = match self.get_mut() {
            ServiceFuture::Ready(ready) => match ready.take() {
                Some(ready) => ready,
                None => return Poll::Pending, // polled after completion: never resolves again
            },
            ServiceFuture::App {
                response,
                life,
                zero_copy,
                hsts,
                routes,
                track,
            } => {
                let mut r = ready!(response.as_mut().poll(cx));
                let extra = &routes.add_headers;
                prepare(&mut r, life, zero_copy.as_ref(), hsts.as_ref(), extra);
                match track.take() {
                    Some(track) => (r, track),
                    None => return Poll::Pending, // polled after completion
                }
            }
        };
        Poll::Ready(Ok(sent(response, track)))
    }
}

/// The response as it goes out, carrying what its request holds until it is written.
fn sent(response: Response<Body>, mut track: Track) -> Response<Sent> {
    track.metrics.answered(response.status());
    let head_bytes = match &track.log {
        Some(log) if log.wants_head_size() => head_size(&response),
        _ => 0,
    };
    let (status, header_count) = (response.status().as_u16(), response.headers().len());
    response.map(|body| Sent {
        body,
        log: track.log,
        status,
        header_count,
        head_bytes,
        body_bytes: 0,
        cut: false,
        _in_flight: track.in_flight,
        _metrics: track.metrics,
    })
}

/// The size of a response's head as it will be written, for the access log's `%(hsize)`:
/// the status line, the headers, and those the protocol adds (Date, Server, the length).
fn head_size(response: &Response<Body>) -> u64 {
    let reason = response.status().canonical_reason().map_or(0, str::len);
    let fields: usize = response
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let added = "date: Thu, 01 Jan 2026 00:00:00 GMT\r\n".len()
        + if response.headers().contains_key(header::SERVER) {
            0
        } else {
            "server: \r\n".len() + SERVER.len()
        }
        + "content-length: \r\n".len()
        + 4;
    ("HTTP/1.1 200 \r\n".len() + reason + fields + added + 2) as u64
}

/// A response body that keeps its request in flight until hyper (or the own HTTP/1 path) is
/// done with it: handed over whole, or the connection failed. header-timeout counts from
/// then, or from the last byte written while the connection still flushes (see
/// [`Lifecycle::wrote`]). When it goes, the request's access-log line is written, with the
/// bytes that passed through it.
pub(crate) struct Sent {
    body: Body,
    log: Option<Box<Pending>>,
    status: u16,
    header_count: usize,
    head_bytes: u64,
    body_bytes: u64,
    /// The body failed part way.
    cut: bool,
    _in_flight: InFlight,
    _metrics: Mark,
}

impl Drop for Sent {
    fn drop(&mut self) {
        if let Some(mut log) = self.log.take() {
            log.finish(End {
                status: self.status,
                body_bytes: self.body_bytes,
                head_bytes: self.head_bytes,
                header_count: self.header_count,
                cut: self.cut,
            });
        }
    }
}

impl http_body::Body for Sent {
    type Data = bytes::Bytes;
    type Error = super::BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, super::BodyError>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        match &frame {
            Poll::Ready(Some(Ok(frame))) => {
                // A file's frames sent with sendfile stand in for its bytes: same length.
                if let Some(data) = frame.data_ref() {
                    this.body_bytes += data.len() as u64;
                }
            }
            Poll::Ready(Some(Err(_))) => this.cut = true,
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// What every static or application response gets on its way out: `Connection: close` while
/// the worker drains, the connection's zero-copy queue for a file body, HSTS on HTTPS, and
/// the `add-header` headers.
fn prepare(
    response: &mut Response<Body>,
    life: &Lifecycle,
    zero_copy: Option<&Rc<ZeroCopy>>,
    hsts: Option<&HeaderValue>,
    add_headers: &[(header::HeaderName, HeaderValue)],
) {
    for (name, value) in add_headers {
        response.headers_mut().append(name.clone(), value.clone());
    }
    if let Some(hsts) = hsts {
        response
            .headers_mut()
            .entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert_with(|| hsts.clone());
    }
    // A 101 hands the connection over: it has no keep-alive to end.
    if life.closing() && response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let (Body::File(file), Some(zero_copy)) = (response.body_mut(), zero_copy) {
        file.send_through(zero_copy);
    }
}

/// A request in absolute form (`GET http://a.example/x`) is for the host its target names:
/// the Host header, if any, is ignored and replaced (RFC 9112 §3.2.2), so the application
/// sees one host (`HTTP_HOST`, `SERVER_NAME`), not the one a proxy in front may have routed
/// by.
fn use_target_host<B>(req: &mut Request<B>) {
    let Some(authority) = req.uri().authority() else {
        return;
    };
    let host = match authority.port() {
        Some(port) => format!("{}:{}", authority.host(), port.as_str()),
        None => authority.host().to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&host) {
        req.headers_mut().insert(header::HOST, value);
    }
}

/// The checks RFC 9112 asks of a server that hyper does not make, and the request-line limit.
/// A request that fails gets the status (400, 414, or 501 for CONNECT) and the connection
/// closes.
/// - exactly one Host header on HTTP/1.1, at most one on HTTP/1.0 (§3.2);
/// - the asterisk form (`*`) only with OPTIONS, the authority form (`host:port`) only with
///   CONNECT (§3.2.3, §3.2.4);
/// - CONNECT itself: dragoman is an origin server, not a forward proxy.
pub(crate) fn check_request<B>(
    req: &Request<B>,
    line_bytes: usize,
) -> Result<(), (StatusCode, &'static str)> {
    let bad = |why| Err((StatusCode::BAD_REQUEST, why));
    let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > line_bytes {
        return Err((
            StatusCode::URI_TOO_LONG,
            "the request line is longer than limit-request-line",
        ));
    }
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => return bad("more than one Host header"),
        (None, None) if req.version() == Version::HTTP_11 => {
            return bad("HTTP/1.1 request without a Host header")
        }
        _ => {}
    }
    if req.method() == Method::CONNECT {
        return Err((
            StatusCode::NOT_IMPLEMENTED,
            "CONNECT: this server is not a proxy",
        ));
    }
    let uri = req.uri();
    if uri.path() == "*" && uri.authority().is_none() && req.method() != Method::OPTIONS {
        return bad("the request target * is only allowed with OPTIONS");
    }
    if uri.scheme().is_none() && uri.authority().is_some() {
        return bad("a host:port request target is only allowed with CONNECT");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, hosts: &[&str]) -> Request<()> {
        target(Method::GET, "/", version, hosts)
    }

    fn target(method: Method, uri: &str, version: Version, hosts: &[&str]) -> Request<()> {
        let mut builder = Request::builder().method(method).uri(uri).version(version);
        for h in hosts {
            builder = builder.header(header::HOST, *h);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn host_rules() {
        let check = |r| check_request(&r, 8190);
        assert!(check(request(Version::HTTP_11, &["a"])).is_ok());
        assert!(check(request(Version::HTTP_10, &[])).is_ok());
        assert!(check(request(Version::HTTP_11, &[])).is_err());
        assert!(check(request(Version::HTTP_11, &["a", "b"])).is_err());
        assert!(check(request(Version::HTTP_10, &["a", "a"])).is_err());
    }

    #[test]
    fn an_absolute_form_target_names_the_host() {
        let mut r = target(
            Method::GET,
            "http://user@a.example:8080/x?q",
            Version::HTTP_11,
            &["b"],
        );
        use_target_host(&mut r);
        assert_eq!(r.headers()[header::HOST], "a.example:8080");
        assert_eq!(r.headers().get_all(header::HOST).iter().count(), 1);
        let mut r = target(Method::GET, "https://a.example/", Version::HTTP_11, &["b"]);
        use_target_host(&mut r);
        assert_eq!(r.headers()[header::HOST], "a.example");
    }

    #[test]
    fn request_target_forms() {
        let v = Version::HTTP_11;
        let check = |r| check_request(&r, 8190);
        assert!(check(target(Method::OPTIONS, "*", v, &["a"])).is_ok());
        assert!(check(target(Method::GET, "*", v, &["a"])).is_err());
        assert!(check(target(Method::GET, "http://a/x", v, &["a"])).is_ok());
        let e = check(target(Method::GET, "example.com:443", v, &["a"])).unwrap_err();
        assert_eq!(e.0, StatusCode::BAD_REQUEST);
        let e = check(target(Method::CONNECT, "example.com:443", v, &["a"])).unwrap_err();
        assert_eq!(e.0, StatusCode::NOT_IMPLEMENTED);
        let long = format!("/{}", "a".repeat(100));
        let e = check_request(&target(Method::GET, &long, v, &["a"]), 50).unwrap_err();
        assert_eq!(e.0, StatusCode::URI_TOO_LONG);
    }
}
