//! HTTP as the protocol of a connection ([`crate::conn::driver::Protocol`]): the
//! connection's own HTTP/1 path serves the usual requests, and hands the connection to hyper
//! at the first one it does not take (later: HTTP/2 when ALPN or the preface asks for it).

use std::future::Future;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use http::StatusCode;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

use super::fast;
use super::guard::Guard;
use super::service::{HttpService, Routes};
use crate::config::Limits;
use crate::conn::driver::Protocol;
use crate::conn::lifecycle::{Lifecycle, Order};
use crate::conn::transport::Transport;
use crate::conn::watch::Watch;
use crate::conn::zerocopy::ZeroCopy;
use crate::conn::ConnInfo;
use crate::rules;

/// The HTTP protocol of a worker's connections.
pub(crate) struct Http {
    pub(crate) routes: Rc<Routes>,
}

impl Protocol for Http {
    async fn serve<T: Transport>(
        &self,
        io: Watch<T>,
        files: Option<Rc<ZeroCopy>>,
        conn: ConnInfo,
        life: Rc<Lifecycle>,
    ) {
        // A uwsgi connection carries one request.
        let keep_alive = !conn.one_request;
        let mut io = Guard::new(io);
        let service = HttpService::new(self.routes.clone(), conn, life.clone(), files);
        let limits = &self.routes.limits;
        // The usual request (no body) is served by the connection's own HTTP/1 path; the
        // first one it does not take, and all after it, by hyper.
        if keep_alive {
            match fast::serve(&mut io, &service, limits, &life).await {
                fast::Outcome::Done => return,
                fast::Outcome::Hyper => {}
            }
        }
        serve_hyper(io, service, limits, &life, keep_alive).await;
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

/// Serves the rest of a connection with hyper's HTTP/1.
async fn serve_hyper<T: Transport>(
    io: Guard<T>,
    service: HttpService,
    limits: &Limits,
    life: &Lifecycle,
    keep_alive: bool,
) {
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
    let refusals = service.refusals();
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    // One check of the connection's orders per wake-up: a close (evicted at the cap, or the
    // worker closing) lets the request in flight finish; a drop (no request head within
    // header-timeout) closes it at once, unanswered, as hyper's own header timeout did. A
    // drain only marks responses (see `service::prepare`): an idle connection stays until it
    // is told to close.
    let mut seen = Order::Serve;
    loop {
        let order = std::future::poll_fn(|cx| match conn.as_mut().poll(cx) {
            Poll::Ready(ended) => {
                if let Err(e) = ended {
                    refusals.ended(&e);
                }
                Poll::Ready(None)
            }
            Poll::Pending => life.poll_order_above(seen, cx).map(Some),
        })
        .await;
        match order {
            None | Some(Order::Drop) => return,
            Some(Order::Drain) => seen = Order::Drain,
            Some(order) => {
                seen = order;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
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

    /// Answers by path, as an application could.
    struct Answers;

    impl App for Answers {
        fn call(self: Rc<Self>, req: Request<RequestBody>, _: Arc<ConnInfo>) -> Answer {
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
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let routes = Rc::new(Routes {
            app: Rc::new(Answers),
            statics: None,
            limits: Limits::default(),
            access: None,
        });
        let out = rt.block_on(async {
            let (server, mut client) = tokio::io::duplex(1 << 20);
            let life = Rc::new(Lifecycle::new());
            let io = Watch::new(server, life.clone(), Duration::from_secs(5), "test".into());
            let conn = ConnInfo::new(None, None);
            let serve = async {
                if own_path {
                    Http {
                        routes: routes.clone(),
                    }
                    .serve(io, None, conn, life)
                    .await;
                } else {
                    let service = HttpService::new(routes.clone(), conn, life.clone(), None);
                    serve_hyper(Guard::new(io), service, &routes.limits, &life, true).await;
                }
            };
            let talk = async {
                client.write_all(input).await.unwrap();
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
            "/missing",
        ];
        let mut compared = 0;
        for path in paths {
            for method in ["GET", "HEAD"] {
                for version in ["1.1", "1.0"] {
                    for connection in ["", "Connection: close\r\n", "Connection: keep-alive\r\n"] {
                        let one = format!(
                            "{method} {path} HTTP/{version}\r\nHost: x\r\n{connection}\r\n"
                        );
                        // Twice, pipelined: whether the second is answered is compared too.
                        let input = one.repeat(2);
                        let own = exchange(input.as_bytes(), true);
                        let hyper = exchange(input.as_bytes(), false);
                        if CUT.contains(&path) && method == "GET" {
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
                        }
                        compared += 1;
                    }
                }
            }
        }
        assert_eq!(compared, 12 * 2 * 2 * 3);
    }
}
