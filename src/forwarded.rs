//! Behind a proxy or a load balancer: which peers' forwarding headers are believed
//! (`forwarded-allow-ips`), and what they say about the request, as a function of the headers
//! and the peer alone (no I/O, tested here).
//!
//! The client is found as nginx's `real_ip_recursive` finds it: the forwarded-for list (the
//! header lines joined in order) is walked from right to left, starting from the peer; while
//! the address reached is a trusted proxy, the next entry to its left is taken; the first
//! address that is not trusted is the client. An entry that is no address ends the walk at the
//! last address reached. So a client that writes its own `X-Forwarded-For: 1.2.3.4` before
//! the proxy appends to it gets nowhere: the proxy's entry, to the right, names the client.
//! (Taking the left-most entry, as uvicorn does with `*`, believes whatever the client wrote.)
//!
//! The scheme, host and port are read from the entry of the same hop: the hop the walk ended
//! at, counted from the right (proxies that append to `X-Forwarded-Proto` keep the lists
//! aligned; a single value, which proxies usually set, is that value).
//!
//! Which headers: the `X-Forwarded-*` family when the request has `X-Forwarded-For` (every
//! common proxy and balancer sets it), RFC 7239 `Forwarded` otherwise. Only one family is
//! read: a proxy manages one of them, and a client can write the other.

use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName};

/// The peers whose forwarding headers are believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TrustedProxies {
    /// Networks: an address and its prefix length (an address alone: the full length).
    nets: Vec<(IpAddr, u8)>,
    /// `*`: every peer.
    any: bool,
    /// `unix`: clients of unix-socket listeners (a local process, like a loopback peer).
    unix: bool,
}

impl TrustedProxies {
    /// Adds the entries of one value: addresses, CIDRs, `*` and `unix`, separated by commas or
    /// spaces. The error says which entry is wrong.
    pub(crate) fn add(&mut self, value: &str) -> Result<(), String> {
        for entry in value
            .split([',', ' ', '\t'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            match entry {
                "*" => self.any = true,
                "unix" | "unix:" => self.unix = true,
                _ => self.nets.push(
                    net(entry)
                        .ok_or_else(|| format!("{entry:?} is no address or network (CIDR)"))?,
                ),
            }
        }
        Ok(())
    }

    /// Whether a peer's headers are believed; `None` is a unix-socket client.
    pub(crate) fn trusts(&self, peer: Option<IpAddr>) -> bool {
        let Some(ip) = peer else {
            return self.unix || self.any;
        };
        let ip = ip.to_canonical();
        self.any
            || self
                .nets
                .iter()
                .any(|(net, bits)| contains(*net, *bits, ip))
    }
}

impl std::fmt::Display for TrustedProxies {
    /// As the option is written: `127.0.0.0/8, ::1, unix`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut entries: Vec<String> = self
            .nets
            .iter()
            .map(|(ip, bits)| match (ip, bits) {
                (IpAddr::V4(_), 32) | (IpAddr::V6(_), 128) => ip.to_string(),
                _ => format!("{ip}/{bits}"),
            })
            .collect();
        if self.unix {
            entries.push("unix".into());
        }
        if self.any {
            entries.push("*".into());
        }
        f.write_str(&entries.join(", "))
    }
}

/// `10.0.0.0/8`, `::1`, `192.168.1.5/32` as (network, prefix length).
fn net(entry: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = match entry.split_once('/') {
        Some((addr, bits)) => (addr, Some(bits.parse::<u8>().ok()?)),
        None => (entry, None),
    };
    let ip = addr
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok()?
        .to_canonical();
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((ip, bits))
}

/// Whether `ip` is in `net/bits`.
fn contains(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// What a trusted proxy's headers say about one request: each part `None` where they say
/// nothing usable. Kept in the request's extensions by the HTTP service, for every bridge
/// (WSGI, ASGI) and the access log to read (see [`named_client`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Forwarded {
    /// The client, with port 0 when the header gave none.
    pub(crate) client: Option<SocketAddr>,
    /// `http` or `https`.
    pub(crate) scheme: Option<&'static str>,
    /// The host the client asked for (`example.com` or `example.com:8443`), checked.
    pub(crate) host: Option<String>,
    pub(crate) port: Option<u16>,
}

/// The client a trusted proxy named for a request, if any (the access log's address).
pub(crate) fn named_client(extensions: &http::Extensions) -> Option<SocketAddr> {
    extensions.get::<Forwarded>().and_then(|f| f.client)
}

/// What the server variables become (CGI's `SERVER_NAME` and `SERVER_PORT`, and the Host the
/// application sees) once the forwarded scheme, host and port are applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Server {
    /// The new `Host` (`HTTP_HOST`), or `None` to keep the request's.
    pub(crate) host: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) port: String,
}

impl Forwarded {
    /// The server variables, given the request's own Host header and the connection's scheme;
    /// `None` when the headers named no scheme, host or port (nothing changes).
    pub(crate) fn server(&self, host: Option<&str>, conn_scheme: &str) -> Option<Server> {
        if self.scheme.is_none() && self.host.is_none() && self.port.is_none() {
            return None;
        }
        let scheme = self.scheme.unwrap_or(conn_scheme);
        let base = self.host.as_deref().or(host);
        let (name, own_port) = match base.map(split_host) {
            Some((name, port)) => (Some(name), port),
            None => (None, None),
        };
        let default_port = if scheme == "https" { "443" } else { "80" };
        let port = match (self.port, own_port) {
            (Some(p), _) => p.to_string(),
            (None, Some(p)) => p.to_string(),
            (None, None) => default_port.to_string(),
        };
        let new_host = match (self.port, name) {
            // werkzeug's ProxyFix does the same: the forwarded port replaces the Host's.
            (Some(p), Some(name)) if name.contains(':') => Some(format!("[{name}]:{p}")),
            (Some(p), Some(name)) => Some(format!("{name}:{p}")),
            _ => self.host.clone(),
        };
        Some(Server {
            host: new_host,
            name: name.map(str::to_string),
            port,
        })
    }
}

/// Splits a host into its name and port (`[v6]:port` too).
fn split_host(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((addr, after)) = rest.split_once(']') {
            return (addr, after.strip_prefix(':'));
        }
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (name, Some(port)),
        _ => (host, None),
    }
}

const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const X_FORWARDED_HOST: &str = "x-forwarded-host";
const X_FORWARDED_PORT: &str = "x-forwarded-port";

/// What the forwarding headers of a request from `peer` say, when `peer` is trusted and the
/// request has any of them; `None` otherwise (the request is taken as it came). The headers
/// themselves are left in place for the application either way.
pub(crate) fn resolve(
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    trusted: &TrustedProxies,
) -> Option<Forwarded> {
    // One pass over the names, usually two or three; the lists are read only if one is there.
    let (mut x_family, mut rfc, mut x_for) = (false, false, false);
    for name in headers.keys() {
        if *name == header::FORWARDED {
            rfc = true;
        } else if let Some(rest) = name.as_str().strip_prefix("x-forwarded-") {
            x_family = true;
            x_for |= rest == "for";
        }
    }
    if !(x_family || rfc) || !trusted.trusts(peer) {
        return None;
    }
    let found = if x_for || !rfc {
        from_x_family(headers, peer, trusted)
    } else {
        from_rfc7239(headers, peer, trusted)
    };
    (found != Forwarded::default()).then_some(found)
}

/// The values of every line of a header, in order (commas inside a line split it too).
fn list(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(HeaderName::from_static(static_name(name)))
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// The `'static` names of the X-Forwarded family (HeaderName::from_static wants one).
fn static_name(name: &str) -> &'static str {
    match name {
        X_FORWARDED_FOR => X_FORWARDED_FOR,
        X_FORWARDED_PROTO => X_FORWARDED_PROTO,
        X_FORWARDED_HOST => X_FORWARDED_HOST,
        _ => X_FORWARDED_PORT,
    }
}

/// The hops' addresses walked from the right, from `peer`: the client (if the walk moved)
/// and how many entries it took.
fn walk<'a>(
    hops: impl DoubleEndedIterator<Item = Option<&'a str>>,
    peer: Option<IpAddr>,
    trusted: &TrustedProxies,
) -> (Option<SocketAddr>, usize) {
    let (mut current, mut found, mut taken) = (peer, None, 0);
    for hop in hops.rev() {
        if !trusted.trusts(current) {
            break;
        }
        let Some(addr) = hop.and_then(address) else {
            break; // not an address: the walk ends at the last one reached
        };
        current = Some(addr.ip());
        found = Some(addr);
        taken += 1;
    }
    (found, taken)
}

/// The value of the same hop as the one the walk ended at: `taken` entries from the right
/// (the peer's own, the right-most, when it took none); the left-most when the list is
/// shorter (a proxy that sets a single value rather than appending).
fn aligned(list: &[String], taken: usize) -> Option<&str> {
    let from_right = taken.max(1) - 1;
    let index = list.len().saturating_sub(from_right + 1);
    list.get(index).map(String::as_str)
}

fn from_x_family(headers: &HeaderMap, peer: Option<IpAddr>, trusted: &TrustedProxies) -> Forwarded {
    let hops = list(headers, X_FORWARDED_FOR);
    let (client, taken) = walk(hops.iter().map(|h| Some(h.as_str())), peer, trusted);
    let pick = |name: &str| {
        let values = list(headers, name);
        aligned(&values, taken).map(str::to_string)
    };
    Forwarded {
        client,
        scheme: pick(X_FORWARDED_PROTO).and_then(|p| scheme(&p)),
        host: pick(X_FORWARDED_HOST).filter(|h| valid_host(h)),
        port: pick(X_FORWARDED_PORT).and_then(|p| port(&p)),
    }
}

fn from_rfc7239(headers: &HeaderMap, peer: Option<IpAddr>, trusted: &TrustedProxies) -> Forwarded {
    let mut joined = String::new();
    for value in headers.get_all(header::FORWARDED) {
        if let Ok(v) = value.to_str() {
            if !joined.is_empty() {
                joined.push(',');
            }
            joined.push_str(v);
        }
    }
    let elements: Vec<Vec<(String, String)>> = split_quoted(&joined, ',')
        .into_iter()
        .map(|element| {
            split_quoted(element, ';')
                .into_iter()
                .filter_map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    Some((name.trim().to_ascii_lowercase(), unquote(value.trim())))
                })
                .collect()
        })
        .collect();
    let param = |element: &Vec<(String, String)>, key: &str| {
        element
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let fors: Vec<Option<String>> = elements.iter().map(|e| param(e, "for")).collect();
    let (client, taken) = walk(fors.iter().map(Option::as_deref), peer, trusted);
    let element = elements
        .len()
        .checked_sub(taken.max(1))
        .and_then(|i| elements.get(i));
    let host = element
        .and_then(|e| param(e, "host"))
        .filter(|h| valid_host(h));
    Forwarded {
        client,
        scheme: element
            .and_then(|e| param(e, "proto"))
            .and_then(|p| scheme(&p)),
        port: None,
        host,
    }
}

/// Splits on `sep` outside double-quoted strings.
fn split_quoted(text: &str, sep: char) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(text[start..i].trim());
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(text[start..].trim());
    parts.retain(|p| !p.is_empty());
    parts
}

/// A quoted-string's content (backslash escapes undone), or the token as it is.
fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                out.push(if c == '\\' {
                    chars.next().unwrap_or('\\')
                } else {
                    c
                });
            }
            out
        }
        None => value.to_string(),
    }
}

/// An address as forwarding headers write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:4711`. Not `unknown` nor an obfuscated `_name` (RFC 7239).
fn address(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 0));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    let bracketed = text.strip_prefix('[')?.strip_suffix(']')?;
    bracketed
        .parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 0))
}

fn scheme(value: &str) -> Option<&'static str> {
    if value.eq_ignore_ascii_case("https") {
        Some("https")
    } else if value.eq_ignore_ascii_case("http") {
        Some("http")
    } else {
        None
    }
}

fn port(value: &str) -> Option<u16> {
    value.parse::<u16>().ok().filter(|p| *p > 0)
}

/// A host as `HTTP_HOST` may carry it: a DNS name (letters, digits, `-`, `.`, `_`), an IPv4
/// address or a bracketed IPv6 one, and an optional port.
fn valid_host(value: &str) -> bool {
    let (name, port_text) = split_host(value);
    let bracketed = value.starts_with('[');
    let name_ok = if bracketed {
        name.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    };
    name_ok && port_text.is_none_or(|p| port(p).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(list: &str) -> TrustedProxies {
        let mut t = TrustedProxies::default();
        t.add(list).unwrap();
        t
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(HeaderName::from_static(name), value.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn client_of(pairs: &[(&'static str, &str)], peer: &str, list: &str) -> Option<String> {
        resolve(&headers(pairs), ip(peer), &trusted(list))
            .and_then(|f| f.client)
            .map(|c| c.ip().to_string())
    }

    #[test]
    fn the_trusted_list() {
        let t = trusted("10.0.0.0/8, 192.168.1.5 ::1,2001:db8::/32");
        assert!(t.trusts(ip("10.200.3.4")));
        assert!(t.trusts(ip("192.168.1.5")));
        assert!(!t.trusts(ip("192.168.1.6")));
        assert!(t.trusts(ip("::1")));
        assert!(t.trusts(ip("2001:db8:ffff::1")));
        assert!(!t.trusts(ip("2001:db9::1")));
        // An IPv4 peer on a dual-stack socket.
        assert!(t.trusts(ip("::ffff:10.1.1.1")));
        assert!(!t.trusts(None), "unix clients only with `unix`");
        assert!(trusted("unix").trusts(None));
        assert!(trusted("*").trusts(ip("203.0.113.9")) && trusted("*").trusts(None));
        assert!(trusted("0.0.0.0/0").trusts(ip("203.0.113.9")));
        let mut bad = TrustedProxies::default();
        assert!(bad.add("10.0.0.0/33").unwrap_err().contains("10.0.0.0/33"));
        assert!(bad.add("proxy.local").is_err());
        assert!(!TrustedProxies::default().trusts(ip("127.0.0.1")));
        let shown = trusted("127.0.0.0/8 ::1, unix, 10.1.2.3/32");
        assert_eq!(shown.to_string(), "127.0.0.0/8, ::1, 10.1.2.3, unix");
    }

    #[test]
    fn hosts() {
        for good in [
            "example.com",
            "example.com:8443",
            "10.0.0.1",
            "[::1]:80",
            "a_b.local",
        ] {
            assert!(valid_host(good), "{good}");
        }
        for bad in [
            "",
            "a,b",
            "evil.com/x",
            "u@evil.com",
            "x:0",
            "x:99999",
            "[nope]",
            "a b",
        ] {
            assert!(!valid_host(bad), "{bad}");
        }
    }

    #[test]
    fn the_client_is_the_first_untrusted_address_from_the_right() {
        let xff = "x-forwarded-for";
        // One proxy in front.
        assert_eq!(
            client_of(&[(xff, "203.0.113.7")], "127.0.0.1", "127.0.0.1"),
            Some("203.0.113.7".into())
        );
        // The client wrote an entry of its own before the proxy appended: it is skipped.
        assert_eq!(
            client_of(&[(xff, "6.6.6.6, 203.0.113.7")], "127.0.0.1", "127.0.0.1"),
            Some("203.0.113.7".into())
        );
        // Two trusted proxies: the walk goes past the inner one.
        assert_eq!(
            client_of(
                &[(xff, "6.6.6.6, 203.0.113.7, 10.0.0.2")],
                "127.0.0.1",
                "127.0.0.1, 10.0.0.0/8"
            ),
            Some("203.0.113.7".into())
        );
        // Several header lines are one list, in order.
        assert_eq!(
            client_of(
                &[(xff, "6.6.6.6"), (xff, "203.0.113.7, 10.0.0.2")],
                "127.0.0.1",
                "127.0.0.1, 10.0.0.0/8"
            ),
            Some("203.0.113.7".into())
        );
        // All trusted: the left-most (nginx does the same).
        assert_eq!(
            client_of(
                &[(xff, "10.0.0.3, 10.0.0.2")],
                "127.0.0.1",
                "127.0.0.1, 10.0.0.0/8"
            ),
            Some("10.0.0.3".into())
        );
        // Garbage ends the walk at the last address reached.
        assert_eq!(
            client_of(
                &[(xff, "203.0.113.7, unknown, 10.0.0.2")],
                "127.0.0.1",
                "127.0.0.1, 10.0.0.0/8"
            ),
            Some("10.0.0.2".into())
        );
        assert_eq!(
            client_of(&[(xff, "garbage")], "127.0.0.1", "127.0.0.1"),
            None
        );
        // Addresses with ports, IPv6.
        assert_eq!(
            client_of(&[(xff, "[2001:db8::7]:4711")], "::1", "::1"),
            Some("2001:db8::7".into())
        );
        assert_eq!(
            client_of(&[(xff, "2001:db8::7, 203.0.113.7:80")], "::1", "::1"),
            Some("203.0.113.7".into())
        );
    }

    #[test]
    fn untrusted_peers_change_nothing() {
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(resolve(&h, ip("127.0.0.2"), &trusted("127.0.0.1")), None);
        assert_eq!(resolve(&h, None, &trusted("127.0.0.1")), None);
        assert_eq!(
            resolve(&h, ip("127.0.0.1"), &TrustedProxies::default()),
            None
        );
        // No forwarding header: nothing to say.
        let plain = headers(&[("host", "example.com")]);
        assert_eq!(resolve(&plain, ip("127.0.0.1"), &trusted("*")), None);
    }

    #[test]
    fn scheme_host_and_port_of_the_same_hop() {
        let f = resolve(
            &headers(&[
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-proto", "HTTPS"),
                ("x-forwarded-host", "shop.example.com"),
                ("x-forwarded-port", "443"),
            ]),
            ip("127.0.0.1"),
            &trusted("127.0.0.1"),
        )
        .unwrap();
        assert_eq!(f.scheme, Some("https"));
        assert_eq!(f.host.as_deref(), Some("shop.example.com"));
        assert_eq!(f.port, Some(443));
        // Proxies that append: the value of the hop where the client was found.
        let f = resolve(
            &headers(&[
                ("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2"),
                ("x-forwarded-proto", "http, https, http"),
            ]),
            ip("127.0.0.1"),
            &trusted("127.0.0.1, 10.0.0.0/8"),
        )
        .unwrap();
        assert_eq!(f.scheme, Some("https"));
        // Without X-Forwarded-For, the peer's own value (the right-most).
        let f = resolve(
            &headers(&[("x-forwarded-proto", "https")]),
            ip("127.0.0.1"),
            &trusted("127.0.0.1"),
        )
        .unwrap();
        assert_eq!((f.client, f.scheme), (None, Some("https")));
        // Values that are not what they should be are ignored.
        let f = resolve(
            &headers(&[
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-proto", "gopher"),
                ("x-forwarded-host", "evil.com/path"),
                ("x-forwarded-port", "99999"),
            ]),
            ip("127.0.0.1"),
            &trusted("127.0.0.1"),
        )
        .unwrap();
        assert_eq!((f.scheme, f.host, f.port), (None, None, None));
        assert!(f.client.is_some());
        let f = resolve(
            &headers(&[("x-forwarded-host", "user@evil.com")]),
            ip("127.0.0.1"),
            &trusted("127.0.0.1"),
        );
        assert_eq!(f, None);
    }

    #[test]
    fn rfc_7239() {
        let f = resolve(
            &headers(&[(
                "forwarded",
                "for=6.6.6.6;proto=http, for=\"[2001:db8:cafe::17]:4711\";proto=https;host=\"shop.example.com:8443\"",
            )]),
            ip("127.0.0.1"),
            &trusted("127.0.0.1"),
        )
        .unwrap();
        assert_eq!(f.client, Some("[2001:db8:cafe::17]:4711".parse().unwrap()));
        assert_eq!(f.scheme, Some("https"));
        assert_eq!(f.host.as_deref(), Some("shop.example.com:8443"));
        // Obfuscated or unknown: the walk stops there (the peer stays the client).
        let f = resolve(
            &headers(&[("forwarded", "for=unknown;proto=https")]),
            ip("127.0.0.1"),
            &trusted("127.0.0.1"),
        )
        .unwrap();
        assert_eq!((f.client, f.scheme), (None, Some("https")));
        // A quoted comma does not split an element; parameter names are case-insensitive.
        let f = resolve(
            &headers(&[("forwarded", "For=\"203.0.113.7\";Host=\"a,b\"")]),
            ip("127.0.0.1"),
            &trusted("127.0.0.1"),
        )
        .unwrap();
        assert_eq!(f.client.map(|c| c.ip()), ip("203.0.113.7"));
        assert_eq!(f.host, None, "a,b is no host");
        // With X-Forwarded-For present, Forwarded (which a client can write) is not read.
        let f = resolve(
            &headers(&[
                ("forwarded", "for=6.6.6.6"),
                ("x-forwarded-for", "203.0.113.7"),
            ]),
            ip("127.0.0.1"),
            &trusted("127.0.0.1"),
        )
        .unwrap();
        assert_eq!(f.client.map(|c| c.ip()), ip("203.0.113.7"));
    }

    #[test]
    fn server_variables() {
        let f = |scheme, host: Option<&str>, port| Forwarded {
            client: None,
            scheme,
            host: host.map(str::to_string),
            port,
        };
        let s = f(Some("https"), None, None)
            .server(Some("example.com"), "http")
            .unwrap();
        assert_eq!(
            (s.host, s.name.as_deref(), s.port.as_str()),
            (None, Some("example.com"), "443")
        );
        let s = f(None, Some("shop.example.com:8443"), None)
            .server(Some("backend:8000"), "http")
            .unwrap();
        assert_eq!(s.host.as_deref(), Some("shop.example.com:8443"));
        assert_eq!(
            (s.name.as_deref(), s.port.as_str()),
            (Some("shop.example.com"), "8443")
        );
        let s = f(Some("https"), Some("shop.example.com"), Some(8443))
            .server(Some("backend"), "http")
            .unwrap();
        assert_eq!(s.host.as_deref(), Some("shop.example.com:8443"));
        let s = f(None, None, Some(9000))
            .server(Some("[::1]:8000"), "http")
            .unwrap();
        assert_eq!(s.host.as_deref(), Some("[::1]:9000"));
        assert_eq!(f(None, None, None).server(Some("x"), "http"), None);
    }

    #[test]
    fn the_client_for_the_log() {
        let mut ext = http::Extensions::new();
        assert_eq!(named_client(&ext), None);
        ext.insert(Forwarded {
            client: Some("203.0.113.7:0".parse().unwrap()),
            ..Forwarded::default()
        });
        assert_eq!(named_client(&ext), Some("203.0.113.7:0".parse().unwrap()));
    }
}
