//! The response body every responder (app bridge, error pages, later static files) hands to
//! hyper. A small enum so the common cases (nothing, one buffer) cost no allocation or dynamic
//! call; a file has a variant of its own (the connection may send it with zero copies, see
//! [`crate::conn::zerocopy`]); anything else that streams is a boxed [`http_body::Body`]
//! supplied by its responder.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use super::error::BodyError;
use super::file::FileBody;

/// A streamed body supplied by a responder.
pub(crate) type BoxStream = Pin<Box<dyn http_body::Body<Data = Bytes, Error = BodyError>>>;

/// A response body.
pub(crate) enum Body {
    Empty,
    /// One buffer, sent with `Content-Length`; `None` once sent.
    Full(Option<Bytes>),
    /// A file, or ranges of it (static files, `wsgi.file_wrapper`).
    File(FileBody),
    Stream(BoxStream),
}

impl Body {
    pub(crate) fn full(data: impl Into<Bytes>) -> Body {
        let data = data.into();
        if data.is_empty() {
            Body::Empty
        } else {
            Body::Full(Some(data))
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Body::File(file) => Pin::new(file).poll_frame(cx),
            Body::Stream(stream) => stream.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty | Body::Full(None) => true,
            Body::Full(Some(_)) => false,
            Body::File(file) => http_body::Body::is_end_stream(file),
            Body::Stream(stream) => stream.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty | Body::Full(None) => SizeHint::with_exact(0),
            Body::Full(Some(data)) => SizeHint::with_exact(data.len() as u64),
            Body::File(file) => http_body::Body::size_hint(file),
            Body::Stream(stream) => stream.size_hint(),
        }
    }
}

/// A request body: hyper's for the requests it parses; for those the connection's own HTTP/1
/// path serves (see [`crate::http::fast`]), none, or a small one it read with the head.
pub(crate) enum RequestBody {
    Empty,
    /// The whole body, read already; `None` once taken.
    Full(Option<Bytes>),
    Hyper(hyper::body::Incoming),
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Empty => Poll::Ready(None),
            RequestBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            RequestBody::Hyper(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Empty | RequestBody::Full(None) => true,
            RequestBody::Full(Some(_)) => false,
            RequestBody::Hyper(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Empty | RequestBody::Full(None) => SizeHint::with_exact(0),
            RequestBody::Full(Some(data)) => SizeHint::with_exact(data.len() as u64),
            RequestBody::Hyper(body) => body.size_hint(),
        }
    }
}
