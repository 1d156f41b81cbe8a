//! A WebSocket under ASGI. The opening handshake is the application's to answer
//! ([`handshake`]: accepted with a 101, denied with a 403 or its own response, within
//! `websocket-handshake-timeout`); once accepted, a session on the worker's loop
//! ([`Session`]) runs the protocol: it answers pings, joins fragments, inflates, checks
//! UTF-8 and sizes, pings a silent client, closes with 1001 when the worker stops, and
//! passes whole messages both ways. The application's side ([`WsChannel`]) reads them one
//! `receive()` at a time; the session stops reading from the socket while too many wait
//! for it, so a client cannot flood an application that is slow to read.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{Request, Response, StatusCode};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{sleep_until, Instant};

use super::exchange::{Exchange, Gone, GoneOnDrop, In, Out, Outgoing};
use super::http::{broke, disconnected_error};
use super::message::{self, Rule};
use super::runner::{fail, resolve, Ctx};
use super::scope::{self, Kind};
use super::shared::{start_failed, ClientDisconnected, Core};
use crate::bridge::head::{self as heads, Head};
use crate::bridge::label::{RequestLabel, RequestLine};
use crate::conn::lifecycle::Order;
use crate::conn::ConnInfo;
use crate::http::upgrade::{Handoff, Upgraded};
use crate::http::websocket::frame::{self, Event, Reader};
use crate::http::websocket::{self as ws, deflate, Checked, Opening};
use crate::http::{error_response, Answer, Body, RequestBody};
use crate::{log, warn};

/// Messages waiting for the application's `receive()` past which the session stops
/// reading from the client.
const INBOUND_MESSAGES: usize = 64;
const INBOUND_BYTES: usize = 1024 * 1024;
/// How long a close waits for the client's close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// The read buffer's room before each read (grown for larger frames).
const READ_ROOM: usize = 2048;

/// Answers a WebSocket opening handshake through the application.
pub(crate) fn handshake(
    core: Arc<Core>,
    req: Request<RequestBody>,
    conn: Arc<ConnInfo>,
    handoff: Handoff,
) -> Answer {
    let opening = match ws::check(&req, core.websocket.compression) {
        Checked::Valid(opening) => opening,
        Checked::Invalid(status, why) => return Answer::Now(Checked::refusal(status, why)),
    };
    let (parts, _) = req.into_parts();
    Answer::Later(Box::pin(async move {
        let label = RequestLabel {
            app: core.name.clone(),
            // Kept as long as the WebSocket: a copy, not a share of the buffer the head was
            // read into (measured: 13 KiB per idle connection).
            request: RequestLine::detached(&parts),
            stats: core.stats.clone(),
        };
        let (exchange, mut rx) = Exchange::new(core.inbox.clone(), &core.outbox, wake);
        // Until the session runs (the 101 may never reach the client), a drop tells the
        // application the client is gone.
        let gone = GoneOnDrop(exchange.clone(), Gone::disconnected());
        let start = Start {
            parts,
            conn,
            protocols: opening.protocols.clone(),
            exchange: exchange.clone(),
            label: label.clone(),
        };
        let job_core = core.clone();
        core.inbox.push(Box::new(move |py, ctx| {
            start_app(py, ctx, &job_core, start)
        }));
        let within = core.websocket.handshake_timeout;
        let first = match tokio::time::timeout(within, rx.recv()).await {
            Ok(Some(first)) => first,
            Ok(None) => return heads::internal_error(),
            Err(_) => {
                warn!(
                    "the application {} did not accept or deny the WebSocket {} within {}s \
                     (websocket-handshake-timeout): 503",
                    label.app,
                    label.request,
                    within.as_secs()
                );
                return error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the application did not answer the WebSocket handshake in time",
                    false,
                );
            }
        };
        match first {
            Out::Accept {
                subprotocol,
                headers,
            } => {
                let response = ws::accept_response(&opening, subprotocol.as_deref(), *headers);
                let session = Session {
                    core,
                    exchange,
                    rx,
                    opening,
                    label,
                    _gone: gone,
                };
                handoff.set(Box::new(move |io| Box::pin(session.run(io))));
                response
            }
            Out::Deny => {
                let mut r = Response::new(Body::Empty);
                *r.status_mut() = StatusCode::FORBIDDEN;
                r
            }
            Out::DenyResponse { head, body } => heads::complete_response(*head, vec![body], false)
                .unwrap_or_else(|rule| {
                    broke(&label, &rule);
                    heads::internal_error()
                }),
            // Ended (logged by the application's side), or anything else.
            _ => heads::internal_error(),
        }
    }))
}

/// A WebSocket on its way to the loop thread.
struct Start {
    parts: Parts,
    conn: Arc<ConnInfo>,
    protocols: Vec<String>,
    exchange: Arc<Exchange>,
    label: RequestLabel,
}

/// On the loop thread: the scope, the channel, the application's task.
fn start_app(py: Python<'_>, ctx: &Arc<Ctx>, core: &Arc<Core>, start: Start) {
    let Start {
        parts,
        conn,
        protocols,
        exchange,
        label,
    } = start;
    let started = scope::build(
        py,
        &core.templates,
        Kind::WebSocket,
        &parts,
        &conn,
        core.state.get(),
    )
    .and_then(|scope| {
        let channel = WsChannel {
            exchange: exchange.clone(),
            ctx: ctx.clone(),
            phase: Phase::Connecting,
            connect_given: false,
            protocols,
            label: label.clone(),
            violated: false,
        };
        let channel = Bound::new(py, channel)?;
        ctx.start(py, &core.app, scope.into_any(), channel.as_any())
    });
    if let Err(e) = started {
        start_failed(py, &label, &exchange, "serving the WebSocket", &e);
    }
}

/// How a session ends its connection.
enum Ending {
    /// Send a close frame with this code and reason, then wait for the client's.
    Close(u16, String),
    /// The client's close came first: echo it, then close.
    Echo(Option<(u16, String)>),
    /// Close the connection now (the client left, or a write failed).
    Drop,
}

/// The protocol's side of an accepted WebSocket, run on the connection once the 101 is out.
struct Session {
    core: Arc<Core>,
    exchange: Arc<Exchange>,
    rx: Outgoing,
    opening: Opening,
    label: RequestLabel,
    /// Tells the application the connection is over if the session is dropped unfinished.
    _gone: GoneOnDrop,
}

impl Session {
    async fn run(mut self, io: Upgraded) {
        let life = io.life.clone();
        let _in_flight = life.begin_request();
        let mut io = io;
        let settings = self.core.websocket.clone();
        let window = self.opening.deflate.as_ref().map(|d| d.server_window);
        let mut reader = Reader::new(settings.max_message, window.is_some());
        let mut buf = BytesMut::new();
        let now = Instant::now();
        // When the client last sent anything, and when a message last went either way.
        let mut heard = now;
        let mut active = now;
        let mut ping_sent: Option<Instant> = None;
        let mut seen = Order::Serve;
        let ending = 'serve: loop {
            // Whole events already read.
            loop {
                if self.inbound_full() {
                    break;
                }
                match reader.next(&mut buf) {
                    Ok(None) => break,
                    Ok(Some(event)) => match event {
                        Event::Text(data) => {
                            active = Instant::now();
                            self.exchange.deliver(In::Text(data));
                        }
                        Event::Binary(data) => {
                            active = Instant::now();
                            self.exchange.deliver(In::Binary(data));
                        }
                        Event::Ping(data) => {
                            if write_frame(&mut io, frame::PONG, &data, false)
                                .await
                                .is_err()
                            {
                                break 'serve Ending::Drop;
                            }
                        }
                        Event::Pong(_) => {}
                        Event::Close(close) => break 'serve Ending::Echo(close),
                    },
                    Err(fail) => {
                        warn!(
                            "closed the WebSocket {} from {}: {} ({})",
                            self.label.request,
                            describe(&self.label),
                            fail.why,
                            fail.code
                        );
                        break 'serve Ending::Close(fail.code, fail.why.to_string());
                    }
                }
            }
            if buf.is_empty() && buf.capacity() > 0 {
                // An idle connection holds no read buffer.
                buf = BytesMut::new();
            }
            let ping_at = match (settings.ping_interval, ping_sent) {
                (_, Some(sent)) => sent + settings.ping_timeout,
                (Some(every), None) => heard + every,
                (None, None) => far_future(),
            };
            let idle_at = settings
                .idle_timeout
                .map_or_else(far_future, |t| active + t);
            let reading = !self.inbound_full();
            tokio::select! {
                biased;
                order = poll_fn(|cx| life.poll_order_above(seen, cx)) => {
                    seen = order;
                    if order >= Order::Drain {
                        break 'serve Ending::Close(frame::GOING_AWAY, "the server is going away".into());
                    }
                }
                out = self.rx.recv() => match out {
                    Some(Out::Text(text)) => {
                        active = Instant::now();
                        if self.send_message(&mut io, frame::TEXT, text.as_bytes(), window).await.is_err() {
                            break 'serve Ending::Drop;
                        }
                        self.exchange.took_bytes(text.len());
                    }
                    Some(Out::Binary(data)) => {
                        active = Instant::now();
                        let n = data.len();
                        if self.send_message(&mut io, frame::BINARY, &data, window).await.is_err() {
                            break 'serve Ending::Drop;
                        }
                        self.exchange.took_bytes(n);
                    }
                    Some(Out::Close { code, reason }) => break 'serve Ending::Close(code, reason),
                    Some(Out::Ended { failed }) => {
                        let code = if failed { frame::INTERNAL_ERROR } else { frame::NORMAL };
                        break 'serve Ending::Close(code, String::new());
                    }
                    Some(_) => {}
                    None => break 'serve Ending::Close(frame::INTERNAL_ERROR, String::new()),
                },
                read = read_more(&mut io, &mut buf), if reading => match read {
                    Ok(0) | Err(_) => break 'serve Ending::Drop,
                    Ok(_) => {
                        heard = Instant::now();
                        ping_sent = None;
                    }
                },
                () = self.exchange.room.notified(), if !reading => {}
                () = sleep_until(ping_at) => {
                    if ping_sent.is_some() {
                        warn!(
                            "closed the WebSocket {} from {}: no answer to a ping within {}s \
                             (websocket-ping-timeout)",
                            self.label.request,
                            describe(&self.label),
                            settings.ping_timeout.as_secs()
                        );
                        break 'serve Ending::Close(frame::INTERNAL_ERROR, "ping timeout".into());
                    }
                    if write_frame(&mut io, frame::PING, b"dragoman", false).await.is_err() {
                        break 'serve Ending::Drop;
                    }
                    ping_sent = Some(Instant::now());
                }
                () = sleep_until(idle_at) => {
                    break 'serve Ending::Close(frame::GOING_AWAY, "idle".into());
                }
            }
        };
        let gone = self.close(&mut io, &mut reader, &mut buf, ending).await;
        self.exchange.gone(gone);
        let _ = io.shutdown().await;
    }

    /// Whether enough messages wait for the application that the session should not read.
    fn inbound_full(&self) -> bool {
        let (messages, bytes) = self.exchange.inbound_bytes();
        messages >= INBOUND_MESSAGES || bytes >= INBOUND_BYTES
    }

    /// Sends a data message, compressed when permessage-deflate was negotiated. Every one:
    /// RFC 7692 lets a message go uncompressed, but clients do not all read one right (the
    /// Autobahn cases as kosoku runs them fail a session's uncompressed messages).
    async fn send_message(
        &self,
        io: &mut Upgraded,
        opcode: u8,
        payload: &[u8],
        window: Option<u8>,
    ) -> std::io::Result<()> {
        match window {
            Some(bits) => {
                let packed = deflate::compress(payload, bits);
                write_frame(io, opcode, &packed, true).await
            }
            _ => write_frame(io, opcode, payload, false).await,
        }
    }

    /// Ends the connection as `ending` says; what the application hears.
    async fn close(
        &mut self,
        io: &mut Upgraded,
        reader: &mut Reader,
        buf: &mut BytesMut,
        ending: Ending,
    ) -> Gone {
        match ending {
            Ending::Drop => Gone {
                code: frame::ABNORMAL,
                reason: String::new(),
            },
            Ending::Echo(close) => {
                let (code, reason) = close.clone().unwrap_or((frame::NO_STATUS, String::new()));
                let payload = match &close {
                    Some((code, _)) => frame::close_payload(*code, ""),
                    None => Bytes::new(),
                };
                let _ = write_frame(io, frame::CLOSE, &payload, false).await;
                Gone { code, reason }
            }
            Ending::Close(code, reason) => {
                let payload = frame::close_payload(code, &reason);
                if write_frame(io, frame::CLOSE, &payload, false)
                    .await
                    .is_err()
                {
                    return Gone {
                        code: frame::ABNORMAL,
                        reason: String::new(),
                    };
                }
                // The client's close, within the close timeout; what else it sends is dropped.
                let deadline = Instant::now() + CLOSE_TIMEOUT;
                loop {
                    match reader.next(buf) {
                        Ok(Some(Event::Close(_))) => {
                            return Gone { code, reason };
                        }
                        Ok(Some(_)) => continue,
                        Ok(None) => {}
                        Err(_) => break,
                    }
                    match tokio::time::timeout_at(deadline, read_more(io, buf)).await {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => break,
                    }
                }
                Gone { code, reason }
            }
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}

fn describe(label: &RequestLabel) -> &str {
    &label.app
}

/// Reads more of the client's bytes into `buf`.
async fn read_more(io: &mut Upgraded, buf: &mut BytesMut) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < READ_ROOM / 2 {
        buf.reserve(READ_ROOM);
    }
    io.read_buf(buf).await
}

/// Writes one frame: its header and payload in one write where the transport allows.
async fn write_frame(
    io: &mut Upgraded,
    opcode: u8,
    payload: &[u8],
    compressed: bool,
) -> std::io::Result<()> {
    let head = frame::header(opcode, payload.len(), compressed);
    let mut head_left: &[u8] = &head;
    let mut body_left: &[u8] = payload;
    while !head_left.is_empty() || !body_left.is_empty() {
        let slices = [
            std::io::IoSlice::new(head_left),
            std::io::IoSlice::new(body_left),
        ];
        let n = poll_fn(|cx| Pin::new(&mut *io).poll_write_vectored(cx, &slices)).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head_left.len());
        head_left = &head_left[from_head..];
        body_left = &body_left[n - from_head..];
    }
    poll_fn(|cx| Pin::new(&mut *io).poll_flush(cx)).await
}

/// The loop thread's side of a wake-up: a message (or the disconnect) for a waiting
/// `receive()`, room for a waiting `send()`.
fn wake(py: Python<'_>, _ctx: &Arc<Ctx>, exchange: &Arc<Exchange>) {
    let (receive, message, gone, send) = {
        let mut shared = exchange.lock();
        let ready = !shared.inbound.is_empty() || shared.gone.is_some();
        let receive = if ready {
            shared.receive_waiter.take()
        } else {
            None
        };
        let waiting = receive.as_ref().is_some_and(|f| !is_done(py, f.bind(py)));
        let message = if waiting {
            Exchange::take_inbound(&mut shared)
        } else {
            None
        };
        let gone = shared.gone.clone();
        let send = if gone.is_some() || exchange.below_low_water() {
            shared.send_waiter.take()
        } else {
            None
        };
        (receive.filter(|_| waiting), message, gone, send)
    };
    if message.is_some() {
        exchange.room.notify_one();
    }
    if let Some(f) = receive {
        let msg = match message {
            Some(m) => receive_message(py, m),
            None => disconnect_message(py, gone.as_ref()),
        };
        if let Ok(msg) = msg {
            resolve(py, f.bind(py), msg.into_any());
        }
    }
    if let Some(f) = send {
        if gone.is_some() {
            fail(py, f.bind(py), disconnected_error(py));
        } else {
            resolve(py, f.bind(py), py.None().into_bound(py));
        }
    }
}

fn is_done(py: Python<'_>, f: &Bound<'_, PyAny>) -> bool {
    f.call_method0(intern!(py, "done"))
        .and_then(|d| d.is_truthy())
        .unwrap_or(true)
}

fn receive_message(py: Python<'_>, message: In) -> PyResult<Bound<'_, PyDict>> {
    let msg = PyDict::new(py);
    msg.set_item(intern!(py, "type"), intern!(py, "websocket.receive"))?;
    match message {
        In::Text(data) => {
            // The session checked it is UTF-8.
            let text = std::str::from_utf8(&data).unwrap_or_default();
            msg.set_item(intern!(py, "text"), PyString::new(py, text))?;
        }
        In::Binary(data) => msg.set_item(intern!(py, "bytes"), PyBytes::new(py, &data))?,
    }
    Ok(msg)
}

fn disconnect_message<'py>(py: Python<'py>, gone: Option<&Gone>) -> PyResult<Bound<'py, PyDict>> {
    let msg = PyDict::new(py);
    msg.set_item(intern!(py, "type"), intern!(py, "websocket.disconnect"))?;
    let (code, reason) = gone.map_or((frame::ABNORMAL, ""), |g| (g.code, g.reason.as_str()));
    msg.set_item(intern!(py, "code"), code)?;
    msg.set_item(intern!(py, "reason"), reason)?;
    Ok(msg)
}

/// Where the WebSocket is, on the application's side.
enum Phase {
    Connecting,
    /// A denial response started (`websocket.http.response.start`).
    Denying {
        head: Head,
        body: BytesMut,
    },
    Open,
    Closed,
}

/// The application's `receive` and `send` for one WebSocket.
#[pyclass(module = "dragoman", name = "WebSocketChannel")]
pub(crate) struct WsChannel {
    exchange: Arc<Exchange>,
    ctx: Arc<Ctx>,
    phase: Phase,
    /// `websocket.connect` was handed out.
    connect_given: bool,
    /// The subprotocols the client offered.
    protocols: Vec<String>,
    label: RequestLabel,
    violated: bool,
}

impl WsChannel {
    fn violation(&mut self, rule: Rule, exception: fn(String) -> PyErr) -> PyErr {
        if !self.violated {
            self.violated = true;
            broke(&self.label, &rule);
            let _ = self.exchange.send(Out::Ended { failed: true });
        }
        self.phase = Phase::Closed;
        exception(format!("ASGI: {rule}"))
    }

    fn push<'py>(&mut self, py: Python<'py>, out: Out) -> PyResult<Bound<'py, PyAny>> {
        match self.exchange.send(out) {
            Ok(false) => Ok(self.ctx.done(py)),
            Ok(true) => {
                let f = self.ctx.future(py)?;
                let mut shared = self.exchange.lock();
                if shared.gone.is_some() || self.exchange.below_low_water() {
                    drop(shared);
                    return Ok(self.ctx.done(py));
                }
                shared.send_waiter = Some(f.clone().unbind());
                Ok(f)
            }
            Err(()) => Err(ClientDisconnected::new_err(
                "the client closed the connection",
            )),
        }
    }
}

#[pymethods]
impl WsChannel {
    fn receive<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if !self.connect_given {
            self.connect_given = true;
            let msg = PyDict::new(py);
            msg.set_item(intern!(py, "type"), intern!(py, "websocket.connect"))?;
            return self.ctx.ready(py, msg.into_any());
        }
        let mut shared = self.exchange.lock();
        if let Some(message) = Exchange::take_inbound(&mut shared) {
            drop(shared);
            self.exchange.room.notify_one();
            return self.ctx.ready(py, receive_message(py, message)?.into_any());
        }
        if let Some(gone) = shared.gone.clone() {
            drop(shared);
            return self
                .ctx
                .ready(py, disconnect_message(py, Some(&gone))?.into_any());
        }
        if let Some(waiter) = &shared.receive_waiter {
            if !is_done(py, waiter.bind(py)) {
                let rule = "receive() was called while another receive() was waiting";
                drop(shared);
                return Err(PyRuntimeError::new_err(format!("ASGI: {rule}")));
            }
        }
        let f = self.ctx.future(py)?;
        shared.receive_waiter = Some(f.clone().unbind());
        Ok(f)
    }

    fn send<'py>(
        &mut self,
        py: Python<'py>,
        message: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let kind =
            message::kind(&message).map_err(|rule| self.violation(rule, PyValueError::new_err))?;
        let kind = kind.to_str()?;
        let gone = self.exchange.is_gone();
        let phase = std::mem::replace(&mut self.phase, Phase::Closed);
        match (kind, phase) {
            // Closing what is closed already is no error.
            ("websocket.close", Phase::Closed) => Ok(self.ctx.done(py)),
            (_, _) if gone => Err(ClientDisconnected::new_err(
                "the client closed the connection",
            )),
            ("websocket.accept", Phase::Connecting) => {
                let subprotocol = message::text(&message, intern!(py, "subprotocol"))
                    .map_err(|rule| self.violation(rule, PyValueError::new_err))?;
                if let Some(p) = &subprotocol {
                    if !self.protocols.contains(p) {
                        let rule = format!(
                            "websocket.accept chose the subprotocol {p:?}, which the client did \
                             not offer ({:?})",
                            self.protocols
                        );
                        return Err(self.violation(rule, PyValueError::new_err));
                    }
                }
                let refused = [
                    "sec-websocket-protocol",
                    "sec-websocket-accept",
                    "sec-websocket-extensions",
                    "upgrade",
                    "connection",
                    "content-length",
                    "transfer-encoding",
                ];
                let headers = message::header_map(&message, &refused)
                    .map_err(|rule| self.violation(rule, PyValueError::new_err))?;
                self.phase = Phase::Open;
                self.push(
                    py,
                    Out::Accept {
                        subprotocol,
                        headers: Box::new(headers),
                    },
                )
            }
            ("websocket.close", Phase::Connecting) => self.push(py, Out::Deny),
            ("websocket.close", Phase::Open) => {
                let code = match message::get(&message, intern!(py, "code")) {
                    None => frame::NORMAL,
                    Some(c) => c
                        .extract::<u16>()
                        .ok()
                        .filter(|c| frame::valid_close_code(*c))
                        .ok_or_else(|| {
                            let rule = format!(
                                "websocket.close has a code no endpoint may send: {}",
                                message::short_repr(&c)
                            );
                            self.violation(rule, PyValueError::new_err)
                        })?,
                };
                let reason = message::text(&message, intern!(py, "reason"))
                    .map_err(|rule| self.violation(rule, PyValueError::new_err))?
                    .unwrap_or_default();
                self.push(py, Out::Close { code, reason })
            }
            ("websocket.send", Phase::Open) => {
                let text = message::text(&message, intern!(py, "text"))
                    .map_err(|rule| self.violation(rule, PyValueError::new_err))?;
                let has_bytes = message::get(&message, intern!(py, "bytes")).is_some();
                self.phase = Phase::Open;
                match (text, has_bytes) {
                    (Some(text), false) => self.push(py, Out::Text(text)),
                    (None, true) => {
                        let data = message::body(&message, intern!(py, "bytes"))
                            .map_err(|rule| self.violation(rule, PyValueError::new_err))?;
                        self.push(py, Out::Binary(data))
                    }
                    _ => {
                        let rule = "websocket.send must have exactly one of \"text\" and \"bytes\""
                            .to_string();
                        Err(self.violation(rule, PyValueError::new_err))
                    }
                }
            }
            ("websocket.http.response.start", Phase::Connecting) => {
                let status = message::status(&message)
                    .map_err(|rule| self.violation(rule, PyValueError::new_err))?;
                let mut head = Head::new(status, None, 8);
                message::headers_into(&message, &mut head, false)
                    .map_err(|rule| self.violation(rule, PyValueError::new_err))?;
                self.phase = Phase::Denying {
                    head,
                    body: BytesMut::new(),
                };
                Ok(self.ctx.done(py))
            }
            ("websocket.http.response.body", Phase::Denying { head, mut body }) => {
                let chunk = message::body(&message, intern!(py, "body"))
                    .map_err(|rule| self.violation(rule, PyValueError::new_err))?;
                body.extend_from_slice(&chunk);
                if message::flag(&message, intern!(py, "more_body")) {
                    self.phase = Phase::Denying { head, body };
                    return Ok(self.ctx.done(py));
                }
                self.push(
                    py,
                    Out::DenyResponse {
                        head: Box::new(head),
                        body: body.freeze(),
                    },
                )
            }
            (kind, phase) => {
                let when = match phase {
                    Phase::Connecting => "before websocket.accept",
                    Phase::Denying { .. } => "during its denial response",
                    Phase::Open => "on an open WebSocket",
                    Phase::Closed => "after the WebSocket was closed",
                };
                let rule = format!("it sent {kind} {when}");
                Err(self.violation(rule, PyRuntimeError::new_err))
            }
        }
    }

    fn _finished(&mut self, py: Python<'_>, raised: Option<Bound<'_, PyAny>>) {
        let cancelled = raised
            .as_ref()
            .is_some_and(|e| e.is_instance_of::<pyo3::exceptions::asyncio::CancelledError>());
        let raised = raised.filter(|_| !cancelled);
        let mut failed = false;
        if let Some(exception) = raised {
            failed = true;
            let quiet = exception.is_instance_of::<ClientDisconnected>() || self.violated;
            if !quiet {
                let err = PyErr::from_value(exception);
                log::write_block(
                    log::Level::Error,
                    format_args!(
                        "error in the application {} while serving the WebSocket {}:",
                        self.label.app, self.label.request
                    ),
                    &message::traceback(py, &err),
                );
                self.label.stats.exception();
            }
        } else if matches!(self.phase, Phase::Connecting | Phase::Denying { .. })
            && !self.violated
            && !self.exchange.is_gone()
        {
            failed = true;
            broke(
                &self.label,
                "it returned without accepting or denying the WebSocket",
            );
        }
        self.phase = Phase::Closed;
        let _ = self.exchange.send(Out::Ended { failed });
    }
}
