//! The PROXY protocol (HAProxy's, v1 text and v2 binary): a load balancer in front tells the
//! server who the client really is, in a header before the first request. Sans-I/O: [`parse`]
//! looks at the bytes read so far and says whether the header is complete.
//!
//! Like gunicorn and uWSGI, the header is optional on a trusted connection: one that starts
//! with neither signature is plain HTTP (a health check from the balancer's host). One that
//! starts with a signature must hold a valid header.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature.
const SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header, CRLF included.
const V1_MAX: usize = 107;

/// What the bytes read so far hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// Not enough bytes yet.
    Incomplete,
    /// A header of `len` bytes; `source` is the client (None for `UNKNOWN`/`LOCAL`: keep the
    /// connection's own address).
    Header {
        len: usize,
        source: Option<SocketAddr>,
    },
    /// The bytes do not start with either signature: plain HTTP.
    Absent,
    Invalid(&'static str),
}

/// Parses a PROXY header at the start of `buf`.
pub(crate) fn parse(buf: &[u8]) -> Parsed {
    if buf.is_empty() {
        return Parsed::Incomplete;
    }
    if buf[0] == b'\r' {
        return parse_v2(buf);
    }
    if buf[0] == b'P' {
        return parse_v1(buf);
    }
    Parsed::Absent
}

fn parse_v1(buf: &[u8]) -> Parsed {
    let prefix = b"PROXY ";
    let n = buf.len().min(prefix.len());
    if buf[..n] != prefix[..n] {
        return Parsed::Absent;
    }
    let Some(end) = buf.iter().take(V1_MAX).position(|&b| b == b'\n') else {
        return if buf.len() >= V1_MAX {
            Parsed::Invalid("the PROXY v1 header is longer than 107 bytes")
        } else {
            Parsed::Incomplete
        };
    };
    if end == 0 || buf[end - 1] != b'\r' {
        return Parsed::Invalid("the PROXY v1 header must end with CRLF");
    }
    let Ok(line) = std::str::from_utf8(&buf[prefix.len()..end - 1]) else {
        return Parsed::Invalid("the PROXY v1 header is not text");
    };
    let fields: Vec<&str> = line.split(' ').collect();
    let header = |source| Parsed::Header {
        len: end + 1,
        source,
    };
    match fields.as_slice() {
        ["UNKNOWN", ..] => header(None),
        [proto @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let ip = |text: &str| -> Option<IpAddr> {
                match *proto {
                    "TCP4" => text.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
                    _ => text.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
                }
            };
            let port = |text: &str| -> Option<u16> {
                (!text.starts_with('0') || text == "0")
                    .then(|| text.parse().ok())
                    .flatten()
            };
            match (ip(src), ip(dst), port(sport), port(dport)) {
                (Some(src), Some(_), Some(sport), Some(_)) => {
                    header(Some(SocketAddr::new(src, sport)))
                }
                _ => Parsed::Invalid("the PROXY v1 header has a malformed address or port"),
            }
        }
        _ => Parsed::Invalid("the PROXY v1 header is malformed"),
    }
}

fn parse_v2(buf: &[u8]) -> Parsed {
    let n = buf.len().min(SIGNATURE.len());
    if buf[..n] != SIGNATURE[..n] {
        return Parsed::Absent;
    }
    if buf.len() < 16 {
        return Parsed::Incomplete;
    }
    let version_command = buf[12];
    if version_command >> 4 != 2 {
        return Parsed::Invalid("the PROXY v2 header has an unknown version");
    }
    let len = 16 + u16::from_be_bytes([buf[14], buf[15]]) as usize;
    if buf.len() < len {
        return Parsed::Incomplete;
    }
    let body = &buf[16..len];
    let header = |source| Parsed::Header { len, source };
    match version_command & 0x0f {
        0x0 => return header(None), // LOCAL: a health check from the proxy itself
        0x1 => {}
        _ => return Parsed::Invalid("the PROXY v2 header has an unknown command"),
    }
    match buf[13] {
        // TCP or UDP over IPv4.
        0x11 | 0x12 if body.len() >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let port = u16::from_be_bytes([body[8], body[9]]);
            header(Some(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        // TCP or UDP over IPv6.
        0x21 | 0x22 if body.len() >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&body[..16]);
            let port = u16::from_be_bytes([body[32], body[33]]);
            header(Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                port,
            )))
        }
        0x11 | 0x12 | 0x21 | 0x22 => Parsed::Invalid("the PROXY v2 address block is too short"),
        // UNSPEC, unix sockets: no IP to report.
        _ => header(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn v1() {
        let h = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            parse(h),
            Parsed::Header {
                len: 47,
                source: addr("192.168.0.1:56324")
            }
        );
        let h = b"PROXY TCP6 ::1 ::2 4000 80\r\n";
        assert_eq!(
            parse(h),
            Parsed::Header {
                len: h.len(),
                source: addr("[::1]:4000")
            }
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Parsed::Header {
                len: 15,
                source: None
            }
        );
        for cut in 1..h.len() {
            assert_eq!(parse(&h[..cut]), Parsed::Incomplete, "cut {cut}");
        }
        for bad in [
            &b"PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n"[..],
            b"PROXY TCP4 not-an-ip 192.168.0.11 56324 443\r\n",
            b"PROXY TCP4 192.168.0.1 192.168.0.11 65iii 100000\r\n",
            b"PROXY TCP4 192.168.0.1 192.168.0.11 056324 443\r\n",
            b"PROXY TCP4 ::1 ::2 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n",
        ] {
            assert!(
                matches!(parse(bad), Parsed::Invalid(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        for plain in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"POST /",
            b"PROXz",
            b"\r\n\r\nGET",
            b"PUT",
        ] {
            assert_eq!(parse(plain), Parsed::Absent);
        }
        assert_eq!(parse(b"PRO"), Parsed::Incomplete);
        assert_eq!(parse(b"\r\n\r\n"), Parsed::Incomplete);
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
        assert!(matches!(parse(&long), Parsed::Invalid(_)));
    }

    #[test]
    fn v2() {
        let mut h = SIGNATURE.to_vec();
        h.extend_from_slice(&[
            0x21, 0x11, 0, 12, 10, 0, 0, 1, 10, 0, 0, 2, 0x1f, 0x90, 0, 80,
        ]);
        h.extend_from_slice(b"GET /");
        assert_eq!(
            parse(&h),
            Parsed::Header {
                len: 28,
                source: addr("10.0.0.1:8080")
            }
        );
        for cut in 1..28 {
            assert_eq!(parse(&h[..cut]), Parsed::Incomplete, "cut {cut}");
        }
        let mut local = SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(
            parse(&local),
            Parsed::Header {
                len: 16,
                source: None
            }
        );
        let mut short = SIGNATURE.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert!(matches!(parse(&short), Parsed::Invalid(_)));
        let mut v3 = SIGNATURE.to_vec();
        v3.extend_from_slice(&[0x31, 0x11, 0, 0]);
        assert!(matches!(parse(&v3), Parsed::Invalid(_)));
    }
}
