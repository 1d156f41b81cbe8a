//! How a request line is written: dragoman's readable line, one JSON object, or a uWSGI
//! `log-format` (`logformat`) with uWSGI's `%(var)` variables, so a site's existing format
//! works unchanged.
//!
//! A format is read once, at startup, into a [`Template`]: literal text and variables, each
//! variable already resolved to what it reads. Writing a line walks the template and appends to
//! the worker's buffer; nothing is looked up by name per request, and the request headers a
//! template reads are the only ones kept from the request ([`AccessFormat::headers`]).
//!
//! The variables are uWSGI's (core/logging.c, `uwsgi_register_logchunks`), with its rules: a
//! variable with an empty value is written `-`; a name that is no variable is a "logvar" the
//! application would set with `uwsgi.set_logvar`, which dragoman has not, so it is `-` too (and
//! startup says so). Which ones map to what is in docs/logging.md.
//!
//! Here the format is read (the configuration checks it at load); the access log
//! (`crate::access`) writes the lines.

use http::header::{self, HeaderName};

/// How request lines are written (`log-format`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum AccessFormat {
    /// `[stamp] [pid] [worker N] ADDR "METHOD URI PROTO" STATUS BYTES bytes in MS ms`.
    #[default]
    Default,
    /// `log-format = json`: one JSON object per line.
    Json,
    /// A uWSGI logformat.
    Custom(Template),
}

/// A uWSGI logformat, read once into its pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    pub(crate) pieces: Vec<Piece>,
    /// Request headers the pieces read ([`Var::Header`] indexes into it).
    pub(crate) headers: Vec<HeaderName>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Text(String),
    Var(Var),
}

/// What a `%(name)` reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Var {
    Uri,
    Method,
    User,
    Addr,
    Proto,
    /// A request header, by its index in [`Template::headers`].
    Header(usize),
    /// `%(host)`: the Host header, else the request target's authority.
    Host(usize),
    Status,
    /// `%(rsize)`: the response body's bytes.
    BodySize,
    /// `%(hsize)`: the response head's bytes.
    HeadSize,
    /// `%(size)`: head and body.
    Size,
    /// `%(cl)`: the request's Content-Length.
    ContentLength(usize),
    Micros,
    Msecs,
    Secs,
    /// `%(time)`: the request's start, seconds since the epoch.
    Time,
    Ltime,
    /// `%(ftime)`: `log-date`'s format with `logformat-strftime`, else as `%(ltime)`.
    Ftime,
    Ctime,
    Epoch,
    Tmsecs,
    Tmicros,
    Pid,
    Wid,
    /// `%(headers)`: the response's header count.
    Headers,
    /// `%(werr)`, `%(ioerr)`: 1 when the response body failed part way.
    WriteErrors,
    Vsz,
    Rss,
    VszM,
    RssM,
    /// `%(rerr)`, `%(switches)`, `%(core)`, `%(modifier1)`, `%(modifier2)`: always 0 in
    /// dragoman (no read-error count, async switches, cores or uwsgi modifiers per request).
    Zero,
    /// `%(var.NAME)`: a request variable dragoman derives from the request.
    Request(Derived),
    /// `%(var.NAME)` that only a uwsgi peer (nginx's uwsgi_param) can send.
    Passed(String),
    /// A name uWSGI reads from what dragoman does not have (a logvar, a metric, the CGI
    /// variable count, the uwsgi packet size): `-`.
    Missing,
}

/// Request variables dragoman knows without the environ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Derived {
    Method,
    Uri,
    Path,
    Query,
    Proto,
    RemoteAddr,
    RemotePort,
    ServerPort,
    ScriptName,
}

impl AccessFormat {
    /// Reads `log-format`'s value: `json`, or a uWSGI logformat. Also says which `%(name)`s
    /// are no variable dragoman can fill (they are written `-`).
    pub(crate) fn parse(value: &str) -> (AccessFormat, Vec<String>) {
        if value.trim().eq_ignore_ascii_case("json") {
            return (AccessFormat::Json, Vec::new());
        }
        let (template, unknown) = Template::compile(value);
        (AccessFormat::Custom(template), unknown)
    }

    /// The request headers a line in this format reads, to be kept from the request.
    pub(crate) fn headers(&self) -> Vec<HeaderName> {
        match self {
            AccessFormat::Default => Vec::new(),
            AccessFormat::Json => vec![header::HOST, header::REFERER, header::USER_AGENT],
            AccessFormat::Custom(t) => t.headers.clone(),
        }
    }

    /// Whether a line in this format needs the response head's size.
    pub(crate) fn needs_head_size(&self) -> bool {
        match self {
            AccessFormat::Custom(t) => t
                .pieces
                .iter()
                .any(|p| matches!(p, Piece::Var(Var::HeadSize | Var::Size))),
            _ => false,
        }
    }

    /// Whether a line in this format shows the worker's memory.
    pub(crate) fn needs_memory(&self) -> bool {
        match self {
            AccessFormat::Custom(t) => t
                .pieces
                .iter()
                .any(|p| matches!(p, Piece::Var(Var::Vsz | Var::Rss | Var::VszM | Var::RssM))),
            _ => false,
        }
    }
}

impl Template {
    /// Reads a uWSGI logformat as uWSGI's `uwsgi_build_log_format` does: `%(name)` is a
    /// variable, everything else (a `%` not followed by `(`, a `%(` never closed) is text.
    /// Returns the names that are no variable dragoman can fill.
    pub(crate) fn compile(format: &str) -> (Template, Vec<String>) {
        let mut pieces = Vec::new();
        let mut headers: Vec<HeaderName> = Vec::new();
        let mut unknown = Vec::new();
        let mut text = String::new();
        let mut rest = format;
        while let Some(at) = rest.find("%(") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let name = &after[..end];
            text.push_str(&rest[..at]);
            rest = &after[end + 1..];
            if name.is_empty() {
                text.push_str("%()");
                continue;
            }
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            let var = resolve(name, &mut headers);
            if var == Var::Missing {
                unknown.push(name.to_string());
            }
            pieces.push(Piece::Var(var));
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        (Template { pieces, headers }, unknown)
    }
}

/// The variable a `%(name)` is, registering the request headers it reads.
fn resolve(name: &str, headers: &mut Vec<HeaderName>) -> Var {
    let mut keep = |h: HeaderName| match headers.iter().position(|k| *k == h) {
        Some(i) => i,
        None => {
            headers.push(h);
            headers.len() - 1
        }
    };
    match name {
        "uri" => Var::Uri,
        "method" => Var::Method,
        "user" => Var::User,
        "addr" => Var::Addr,
        "host" => Var::Host(keep(header::HOST)),
        "proto" => Var::Proto,
        "uagent" => Var::Header(keep(header::USER_AGENT)),
        "referer" => Var::Header(keep(header::REFERER)),
        "status" => Var::Status,
        "rsize" => Var::BodySize,
        "hsize" => Var::HeadSize,
        "size" => Var::Size,
        "cl" => Var::ContentLength(keep(header::CONTENT_LENGTH)),
        "micros" => Var::Micros,
        "msecs" => Var::Msecs,
        "secs" => Var::Secs,
        "time" => Var::Time,
        "ltime" => Var::Ltime,
        "ftime" => Var::Ftime,
        "ctime" => Var::Ctime,
        "epoch" => Var::Epoch,
        "tmsecs" => Var::Tmsecs,
        "tmicros" => Var::Tmicros,
        "pid" => Var::Pid,
        "wid" => Var::Wid,
        "headers" => Var::Headers,
        "werr" | "ioerr" => Var::WriteErrors,
        "vsz" => Var::Vsz,
        "rss" => Var::Rss,
        "vszM" => Var::VszM,
        "rssM" => Var::RssM,
        "rerr" | "switches" | "core" | "modifier1" | "modifier2" => Var::Zero,
        _ => match name.strip_prefix("var.") {
            Some(var) => request_var(var, &mut keep),
            None => Var::Missing,
        },
    }
}

/// `%(var.NAME)`: the CGI variable NAME of the request, as uWSGI's environ would have it.
fn request_var(name: &str, keep: &mut impl FnMut(HeaderName) -> usize) -> Var {
    let derived = match name {
        "REQUEST_METHOD" => Some(Derived::Method),
        "REQUEST_URI" => Some(Derived::Uri),
        "PATH_INFO" => Some(Derived::Path),
        "QUERY_STRING" => Some(Derived::Query),
        "SERVER_PROTOCOL" => Some(Derived::Proto),
        "REMOTE_ADDR" => Some(Derived::RemoteAddr),
        "REMOTE_PORT" => Some(Derived::RemotePort),
        "SERVER_PORT" => Some(Derived::ServerPort),
        "SCRIPT_NAME" => Some(Derived::ScriptName),
        _ => None,
    };
    if let Some(d) = derived {
        return Var::Request(d);
    }
    let header = match name {
        "CONTENT_TYPE" => Some(header::CONTENT_TYPE),
        "CONTENT_LENGTH" => Some(header::CONTENT_LENGTH),
        _ => name.strip_prefix("HTTP_").and_then(|h| {
            HeaderName::from_bytes(h.to_ascii_lowercase().replace('_', "-").as_bytes()).ok()
        }),
    };
    match header {
        Some(h) => Var::Header(keep(h)),
        None => Var::Passed(name.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(t: &Template) -> Vec<String> {
        t.pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => format!("text {t:?}"),
                Piece::Var(v) => format!("{v:?}"),
            })
            .collect()
    }

    #[test]
    fn a_format_is_text_and_variables() {
        let (t, unknown) = Template::compile(
            "%(addr) - %(user) [%(ltime)] \"%(method) %(uri) %(proto)\" %(status) %(size) \
             \"%(referer)\" \"%(uagent)\"",
        );
        assert!(unknown.is_empty());
        assert_eq!(
            names(&t),
            [
                "Addr",
                "text \" - \"",
                "User",
                "text \" [\"",
                "Ltime",
                "text \"] \\\"\"",
                "Method",
                "text \" \"",
                "Uri",
                "text \" \"",
                "Proto",
                "text \"\\\" \"",
                "Status",
                "text \" \"",
                "Size",
                "text \" \\\"\"",
                "Header(0)",
                "text \"\\\" \\\"\"",
                "Header(1)",
                "text \"\\\"\"",
            ]
        );
        assert_eq!(t.headers, [header::REFERER, header::USER_AGENT]);
    }

    #[test]
    fn odd_formats_read_as_uwsgi_reads_them() {
        // A % without (, an unclosed %(, an empty %(): text.
        let (t, _) = Template::compile("100% %() done %(status");
        assert_eq!(names(&t), ["text \"100% %() done %(status\""]);
        // Unknown names are logvars uWSGI's application would set: `-`, and reported.
        let (t, unknown) = Template::compile("%(isotime) %(metric.core.busy) %(var.HTTP_X_ID)");
        assert_eq!(unknown, ["isotime", "metric.core.busy"]);
        assert_eq!(
            names(&t),
            [
                "Missing",
                "text \" \"",
                "Missing",
                "text \" \"",
                "Header(0)"
            ]
        );
        assert_eq!(t.headers, [HeaderName::from_static("x-id")]);
        // The same header twice is kept once.
        let (t, _) = Template::compile("%(uagent) %(var.HTTP_USER_AGENT)");
        assert_eq!(t.headers, [header::USER_AGENT]);
        let (f, _) = AccessFormat::parse(" JSON ");
        assert_eq!(f, AccessFormat::Json);
    }
}
