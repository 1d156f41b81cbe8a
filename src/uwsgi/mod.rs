//! The uwsgi protocol, for sites that keep nginx in front (`uwsgi_pass`): the `socket`
//! listeners. [`codec`] reads and writes packets, [`request`] translates one for the HTTP side;
//! this file is the thin socket part.

pub mod codec;
pub mod request;

use bytes::{Bytes, BytesMut};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

use codec::Parsed;
pub use request::Translated;

/// Why a uwsgi connection ended before its request could be served.
pub enum RequestError {
    /// The packet is malformed: answered with a 400 that says so.
    Invalid(String),
    /// The peer went away (silently: `None`, as a health check that only connects does) or
    /// stayed silent too long.
    Gone(Option<String>),
}

/// Reads one uwsgi packet (within `timeout`) and translates it: the request, and the bytes
/// read past the packet (the start of its body).
pub async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<(Translated, Bytes), RequestError> {
    let read = async {
        let mut buf = BytesMut::with_capacity(4096);
        loop {
            match codec::parse(&buf) {
                Parsed::Packet(packet) => {
                    let translated = request::translate(&packet).map_err(RequestError::Invalid)?;
                    let len = packet.len;
                    return Ok((translated, buf.split_off(len).freeze()));
                }
                Parsed::Invalid(why) => return Err(RequestError::Invalid(why.to_string())),
                Parsed::Incomplete { need } => {
                    if let Some(need) = need {
                        buf.reserve(need.saturating_sub(buf.len()));
                    }
                }
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) if buf.is_empty() => return Err(RequestError::Gone(None)),
                Ok(0) => {
                    return Err(RequestError::Gone(Some(
                        "it closed in the middle of a uwsgi packet".into(),
                    )))
                }
                Ok(_) => {}
                Err(e) => return Err(RequestError::Gone(Some(e.to_string()))),
            }
        }
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| {
        RequestError::Gone(Some(
            "no complete uwsgi packet within header-timeout".into(),
        ))
    })?
}
