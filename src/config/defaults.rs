//! Every default in one typed place. The option table shows them in `--help`, `build` and
//! `Limits::default` use them, and a test checks that a config built from nothing has exactly
//! what `--help` says.

use std::time::Duration;

/// `http`: where dragoman listens when no listener is given.
pub(crate) const HTTP: &str = "127.0.0.1:8000";
pub(crate) const LISTEN_BACKLOG: usize = 1024;
pub(crate) const PROCESSES: usize = 1;
pub(crate) const THREADS: usize = 1;
pub(crate) const WORKER_RELOAD_MERCY_SECS: u64 = 60;
pub(crate) const CALLABLE: &str = "application";
pub(crate) const STATIC_CACHE_MIB: u64 = 64;
pub(crate) const STATIC_IMMUTABLE: bool = true;
pub(crate) const STATIC_GZIP_ALL: bool = true;
pub(crate) const STATIC_DOTFILES: bool = false;
pub(crate) const LAZY_APPS: bool = true;
pub(crate) const PRELOAD: bool = false;
pub(crate) const VACUUM: bool = false;
pub(crate) const STATS_HTTP: bool = false;
pub(crate) const PROXY_PROTOCOL: bool = false;
/// `forwarded-allow-ips`: the peers whose X-Forwarded-* and Forwarded headers are believed:
/// loopback and unix-socket clients (a proxy on the same machine).
pub(crate) const FORWARDED_ALLOW_IPS: &str = "127.0.0.0/8, ::1, unix";
/// `shutdown-delay` with a `health-check`: seconds a SIGTERM keeps serving with the health
/// check failing, so that a load balancer that checks every few seconds stops sending first.
pub(crate) const SHUTDOWN_DELAY_WITH_HEALTH_CHECK: u64 = 5;
/// `proxy-allow-from` when the PROXY protocol is on and no peer is named.
pub(crate) const PROXY_ALLOW_FROM: &str = "127.0.0.1, ::1";
pub(crate) const BUFFER_SIZE: usize = 32768;
pub(crate) const LIMIT_REQUEST_LINE: usize = 8190;
pub(crate) const LIMIT_REQUEST_FIELDS: usize = 100;
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(15);
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(60);
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
pub(crate) const MAX_CONNECTIONS: usize = 1024;
pub(crate) const REQUEST_QUEUE: usize = 128;
/// `limit-post`: 1 GiB (0 means no limit).
pub(crate) const LIMIT_POST: u64 = 1 << 30;
/// `post-buffering`: request bodies up to 64 KiB are buffered in memory, larger ones spooled.
pub(crate) const POST_BUFFERING: u64 = 64 * 1024;
/// `spool-budget`: 1 GiB of request and response bodies in temporary files per worker.
pub(crate) const SPOOL_BUDGET: u64 = 1 << 30;
/// `body-min-rate`: bytes a second (Apache mod_reqtimeout's MinRate default).
pub(crate) const BODY_MIN_RATE: u64 = 500;
/// `response-buffer`: how far a streamed response may run ahead of a slow client.
pub(crate) const RESPONSE_BUFFER: u64 = 64 << 20;
/// `write-min-rate`: bytes a second a client must take of a response it is behind on.
pub(crate) const WRITE_MIN_RATE: u64 = 500;
/// `http2-max-concurrent-streams`: nginx's 128.
pub(crate) const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 128;
/// `http2-stream-window`: what a client may send on one stream before the application reads
/// (request bodies are read whole first, see `post-buffering`, so this is about speed).
pub(crate) const HTTP2_STREAM_WINDOW: u32 = 256 * 1024;
/// `http2-connection-window`: the same for all of a connection's streams together.
pub(crate) const HTTP2_CONNECTION_WINDOW: u32 = 1024 * 1024;

/// `acme-directory`: Let's Encrypt's production directory.
pub(crate) const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (`acme-staging`): untrusted certificates, generous limits.
pub(crate) const LETS_ENCRYPT_STAGING: &str =
    "https://acme-staging-v02.api.letsencrypt.org/directory";

/// ASGI (docs/asgi.md): `interface`, `lifespan`, `loop`.
pub(crate) const INTERFACE: &str = "wsgi";
pub(crate) const LIFESPAN: &str = "auto";
pub(crate) const LOOP: &str = "auto";
/// `websocket-max-message`: 16 MiB, as uvicorn's and the websockets library's default.
pub(crate) const WEBSOCKET_MAX_MESSAGE: u64 = 16 << 20;
pub(crate) const WEBSOCKET_PING_INTERVAL: Duration = Duration::from_secs(20);
pub(crate) const WEBSOCKET_PING_TIMEOUT: Duration = Duration::from_secs(20);
pub(crate) const WEBSOCKET_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const WEBSOCKET_COMPRESSION: bool = true;
