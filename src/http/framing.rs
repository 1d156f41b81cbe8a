//! Request framing as the bytes arrive, to catch what hyper lets through: a head with both
//! Content-Length and Transfer-Encoding (hyper reads the body as chunked and drops the length,
//! as RFC 9112 §6.1 allows; a proxy in front may have framed it by the length, which is how
//! requests are smuggled). Such a head is made unparseable before hyper sees its end, so hyper
//! answers 400 and closes.
//!
//! Sans-I/O: [`Framing::scan`] takes the bytes just read and may alter them in place. It knows
//! where each head starts (after the previous body, chunked or sized) so pipelined requests
//! are all checked. On anything it cannot follow it steps aside, and hyper's own parser rules.

/// Where the tracker is in the request stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a head; `line` bytes into the current line.
    Head,
    /// In a body of known length.
    Body { remaining: u64 },
    /// In a chunked body.
    Chunk(Chunk),
    /// Following no more (after a rejected head, or input it cannot make sense of).
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// The chunk-size line; the size read so far and whether digits have ended.
    Size {
        size: u64,
        digits: bool,
        done: bool,
    },
    Data {
        remaining: u64,
    },
    /// The CRLF after chunk data.
    DataEnd {
        cr: bool,
    },
    /// Trailer lines after the last chunk, until an empty line.
    Trailer {
        line: usize,
    },
}

/// What the current head has shown so far.
#[derive(Debug, Default, Clone)]
struct HeadInfo {
    line: Vec<u8>,
    lines: usize,
    length: Option<u64>,
    chunked: bool,
    has_te: bool,
    has_cl: bool,
}

/// The longest header line followed; hyper refuses longer heads anyway.
const MAX_LINE: usize = 64 * 1024;

/// The tracker of one connection.
#[derive(Debug)]
pub struct Framing {
    state: State,
    head: HeadInfo,
}

/// What a scan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Nothing,
    /// A head with both Content-Length and Transfer-Encoding was neutralised.
    Smuggling,
}

impl Default for Framing {
    fn default() -> Self {
        Framing {
            state: State::Head,
            head: HeadInfo::default(),
        }
    }
}

impl Framing {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the connection is between requests with nothing of the next one read yet.
    pub fn at_boundary(&self) -> bool {
        self.state == State::Head && self.head.lines == 0 && self.head.line.is_empty()
    }

    /// Follows the bytes just read (in order); may alter them so hyper rejects a hostile head.
    pub fn scan(&mut self, bytes: &mut [u8]) -> Found {
        let mut found = Found::Nothing;
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                State::Off => return found,
                State::Body { remaining } => {
                    let take = remaining.min((bytes.len() - i) as u64);
                    i += take as usize;
                    self.state = if take == remaining {
                        State::Head
                    } else {
                        State::Body {
                            remaining: remaining - take,
                        }
                    };
                }
                State::Chunk(chunk) => {
                    i += self.chunked(chunk, &bytes[i..]);
                }
                State::Head => {
                    let Some(end) = memchr::memchr(b'\n', &bytes[i..]) else {
                        // The line goes on in the next read: keep its start.
                        if self.head.line.len() + (bytes.len() - i) > MAX_LINE {
                            self.state = State::Off;
                            return found;
                        }
                        self.head.line.extend_from_slice(&bytes[i..]);
                        return found;
                    };
                    // A line ends (CRLF or a bare LF, both of which hyper accepts). Most lines
                    // arrive whole and are looked at where they are; a split one is joined.
                    let pending = std::mem::take(&mut self.head.line);
                    let whole;
                    let line: &[u8] = if pending.is_empty() {
                        &bytes[i..i + end]
                    } else {
                        if pending.len() + end > MAX_LINE {
                            self.state = State::Off;
                            return found;
                        }
                        whole = [&pending[..], &bytes[i..i + end]].concat();
                        &whole
                    };
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if line.is_empty() && self.head.lines == 0 {
                        i += end + 1; // a stray empty line before a request
                        continue;
                    }
                    if !line.is_empty() {
                        self.head.lines += 1;
                        if self.head.lines > 1 {
                            self.header_line(line);
                        }
                        i += end + 1;
                        continue;
                    }
                    i += end;
                    // The empty line that ends the head: decide before hyper sees it.
                    if self.head.has_cl && self.head.has_te {
                        bytes[i] = 0; // "\r\n\r\0": hyper's parser fails, it answers 400
                        found = Found::Smuggling;
                        self.state = State::Off;
                        return found;
                    }
                    i += 1;
                    let head = std::mem::take(&mut self.head);
                    self.state = if head.chunked {
                        State::Chunk(Chunk::Size {
                            size: 0,
                            digits: false,
                            done: false,
                        })
                    } else {
                        match head.length {
                            Some(0) | None => State::Head,
                            Some(n) => State::Body { remaining: n },
                        }
                    };
                }
            }
        }
        found
    }

    /// Notes Content-Length and Transfer-Encoding from one header line.
    fn header_line(&mut self, line: &[u8]) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return;
        };
        let name = &line[..colon];
        let value = std::str::from_utf8(&line[colon + 1..]).unwrap_or("").trim();
        if name.eq_ignore_ascii_case(b"content-length") {
            self.head.has_cl = true;
            match value.parse::<u64>() {
                Ok(n) if self.head.length.is_none_or(|m| m == n) => self.head.length = Some(n),
                _ => self.state = State::Off, // hyper refuses it; nothing to follow
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.head.has_te = true;
            let last = value.rsplit(',').next().unwrap_or("").trim();
            self.head.chunked = last.eq_ignore_ascii_case("chunked");
        }
    }

    /// Follows a chunked body; returns how many bytes of `bytes` it consumed.
    fn chunked(&mut self, chunk: Chunk, bytes: &[u8]) -> usize {
        let mut i = 0;
        let mut chunk = chunk;
        while i < bytes.len() {
            let b = bytes[i];
            chunk = match chunk {
                Chunk::Size { size, digits, done } => {
                    i += 1;
                    match b {
                        b'\n' if digits => {
                            if size == 0 {
                                Chunk::Trailer { line: 0 }
                            } else {
                                Chunk::Data { remaining: size }
                            }
                        }
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' if !done => {
                            let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
                            match size.checked_mul(16).and_then(|s| s.checked_add(digit)) {
                                Some(size) => Chunk::Size {
                                    size,
                                    digits: true,
                                    done,
                                },
                                None => {
                                    self.state = State::Off;
                                    return i;
                                }
                            }
                        }
                        // Extensions, whitespace, CR: skipped to the end of the line.
                        _ if digits => Chunk::Size {
                            size,
                            digits,
                            done: true,
                        },
                        _ => {
                            self.state = State::Off;
                            return i;
                        }
                    }
                }
                Chunk::Data { remaining } => {
                    let take = remaining.min((bytes.len() - i) as u64);
                    i += take as usize;
                    if take == remaining {
                        Chunk::DataEnd { cr: false }
                    } else {
                        Chunk::Data {
                            remaining: remaining - take,
                        }
                    }
                }
                Chunk::DataEnd { cr } => {
                    i += 1;
                    match b {
                        b'\r' if !cr => Chunk::DataEnd { cr: true },
                        b'\n' => Chunk::Size {
                            size: 0,
                            digits: false,
                            done: false,
                        },
                        _ => {
                            self.state = State::Off;
                            return i;
                        }
                    }
                }
                Chunk::Trailer { line } => {
                    i += 1;
                    match b {
                        b'\n' if line == 0 => {
                            self.state = State::Head;
                            return i;
                        }
                        b'\n' => Chunk::Trailer { line: 0 },
                        b'\r' => Chunk::Trailer { line },
                        _ => Chunk::Trailer { line: line + 1 },
                    }
                }
            };
        }
        self.state = State::Chunk(chunk);
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(input: &[u8]) -> (Vec<u8>, Found) {
        let mut bytes = input.to_vec();
        let found = Framing::new().scan(&mut bytes);
        (bytes, found)
    }

    /// Scans in pieces of every size, as reads may split the input anywhere.
    fn scan_split(input: &[u8], piece: usize) -> (Vec<u8>, Found) {
        let mut f = Framing::new();
        let mut out = Vec::new();
        let mut found = Found::Nothing;
        for part in input.chunks(piece) {
            let mut part = part.to_vec();
            if f.scan(&mut part) == Found::Smuggling {
                found = Found::Smuggling;
            }
            out.extend(part);
        }
        (out, found)
    }

    const CL_TE: &[u8] = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";

    #[test]
    fn content_length_with_transfer_encoding_is_neutralised() {
        for piece in 1..=CL_TE.len() {
            let (out, found) = scan_split(CL_TE, piece);
            assert_eq!(found, Found::Smuggling, "piece {piece}");
            let end = out.windows(4).position(|w| w == b"\r\n\r\0");
            assert!(
                end.is_some(),
                "piece {piece}: {:?}",
                String::from_utf8_lossy(&out)
            );
        }
        let te_first =
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(scan_all(te_first).1, Found::Smuggling);
    }

    #[test]
    fn ordinary_requests_pass_untouched() {
        let input = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc\
                      POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nxyz\r\n0\r\nTrailer: t\r\n\r\n\
                      GET /c HTTP/1.1\nHost: x\n\n";
        for piece in 1..=input.len() {
            let (out, found) = scan_split(input, piece);
            assert_eq!(found, Found::Nothing);
            assert_eq!(out, input.to_vec());
        }
    }

    #[test]
    fn a_smuggled_second_request_is_found_after_bodies() {
        // The body of the first request is framed correctly, so the hostile head after it is
        // checked too (sized body, then chunked body, then the hostile one).
        let mut input = b"POST /a HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody".to_vec();
        input.extend_from_slice(
            b"POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n",
        );
        input.extend_from_slice(CL_TE);
        for piece in [1, 3, 7, 64, input.len()] {
            assert_eq!(
                scan_split(&input, piece).1,
                Found::Smuggling,
                "piece {piece}"
            );
        }
        // A body that looks like a hostile head is body, not a head.
        let mut input = format!(
            "POST /a HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            CL_TE.len()
        )
        .into_bytes();
        input.extend_from_slice(CL_TE);
        assert_eq!(scan_all(&input).1, Found::Nothing);
    }

    #[test]
    fn boundaries() {
        let mut f = Framing::new();
        assert!(f.at_boundary());
        let mut part = b"GET / HTTP/1.1\r\nHo".to_vec();
        f.scan(&mut part);
        assert!(!f.at_boundary());
        let mut rest = b"st: x\r\n\r\n".to_vec();
        f.scan(&mut rest);
        assert!(f.at_boundary());
    }

    #[test]
    fn gives_up_on_what_hyper_will_refuse() {
        let (_, found) =
            scan_all(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(found, Found::Nothing);
        let (_, found) = scan_all(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        assert_eq!(found, Found::Nothing);
    }
}
