//! The ASGI options (docs/asgi.md): which interface calls the application (`asgi`,
//! `interface`), its lifespan events, its event loop, and the WebSocket limits.

use std::time::Duration;

use super::app::{AppSource, AppTarget};
use super::defaults as d;
use super::resolve::{bad_value, count, Resolved};
use super::source::{ConfigError, Setting};

/// How the application is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interface {
    Wsgi,
    Asgi,
    /// ASGI when the callable looks like an ASGI 3 application, else WSGI (decided at load).
    Auto,
}

/// Whether the ASGI lifespan events are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lifespan {
    /// Sent; an application that raises on them is served without them.
    Auto,
    /// Sent, and required.
    On,
    Off,
}

/// The event loop an ASGI application runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventLoop {
    /// uvloop when it can be imported, else asyncio's.
    Auto,
    Asyncio,
    Uvloop,
}

/// The WebSocket limits and timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebSocketConfig {
    /// The largest message (decompressed) given to the application.
    pub(crate) max_message: u64,
    /// Ping a client that has sent nothing for this long.
    pub(crate) ping_interval: Option<Duration>,
    /// After a ping, how long the client has to send anything.
    pub(crate) ping_timeout: Duration,
    /// Close when no message went either way for this long.
    pub(crate) idle_timeout: Option<Duration>,
    /// How long the application may take to accept or deny.
    pub(crate) handshake_timeout: Duration,
    /// Accept permessage-deflate.
    pub(crate) compression: bool,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            max_message: d::WEBSOCKET_MAX_MESSAGE,
            ping_interval: Some(d::WEBSOCKET_PING_INTERVAL),
            ping_timeout: d::WEBSOCKET_PING_TIMEOUT,
            idle_timeout: None,
            handshake_timeout: d::WEBSOCKET_HANDSHAKE_TIMEOUT,
            compression: d::WEBSOCKET_COMPRESSION,
        }
    }
}

/// The ASGI part of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AsgiConfig {
    pub(crate) interface: Interface,
    pub(crate) lifespan: Lifespan,
    pub(crate) event_loop: EventLoop,
    pub(crate) websocket: WebSocketConfig,
}

impl Default for AsgiConfig {
    fn default() -> Self {
        AsgiConfig {
            interface: Interface::Wsgi,
            lifespan: Lifespan::Auto,
            event_loop: EventLoop::Auto,
            websocket: WebSocketConfig::default(),
        }
    }
}

/// Reads one of a few words (any case).
fn choice<T: Copy>(
    r: &Resolved<'_>,
    name: &str,
    words: &[(&str, T)],
    default: T,
) -> Result<T, ConfigError> {
    let Some(s) = r.last(name) else {
        return Ok(default);
    };
    let value = s.value.trim().to_ascii_lowercase();
    words
        .iter()
        .find(|(w, _)| *w == value)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = words.iter().map(|(w, _)| *w).collect();
            bad_value(s, &format!("one of {}", names.join(", ")), words[0].0)
        })
}

/// `asgi`, when it names the application: set, and not overridden by `module` or
/// `wsgi-file` from a higher source (`--module x` over an ini file's `asgi = y`).
fn asgi_setting<'a>(r: &Resolved<'a>) -> Option<&'a Setting> {
    let asgi = r.last("asgi")?;
    let outranked = ["module", "wsgi-file"]
        .iter()
        .filter_map(|o| r.last(o))
        .any(|o| o.origin.rank() > asgi.origin.rank());
    (!outranked).then_some(asgi)
}

/// The ASGI options. `warnings` gets what was read the way uWSGI would.
pub(crate) fn asgi(
    r: &Resolved<'_>,
    warnings: &mut Vec<String>,
) -> Result<AsgiConfig, ConfigError> {
    let named_asgi = asgi_setting(r).is_some();
    let interface = choice(
        r,
        "interface",
        &[
            ("wsgi", Interface::Wsgi),
            ("asgi", Interface::Asgi),
            ("auto", Interface::Auto),
        ],
        Interface::Wsgi,
    )?;
    let interface = match (named_asgi, interface, r.last("interface")) {
        (true, Interface::Wsgi, Some(s)) => {
            return Err(ConfigError(format!(
                "{}: option 'interface' is wsgi, but the application is named with `asgi`, \
                 which serves it as ASGI; name it with `module` to serve it as WSGI, or drop \
                 `interface`",
                s.origin
            )))
        }
        (true, _, _) => Interface::Asgi,
        (false, interface, _) => interface,
    };
    let event_loop = match r.last("loop") {
        // uWSGI's `loop` chose its engine (gevent, ugreen, ...): nothing to do with an ASGI
        // application's loop, so an old ini file keeps loading.
        Some(s)
            if !["auto", "asyncio", "uvloop"]
                .contains(&s.value.trim().to_ascii_lowercase().as_str())
                && interface == Interface::Wsgi =>
        {
            warnings.push(format!(
                "{}: `loop = {}` chose uWSGI's loop engine; dragoman runs WSGI applications on \
                 its own loop, so the option is ignored (for an ASGI application it takes auto, \
                 asyncio or uvloop)",
                s.origin,
                s.value.trim()
            ));
            EventLoop::Auto
        }
        _ => choice(
            r,
            "loop",
            &[
                ("auto", EventLoop::Auto),
                ("asyncio", EventLoop::Asyncio),
                ("uvloop", EventLoop::Uvloop),
            ],
            EventLoop::Auto,
        )?,
    };
    let lifespan = choice(
        r,
        "lifespan",
        &[
            ("auto", Lifespan::Auto),
            ("on", Lifespan::On),
            ("off", Lifespan::Off),
        ],
        Lifespan::Auto,
    )?;
    let secs = |name: &str, default: Duration| -> Result<Duration, ConfigError> {
        Ok(r.last(name)
            .map(|s| count(s, 1, "10"))
            .transpose()?
            .map_or(default, |n| Duration::from_secs(n as u64)))
    };
    let ping_interval = match r.last("websocket-ping-interval") {
        None => Some(d::WEBSOCKET_PING_INTERVAL),
        Some(_) => r.seconds("websocket-ping-interval")?,
    };
    let websocket = WebSocketConfig {
        max_message: r.count(
            "websocket-max-message",
            1,
            "1048576",
            d::WEBSOCKET_MAX_MESSAGE as usize,
        )? as u64,
        ping_interval,
        ping_timeout: secs("websocket-ping-timeout", d::WEBSOCKET_PING_TIMEOUT)?,
        idle_timeout: r.seconds("websocket-idle-timeout")?,
        handshake_timeout: secs(
            "websocket-handshake-timeout",
            d::WEBSOCKET_HANDSHAKE_TIMEOUT,
        )?,
        compression: r.flag("websocket-compression", d::WEBSOCKET_COMPRESSION),
    };
    Ok(AsgiConfig {
        interface,
        lifespan,
        event_loop,
        websocket,
    })
}

/// The application named by `asgi = module[:callable]`, if set; with `module` or `wsgi-file`
/// set too, the one from the higher source wins (`--asgi` over the ini file's `module`: the
/// way to serve a WSGI site's ini as ASGI), and `asgi` on a tie, with a warning.
pub(crate) fn target(
    r: &Resolved<'_>,
    warnings: &mut Vec<String>,
    valid: impl Fn(&str, &str) -> bool,
) -> Result<Option<AppTarget>, ConfigError> {
    let Some(s) = asgi_setting(r) else {
        return Ok(None);
    };
    for other in ["module", "wsgi-file"] {
        if let Some(o) = r.last(other).filter(|o| o.origin.rank() == s.origin.rank()) {
            warnings.push(format!(
                "{}: both asgi ({}) and {other} ({}) name an application; dragoman serves the \
                 one `asgi` names; remove one of the two lines",
                s.origin,
                s.value.trim(),
                o.value.trim()
            ));
        }
    }
    let text = s.value.trim();
    let default_callable = r.last("callable").map_or(d::CALLABLE, |c| c.value.trim());
    let (module, name) = text.split_once(':').unwrap_or((text, default_callable));
    let (name, factory) = match name.trim().strip_suffix("()") {
        Some(n) => (n.to_string(), true),
        None => (name.trim().to_string(), false),
    };
    if !valid(module, &name) {
        return Err(bad_value(
            s,
            "a Python module path, optionally with :callable",
            "mysite.asgi:application",
        ));
    }
    Ok(Some(AppTarget {
        source: AppSource::Module(module.to_string()),
        callable: name,
        origin: s.origin.clone(),
        factory,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, Config, Loaded};

    fn run(args: &[&str]) -> Result<Config, ConfigError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match load(&args, &[])? {
            Loaded::Run(c) => Ok(*c),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn asgi_names_the_application_and_the_interface() {
        let c = run(&["--asgi", "mysite.asgi"]).unwrap();
        assert_eq!(c.app.describe(), "mysite.asgi:application");
        assert_eq!(c.asgi.interface, Interface::Asgi);
        let c = run(&["mysite.wsgi"]).unwrap();
        assert_eq!(c.asgi.interface, Interface::Wsgi);
        let c = run(&["mysite.asgi:app", "--interface", "auto", "--lifespan", "on"]).unwrap();
        assert_eq!(
            (c.asgi.interface, c.asgi.lifespan),
            (Interface::Auto, Lifespan::On)
        );
        let c = run(&["--asgi", "a:b", "--module", "c"]).unwrap();
        assert_eq!(c.app.describe(), "a:b");
        assert!(
            c.warnings[0].contains("both asgi (a:b) and module (c)"),
            "{c:?}"
        );
        // From a higher source, either wins without a word.
        let ini = tempfile::Builder::new().suffix(".ini").tempfile().unwrap();
        std::fs::write(ini.path(), "[uwsgi]\nmodule = site.wsgi\n").unwrap();
        let path = ini.path().to_str().unwrap();
        let c = run(&["--ini", path, "--asgi", "site.asgi"]).unwrap();
        assert_eq!(c.app.describe(), "site.asgi:application");
        assert_eq!(c.asgi.interface, Interface::Asgi);
        assert!(c.warnings.is_empty(), "{c:?}");
        std::fs::write(ini.path(), "[uwsgi]\nasgi = site.asgi\n").unwrap();
        let c = run(&["--ini", path, "--module", "site.wsgi"]).unwrap();
        assert_eq!(c.app.describe(), "site.wsgi:application");
        assert_eq!(c.asgi.interface, Interface::Wsgi);
        let e = run(&["--asgi", "a", "--interface", "wsgi"]).unwrap_err();
        assert!(e.0.contains("option 'interface' is wsgi"), "{e}");
        let e = run(&["--asgi", "my-site"]).unwrap_err();
        assert!(e.0.contains("a Python module path"), "{e}");
    }

    #[test]
    fn loop_lifespan_and_websocket_values() {
        let c = run(&["--asgi", "a", "--loop", "uvloop"]).unwrap();
        assert_eq!(c.asgi.event_loop, EventLoop::Uvloop);
        let e = run(&["--asgi", "a", "--loop", "gevent"]).unwrap_err();
        assert!(e.0.contains("expects one of auto, asyncio, uvloop"), "{e}");
        // uWSGI's loop engine, for a WSGI application: a warning, and the ini file loads.
        let c = run(&["a.wsgi", "--loop", "gevent"]).unwrap();
        assert!(c.warnings[0].contains("uWSGI's loop engine"), "{c:?}");
        let e = run(&["--asgi", "a", "--lifespan", "maybe"]).unwrap_err();
        assert!(
            e.0.contains("option 'lifespan' expects one of auto, on, off"),
            "{e}"
        );
        let c = run(&[
            "--asgi",
            "a",
            "--websocket-ping-interval",
            "0",
            "--websocket-max-message",
            "1000",
            "--websocket-compression=false",
        ])
        .unwrap();
        let ws = &c.asgi.websocket;
        assert_eq!(
            (ws.ping_interval, ws.max_message, ws.compression),
            (None, 1000, false)
        );
        // uWSGI's names for the ping.
        let c = run(&["--asgi", "a", "--websocket-ping-freq", "7"]).unwrap();
        assert_eq!(c.asgi.websocket.ping_interval, Some(Duration::from_secs(7)));
        let e = run(&["--asgi", "a", "--websocket-handshake-timeout", "0"]).unwrap_err();
        assert!(e.0.contains("at least 1"), "{e}");
    }
}
