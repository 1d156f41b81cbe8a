//! What the logging options decided (read by `crate::config::logging`): which requests are
//! logged and how, and where the server log and the request log go.

use std::path::PathBuf;
use std::time::Duration;

use super::format::AccessFormat;

/// What is logged, how, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Logging {
    /// Every request gets a line (the access log); `disable-logging` turns it off.
    pub(crate) requests: bool,
    /// Requests answered with a static file get one too (`log-static`).
    pub(crate) static_files: bool,
    /// Requests logged even with `disable-logging`, as uWSGI: `log-4xx`, `log-5xx`,
    /// `log-slow`, `log-zero` (empty body), `log-big` (body of at least this many bytes),
    /// `log-sendfile` (a static file).
    pub(crate) log_4xx: bool,
    pub(crate) log_5xx: bool,
    pub(crate) slow: Option<Duration>,
    pub(crate) zero: bool,
    pub(crate) big: Option<u64>,
    pub(crate) sendfile: bool,
    /// `log-x-forwarded-for`: the address logged is the X-Forwarded-For header's value.
    pub(crate) x_forwarded_for: bool,
    /// `log-format`: dragoman's line, `json`, or a uWSGI logformat.
    pub(crate) format: AccessFormat,
    /// `log-date`: a strftime format for the lines' stamp (local time); `None` or empty:
    /// the default UTC stamp.
    pub(crate) date: Option<String>,
    /// `logformat-strftime`: `%(ftime)` uses `log-date`'s format.
    pub(crate) strftime: bool,
    /// `logto` / `logto2`: the server log's file.
    pub(crate) file: Option<LogFile>,
    /// `logger`: where the server log goes (overrides `logto`); `req-logger`: where request
    /// lines go (else with the server log).
    pub(crate) loggers: Vec<Target>,
    pub(crate) req_loggers: Vec<Target>,
    /// `log-master`: workers send their lines to the master, which writes them.
    pub(crate) master: bool,
    /// `log-reopen`: reopen the log files on a reload (SIGHUP) too.
    pub(crate) reopen: bool,
    /// `memory-report`: 0 off, 1 address space and RSS, 2 also USS and PSS.
    pub(crate) memory_report: u8,
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            requests: true,
            static_files: true,
            log_4xx: false,
            log_5xx: false,
            slow: None,
            zero: false,
            big: None,
            sendfile: false,
            x_forwarded_for: false,
            format: AccessFormat::Default,
            date: None,
            strftime: false,
            file: None,
            loggers: Vec::new(),
            req_loggers: Vec::new(),
            master: false,
            reopen: false,
            memory_report: 0,
        }
    }
}

/// A log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogFile {
    pub(crate) path: PathBuf,
    /// Opened after the privileges are dropped (`logto2`, `file:` loggers), so the service
    /// user owns it; else opened first thing, as root when dragoman starts as root.
    pub(crate) late: bool,
    /// Rotate past this many bytes (`log-maxsize`, or a `file:` logger's `maxsize=`).
    pub(crate) max_size: Option<u64>,
    /// The rotated file's name (`log-backupname`, `backupname=`); else `PATH.UNIXTIME`.
    pub(crate) backup: Option<PathBuf>,
    /// The option that named the file, and where it was set (for errors: `FILE line N`).
    pub(crate) option: &'static str,
    pub(crate) origin: String,
}

/// Where a `logger` or `req-logger` sends lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `stdio`: dragoman's stderr, as it was at startup.
    Stdio,
    /// `file:PATH` or `file:logfile=PATH,maxsize=N,backupname=B`.
    File(LogFile),
}
