//! What the two sides of one ASGI connection scope (an HTTP request, a WebSocket) share: the
//! messages for the application that wait for its `receive()`, the messages from its
//! `send()` on their way to the connection, and the futures its calls wait on.
//!
//! The connection's side (the worker's event loop) never touches a Python object: it puts
//! messages in and, when the application waits for one, queues a job for the loop thread,
//! which resolves the future there. The application's side sends through an unbounded
//! channel whose bytes are counted: past [`HIGH_WATER`] a `send()` waits until the
//! connection has taken them below [`LOW_WATER`], so a client that reads slowly slows the
//! application down, and never makes it buffer without bound.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::HeaderMap;
use pyo3::prelude::*;
use tokio::sync::{mpsc, Notify};

use super::runner::{Ctx, Inbox};
use crate::bridge::head::Head;
use crate::bridge::outbox::{Outbox, Relayed};

/// Bytes on their way from the application past which its `send()` waits.
pub(crate) const HIGH_WATER: usize = 256 * 1024;
/// And below which it goes on.
pub(crate) const LOW_WATER: usize = 64 * 1024;

/// A message from the application to the connection.
///
/// The large parts are boxed: a channel allocates its slots 32 at a time, so the size of
/// this enum is paid 32 times by every request and every WebSocket (measured: 6 KiB each
/// with a head inline).
pub(crate) enum Out {
    /// `http.response.start` and the first `http.response.body` (the head goes out with the
    /// first body, as the spec asks).
    Response {
        head: Box<Head>,
        body: Bytes,
        more: bool,
        trailers: bool,
    },
    Body {
        data: Bytes,
        more: bool,
    },
    Trailers {
        headers: Box<HeaderMap>,
        more: bool,
    },
    /// `http.response.pathsend`: the file goes out from the worker's loop (sendfile where the
    /// transport can).
    File {
        head: Box<Head>,
        path: std::path::PathBuf,
    },
    /// `websocket.accept`.
    Accept {
        subprotocol: Option<String>,
        headers: Box<HeaderMap>,
    },
    /// `websocket.close` before the accept: 403.
    Deny,
    /// A denial response (`websocket.http.response.*`), whole.
    DenyResponse {
        head: Box<Head>,
        body: Bytes,
    },
    /// `websocket.send`.
    Text(String),
    Binary(Bytes),
    /// `websocket.close` after the accept.
    Close {
        code: u16,
        reason: String,
    },
    /// The application's task is over (`failed`: it raised, or broke a rule, logged).
    Ended {
        failed: bool,
    },
}

impl Out {
    /// The bytes it counts for against the high-water mark.
    fn weight(&self) -> usize {
        match self {
            Out::Response { body, .. } => body.len(),
            Out::Body { data, .. } | Out::Binary(data) => data.len(),
            Out::Text(text) => text.len(),
            _ => 0,
        }
    }
}

/// A message for the application's `receive()` (WebSocket messages; an HTTP body is read
/// by the application side itself).
pub(crate) enum In {
    /// Checked UTF-8.
    Text(Bytes),
    Binary(Bytes),
}

impl In {
    fn weight(&self) -> usize {
        match self {
            In::Text(t) => t.len(),
            In::Binary(b) => b.len(),
        }
    }
}

/// Why the connection is over, for `websocket.disconnect`.
#[derive(Clone, Debug)]
pub(crate) struct Gone {
    pub(crate) code: u16,
    pub(crate) reason: String,
}

/// The state both sides lock.
pub(crate) struct Shared {
    pub(crate) inbound: VecDeque<In>,
    pub(crate) inbound_bytes: usize,
    /// The client is gone (or the session over).
    pub(crate) gone: Option<Gone>,
    /// The application's `receive()` waiting.
    pub(crate) receive_waiter: Option<Py<PyAny>>,
    /// The application's `send()` waiting for the connection to take what it sent.
    pub(crate) send_waiter: Option<Py<PyAny>>,
    /// A wake-up job is in the loop thread's inbox already.
    wake_queued: bool,
}

/// One connection scope's exchange.
pub(crate) struct Exchange {
    shared: Mutex<Shared>,
    out: mpsc::UnboundedSender<Out>,
    /// Bytes sent by the application not yet taken by the connection.
    queued: AtomicUsize,
    inbox: Arc<Inbox>,
    /// The application took a message: the connection may read more.
    pub(crate) room: Notify,
    /// How the application side finishes a wake-up (its protocol's messages).
    waker: fn(Python<'_>, &Arc<Ctx>, &Arc<Exchange>),
}

impl Exchange {
    /// A new exchange, and the connection's end of its outgoing channel. `waker` runs on the
    /// loop thread when the application has something to wake up to.
    pub(crate) fn new(
        inbox: Arc<Inbox>,
        outbox: &Arc<Outbox>,
        waker: fn(Python<'_>, &Arc<Ctx>, &Arc<Exchange>),
    ) -> (Arc<Exchange>, Outgoing) {
        let (out, rx) = mpsc::unbounded_channel();
        let exchange = Arc::new(Exchange {
            shared: Mutex::new(Shared {
                inbound: VecDeque::new(),
                inbound_bytes: 0,
                gone: None,
                receive_waiter: None,
                send_waiter: None,
                wake_queued: false,
            }),
            out,
            queued: AtomicUsize::new(0),
            inbox,
            room: Notify::new(),
            waker,
        });
        (exchange, Outgoing::new(rx, outbox))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    // The application's side (the loop thread).

    /// Sends a message to the connection; whether the application should now wait (past the
    /// high-water mark). `Err` when the connection's side is gone.
    pub(crate) fn send(&self, message: Out) -> Result<bool, ()> {
        let weight = message.weight();
        let before = self.queued.fetch_add(weight, Ordering::AcqRel);
        if self.out.send(message).is_err() {
            self.queued.fetch_sub(weight, Ordering::AcqRel);
            return Err(());
        }
        Ok(before + weight > HIGH_WATER)
    }

    /// Whether the connection has taken enough for a waiting `send()` to go on.
    pub(crate) fn below_low_water(&self) -> bool {
        self.queued.load(Ordering::Acquire) <= LOW_WATER
    }

    /// A message for `receive()`, taken; the connection is told there is room.
    pub(crate) fn take_inbound(shared: &mut Shared) -> Option<In> {
        let message = shared.inbound.pop_front()?;
        shared.inbound_bytes -= message.weight();
        Some(message)
    }

    // The connection's side (the worker's event loop).

    /// The connection took `message` (of what the application sent): a waiting `send()`
    /// goes on once below the low-water mark.
    pub(crate) fn took(self: &Arc<Self>, message: &Out) {
        self.took_bytes(message.weight());
    }

    /// The connection took `weight` bytes of what the application sent.
    pub(crate) fn took_bytes(self: &Arc<Self>, weight: usize) {
        if weight == 0 {
            return;
        }
        let left = self.queued.fetch_sub(weight, Ordering::AcqRel) - weight;
        if left <= LOW_WATER {
            let mut shared = self.lock();
            if shared.send_waiter.is_some() {
                self.wake(&mut shared);
            }
        }
    }

    /// A message for the application.
    pub(crate) fn deliver(self: &Arc<Self>, message: In) {
        let mut shared = self.lock();
        shared.inbound_bytes += message.weight();
        shared.inbound.push_back(message);
        if shared.receive_waiter.is_some() {
            self.wake(&mut shared);
        }
    }

    /// Bytes waiting for the application's `receive()`.
    pub(crate) fn inbound_bytes(&self) -> (usize, usize) {
        let shared = self.lock();
        (shared.inbound.len(), shared.inbound_bytes)
    }

    /// The client is gone, or the session over: every wait ends. The first reason stays.
    pub(crate) fn gone(self: &Arc<Self>, why: Gone) {
        let mut shared = self.lock();
        if shared.gone.is_none() {
            shared.gone = Some(why);
        }
        if shared.receive_waiter.is_some() || shared.send_waiter.is_some() {
            self.wake(&mut shared);
        }
    }

    /// Whether the client is gone.
    pub(crate) fn is_gone(&self) -> bool {
        self.lock().gone.is_some()
    }

    /// Queues the wake-up job, once.
    fn wake(self: &Arc<Self>, shared: &mut Shared) {
        if shared.wake_queued {
            return;
        }
        shared.wake_queued = true;
        let exchange = self.clone();
        self.inbox.push(Box::new(move |py, ctx| {
            exchange.lock().wake_queued = false;
            (exchange.waker)(py, ctx, &exchange);
        }));
    }
}

/// The connection's end of an exchange's messages from the application, woken through the
/// worker's outbox.
pub(crate) struct Outgoing {
    rx: mpsc::UnboundedReceiver<Out>,
    relayed: Relayed,
}

impl Outgoing {
    fn new(rx: mpsc::UnboundedReceiver<Out>, outbox: &Arc<Outbox>) -> Outgoing {
        Outgoing {
            rx,
            relayed: Relayed::new(outbox),
        }
    }

    /// The next message; `None` once the application's side is gone.
    pub(crate) async fn recv(&mut self) -> Option<Out> {
        let Outgoing { rx, relayed } = self;
        std::future::poll_fn(|cx| relayed.poll(cx, |cx| rx.poll_recv(cx))).await
    }
}

/// Tells the application its client is gone when dropped (the request's future dropped by
/// the connection, or the response's relay over).
pub(crate) struct GoneOnDrop(pub(crate) Arc<Exchange>, pub(crate) Gone);

impl Drop for GoneOnDrop {
    fn drop(&mut self) {
        self.0.gone(self.1.clone());
    }
}
