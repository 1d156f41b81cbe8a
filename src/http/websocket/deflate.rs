//! permessage-deflate (RFC 7692): the offer a server accepts, and the compression itself.
//!
//! dragoman always answers with `server_no_context_takeover` and `client_no_context_takeover`
//! (RFC 7692 §7.1.1 lets a server add both): every message is compressed on its own, so no
//! connection keeps a compressor or a decompressor between messages. One of each per worker
//! thread does all the work, and an idle WebSocket costs no zlib state at all (zlib's
//! deflate state is some 256 KiB, its inflate state 40 KiB: 10,000 connections would hold
//! gigabytes). What it costs: a message cannot refer to the ones before it, so small
//! repetitive messages compress less.

use std::cell::RefCell;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The window a server compresses with when the client does not limit it.
const DEFAULT_WINDOW: u8 = 15;
/// The smallest window zlib deflates with: a client that asks for 8 is declined (zlib would
/// silently use 9, larger than the client allows).
const MIN_WINDOW: u8 = 9;

/// The parameters agreed with one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Negotiated {
    /// The largest window the server may compress with.
    pub(crate) server_window: u8,
    /// Whether the client asked for it (`server_max_window_bits=N`): the answer says it back.
    echo_window: bool,
}

impl Negotiated {
    /// The `Sec-WebSocket-Extensions` value of the response.
    pub(crate) fn response(&self) -> String {
        let mut v = String::from(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        );
        if self.echo_window {
            v.push_str(&format!("; server_max_window_bits={}", self.server_window));
        }
        v
    }
}

/// The first permessage-deflate offer in `headers` (the values of Sec-WebSocket-Extensions)
/// that a server can accept, if any.
pub(crate) fn negotiate<'a>(headers: impl Iterator<Item = &'a str>) -> Option<Negotiated> {
    headers
        .flat_map(split_offers)
        .find_map(|offer| accept(&offer))
}

/// Splits a header value into offers, each a list of `;`-separated parts (quotes respected).
fn split_offers(value: &str) -> Vec<Vec<String>> {
    let mut offers = Vec::new();
    let mut parts = Vec::new();
    let mut part = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                part.push(c);
            }
            ';' if !quoted => parts.push(std::mem::take(&mut part)),
            ',' if !quoted => {
                parts.push(std::mem::take(&mut part));
                offers.push(std::mem::take(&mut parts));
            }
            _ => part.push(c),
        }
    }
    parts.push(part);
    offers.push(parts);
    offers
        .into_iter()
        .map(|o| o.into_iter().map(|p| p.trim().to_string()).collect())
        .collect()
}

/// Accepts one offer, or declines it (an unknown or repeated parameter, a bad value, or a
/// window zlib cannot keep to).
fn accept(offer: &[String]) -> Option<Negotiated> {
    let (name, params) = offer.split_first()?;
    if !name.eq_ignore_ascii_case("permessage-deflate") {
        return None;
    }
    let mut seen: Vec<String> = Vec::new();
    let mut server_window = None;
    for param in params {
        let (key, value) = match param.split_once('=') {
            Some((k, v)) => (
                k.trim().to_ascii_lowercase(),
                Some(v.trim().trim_matches('"')),
            ),
            None => (param.trim().to_ascii_lowercase(), None),
        };
        if seen.contains(&key) {
            return None;
        }
        let bits = |v: Option<&str>| -> Option<u8> {
            let v = v?;
            if !v.bytes().all(|b| b.is_ascii_digit()) || v.len() > 2 {
                return None;
            }
            v.parse::<u8>().ok().filter(|b| (8..=15).contains(b))
        };
        match key.as_str() {
            "server_no_context_takeover" | "client_no_context_takeover" if value.is_none() => {}
            "server_max_window_bits" => {
                let b = bits(value)?;
                if b < MIN_WINDOW {
                    return None;
                }
                server_window = Some(b);
            }
            "client_max_window_bits" => {
                if value.is_some() {
                    bits(value)?;
                }
            }
            _ => return None,
        }
        seen.push(key);
    }
    Some(Negotiated {
        server_window: server_window.unwrap_or(DEFAULT_WINDOW),
        echo_window: server_window.is_some(),
    })
}

// Boxed: the extension module's static thread-local block must stay small, or the
// dynamic loader refuses to load it ("cannot allocate memory in static TLS block").
thread_local! {
    /// The worker's compressors, by window size (9 to 15), made on first use.
    static DEFLATE: RefCell<Vec<Option<Compress>>> = const { RefCell::new(Vec::new()) };
    /// The worker's decompressor (a 15-bit window takes any client's data).
    static INFLATE: RefCell<Option<Box<Decompress>>> = const { RefCell::new(None) };
}

/// The trailer RFC 7692 §7.2.1 strips from each compressed message (an empty stored block).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Compresses one message with at most a `window`-bit window.
pub(crate) fn compress(data: &[u8], window: u8) -> Bytes {
    let window = window.clamp(MIN_WINDOW, DEFAULT_WINDOW);
    DEFLATE.with(|all| {
        let mut all = all.borrow_mut();
        if all.is_empty() {
            all.resize_with((DEFAULT_WINDOW - MIN_WINDOW + 1) as usize, || None);
        }
        let slot = &mut all[(window - MIN_WINDOW) as usize];
        let c = slot.get_or_insert_with(|| {
            Compress::new_with_window_bits(Compression::fast(), false, window)
        });
        c.reset();
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        let mut consumed = 0;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(1024));
            }
            let before = c.total_in();
            let status = c.compress_vec(&data[consumed..], &mut out, FlushCompress::Sync);
            consumed += (c.total_in() - before) as usize;
            let done = consumed >= data.len() && out.capacity() > out.len();
            if status.is_err() || done {
                break;
            }
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        Bytes::from(out)
    })
}

/// Why a message could not be decompressed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// It inflates past the limit (1009).
    TooBig,
    /// Not valid deflate data (1007).
    Invalid,
}

/// Decompresses one message, up to `max` bytes.
pub(crate) fn decompress(data: &[u8], max: u64) -> Result<Vec<u8>, InflateError> {
    INFLATE.with(|d| {
        let mut d = d.borrow_mut();
        let d = d.get_or_insert_with(|| {
            Box::new(Decompress::new_with_window_bits(false, DEFAULT_WINDOW))
        });
        d.reset(false);
        let mut out: Vec<u8> = Vec::with_capacity((data.len() * 2).clamp(256, 1 << 20));
        for input in [data, &TAIL[..]] {
            let mut consumed = 0;
            loop {
                if out.len() as u64 > max {
                    return Err(InflateError::TooBig);
                }
                if out.capacity() == out.len() {
                    out.reserve(out.capacity());
                }
                let before_in = d.total_in();
                let before_out = d.total_out();
                let status = d
                    .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
                    .map_err(|_| InflateError::Invalid)?;
                consumed += (d.total_in() - before_in) as usize;
                let progressed = d.total_in() != before_in || d.total_out() != before_out;
                if status == Status::StreamEnd {
                    break;
                }
                if consumed >= input.len() && out.capacity() > out.len() {
                    break;
                }
                if !progressed && out.capacity() > out.len() {
                    return Err(InflateError::Invalid);
                }
            }
        }
        if out.len() as u64 > max {
            return Err(InflateError::TooBig);
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(v: &str) -> Option<Negotiated> {
        negotiate(std::iter::once(v))
    }

    #[test]
    fn offers_are_accepted_or_declined() {
        let plain = offer("permessage-deflate").unwrap();
        assert_eq!(plain.server_window, 15);
        assert_eq!(
            plain.response(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        let nine = offer("permessage-deflate; server_max_window_bits=9").unwrap();
        assert!(nine.response().ends_with("server_max_window_bits=9"));
        // zlib cannot keep to 8: declined, the next offer taken.
        let next = offer(
            "permessage-deflate; server_max_window_bits=8, permessage-deflate; client_max_window_bits",
        )
        .unwrap();
        assert_eq!(next.server_window, 15);
        assert!(offer("permessage-deflate; server_max_window_bits=8").is_none());
        assert!(offer("permessage-deflate; client_max_window_bits=16").is_none());
        assert!(offer("permessage-deflate; server_max_window_bits").is_none());
        assert!(offer("permessage-deflate; foo").is_none());
        assert!(offer(
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover"
        )
        .is_none());
        assert!(offer("permessage-deflate; server_no_context_takeover=1").is_none());
        assert!(offer("x-webkit-deflate-frame").is_none());
        assert!(offer("permessage-deflate; client_max_window_bits=\"10\"").is_some());
    }

    #[test]
    fn messages_go_through_and_bombs_stop() {
        let text = "Hello, WebSocket. ".repeat(500);
        for window in [9, 12, 15] {
            let packed = compress(text.as_bytes(), window);
            assert!(packed.len() < text.len() / 10, "{}", packed.len());
            assert!(!packed.ends_with(&TAIL));
            assert_eq!(decompress(&packed, 1 << 20).unwrap(), text.as_bytes());
        }
        let bomb = compress(&vec![0u8; 4 << 20], 15);
        assert_eq!(decompress(&bomb, 1 << 20), Err(InflateError::TooBig));
        assert_eq!(
            decompress(&[0xffu8; 64], 1 << 20),
            Err(InflateError::Invalid)
        );
        assert_eq!(decompress(&compress(b"", 15), 10).unwrap(), b"");
    }
}
