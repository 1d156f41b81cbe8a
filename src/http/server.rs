//! HTTP as the protocol of a connection ([`crate::conn::driver::Protocol`]): the
//! connection's own HTTP/1 path serves the usual requests, and hands the connection to hyper
//! at the first one it does not take; HTTP/2 (chosen with ALPN, or h2c with prior knowledge)
//! is hyper's, with its streams run as tasks of the worker's event loop; an `http-to-https`
//! listener answers with redirects.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;

use super::fast;
use super::guard::Guard;
use super::h2flood::{self, FloodGuard};
use super::service::{HttpService, Refusals, Routes, Sent};
use super::upgrade::{Handoff, Upgraded};
use super::{error_response, Body};
use crate::config::tls::Http2;
use crate::config::Limits;
use crate::conn::driver::{Mode, Protocol};
use crate::conn::lifecycle::{Lifecycle, Order};
use crate::conn::transport::Transport;
use crate::conn::watch::Watch;
use crate::conn::zerocopy::ZeroCopy;
use crate::conn::ConnInfo;
use crate::{info, rules, warn};

/// The HTTP protocol of a worker's connections.
pub(crate) struct Http {
    pub(crate) routes: Rc<Routes>,
    /// HTTP/2's limits.
    pub(crate) http2: Http2,
    /// `Strict-Transport-Security` for responses to HTTPS requests (`hsts`).
    pub(crate) hsts: Option<HeaderValue>,
}

impl Protocol for Http {
    async fn serve<T: Transport>(
        &self,
        io: Watch<T>,
        files: Option<Rc<ZeroCopy>>,
        conn: ConnInfo,
        life: Rc<Lifecycle>,
        mode: Mode,
    ) {
        // A uwsgi connection carries one request.
        let keep_alive = !conn.one_request;
        let hsts = if conn.scheme == "https" {
            self.hsts.clone()
        } else {
            None
        };
        // HTTP/2 frames every byte of a body (DATA frames, flow control): a file region cannot
        // go to the socket as it is, so h2c (a plain socket that could send files) sends file
        // bodies as HTTP/2 over TLS does, read into frames.
        let files = if mode == Mode::Http2 { None } else { files };
        let handoff = Handoff::default();
        let service = HttpService::new(self.routes.clone(), conn, life.clone(), files)
            .with_hsts(hsts)
            .with_handoff(handoff.clone());
        let limits = &self.routes.limits;
        match mode {
            Mode::Http1 => {}
            Mode::Http2 => {
                let websockets = self.routes.app.serves_websockets();
                return serve_h2(io, service, &self.http2, &life, websockets).await;
            }
            Mode::Redirect(port) => {
                let redirect = Redirect { service, port };
                let refusals = redirect.service.refusals();
                let io = Guard::new(io);
                return serve_hyper(io, redirect, refusals, limits, &life, keep_alive, None).await;
            }
        }
        let mut io = Guard::new(io);
        // The usual request (no body, or a small one that came with its head) is served by
        // the connection's own HTTP/1 path; the first one it does not take, and all after it,
        // by hyper.
        if keep_alive {
            match fast::serve(&mut io, &service, limits, &life).await {
                fast::Exit::Closed => return,
                fast::Exit::ToHyper => {}
            }
        }
        let refusals = service.refusals();
        serve_hyper(
            io,
            service,
            refusals,
            limits,
            &life,
            keep_alive,
            Some(handoff),
        )
        .await;
    }

    async fn refuse<T: Transport>(&self, io: &mut T, why: &str) {
        let body = format!("400 Bad Request: {why}\n");
        let response = rules::simple_response(
            StatusCode::BAD_REQUEST,
            "text/plain; charset=utf-8",
            body.as_bytes(),
            true,
        );
        let _ = async {
            io.write_all(&response).await?;
            io.shutdown().await
        }
        .await;
    }
}

/// Serves the rest of a connection with hyper's HTTP/1; then, when a response upgraded it
/// (a WebSocket's 101), the session the application bridge left in `handoff`.
async fn serve_hyper<T, S, B>(
    io: Guard<T>,
    service: S,
    refusals: Refusals,
    limits: &Limits,
    life: &Rc<Lifecycle>,
    keep_alive: bool,
    handoff: Option<Handoff>,
) where
    T: Transport,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Unpin,
    S::Future: Unpin,
    B: http_body::Body<Data = Bytes> + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = http1::Builder::new();
    // pipeline_flush stays off: with it, hyper 1.12 drops the 400 it writes for a malformed
    // request (the connection closes unanswered). Pipelined requests are still answered in
    // order, one flush per response.
    // writev(true): frames are queued as they are, never copied into one buffer, which the
    // zero-copy file bodies rely on (their frames only stand in for the file's bytes).
    // header-timeout is not hyper's: the connection registry's sweep enforces it (see
    // conn/registry.rs), without a timer per request.
    builder
        .header_read_timeout(None::<Duration>)
        .writev(true)
        // A client may shut its write side once its request is sent (nc -N, some health
        // checks): it still gets its response.
        .half_close(true)
        .keep_alive(keep_alive)
        .max_header_size(limits.head_bytes)
        .max_headers(limits.header_fields);
    // Polled without its shutdown, so that an upgraded connection can be taken back (see
    // `http::upgrade`); a connection that ends otherwise is shut here, as hyper would.
    let mut conn = builder.serve_connection(TokioIo::new(io), service);
    // One check of the connection's orders per wake-up: a close (evicted at the cap, or the
    // worker closing) lets the request in flight finish; a drop (no request head within
    // header-timeout) closes it at once, unanswered, as hyper's own header timeout did. A
    // drain only marks responses (see `service::prepare`): an idle connection stays until it
    // is told to close.
    let mut seen = Order::Serve;
    let ended = loop {
        let order = std::future::poll_fn(|cx| match conn.poll_without_shutdown(cx) {
            Poll::Ready(done) => {
                if let Err(e) = &done {
                    refusals.ended(e);
                }
                Poll::Ready(Err(done.is_ok()))
            }
            Poll::Pending => life.poll_order_above(seen, cx).map(Ok),
        })
        .await;
        match order {
            Err(ok) => break ok,
            Ok(Order::Drop) => return,
            Ok(Order::Drain) => seen = Order::Drain,
            Ok(order) => {
                seen = order;
                Pin::new(&mut conn).graceful_shutdown();
            }
        }
    };
    if !ended {
        return;
    }
    let parts = conn.into_parts();
    let mut io = parts.io.into_inner();
    let read_buf = parts.read_buf;
    match handoff.and_then(|h| h.take()) {
        Some(session) => {
            drop(parts.service);
            let (watch, replay) = io.into_upgraded();
            // Copied out (when there is anything): an empty slice of hyper's read buffer, or
            // of the own path's, would keep its 8 KiB alive for the session's whole life.
            let mut prefix = bytes::BytesMut::new();
            prefix.extend_from_slice(&replay);
            prefix.extend_from_slice(&read_buf);
            drop(replay);
            let prefix = prefix.freeze();
            let upgraded = Upgraded {
                io: Box::new(watch),
                prefix,
                life: life.clone(),
            };
            session(upgraded).await;
        }
        None => {
            let _ = io.shutdown().await;
        }
    }
}

/// Runs HTTP/2 streams as tasks of the worker's (single-threaded) event loop: the service
/// and its futures are not `Send`, and need not be.
#[derive(Clone, Copy)]
struct LocalExec;

impl<F: Future + 'static> hyper::rt::Executor<F> for LocalExec {
    fn execute(&self, future: F) {
        tokio::task::spawn_local(future);
    }
}

/// How long an HTTP/2 connection told to go (GOAWAY sent) may take to finish its streams
/// when it was idle past header-timeout: a client with a half-sent header block does not
/// hold it longer.
const H2_DROP_GRACE: Duration = Duration::from_secs(1);

/// Serves an HTTP/2 connection. Each stream is a request in flight of the connection's
/// lifecycle (counted by the service), so the connection is idle only when none runs. A
/// drain or close (a stopping or reloading worker, the connection cap) sends GOAWAY and lets
/// the streams in flight finish; a connection idle past header-timeout gets GOAWAY too, and
/// a short grace.
async fn serve_h2<T: Transport>(
    io: Watch<T>,
    service: HttpService,
    settings: &Http2,
    life: &Lifecycle,
    websockets: bool,
) {
    let peer = io.peer().to_string();
    let mut builder = http2::Builder::new(LocalExec);
    if websockets {
        // RFC 8441: WebSockets over HTTP/2 streams (extended CONNECT), for a bridge that
        // serves them.
        builder.enable_connect_protocol();
    }
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.max_concurrent_streams)
        .max_header_list_size(settings.max_header_list_size)
        .initial_stream_window_size(settings.stream_window)
        .initial_connection_window_size(settings.connection_window);
    let io = FloodGuard::new(
        io,
        h2flood::Limits::new(settings.max_concurrent_streams),
        peer.clone(),
    );
    let conn = builder.serve_connection(TokioIo::new(io), H2Service(service));
    tokio::pin!(conn);
    let mut seen = Order::Serve;
    let mut deadline: Option<Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        let order = std::future::poll_fn(|cx| {
            if let Poll::Ready(done) = conn.as_mut().poll(cx) {
                if let Err(e) = done {
                    let why = causes(&e);
                    // h2's own limits (rapid reset, CONTINUATION): ENHANCE_YOUR_CALM, said
                    // in RFC 9113's words.
                    if why.contains("excessive load") {
                        warn!("HTTP/2 flood from {peer}: {why}; the connection is closed");
                    } else {
                        info!("HTTP/2 connection from {peer} ended: {why}");
                    }
                }
                return Poll::Ready(None);
            }
            if let Some(sleep) = &mut deadline {
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
            }
            life.poll_order_above(seen, cx).map(Some)
        })
        .await;
        let Some(order) = order else {
            return;
        };
        seen = order;
        conn.as_mut().graceful_shutdown();
        if order == Order::Drop {
            deadline = Some(Box::pin(tokio::time::sleep(H2_DROP_GRACE)));
        }
    }
}

/// An error with its causes (hyper says "http2 error"; h2 below it says which).
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The service of an HTTP/2 connection: requests made to look as HTTP/1.1's do to the rest
/// of dragoman (RFC 9113 §8.3.1: `:authority` becomes `Host`, and the target its path).
struct H2Service(HttpService);

impl hyper::service::Service<Request<Incoming>> for H2Service {
    type Response = Response<Sent>;
    type Error = Infallible;
    type Future = H2Future;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        origin_form(&mut req);
        if super::websocket::is_extended_connect(&req) {
            return H2Future::WebSocket(self.0.websocket_h2(req));
        }
        H2Future::Request(hyper::service::Service::call(&self.0, req))
    }
}

/// An HTTP/2 stream's response: a request's, or a WebSocket's (RFC 8441), whose session
/// starts once its 200 is out.
#[expect(
    clippy::large_enum_variant,
    reason = "requests are nearly every stream: boxing theirs would cost an allocation each, to save bytes on the rare WebSocket stream"
)]
enum H2Future {
    Request(super::service::WithServer),
    WebSocket(super::LocalFuture<Result<Response<Sent>, Infallible>>),
}

impl Future for H2Future {
    type Output = Result<Response<Sent>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            H2Future::Request(f) => Pin::new(f).poll(cx),
            H2Future::WebSocket(f) => f.as_mut().poll(cx),
        }
    }
}

/// `https://host/path?q` with no Host header becomes `/path?q` with `Host: host`.
fn origin_form<B>(req: &mut Request<B>) {
    let uri = req.uri();
    let Some(authority) = uri.authority() else {
        return;
    };
    let host = HeaderValue::from_str(authority.as_str());
    let target = uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .parse::<Uri>()
        .unwrap_or_else(|_| Uri::from_static("/"));
    *req.uri_mut() = target;
    if let Ok(host) = host {
        req.headers_mut().entry(header::HOST).or_insert(host);
    }
}

/// Where ACME's HTTP-01 challenges are asked for: served, not redirected.
const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

/// The service of an `http-to-https` listener: a 308 to the same URL over HTTPS (the method
/// and body kept), but ACME challenges, which go on to the routes as usual.
struct Redirect {
    service: HttpService,
    port: Option<u16>,
}

type RedirectBody = Either<Sent, Body>;

impl hyper::service::Service<Request<Incoming>> for Redirect {
    type Response = Response<RedirectBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RedirectBody>, Infallible>>>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        if req.uri().path().starts_with(ACME_CHALLENGE) {
            let sent = hyper::service::Service::call(&self.service, req);
            return Box::pin(async move {
                let Ok(response) = sent.await;
                Ok(response.map(Either::Left))
            });
        }
        let response = redirect(&req, self.port).map(Either::Right);
        Box::pin(std::future::ready(Ok(response)))
    }
}

/// A Host header's name, without its port (`[::1]:8080` gives `::1`).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(name, _)| name);
    }
    match host.split_once(':') {
        Some((name, port)) if !port.contains(':') => name,
        _ => host,
    }
}

/// The redirect for a request: `https://` + its host (without its port; `port` if given) +
/// its target.
fn redirect<B>(req: &Request<B>, port: Option<u16>) -> Response<Body> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(host_name)
        .filter(|name| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:_".contains(&b))
        });
    let Some(host) = host else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "no valid Host header to redirect to https:// with",
            true,
        );
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let location = match port {
        Some(port) if port != 443 => format!("https://{host}:{port}{target}"),
        _ => format!("https://{host}{target}"),
    };
    let mut response = Response::new(Body::full(format!("Moved to {location}\n")));
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Ok(location) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, location);
    }
    response
}

/// The own HTTP/1 path against hyper: the same service, the same bytes in, the same bytes
/// out (but for the date). hyper is pinned (Cargo.toml), so a drift of either shows here.
#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::Context;

    use bytes::Bytes;
    use http::{HeaderValue, Request, Response};
    use http_body::Frame;
    use hyper::ext::ReasonPhrase;
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::http::service::Routes;
    use crate::http::{error_response, Answer, App, Body, BodyError, RequestBody};

    /// A streamed body of the given frames; an `Err` frame fails it there.
    struct Frames(VecDeque<Result<Bytes, ()>>);

    impl http_body::Body for Frames {
        type Data = Bytes;
        type Error = BodyError;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
            Poll::Ready(self.get_mut().0.pop_front().map(|f| match f {
                Ok(data) => Ok(Frame::data(data)),
                Err(()) => Err(BodyError("failed".into())),
            }))
        }
    }

    fn stream(frames: &[&'static str], fail: bool) -> Body {
        let mut f: VecDeque<_> = frames
            .iter()
            .map(|s| Ok(Bytes::from_static(s.as_bytes())))
            .collect();
        if fail {
            f.push_back(Err(()));
        }
        Body::Stream(Box::pin(Frames(f)))
    }

    thread_local! {
        /// Requests the app got with a body the own path read ([`RequestBody::Full`]).
        static READ_BY_OWN_PATH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }

    fn read_by_own_path() -> u32 {
        READ_BY_OWN_PATH.with(|n| n.get())
    }

    /// Answers by path, as an application could.
    struct Answers;

    impl App for Answers {
        fn call(self: Rc<Self>, req: Request<RequestBody>, _: Arc<ConnInfo>) -> Answer {
            if matches!(req.body(), RequestBody::Full(_)) {
                READ_BY_OWN_PATH.with(|n| n.set(n.get() + 1));
            }
            let mut h = http::HeaderMap::new();
            let mut status = http::StatusCode::OK;
            let mut reason = None;
            let body = match req.uri().path() {
                "/full" => {
                    h.insert("content-type", HeaderValue::from_static("text/plain"));
                    h.append("x-two", HeaderValue::from_static("1"));
                    h.append("x-two", HeaderValue::from_static("2"));
                    Body::full("hello")
                }
                "/stream" => stream(&["ab", "", "cde"], false),
                "/stream-length" => {
                    h.insert("content-length", HeaderValue::from_static("5"));
                    stream(&["ab", "cde"], false)
                }
                "/short" => {
                    h.insert("content-length", HeaderValue::from_static("9"));
                    stream(&["ab"], false)
                }
                "/fails" => stream(&["ab"], true),
                "/empty" => Body::Empty,
                "/204" => {
                    status = http::StatusCode::NO_CONTENT;
                    Body::Empty
                }
                "/304" => {
                    status = http::StatusCode::NOT_MODIFIED;
                    h.insert("content-length", HeaderValue::from_static("13"));
                    h.insert("etag", HeaderValue::from_static("\"x\""));
                    Body::Empty
                }
                "/reason" => {
                    status = http::StatusCode::from_u16(299).unwrap();
                    reason = Some(ReasonPhrase::from_static(b"Fine Thanks"));
                    Body::full("x")
                }
                "/close" => {
                    h.insert("connection", HeaderValue::from_static("close"));
                    Body::full("bye")
                }
                "/server" => {
                    h.insert("server", HeaderValue::from_static("mine"));
                    Body::full("s")
                }
                "/echo" => {
                    return Answer::Later(Box::pin(async move {
                        use http_body_util::BodyExt;
                        match req.into_body().collect().await {
                            Ok(body) => Response::new(Body::full(body.to_bytes())),
                            Err(_) => error_response(http::StatusCode::BAD_REQUEST, "cut", true),
                        }
                    }));
                }
                _ => {
                    let gone = error_response(http::StatusCode::NOT_FOUND, "gone", false);
                    return Answer::Now(gone);
                }
            };
            let mut r = Response::new(body);
            *r.status_mut() = status;
            *r.headers_mut() = h;
            if let Some(reason) = reason {
                r.extensions_mut().insert(reason);
            }
            Answer::Now(r)
        }
    }

    /// What the server writes for `input`, served by the own path (then hyper) or by hyper
    /// alone; the Date header's value blanked.
    fn exchange(input: &[u8], own_path: bool) -> String {
        exchange_parts(&[input], own_path)
    }

    /// [`exchange`] with the input sent in parts, 50 ms apart.
    fn exchange_parts(parts: &[&[u8]], own_path: bool) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let routes = Rc::new(Routes {
            app: Rc::new(Answers),
            before_app: Vec::new(),
            limits: Limits::default(),
            proxies: Default::default(),
            access: None,
            add_headers: Vec::new(),
        });
        let out = rt.block_on(async {
            let (server, mut client) = tokio::io::duplex(1 << 20);
            let life = Rc::new(Lifecycle::new());
            let rules = crate::conn::watch::WriteRules {
                timeout: Duration::from_secs(5),
                min_rate: 0,
            };
            let io = Watch::new(server, life.clone(), rules, "test".into());
            let conn = ConnInfo::new(None, None);
            let serve = async {
                if own_path {
                    Http {
                        routes: routes.clone(),
                        http2: Http2::default(),
                        hsts: None,
                    }
                    .serve(io, None, conn, life, Mode::Http1)
                    .await;
                } else {
                    let service = HttpService::new(routes.clone(), conn, life.clone(), None);
                    let refusals = service.refusals();
                    let limits = &routes.limits;
                    serve_hyper(Guard::new(io), service, refusals, limits, &life, true, None).await;
                }
            };
            let talk = async {
                for (k, part) in parts.iter().enumerate() {
                    if k > 0 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    client.write_all(part).await.unwrap();
                }
                client.shutdown().await.unwrap();
                let mut out = Vec::new();
                let _ = client.read_to_end(&mut out).await;
                out
            };
            tokio::join!(serve, talk).1
        });
        let text = String::from_utf8_lossy(&out).into_owned();
        let mut blanked = String::new();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("date: ") {
            blanked.push_str(&rest[..at + 6]);
            blanked.push_str("DATE");
            rest = rest.get(at + 6 + 29..).unwrap_or("");
        }
        blanked.push_str(rest);
        blanked
    }

    /// Responses the app cuts short.
    const CUT: [&str; 2] = ["/short", "/fails"];

    #[test]
    fn the_own_path_writes_what_hyper_writes() {
        let paths = [
            "/full",
            "/stream",
            "/stream-length",
            "/short",
            "/fails",
            "/empty",
            "/204",
            "/304",
            "/reason",
            "/close",
            "/server",
            "/echo",
            "/missing",
        ];
        let mut compared = 0;
        for path in paths {
            for method in ["GET", "HEAD", "POST"] {
                for version in ["1.1", "1.0"] {
                    for connection in ["", "Connection: close\r\n", "Connection: keep-alive\r\n"] {
                        // A POST has a small body, which the own path reads with its head.
                        let body = if method == "POST" {
                            "Content-Length: 5\r\n\r\nhello"
                        } else {
                            "\r\n"
                        };
                        let one = format!(
                            "{method} {path} HTTP/{version}\r\nHost: x\r\n{connection}{body}"
                        );
                        // Twice, pipelined: whether the second is answered is compared too.
                        let input = one.repeat(2);
                        let before = read_by_own_path();
                        let own = exchange(input.as_bytes(), true);
                        let taken = read_by_own_path() - before;
                        let hyper = exchange(input.as_bytes(), false);
                        assert_eq!(read_by_own_path() - before, taken, "hyper took none");
                        // Every POST's body is read with its head (the first one at least:
                        // the second is not answered after a close).
                        let expected = if method == "POST" { 1..=2 } else { 0..=0 };
                        assert!(expected.contains(&taken), "{one:?}: {taken}");
                        if CUT.contains(&path) && method != "HEAD" {
                            // Cut short by the app: when the failure reaches hyper before it
                            // wrote what it had gathered, it drops those bytes, so either may
                            // have sent more of a response that is cut either way.
                            let (shorter, longer) = if own.len() < hyper.len() {
                                (&own, &hyper)
                            } else {
                                (&hyper, &own)
                            };
                            assert!(longer.starts_with(shorter.as_str()), "{one:?}");
                            assert!(own.starts_with("HTTP/1."), "{one:?}: {own:?}");
                        } else {
                            assert!(hyper.starts_with("HTTP/1."), "{one:?}: {hyper:?}");
                            assert_eq!(own, hyper, "{one:?}");
                            if path == "/echo" && method == "POST" {
                                assert!(own.contains("\r\n\r\nhello"), "{one:?}: {own:?}");
                            }
                        }
                        compared += 1;
                    }
                }
            }
        }
        assert_eq!(compared, 13 * 3 * 2 * 3);
    }

    #[test]
    fn a_body_is_read_with_its_head_or_left_to_hyper() {
        let body = "b".repeat(12 * 1024);
        let head = format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let one = format!("{head}{body}");
        let alike = |parts: &[&[u8]]| {
            let before = read_by_own_path();
            let own = exchange_parts(parts, true);
            let taken = read_by_own_path() - before;
            let hyper = exchange_parts(parts, false);
            assert_eq!(own, hyper);
            (own, taken)
        };
        // Past the first read's 8 KiB, but all sent: the rest is read at once, on the own
        // path, twice.
        let two = one.repeat(2);
        let (out, taken) = alike(&[two.as_bytes()]);
        assert_eq!(taken, 2);
        assert_eq!(out.matches(&body).count(), 2);
        // The body after a pause: hyper reads it, and then the request after it.
        let (out, taken) = alike(&[head.as_bytes(), format!("{body}{one}").as_bytes()]);
        assert_eq!(taken, 0);
        assert_eq!(out.matches(&body).count(), 2);
        // A small body, half of it after a pause: hyper's too.
        let small = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello";
        let (out, taken) = alike(&[small, b"world"]);
        assert_eq!(taken, 0);
        assert!(out.ends_with("helloworld"), "{out:?}");
        // The client's end before the body: hyper's to answer.
        let (out, taken) = alike(&[head.as_bytes()]);
        assert_eq!(taken, 0);
        assert!(out.starts_with("HTTP/1.1 400 "), "{out:?}");
    }
}
