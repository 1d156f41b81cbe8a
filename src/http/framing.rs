//! Request framing as the bytes arrive, to catch what hyper lets through before hyper sees
//! it. Sans-I/O: [`Framing::scan`] takes the bytes just read and may alter them in place. It
//! knows where each head starts (after the previous body, chunked or sized) so pipelined
//! requests are all checked, and it follows a chunked body exactly as hyper's decoder does
//! (hyper 1.12's `ChunkedState`) and reads Content-Length as hyper's server does, so the two
//! agree on where every request ends (the `framing_hyper` fuzz target holds them to it).
//!
//! What it refuses, by altering a byte so that hyper's own parser fails and hyper answers 400
//! (a head) or the body read fails (a chunk, answered 400 by the bridge):
//! - a head with both Content-Length and Transfer-Encoding (hyper reads the body as chunked
//!   and drops the length, as RFC 9112 §6.1 allows; a proxy in front may have framed it by
//!   the length, which is how requests are smuggled);
//! - a bare LF ending a line of a head or of the trailers (RFC 9112 §2.2 lets a recipient
//!   accept it; hyper does in heads. A proxy in front that does not is the classic
//!   disagreement about where a header, and so a request, ends);
//! - a chunk extension that is not `;name[=value]` (RFC 9112 §7.1.1): an empty one (`2;`) or
//!   one with control characters (hyper skips any bytes up to the CR).
//!
//! On anything hyper itself refuses it steps aside ([`State::Off`]): hyper closes the
//! connection, so there is nothing after it to follow.

use crate::rules;

/// Where the tracker is in the request stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a head.
    Head,
    /// In a body of known length.
    Body { remaining: u64 },
    /// In a chunked body.
    Chunk(Chunk),
    /// Following no more (after a rejected head, or input hyper refuses).
    Off,
}

/// The chunked decoder's states, as hyper's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// The first hex digit of a chunk size.
    Start,
    /// More hex digits of the size read so far.
    Size(u64),
    /// Whitespace after the size.
    SizeLws(u64),
    /// A chunk extension, in its own grammar.
    Ext(u64, Ext),
    /// The LF of the size line.
    SizeLf(u64),
    Data(u64),
    /// The CRLF after chunk data.
    DataCr,
    DataLf,
    /// After the last chunk's size line: the CR of the final CRLF, or a trailer line.
    EndCr,
    /// In a trailer line.
    Trailer,
    TrailerLf,
    /// The LF of the final CRLF.
    EndLf,
}

/// Where a chunk extension is: `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    BeforeName,
    Name,
    AfterName,
    BeforeValue,
    Token,
    Quoted,
    Escape,
    AfterValue,
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

/// The longest header line followed: above any `buffer-size` a site sets (hyper refuses a
/// head past it, so the tracker never holds more than that and one read).
const MAX_LINE: usize = 1024 * 1024;

/// The tracker of one connection.
#[derive(Debug)]
pub(crate) struct Framing {
    state: State,
    head: HeadInfo,
    /// The current request's body length so far (a chunked body's grows chunk by chunk).
    body: u64,
    /// With [`Framing::recording`]: the request line and body length of each request as it
    /// ends, so the differential fuzz target can hold the tracker's request boundaries
    /// against hyper's.
    ended: Option<Vec<(Vec<u8>, u64)>>,
    /// The current request line, kept only when recording.
    line: Vec<u8>,
}

/// What a scan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    Nothing,
    /// A head with both Content-Length and Transfer-Encoding was neutralised.
    Smuggling,
    /// A line of a head or of trailers ended with a bare LF: neutralised.
    BareLf,
    /// A chunk extension out of its grammar: neutralised.
    BadChunkExtension,
}

impl Found {
    /// What the log line says of the refused request.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Found::Nothing => "nothing",
            Found::Smuggling => {
                "both Content-Length and Transfer-Encoding (a request smuggling attempt)"
            }
            Found::BareLf => "a line ending in a bare LF instead of CRLF",
            Found::BadChunkExtension => "a malformed chunk extension",
        }
    }
}

impl Default for Framing {
    fn default() -> Self {
        Framing {
            state: State::Head,
            head: HeadInfo::default(),
            body: 0,
            ended: None,
            line: Vec::new(),
        }
    }
}

/// The byte that replaces an offending one so hyper's parser fails where it is: NUL is
/// allowed nowhere in a head or a trailer, and LF is the one byte hyper refuses inside a
/// chunk extension.
const POISON_HEAD: u8 = 0;
const POISON_EXT: u8 = b'\n';

impl Framing {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A tracker that records where each request ends (see [`Framing::ended`]).
    pub(crate) fn recording() -> Self {
        Framing {
            ended: Some(Vec::new()),
            ..Self::default()
        }
    }

    /// The request line and body length of each request that has ended, in order (with
    /// [`Framing::recording`]).
    pub(crate) fn ended(&self) -> &[(Vec<u8>, u64)] {
        self.ended.as_deref().unwrap_or_default()
    }

    /// A request's body is over: it ends here.
    fn end_request(&mut self) {
        if let Some(ended) = &mut self.ended {
            ended.push((std::mem::take(&mut self.line), self.body));
        }
        self.body = 0;
    }

    /// Whether the connection is between requests with nothing of the next one read yet.
    pub(crate) fn at_boundary(&self) -> bool {
        self.state == State::Head && self.head.lines == 0 && self.head.line.is_empty()
    }

    /// Follows the bytes just read (in order); may alter them so hyper rejects a hostile
    /// request. Reports the first refusal.
    pub(crate) fn scan(&mut self, bytes: &mut [u8]) -> Found {
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                State::Off => return Found::Nothing,
                State::Body { remaining } => {
                    let take = remaining.min((bytes.len() - i) as u64);
                    i += take as usize;
                    self.state = if take == remaining {
                        self.end_request();
                        State::Head
                    } else {
                        State::Body {
                            remaining: remaining - take,
                        }
                    };
                }
                State::Chunk(chunk) => match self.chunked(chunk, bytes, i) {
                    Ok(next) => i = next,
                    Err(found) => {
                        self.state = State::Off;
                        return found;
                    }
                },
                State::Head => {
                    let Some(end) = memchr::memchr(b'\n', &bytes[i..]) else {
                        // The line goes on in the next read: keep its start.
                        if self.head.line.len() + (bytes.len() - i) > MAX_LINE {
                            self.state = State::Off;
                            return Found::Nothing;
                        }
                        self.head.line.extend_from_slice(&bytes[i..]);
                        return Found::Nothing;
                    };
                    // A line ends. Most lines arrive whole and are looked at where they are;
                    // a split one is joined.
                    let pending = std::mem::take(&mut self.head.line);
                    let whole;
                    let line: &[u8] = if pending.is_empty() {
                        &bytes[i..i + end]
                    } else {
                        if pending.len() + end > MAX_LINE {
                            self.state = State::Off;
                            return Found::Nothing;
                        }
                        whole = [&pending[..], &bytes[i..i + end]].concat();
                        &whole
                    };
                    let Some(line) = line.strip_suffix(b"\r") else {
                        bytes[i + end] = POISON_HEAD;
                        self.state = State::Off;
                        return Found::BareLf;
                    };
                    if line.is_empty() && self.head.lines == 0 {
                        i += end + 1; // a stray empty line before a request (hyper refuses it)
                        continue;
                    }
                    if !line.is_empty() {
                        self.head.lines += 1;
                        if self.head.lines > 1 {
                            self.header_line(line);
                        } else if self.ended.is_some() {
                            self.line = line.to_vec();
                        }
                        i += end + 1;
                        continue;
                    }
                    // The empty line that ends the head: decide before hyper sees it.
                    if self.head.has_cl && self.head.has_te {
                        bytes[i + end] = POISON_HEAD; // "\r\n\r\0": hyper answers 400
                        self.state = State::Off;
                        return Found::Smuggling;
                    }
                    i += end + 1;
                    let head = std::mem::take(&mut self.head);
                    self.state = if head.chunked {
                        State::Chunk(Chunk::Start)
                    } else {
                        match head.length {
                            Some(0) | None => {
                                self.end_request();
                                State::Head
                            }
                            Some(n) => {
                                self.body = n;
                                State::Body { remaining: n }
                            }
                        }
                    };
                }
            }
        }
        Found::Nothing
    }

    /// Notes Content-Length and Transfer-Encoding from one header line.
    fn header_line(&mut self, line: &[u8]) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return;
        };
        let name = &line[..colon];
        let value = &line[colon + 1..];
        if name.eq_ignore_ascii_case(b"content-length") {
            self.head.has_cl = true;
            // As hyper's server reads it: digits, the same in every Content-Length line.
            match rules::content_length(value) {
                Some(n) if self.head.length.is_none_or(|m| m == n) => self.head.length = Some(n),
                _ => self.state = State::Off, // hyper refuses it; nothing to follow
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.head.has_te = true;
            self.head.chunked = rules::ends_chunked(value);
        }
    }

    /// Follows a chunked body from `bytes[i]`: where it stopped (the end of `bytes`, or the
    /// end of the body), or what it refused. Hyper's refusals step aside.
    fn chunked(
        &mut self,
        mut chunk: Chunk,
        bytes: &mut [u8],
        mut i: usize,
    ) -> Result<usize, Found> {
        let off = Err(Found::Nothing);
        while i < bytes.len() {
            let b = bytes[i];
            chunk = match chunk {
                Chunk::Data(remaining) => {
                    let take = remaining.min((bytes.len() - i) as u64);
                    i += take as usize;
                    if take == remaining {
                        Chunk::DataCr
                    } else {
                        Chunk::Data(remaining - take)
                    }
                }
                _ => {
                    i += 1;
                    match step(chunk, b) {
                        Step::Next(next) => {
                            if let (Chunk::SizeLf(size), Chunk::Data(_)) = (chunk, next) {
                                self.body = self.body.saturating_add(size);
                            }
                            next
                        }
                        Step::BodyEnd => {
                            self.end_request();
                            self.state = State::Head;
                            return Ok(i);
                        }
                        Step::Refuse(found, poison) => {
                            bytes[i - 1] = poison;
                            return Err(found);
                        }
                        Step::HyperRefuses => return off,
                    }
                }
            };
        }
        self.state = State::Chunk(chunk);
        Ok(i)
    }
}

/// One byte of a chunked body, outside chunk data.
enum Step {
    Next(Chunk),
    /// The final CRLF: the body is over.
    BodyEnd,
    /// Refused here: replace the byte with this one.
    Refuse(Found, u8),
    /// hyper's decoder fails on it by itself.
    HyperRefuses,
}

fn step(chunk: Chunk, b: u8) -> Step {
    let hex = |size: u64| {
        let digit = (b as char).to_digit(16)?;
        size.checked_mul(16)?.checked_add(u64::from(digit))
    };
    let ws = b == b' ' || b == b'\t';
    let end_of_size = |size: u64| Step::Next(Chunk::SizeLf(size));
    match chunk {
        Chunk::Start => match hex(0) {
            Some(size) => Step::Next(Chunk::Size(size)),
            None => Step::HyperRefuses,
        },
        Chunk::Size(size) => match b {
            b';' => Step::Next(Chunk::Ext(size, Ext::BeforeName)),
            b'\r' => end_of_size(size),
            _ if ws => Step::Next(Chunk::SizeLws(size)),
            _ => match hex(size) {
                Some(size) => Step::Next(Chunk::Size(size)),
                None => Step::HyperRefuses, // not a digit, or an overflow
            },
        },
        Chunk::SizeLws(size) => match b {
            b';' => Step::Next(Chunk::Ext(size, Ext::BeforeName)),
            b'\r' => end_of_size(size),
            _ if ws => Step::Next(Chunk::SizeLws(size)),
            _ => Step::HyperRefuses,
        },
        Chunk::Ext(size, ext) => {
            // hyper refuses an LF in an extension, and takes anything else up to the CR.
            if b == b'\n' {
                return Step::HyperRefuses;
            }
            match extension(ext, b) {
                Some(None) => end_of_size(size),
                Some(Some(ext)) => Step::Next(Chunk::Ext(size, ext)),
                None => Step::Refuse(Found::BadChunkExtension, POISON_EXT),
            }
        }
        Chunk::SizeLf(size) => match b {
            b'\n' if size == 0 => Step::Next(Chunk::EndCr),
            b'\n' => Step::Next(Chunk::Data(size)),
            _ => Step::HyperRefuses,
        },
        // Skipped in bulk by the caller, never a byte at a time.
        Chunk::Data(_) => Step::Next(chunk),
        Chunk::DataCr => match b {
            b'\r' => Step::Next(Chunk::DataLf),
            _ => Step::HyperRefuses,
        },
        Chunk::DataLf => match b {
            b'\n' => Step::Next(Chunk::Start),
            _ => Step::HyperRefuses,
        },
        Chunk::EndCr => match b {
            b'\r' => Step::Next(Chunk::EndLf),
            b'\n' => Step::Refuse(Found::BareLf, POISON_HEAD),
            _ => Step::Next(Chunk::Trailer),
        },
        Chunk::Trailer => match b {
            b'\r' => Step::Next(Chunk::TrailerLf),
            b'\n' => Step::Refuse(Found::BareLf, POISON_HEAD),
            _ => Step::Next(Chunk::Trailer),
        },
        Chunk::TrailerLf => match b {
            b'\n' => Step::Next(Chunk::EndCr),
            _ => Step::HyperRefuses,
        },
        Chunk::EndLf => match b {
            b'\n' => Step::BodyEnd,
            _ => Step::HyperRefuses,
        },
    }
}

/// One byte of a chunk extension: the next place in it (`None` inside: the extension ended
/// with the CR of its line), or `None` outside when the byte breaks the grammar.
fn extension(ext: Ext, b: u8) -> Option<Option<Ext>> {
    let ws = b == b' ' || b == b'\t';
    let next = match (ext, b) {
        (Ext::BeforeName | Ext::AfterName | Ext::BeforeValue | Ext::AfterValue, _) if ws => ext,
        (Ext::BeforeName, _) if rules::is_tchar(b) => Ext::Name,
        (Ext::Name, _) if rules::is_tchar(b) => Ext::Name,
        (Ext::Name, _) if ws => Ext::AfterName,
        (Ext::Name | Ext::AfterName, b'=') => Ext::BeforeValue,
        (Ext::BeforeValue, b'"') => Ext::Quoted,
        (Ext::BeforeValue | Ext::Token, _) if rules::is_tchar(b) => Ext::Token,
        (Ext::Token, _) if ws => Ext::AfterValue,
        (Ext::Quoted, b'"') => Ext::AfterValue,
        (Ext::Quoted, b'\\') => Ext::Escape,
        // qdtext: HTAB, SP, visible characters but `"` and `\`, obs-text.
        (Ext::Quoted, _) if ws || (0x21..=0x7e).contains(&b) || b >= 0x80 => Ext::Quoted,
        // quoted-pair: HTAB, SP, visible characters, obs-text.
        (Ext::Escape, _) if ws || (0x21..=0x7e).contains(&b) || b >= 0x80 => Ext::Quoted,
        (Ext::Name | Ext::AfterName | Ext::Token | Ext::AfterValue, b';') => Ext::BeforeName,
        (Ext::Name | Ext::AfterName | Ext::Token | Ext::AfterValue, b'\r') => return Some(None),
        _ => return None,
    };
    Some(Some(next))
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
            let now = f.scan(&mut part);
            if found == Found::Nothing {
                found = now;
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
        let input =
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc\
                      POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nxyz\r\n\
                      5 ; a ; b=\"q \\\" \\z\";c = d \r\nhello\r\n0\r\nTrailer: t\r\n\r\n\
                      GET /c HTTP/1.1\r\nHost: x\r\n\r\n";
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

    /// Scans `input` in pieces of every size: what is found, and whether the byte at `at`
    /// was replaced (and nothing else changed).
    fn refused_at(input: &[u8], at: usize, want: Found) {
        for piece in 1..=input.len() {
            let (out, found) = scan_split(input, piece);
            assert_eq!(
                found,
                want,
                "piece {piece}: {:?}",
                String::from_utf8_lossy(input)
            );
            for (k, (a, b)) in input.iter().zip(&out).enumerate() {
                assert_eq!(a != b, k == at, "piece {piece}, byte {k}");
            }
        }
    }

    #[test]
    fn a_bare_lf_in_a_head_or_in_trailers_is_neutralised() {
        let head = b"GET / HTTP/1.1\r\nDummy: x\nContent-Length: 23\r\n\r\n";
        refused_at(head, 24, Found::BareLf);
        refused_at(b"GET / HTTP/1.1\nHost: x\r\n\r\n", 14, Found::BareLf);
        refused_at(b"GET / HTTP/1.1\r\nHost: x\r\n\n", 25, Found::BareLf);
        // In trailers: hyper reads a trailer line to its CRLF, so a bare LF would end the
        // trailers for a lenient reader and not for hyper.
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let trailer = [&chunked[..], b"0\r\nA: b\nGET /x HTTP/1.1\r\n\r\n"].concat();
        refused_at(&trailer, chunked.len() + 7, Found::BareLf);
        let empty = [&chunked[..], b"0\r\n\n"].concat();
        refused_at(&empty, chunked.len() + 3, Found::BareLf);
    }

    #[test]
    fn chunk_extensions_follow_their_grammar() {
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let n = chunked.len();
        for (ext, at) in [
            (&b"2;\r\nab\r\n0\r\n\r\n"[..], 2),
            (b"3;\x01\r\nabc\r\n0\r\n\r\n", 2),
            (b"3;a=\r\nabc\r\n0\r\n\r\n", 4),
            (b"3;a b\r\nabc\r\n0\r\n\r\n", 4),
            (b"3;a=\"x\r\nabc\r\n0\r\n\r\n", 6),
            (b"3;a=b c\r\nabc\r\n0\r\n\r\n", 6),
            (b"0;=1\r\n\r\n", 2),
        ] {
            let input = [&chunked[..], ext].concat();
            refused_at(&input, n + at, Found::BadChunkExtension);
        }
    }

    #[test]
    fn a_chunked_body_ends_where_hyper_ends_it() {
        // After the body, the next head is checked: the tracker knows where it starts.
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        for body in [
            &b"0\r\n\r\n"[..],
            b"1\r\nx\r\n0\r\n\r\n",
            b"A\t \r\n0123456789\r\n0\r\nT: 1\r\nU: 2\r\n\r\n",
        ] {
            let input = [&chunked[..], body, CL_TE].concat();
            assert_eq!(
                scan_all(&input).1,
                Found::Smuggling,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn gives_up_on_what_hyper_will_refuse() {
        let (_, found) =
            scan_all(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(found, Found::Nothing);
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        for body in [
            &b"zz\r\n"[..],
            b"1\nx",
            b"1\r\nxy",
            b"1\r\nx\r0",
            b"0\r\nT: 1\rx",
            b"ffffffffffffffffff\r\n",
        ] {
            let input = [&chunked[..], body, CL_TE].concat();
            let (out, found) = scan_all(&input);
            assert_eq!(found, Found::Nothing, "{:?}", String::from_utf8_lossy(body));
            assert_eq!(out, input, "untouched: hyper refuses it itself");
        }
    }
}
