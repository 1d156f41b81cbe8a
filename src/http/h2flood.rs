//! Flood limits of an HTTP/2 connection, below hyper: the frames a client sends are counted as
//! they are read, and a client that sends too many of those that cost the server work and the
//! client nothing loses its connection (a read error ends it), never the worker's time:
//! - RST_STREAM: opening streams and cancelling them at once (rapid reset, CVE-2023-44487);
//!   each stream started a request, and the cancel frees the stream for another;
//! - PING and SETTINGS: each is answered (a PONG, a SETTINGS ACK);
//! - PRIORITY, and empty DATA frames that do not end their stream: nothing to do, but read.
//!
//! The h2 library bounds the rest itself: the streams open at once
//! (`http2-max-concurrent-streams`), header blocks (`http2-max-header-list-size`, and a cap on
//! CONTINUATION frames per block: the CONTINUATION flood, CVE-2024-27316), and the answers it
//! queues (it reads no further while a PONG or SETTINGS ACK waits to be written).
//!
//! Only frame headers are looked at (9 bytes each); payloads are skipped by length.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::clock::coarse_ms;
use crate::warn;

/// The client's connection preface, before its first frame.
const PREFACE_LEN: usize = 24;

/// Frames are counted over windows of this long.
const WINDOW_MS: u64 = 10_000;

/// Frame types (RFC 9113 §6).
const DATA: u8 = 0x0;
const PRIORITY: u8 = 0x2;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
/// The ACK flag of SETTINGS and PING; END_STREAM of DATA.
const ACK: u8 = 0x1;
const END_STREAM: u8 = 0x1;

/// What one window allows of each kind of frame.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) resets: u32,
    pub(crate) pings: u32,
    pub(crate) settings: u32,
    pub(crate) priorities: u32,
    pub(crate) empty_data: u32,
}

impl Limits {
    /// Room for any real client: browsers cancel streams as pages change (so resets are
    /// allowed twice the streams a connection may have open), ping a few times a minute,
    /// send SETTINGS once or twice, PRIORITY a handful of times.
    pub(crate) fn new(max_concurrent_streams: u32) -> Limits {
        Limits {
            resets: max_concurrent_streams.saturating_mul(2).max(200),
            pings: 100,
            settings: 50,
            priorities: 1000,
            empty_data: 200,
        }
    }
}

/// Counts of the current window.
#[derive(Default)]
struct Counts {
    resets: u32,
    pings: u32,
    settings: u32,
    priorities: u32,
    empty_data: u32,
}

/// A transport whose reads are watched for floods.
pub(crate) struct FloodGuard<T> {
    inner: T,
    limits: Limits,
    /// Preface bytes still to skip.
    preface: usize,
    /// A frame header being gathered (it may straddle reads).
    header: [u8; 9],
    have: usize,
    /// Payload bytes of the current frame still to skip.
    skip: usize,
    window_start: u64,
    counts: Counts,
    /// The flood found, once: every later read fails too.
    flooded: Option<&'static str>,
    peer: String,
}

impl<T> FloodGuard<T> {
    pub(crate) fn new(inner: T, limits: Limits, peer: String) -> Self {
        FloodGuard {
            inner,
            limits,
            preface: PREFACE_LEN,
            header: [0; 9],
            have: 0,
            skip: 0,
            window_start: coarse_ms(),
            counts: Counts::default(),
            flooded: None,
            peer,
        }
    }

    /// Scans bytes just read; the kind of frame that went over its limit, if one did.
    fn scan(&mut self, mut bytes: &[u8]) -> Option<&'static str> {
        let now = coarse_ms();
        if now.saturating_sub(self.window_start) >= WINDOW_MS {
            self.window_start = now;
            self.counts = Counts::default();
        }
        while !bytes.is_empty() {
            if self.preface > 0 {
                let n = self.preface.min(bytes.len());
                self.preface -= n;
                bytes = &bytes[n..];
                continue;
            }
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (9 - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have < 9 {
                break;
            }
            self.have = 0;
            let h = self.header;
            let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
            self.skip = len;
            if let Some(kind) = self.count(h[3], h[4], len) {
                return Some(kind);
            }
        }
        None
    }

    /// Counts one frame; the kind when it is one too many.
    fn count(&mut self, kind: u8, flags: u8, len: usize) -> Option<&'static str> {
        let (count, limit, name) = match kind {
            RST_STREAM => (&mut self.counts.resets, self.limits.resets, "RST_STREAM"),
            PING if flags & ACK == 0 => (&mut self.counts.pings, self.limits.pings, "PING"),
            SETTINGS if flags & ACK == 0 => {
                (&mut self.counts.settings, self.limits.settings, "SETTINGS")
            }
            PRIORITY => (
                &mut self.counts.priorities,
                self.limits.priorities,
                "PRIORITY",
            ),
            DATA if len == 0 && flags & END_STREAM == 0 => (
                &mut self.counts.empty_data,
                self.limits.empty_data,
                "empty DATA",
            ),
            _ => return None,
        };
        *count += 1;
        (*count > limit).then_some(name)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FloodGuard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(kind) = this.flooded {
            return Poll::Ready(Err(flood_error(kind)));
        }
        let before = buf.filled().len();
        let ready = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            if let Some(kind) = this.scan(&buf.filled()[before..]) {
                this.flooded = Some(kind);
                warn!(
                    "HTTP/2 flood from {}: more than {} {kind} frames in {}s; closing the connection",
                    this.peer,
                    this.limits_of(kind),
                    WINDOW_MS / 1000
                );
                buf.set_filled(before);
                return Poll::Ready(Err(flood_error(kind)));
            }
        }
        ready
    }
}

impl<T> FloodGuard<T> {
    fn limits_of(&self, kind: &str) -> u32 {
        match kind {
            "RST_STREAM" => self.limits.resets,
            "PING" => self.limits.pings,
            "SETTINGS" => self.limits.settings,
            "PRIORITY" => self.limits.priorities,
            _ => self.limits.empty_data,
        }
    }
}

fn flood_error(kind: &str) -> io::Error {
    io::Error::other(format!("HTTP/2 flood of {kind} frames"))
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FloodGuard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            flags,
            0,
            0,
            0,
            1,
        ];
        f.extend_from_slice(payload);
        f
    }

    fn guard() -> FloodGuard<()> {
        FloodGuard::new((), Limits::new(100), "test".into())
    }

    #[test]
    fn frames_are_counted_across_reads_of_any_size() {
        let mut g = guard();
        let mut stream = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        stream.extend(frame(SETTINGS, 0, &[0; 6]));
        for _ in 0..100 {
            stream.extend(frame(PING, 0, &[7; 8]));
            stream.extend(frame(PING, ACK, &[7; 8])); // answers are not counted
            stream.extend(frame(DATA, END_STREAM, b"")); // ends a stream: not a flood
            stream.extend(frame(0x1, 0x4, &[0x82; 300])); // HEADERS
        }
        // One byte at a time: headers straddle reads.
        for b in &stream {
            assert_eq!(g.scan(std::slice::from_ref(b)), None);
        }
        assert_eq!((g.counts.pings, g.counts.settings), (100, 1));
        assert_eq!(g.scan(&frame(PING, 0, &[0; 8])), Some("PING"));
    }

    #[test]
    fn each_kind_has_its_limit() {
        for (kind, flags, len, name) in [
            (RST_STREAM, 0, 4, "RST_STREAM"),
            (SETTINGS, 0, 0, "SETTINGS"),
            (PRIORITY, 0, 5, "PRIORITY"),
            (DATA, 0, 0, "empty DATA"),
        ] {
            let mut g = guard();
            g.preface = 0;
            let one = frame(kind, flags, &vec![0; len]);
            let mut found = None;
            for _ in 0..2000 {
                found = g.scan(&one);
                if found.is_some() {
                    break;
                }
            }
            assert_eq!(found, Some(name));
        }
        // A window later, the counts start again.
        let mut g = guard();
        g.preface = 0;
        g.counts.pings = 100;
        g.window_start = coarse_ms().saturating_sub(WINDOW_MS);
        assert_eq!(g.scan(&frame(PING, 0, &[0; 8])), None);
    }
}
