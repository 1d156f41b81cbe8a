//! HTTP as the protocol of a connection ([`crate::conn::driver::Protocol`]): the
//! connection's own HTTP/1 path serves the usual requests, and hands the connection to hyper
//! at the first one it does not take (later: HTTP/2 when ALPN or the preface asks for it).

use std::future::Future;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

use super::fast;
use super::guard::Guard;
use super::service::{HttpService, Routes};
use crate::conn::driver::Protocol;
use crate::conn::lifecycle::{Lifecycle, Order};
use crate::conn::transport::Transport;
use crate::conn::watch::Watch;
use crate::conn::zerocopy::ZeroCopy;
use crate::conn::ConnInfo;

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
        let mut builder = http1::Builder::new();
        // pipeline_flush stays off: with it, hyper 1.12 drops the 400 it writes for a
        // malformed request (the connection closes unanswered). Pipelined requests are still
        // answered in order, one flush per response.
        // writev(true): frames are queued as they are, never copied into one buffer, which
        // the zero-copy file bodies rely on (their frames only stand in for the file's bytes).
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
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        // One check of the connection's orders per wake-up: a close (evicted at the cap, or
        // the worker closing) lets the request in flight finish; a drop (no request head
        // within header-timeout) closes it at once, unanswered, as hyper's own header
        // timeout did. A drain only marks responses (see `service::prepare`): an idle
        // connection stays until it is told to close.
        let mut seen = Order::Serve;
        loop {
            let order = std::future::poll_fn(|cx| match conn.as_mut().poll(cx) {
                Poll::Ready(_) => Poll::Ready(None),
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

    async fn refuse<T: Transport>(&self, io: &mut T, why: &str) {
        let body = format!("400 Bad Request: {why}\n");
        let head = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        let _ = async {
            io.write_all(head.as_bytes()).await?;
            io.write_all(body.as_bytes()).await?;
            io.shutdown().await
        }
        .await;
    }
}
