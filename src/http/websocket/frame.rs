//! WebSocket frames (RFC 6455 §5), sans-I/O: a [`Reader`] turns the bytes a client sends
//! into whole messages and control frames (unmasking, joining fragments, inflating, checking
//! UTF-8 as it comes, holding messages to a size), and [`header`] frames what the server
//! sends. Every way a client breaks the protocol is a [`Fail`] with the close code to send.

use bytes::{Buf, Bytes, BytesMut};

use super::deflate::{self, InflateError};

pub(crate) const CONTINUATION: u8 = 0x0;
pub(crate) const TEXT: u8 = 0x1;
pub(crate) const BINARY: u8 = 0x2;
pub(crate) const CLOSE: u8 = 0x8;
pub(crate) const PING: u8 = 0x9;
pub(crate) const PONG: u8 = 0xA;

/// Close codes (RFC 6455 §7.4.1).
pub(crate) const NORMAL: u16 = 1000;
pub(crate) const GOING_AWAY: u16 = 1001;
pub(crate) const PROTOCOL_ERROR: u16 = 1002;
pub(crate) const INVALID_DATA: u16 = 1007;
pub(crate) const TOO_BIG: u16 = 1009;
pub(crate) const INTERNAL_ERROR: u16 = 1011;
/// No status code in the close frame (never sent).
pub(crate) const NO_STATUS: u16 = 1005;
/// The connection closed without a close frame (never sent).
pub(crate) const ABNORMAL: u16 = 1006;

/// The client broke the protocol: fail the connection with this code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fail {
    pub(crate) code: u16,
    pub(crate) why: &'static str,
}

fn fail<T>(code: u16, why: &'static str) -> Result<T, Fail> {
    Err(Fail { code, why })
}

/// What a client sent.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A whole text message: valid UTF-8.
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    /// A close frame: its code and reason, if it had a code.
    Close(Option<(u16, String)>),
}

/// A message being joined from fragments.
struct Partial {
    text: bool,
    compressed: bool,
    data: BytesMut,
    /// How much of `data` is known to be valid UTF-8 (text, uncompressed).
    checked: usize,
}

/// Reads a client's frames.
pub(crate) struct Reader {
    max_message: u64,
    deflate: bool,
    partial: Option<Partial>,
}

impl Reader {
    /// `max_message`: the largest message (decompressed); `deflate`: permessage-deflate was
    /// negotiated.
    pub(crate) fn new(max_message: u64, deflate: bool) -> Reader {
        Reader {
            max_message,
            deflate,
            partial: None,
        }
    }

    /// The next event in `buf` (its bytes consumed), `None` until a whole frame is there.
    pub(crate) fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, Fail> {
        loop {
            let Some(frame) = self.frame(buf)? else {
                return Ok(None);
            };
            if let Some(event) = self.event(frame)? {
                return Ok(Some(event));
            }
        }
    }

    /// One frame, unmasked.
    fn frame(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Fail> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (buf[0], buf[1]);
        let fin = b0 & 0x80 != 0;
        let rsv1 = b0 & 0x40 != 0;
        let opcode = b0 & 0x0F;
        if b0 & 0x30 != 0 {
            return fail(
                PROTOCOL_ERROR,
                "RSV2 or RSV3 set, with no extension that uses them",
            );
        }
        let control = opcode >= CLOSE;
        match opcode {
            CONTINUATION | TEXT | BINARY | CLOSE | PING | PONG => {}
            _ => return fail(PROTOCOL_ERROR, "a reserved opcode"),
        }
        if rsv1 && (control || opcode == CONTINUATION || !self.deflate) {
            return fail(
                PROTOCOL_ERROR,
                "RSV1 set where permessage-deflate does not allow it",
            );
        }
        if b1 & 0x80 == 0 {
            return fail(PROTOCOL_ERROR, "a client frame must be masked");
        }
        let short = u64::from(b1 & 0x7F);
        if control && (!fin || short > 125) {
            return fail(
                PROTOCOL_ERROR,
                "a control frame must be whole and at most 125 bytes",
            );
        }
        let (len, at) = match short {
            126 => {
                if buf.len() < 4 {
                    return Ok(None);
                }
                (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
            }
            127 => {
                if buf.len() < 10 {
                    return Ok(None);
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[2..10]);
                let n = u64::from_be_bytes(b);
                if n >> 63 != 0 {
                    return fail(PROTOCOL_ERROR, "a payload length with its top bit set");
                }
                (n, 10)
            }
            n => (n, 2),
        };
        if !control {
            let so_far = self.partial.as_ref().map_or(0, |p| p.data.len() as u64);
            if so_far.saturating_add(len) > self.max_message {
                return fail(TOO_BIG, "a message larger than websocket-max-message");
            }
        }
        let total = at as u64 + 4 + len;
        if (buf.len() as u64) < total {
            // Room for the rest of the frame, once (a large message is not regrown).
            buf.reserve((total as usize).saturating_sub(buf.len()));
            return Ok(None);
        }
        let mut key = [0u8; 4];
        key.copy_from_slice(&buf[at..at + 4]);
        buf.advance(at + 4);
        let mut payload = buf.split_to(len as usize);
        unmask(&mut payload, key);
        Ok(Some(Frame {
            fin,
            rsv1,
            opcode,
            payload,
        }))
    }

    /// What a frame means, if it completes something.
    fn event(&mut self, frame: Frame) -> Result<Option<Event>, Fail> {
        let Frame {
            fin,
            rsv1,
            opcode,
            payload,
        } = frame;
        match opcode {
            PING => return Ok(Some(Event::Ping(payload.freeze()))),
            PONG => return Ok(Some(Event::Pong(payload.freeze()))),
            CLOSE => return close_frame(&payload).map(|c| Some(Event::Close(c))),
            _ => {}
        }
        let partial = match (opcode, self.partial.take()) {
            (CONTINUATION, None) => {
                return fail(
                    PROTOCOL_ERROR,
                    "a continuation frame with no message to continue",
                )
            }
            (CONTINUATION, Some(mut p)) => {
                p.data.extend_from_slice(&payload);
                p
            }
            (_, Some(_)) => return fail(PROTOCOL_ERROR, "a new message before the last one ended"),
            (_, None) => Partial {
                text: opcode == TEXT,
                compressed: rsv1,
                data: payload,
                checked: 0,
            },
        };
        let mut p = partial;
        if p.text && !p.compressed {
            // Fail as soon as the text cannot be UTF-8, not at the end of a long message.
            match std::str::from_utf8(&p.data[p.checked..]) {
                Ok(_) => p.checked = p.data.len(),
                Err(e) if e.error_len().is_some() => {
                    return fail(INVALID_DATA, "a text message that is not UTF-8")
                }
                Err(e) => p.checked += e.valid_up_to(),
            }
        }
        if !fin {
            self.partial = Some(p);
            return Ok(None);
        }
        let data = if p.compressed {
            match deflate::decompress(&p.data, self.max_message) {
                Ok(data) => Bytes::from(data),
                Err(InflateError::TooBig) => {
                    return fail(TOO_BIG, "a message larger than websocket-max-message")
                }
                Err(InflateError::Invalid) => {
                    return fail(INVALID_DATA, "a compressed message that does not inflate")
                }
            }
        } else {
            p.data.freeze()
        };
        if p.text {
            if p.compressed && std::str::from_utf8(&data).is_err() {
                return fail(INVALID_DATA, "a text message that is not UTF-8");
            }
            if !p.compressed && p.checked != data.len() {
                return fail(
                    INVALID_DATA,
                    "a text message that ends inside a UTF-8 character",
                );
            }
            Ok(Some(Event::Text(data)))
        } else {
            Ok(Some(Event::Binary(data)))
        }
    }
}

struct Frame {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    payload: BytesMut,
}

/// XORs a payload with its masking key.
fn unmask(data: &mut [u8], key: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(w) ^ wide).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

/// A close frame's code and reason (RFC 6455 §5.5.1, §7.4).
fn close_frame(payload: &[u8]) -> Result<Option<(u16, String)>, Fail> {
    match payload.len() {
        0 => return Ok(None),
        1 => return fail(PROTOCOL_ERROR, "a close frame with a one-byte payload"),
        _ => {}
    }
    let code = u16::from_be_bytes([payload[0], payload[1]]);
    if !valid_close_code(code) {
        return fail(PROTOCOL_ERROR, "a close code no endpoint may send");
    }
    let reason = std::str::from_utf8(&payload[2..])
        .map_err(|_| Fail {
            code: INVALID_DATA,
            why: "a close reason that is not UTF-8",
        })?
        .to_string();
    Ok(Some((code, reason)))
}

/// Whether an endpoint may send `code` in a close frame: the codes RFC 6455 defines for it,
/// those IANA registered since (1012-1014), and the ranges for libraries and applications.
pub(crate) fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// The header of a frame the server sends (unmasked): opcode, length, RSV1 for a compressed
/// message.
pub(crate) fn header(opcode: u8, len: usize, compressed: bool) -> Bytes {
    let mut h = Vec::with_capacity(10);
    h.push(0x80 | if compressed { 0x40 } else { 0 } | opcode);
    match len {
        0..=125 => h.push(len as u8),
        126..=0xFFFF => {
            h.push(126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            h.push(127);
            h.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    Bytes::from(h)
}

/// The payload of a close frame the server sends: the code and the reason, cut to fit 125
/// bytes at a character boundary.
pub(crate) fn close_payload(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut p = Vec::with_capacity(2 + end);
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(&reason.as_bytes()[..end]);
    Bytes::from(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn client(first: u8, payload: &[u8]) -> Vec<u8> {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut f = vec![first];
        match payload.len() {
            n @ 0..=125 => f.push(0x80 | n as u8),
            n @ 126..=0xFFFF => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        f
    }

    fn read(reader: &mut Reader, bytes: &[u8]) -> Vec<Result<Event, Fail>> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        loop {
            match reader.next(&mut buf) {
                Ok(Some(e)) => out.push(Ok(e)),
                Ok(None) => return out,
                Err(f) => {
                    out.push(Err(f));
                    return out;
                }
            }
        }
    }

    #[test]
    fn the_rfc_examples() {
        // RFC 6455 §5.7: a masked "Hello", then one fragmented in two.
        let mut r = Reader::new(1 << 20, false);
        let hello = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(
            read(&mut r, &hello),
            [Ok(Event::Text(Bytes::from("Hello")))]
        );
        let mut parts = client(0x01, b"Hel");
        parts.extend(client(0x89, b"ping"));
        parts.extend(client(0x80, b"lo"));
        assert_eq!(
            read(&mut r, &parts),
            [
                Ok(Event::Ping(Bytes::from("ping"))),
                Ok(Event::Text(Bytes::from("Hello")))
            ]
        );
        // Byte by byte, the same.
        let mut buf = BytesMut::new();
        let mut got = None;
        for b in client(0x82, &[7u8; 300]) {
            buf.extend_from_slice(&[b]);
            if let Some(e) = r.next(&mut buf).unwrap() {
                got = Some(e);
            }
        }
        assert_eq!(got, Some(Event::Binary(Bytes::from(vec![7u8; 300]))));
    }

    #[test]
    fn protocol_errors_have_their_codes() {
        let code = |bytes: Vec<u8>| {
            let mut r = Reader::new(1000, false);
            match read(&mut r, &bytes).pop() {
                Some(Err(f)) => f.code,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            code(client(0xC1, b"x")),
            PROTOCOL_ERROR,
            "RSV1 without deflate"
        );
        assert_eq!(code(client(0xA1, b"x")), PROTOCOL_ERROR, "RSV2");
        assert_eq!(code(client(0x83, b"x")), PROTOCOL_ERROR, "opcode 3");
        assert_eq!(
            code(client(0x80, b"x")),
            PROTOCOL_ERROR,
            "lone continuation"
        );
        assert_eq!(code(client(0x09, b"x")), PROTOCOL_ERROR, "fragmented ping");
        assert_eq!(code(client(0x89, &[0; 126])), PROTOCOL_ERROR, "long ping");
        assert_eq!(code(vec![0x81, 0x01, b'x']), PROTOCOL_ERROR, "unmasked");
        let mut two = client(0x01, b"a");
        two.extend(client(0x81, b"b"));
        assert_eq!(code(two), PROTOCOL_ERROR, "a message inside a message");
        assert_eq!(code(client(0x81, &[0xce, 0xba, 0xe1])), INVALID_DATA);
        assert_eq!(code(client(0x82, &[0; 1001])), TOO_BIG);
        assert_eq!(code(client(0x88, &[0x03])), PROTOCOL_ERROR, "1-byte close");
        assert_eq!(code(client(0x88, &1005u16.to_be_bytes())), PROTOCOL_ERROR);
        assert_eq!(code(client(0x88, &999u16.to_be_bytes())), PROTOCOL_ERROR);
        assert_eq!(code(client(0x88, &[0x03, 0xe8, 0xff])), INVALID_DATA);
        // Invalid UTF-8 fails at the fragment that has it, before the message ends.
        let mut r = Reader::new(1000, false);
        let mut buf = BytesMut::from(&client(0x01, b"ok")[..]);
        assert_eq!(r.next(&mut buf), Ok(None));
        buf.extend_from_slice(&client(0x00, &[0xff]));
        assert_eq!(r.next(&mut buf).unwrap_err().code, INVALID_DATA);
        // A character split across fragments is fine.
        let mut r = Reader::new(1000, false);
        let mut split = client(0x01, &[0xce]);
        split.extend(client(0x80, &[0xba]));
        assert_eq!(read(&mut r, &split), [Ok(Event::Text(Bytes::from("κ")))]);
    }

    #[test]
    fn closes_and_compressed_messages() {
        let mut r = Reader::new(1 << 20, true);
        let mut close = 1000u16.to_be_bytes().to_vec();
        close.extend_from_slice(b"bye");
        assert_eq!(
            read(&mut r, &client(0x88, &close)),
            [Ok(Event::Close(Some((1000, "bye".into()))))]
        );
        assert_eq!(read(&mut r, &client(0x88, b"")), [Ok(Event::Close(None))]);
        let text = "compressed ".repeat(100);
        let packed = deflate::compress(text.as_bytes(), 15);
        let (a, b) = packed.split_at(packed.len() / 2);
        let mut frames = client(0x41, a);
        frames.extend(client(0x80, b));
        assert_eq!(read(&mut r, &frames), [Ok(Event::Text(Bytes::from(text)))]);
        assert_eq!(header(TEXT, 5, false)[..], [0x81, 5]);
        assert_eq!(header(BINARY, 300, true)[..], [0xC2, 126, 1, 44]);
        assert_eq!(close_payload(1000, &"é".repeat(100)).len(), 2 + 122);
        assert!(valid_close_code(4999) && !valid_close_code(1004) && !valid_close_code(2999));
    }
}
