//! Writing a request's line in its format ([`AccessFormat`], read at startup by
//! `crate::log::format`): dragoman's line, JSON, or a uWSGI logformat's pieces in turn.

use crate::log::format::{AccessFormat, Derived, Piece, Template, Var};
use crate::log::memory::Sample;
use crate::log::stamp::{self, PerSecond};

use super::facts::{Addr, Facts, Finished};

/// The worker's side of a line: what it writes about itself, and the texts it keeps for the
/// current second.
pub(crate) struct Context {
    pub(crate) pid: u32,
    pub(crate) worker: usize,
    /// `[pid] [worker N] `, made once.
    pub(crate) tag: String,
    /// `[stamp] [pid] [worker N] `, the default line's prefix, made once a second.
    prefix: PerSecond,
    /// `logformat-strftime`: `%(ftime)` uses `log-date`'s format.
    pub(crate) strftime: Option<std::ffi::CString>,
    /// The last memory sample (for `memory-report` and `%(rss)` ...).
    pub(crate) memory: Sample,
    /// `memory-report`: 0 off, 1 address space and RSS, 2 also USS and PSS.
    pub(crate) memory_report: u8,
    iso: PerSecond,
    ltime: PerSecond,
    ftime: PerSecond,
    ctime: PerSecond,
}

impl Context {
    pub(crate) fn new(
        pid: u32,
        worker: usize,
        strftime: Option<std::ffi::CString>,
        memory_report: u8,
    ) -> Context {
        Context {
            pid,
            worker,
            tag: format!("[{pid}] [worker {worker}] "),
            strftime,
            memory: Default::default(),
            memory_report,
            prefix: PerSecond::default(),
            iso: PerSecond::default(),
            ltime: PerSecond::default(),
            ftime: PerSecond::default(),
            ctime: PerSecond::default(),
        }
    }
}

impl AccessFormat {
    /// Appends the line for a finished request to `out`, its newline included.
    pub(crate) fn render(
        &self,
        out: &mut Vec<u8>,
        facts: &Facts,
        done: &Finished,
        ctx: &mut Context,
    ) {
        match self {
            AccessFormat::Default => default_line(out, facts, done, ctx),
            AccessFormat::Json => json_line(out, facts, done, ctx),
            AccessFormat::Custom(t) => t.render(out, facts, done, ctx),
        }
    }
}

/// `[stamp] [pid] [worker N] ADDR "METHOD URI PROTO" STATUS BYTES bytes in MS ms`, with
/// `memory-report`'s figures after the worker as uWSGI puts them before its line.
///
/// The line every request gets by default, so written for speed: the prefix is made once a
/// second, the line's room is made once, and the pieces are copied into it (a `Vec::push`
/// per piece, with its capacity check and length update each time, cost twice as much).
fn default_line(out: &mut Vec<u8>, facts: &Facts, done: &Finished, ctx: &mut Context) {
    let tag = &ctx.tag;
    let prefix = ctx.prefix.get(done.end_wall_secs, |s| {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
        format!("[{}] {tag}", stamp::header_at(at))
    });
    // What goes before the request: the address, and with memory-report the figures; made
    // apart only when it needs more than a copy.
    let mut lead = Vec::new();
    let client: &[u8] = match facts.addr() {
        Addr::Checked(a) if ctx.memory_report == 0 => a,
        Addr::None if ctx.memory_report == 0 => b"-",
        other => {
            if ctx.memory_report > 0 {
                ctx.memory.report(&mut lead, ctx.memory_report);
            }
            addr(&mut lead, other);
            &lead
        }
    };
    let (method, uri, proto) = (
        facts.method().as_bytes(),
        facts.uri().as_bytes(),
        facts.proto().as_bytes(),
    );
    let frac = done.micros % 1000;
    let pieces: [&[u8]; 4] = [prefix.as_bytes(), client, method, uri];
    // The pieces, the three numbers (20 digits at most each) and the fixed text.
    let room = pieces.iter().map(|p| p.len()).sum::<usize>() + proto.len() + 3 * 20 + 64;
    let start = out.len();
    out.resize(start + room, 0);
    let mut line = Cursor {
        buf: &mut out[start..],
        at: 0,
    };
    line.put(pieces[0]);
    line.put(pieces[1]);
    line.put(b" \"");
    line.put(method);
    line.put(b" ");
    line.put(uri);
    line.put(b" ");
    line.put(proto);
    line.put(b"\" ");
    match done.status {
        // Every status a response can have: three digits, without itoa's general loop.
        status @ 100..=999 => line.put(&[
            b'0' + (status / 100) as u8,
            b'0' + (status / 10 % 10) as u8,
            b'0' + (status % 10) as u8,
        ]),
        status => line.number(u64::from(status)),
    }
    line.put(b" ");
    line.number(done.body_bytes);
    line.put(b" bytes in ");
    line.number(done.micros / 1000);
    line.put(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
        b' ',
        b'm',
        b's',
    ]);
    if done.cut {
        line.put(b" (the body failed part way)");
    }
    line.put(b"\n");
    let end = start + line.at;
    out.truncate(end);
}

/// Writes into room already made; a piece that would not fit is left out (the room is
/// counted from the pieces, so none is: this only keeps a miscount from panicking).
struct Cursor<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Cursor<'_> {
    fn put(&mut self, piece: &[u8]) {
        if let Some(to) = self.buf.get_mut(self.at..self.at + piece.len()) {
            to.copy_from_slice(piece);
            self.at += piece.len();
        }
    }

    fn number(&mut self, n: u64) {
        self.put(itoa::Buffer::new().format(n).as_bytes());
    }
}

/// One JSON object: time (UTC, ISO 8601), pid, worker, addr, method, uri, proto, status,
/// size (body bytes), micros, msecs, host, referer, uagent (null when absent).
fn json_line(out: &mut Vec<u8>, facts: &Facts, done: &Finished, ctx: &mut Context) {
    out.extend_from_slice(b"{\"time\": \"");
    let second = done.end_wall_secs;
    out.extend_from_slice(ctx.iso.get(second, stamp::iso_utc).as_bytes());
    out.push(b'.');
    let ms = done.end_wall_us / 1000 % 1000;
    out.extend_from_slice(&[
        b'0' + (ms / 100) as u8,
        b'0' + (ms / 10 % 10) as u8,
        b'0' + (ms % 10) as u8,
    ]);
    out.extend_from_slice(b"Z\", \"pid\": ");
    number(out, u64::from(ctx.pid));
    out.extend_from_slice(b", \"worker\": ");
    number(out, ctx.worker as u64);
    out.extend_from_slice(b", \"addr\": ");
    json_or_null(out, facts.addr().bytes());
    out.extend_from_slice(b", \"method\": ");
    json_str(out, facts.method().as_bytes());
    out.extend_from_slice(b", \"uri\": ");
    json_str(out, facts.uri().as_bytes());
    out.extend_from_slice(b", \"proto\": ");
    json_str(out, facts.proto().as_bytes());
    out.extend_from_slice(b", \"status\": ");
    number(out, u64::from(done.status));
    out.extend_from_slice(b", \"size\": ");
    number(out, done.body_bytes);
    out.extend_from_slice(b", \"micros\": ");
    number(out, done.micros);
    out.extend_from_slice(b", \"msecs\": ");
    number(out, done.micros / 1000);
    out.extend_from_slice(b", \"host\": ");
    json_or_null(out, facts.host(0));
    out.extend_from_slice(b", \"referer\": ");
    json_or_null(out, facts.header(1));
    out.extend_from_slice(b", \"uagent\": ");
    json_or_null(out, facts.header(2));
    if done.cut {
        out.extend_from_slice(b", \"cut\": true");
    }
    out.extend_from_slice(b"}\n");
}

impl Template {
    pub(crate) fn render(
        &self,
        out: &mut Vec<u8>,
        facts: &Facts,
        done: &Finished,
        ctx: &mut Context,
    ) {
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.extend_from_slice(t.as_bytes()),
                Piece::Var(v) => variable(out, v, facts, done, ctx),
            }
        }
        out.push(b'\n');
    }
}

fn variable(out: &mut Vec<u8>, var: &Var, facts: &Facts, done: &Finished, ctx: &mut Context) {
    let start_us = done.end_wall_us.saturating_sub(done.micros);
    let start_secs = start_us / 1_000_000;
    match var {
        Var::Uri => checked_or_dash(out, Some(facts.uri().as_bytes())),
        Var::Method => checked_or_dash(out, Some(facts.method().as_bytes())),
        Var::User | Var::Missing => out.push(b'-'),
        Var::Addr => addr(out, facts.addr()),
        Var::Proto => out.extend_from_slice(facts.proto().as_bytes()),
        Var::Header(i) => checked_or_dash(out, facts.header(*i)),
        Var::Host(i) => checked_or_dash(out, facts.host(*i)),
        Var::Status => number(out, u64::from(done.status)),
        Var::BodySize => number(out, done.body_bytes),
        Var::HeadSize => number(out, done.head_bytes),
        Var::Size => number(out, done.head_bytes + done.body_bytes),
        Var::ContentLength(i) => number(
            out,
            facts
                .header(*i)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0),
        ),
        Var::Micros => number(out, done.micros),
        Var::Msecs => number(out, done.micros / 1000),
        Var::Secs => {
            number(out, done.micros / 1_000_000);
            out.push(b'.');
            let frac = done.micros % 1_000_000;
            let mut digits = itoa::Buffer::new();
            let digits = digits.format(frac);
            out.extend(std::iter::repeat_n(b'0', 6 - digits.len()));
            out.extend_from_slice(digits.as_bytes());
        }
        Var::Time => number(out, start_secs),
        Var::Ltime => {
            let t = ctx.ltime.get(start_secs, |s| stamp::apache_local(s as i64));
            out.extend_from_slice(t.as_bytes());
        }
        Var::Ftime => {
            let t = match &ctx.strftime {
                Some(format) => ctx
                    .ftime
                    .get(start_secs, |s| stamp::strftime_local(s as i64, format)),
                None => ctx.ltime.get(start_secs, |s| stamp::apache_local(s as i64)),
            };
            checked_or_dash(out, Some(t.as_bytes()));
        }
        Var::Ctime => {
            let t = ctx.ctime.get(start_secs, |s| stamp::ctime_local(s as i64));
            out.extend_from_slice(t.as_bytes());
        }
        Var::Epoch => number(out, done.end_wall_secs),
        Var::Tmsecs => number(out, start_us / 1000),
        Var::Tmicros => number(out, start_us),
        Var::Pid => number(out, u64::from(ctx.pid)),
        Var::Wid => number(out, ctx.worker as u64),
        Var::Headers => number(out, done.header_count as u64),
        Var::WriteErrors => number(out, u64::from(done.cut)),
        Var::Vsz => number(out, ctx.memory.vsz),
        Var::Rss => number(out, ctx.memory.rss),
        Var::VszM => number(out, ctx.memory.vsz / 1024 / 1024),
        Var::RssM => number(out, ctx.memory.rss / 1024 / 1024),
        Var::Zero => out.push(b'0'),
        Var::Request(d) => match d {
            Derived::Method => checked_or_dash(out, Some(facts.method().as_bytes())),
            Derived::Uri => checked_or_dash(out, Some(facts.uri().as_bytes())),
            Derived::Path => checked_or_dash(out, Some(facts.path().as_bytes())),
            Derived::Query => checked_or_dash(out, facts.query()),
            Derived::Proto => out.extend_from_slice(facts.proto().as_bytes()),
            Derived::RemoteAddr => addr(out, facts.peer_addr()),
            Derived::RemotePort => addr(out, facts.peer_port()),
            Derived::ServerPort => match (facts.passed("SERVER_PORT"), facts.server_port()) {
                (Some(port), _) => text(out, port),
                (None, Some(port)) => number(out, u64::from(port)),
                (None, None) => out.push(b'-'),
            },
            Derived::ScriptName => text_or_dash(out, facts.passed("SCRIPT_NAME")),
        },
        Var::Passed(name) => text_or_dash(out, facts.passed(name)),
    }
}

fn number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Text that its type already checked, `-` when absent or empty (uWSGI's rule): the method
/// (a token), the target (`http::Uri` refuses control characters), header values
/// (`HeaderValue` refuses them but for tab) and what dragoman formats itself. Written as it
/// is: escaping costs a pass over every byte, a third of the line's instructions.
fn checked_or_dash(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) if !v.is_empty() => out.extend_from_slice(v),
        _ => out.push(b'-'),
    }
}

/// The client address: dragoman's own text or a header's, as is; one a uwsgi peer passed,
/// escaped.
fn addr(out: &mut Vec<u8>, value: Addr<'_>) {
    match value {
        Addr::Checked(v) => checked_or_dash(out, Some(v)),
        Addr::Passed(v) => text_or_dash(out, Some(v)),
        Addr::None => out.push(b'-'),
    }
}

/// A text value nothing checked (a variable a uwsgi peer passed), `-` when absent or empty.
fn text_or_dash(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) if !v.is_empty() => text(out, v),
        _ => out.push(b'-'),
    }
}

/// Text from the request, with control characters written as `\xHH`: a client cannot start a
/// line of its own in the log, or send a terminal escape sequence to whoever reads it.
fn text(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b < 0x20 || b == 0x7f {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(&[b'\\', b'x', hex(b >> 4), hex(b & 0xf)]);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

fn hex(nibble: u8) -> u8 {
    b"0123456789abcdef"[usize::from(nibble & 0xf)]
}

fn json_or_null(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) => json_str(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string. Bytes that are not UTF-8 (a header may carry any byte above 0x7F) are read
/// as Latin-1, as HTTP reads them, so the line stays valid JSON.
fn json_str(out: &mut Vec<u8>, bytes: &[u8]) {
    let utf8 = std::str::from_utf8(bytes).is_ok();
    out.push(b'"');
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..0x20 | 0x7f => {
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hex(b >> 4), hex(b & 0xf)])
            }
            0x80.. if !utf8 => {
                let c = char::from(b);
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_text_cannot_forge_a_line() {
        let mut out = Vec::new();
        text(&mut out, b"/a\nb\x1b[31m\xffc");
        assert_eq!(out, b"/a\\x0ab\\x1b[31m\xffc");
        let mut out = Vec::new();
        json_str(&mut out, b"a\"b\\c\n\x01\xe9");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\n\\u0001\u{e9}\""
        );
        let mut out = Vec::new();
        json_str(&mut out, "é".as_bytes());
        assert_eq!(String::from_utf8(out).unwrap(), "\"é\"");
    }
}
