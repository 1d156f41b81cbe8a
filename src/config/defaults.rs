//! Every default in one typed place. The option table shows them in `--help`, `build` and
//! `Limits::default` use them, and a test checks that a config built from nothing has exactly
//! what `--help` says.

use std::time::Duration;

/// `http`: where dragoman listens when no listener is given.
pub const HTTP: &str = "127.0.0.1:8000";
pub const LISTEN_BACKLOG: usize = 1024;
pub const PROCESSES: usize = 1;
pub const THREADS: usize = 1;
pub const WORKER_RELOAD_MERCY_SECS: u64 = 60;
pub const CALLABLE: &str = "application";
pub const STATIC_CACHE_MIB: u64 = 64;
pub const STATIC_IMMUTABLE: bool = true;
pub const STATIC_GZIP_ALL: bool = true;
pub const STATIC_DOTFILES: bool = false;
pub const LAZY_APPS: bool = true;
pub const PRELOAD: bool = false;
pub const VACUUM: bool = false;
pub const STATS_HTTP: bool = false;
pub const PROXY_PROTOCOL: bool = false;
/// `proxy-allow-from` when the PROXY protocol is on and no peer is named.
pub const PROXY_ALLOW_FROM: &str = "127.0.0.1, ::1";
pub const BUFFER_SIZE: usize = 32768;
pub const LIMIT_REQUEST_LINE: usize = 8190;
pub const LIMIT_REQUEST_FIELDS: usize = 100;
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(15);
pub const BODY_TIMEOUT: Duration = Duration::from_secs(60);
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
pub const MAX_CONNECTIONS: usize = 1024;
pub const REQUEST_QUEUE: usize = 128;
