//! The channel from an application thread (`threads = N`) to the event loop: the head, the
//! body's chunks, a wrapped file, the end. Bounded, so a full channel is backpressure on the
//! thread (beyond the response's pipe, see [`stream_channel`]).

use bytes::Bytes;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use tokio::sync::mpsc;

use super::iteration::WrappedFile;
use crate::bridge::head::Head;
use crate::bridge::pipe::{PipeBody, PipeWriter};
use crate::http::Body;

/// A message from an app thread to the event loop, through a bounded channel.
pub(crate) enum Msg {
    /// The head; `complete` when `body` is the whole body.
    Head {
        head: Head,
        body: Vec<Bytes>,
        complete: bool,
    },
    Data(Bytes),
    /// A wrapped file for the event loop to send (the whole response).
    File {
        head: Head,
        body: WrappedFile,
    },
    /// The body ended normally.
    End,
    /// The body failed midway: cut the connection.
    Abort,
}

/// The app thread's end of the channel. Sending blocks (with the GIL released) while the
/// channel is full, which is the backpressure from a slow client.
#[derive(Clone)]
pub(crate) struct Sink {
    tx: mpsc::Sender<Msg>,
}

impl Sink {
    pub(crate) fn new(tx: mpsc::Sender<Msg>) -> Self {
        Sink { tx }
    }

    /// Sends a message; an error means the client is gone (the event loop dropped its end).
    pub(crate) fn send(&self, py: Python<'_>, msg: Msg) -> PyResult<()> {
        let tx = &self.tx;
        if py.detach(|| tx.blocking_send(msg).is_ok()) {
            Ok(())
        } else {
            Err(PyOSError::new_err("the client closed the connection"))
        }
    }

    pub(crate) fn head(
        &self,
        py: Python<'_>,
        head: Head,
        body: Vec<Bytes>,
        complete: bool,
    ) -> PyResult<()> {
        self.send(
            py,
            Msg::Head {
                head,
                body,
                complete,
            },
        )
    }

    pub(crate) fn data(&self, py: Python<'_>, chunk: Bytes) -> PyResult<()> {
        self.send(py, Msg::Data(chunk))
    }
}

/// The rest of a response from an app thread, moved from its channel into the response's
/// pipe by a task of its own, as fast as the thread produces it: a client that reads slowly
/// does not hold the thread beyond the pipe's buffer (then the channel fills, and the
/// thread's next send waits).
pub(crate) fn stream_channel(
    prefix: Vec<Bytes>,
    mut rx: mpsc::Receiver<Msg>,
    pipe: (PipeWriter, PipeBody),
) -> Body {
    let (writer, body) = pipe;
    tokio::task::spawn_local(async move {
        for chunk in prefix {
            if writer.send(chunk).await.is_err() {
                return;
            }
        }
        loop {
            match rx.recv().await {
                Some(Msg::Data(chunk)) => {
                    if writer.send(chunk).await.is_err() {
                        return; // the client left: dropping `rx` tells the thread
                    }
                }
                Some(Msg::End) => return writer.finish(),
                // Abort, a stray head, or the app thread gone without End: the body is
                // incomplete, and dropping the writer unfinished says so.
                _ => return,
            }
        }
    });
    Body::Stream(Box::pin(body))
}
