//! The uwsgi packet, as nginx's `uwsgi_pass` and uWSGI's routers send it. Sans-I/O: [`parse`]
//! looks at the bytes read so far and says whether a packet is complete; [`encode`] writes one
//! (for clients, tests and the fuzz round trip).
//!
//! A packet is a 4-byte header (modifier1: u8, datasize: u16 little-endian, modifier2: u8) and
//! `datasize` bytes of variables, each a key and a value with a u16 little-endian length
//! before it. The request body, `CONTENT_LENGTH` bytes, follows the packet on the stream.

/// The packet header's size.
pub(crate) const HEADER: usize = 4;

/// A complete packet: its modifiers and its variables, in order, borrowed from the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packet<'a> {
    pub(crate) modifier1: u8,
    pub(crate) modifier2: u8,
    pub(crate) vars: Vec<(&'a [u8], &'a [u8])>,
    /// The bytes the packet takes, header included; the body starts after them.
    pub(crate) len: usize,
}

impl Packet<'_> {
    /// The value of the first variable named `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&[u8]> {
        self.vars
            .iter()
            .find(|(k, _)| *k == key.as_bytes())
            .map(|(_, v)| *v)
    }
}

/// What the bytes read so far hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed<'a> {
    /// Not enough bytes yet; the packet takes `need` bytes in all when the header is known.
    Incomplete {
        need: Option<usize>,
    },
    Packet(Packet<'a>),
    Invalid(&'static str),
}

/// Parses the packet at the start of `buf`.
pub(crate) fn parse(buf: &[u8]) -> Parsed<'_> {
    if buf.len() < HEADER {
        return Parsed::Incomplete { need: None };
    }
    let size = u16::from_le_bytes([buf[1], buf[2]]) as usize;
    let len = HEADER + size;
    if buf.len() < len {
        return Parsed::Incomplete { need: Some(len) };
    }
    let mut data = &buf[HEADER..len];
    let mut vars = Vec::with_capacity(24);
    while !data.is_empty() {
        let Some((key, rest)) = take(data) else {
            return Parsed::Invalid("a uwsgi variable runs past the end of the packet");
        };
        let Some((value, rest)) = take(rest) else {
            return Parsed::Invalid("a uwsgi value runs past the end of the packet");
        };
        if key.is_empty() {
            return Parsed::Invalid("a uwsgi variable has an empty name");
        }
        vars.push((key, value));
        data = rest;
    }
    Parsed::Packet(Packet {
        modifier1: buf[0],
        modifier2: buf[3],
        vars,
        len,
    })
}

/// One length-prefixed string and the bytes after it.
fn take(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (size, rest) = data.split_first_chunk::<2>()?;
    let size = u16::from_le_bytes(*size) as usize;
    (rest.len() >= size).then(|| rest.split_at(size))
}

/// Writes a packet; `None` when the variables do not fit its 64 KiB.
pub(crate) fn encode(modifier1: u8, modifier2: u8, vars: &[(&[u8], &[u8])]) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    for (key, value) in vars {
        for s in [key, value] {
            data.extend_from_slice(&u16::try_from(s.len()).ok()?.to_le_bytes());
            data.extend_from_slice(s);
        }
    }
    let size = u16::try_from(data.len()).ok()?;
    let mut out = Vec::with_capacity(HEADER + data.len());
    out.push(modifier1);
    out.extend_from_slice(&size.to_le_bytes());
    out.push(modifier2);
    out.extend_from_slice(&data);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_body_after() {
        let vars: &[(&[u8], &[u8])] = &[
            (b"REQUEST_METHOD", b"POST"),
            (b"PATH_INFO", b"/x"),
            (b"EMPTY", b""),
        ];
        let mut bytes = encode(0, 0, vars).unwrap();
        let len = bytes.len();
        bytes.extend_from_slice(b"body");
        let Parsed::Packet(p) = parse(&bytes) else {
            panic!("not parsed")
        };
        assert_eq!(p.len, len);
        assert_eq!(p.vars, vars);
        assert_eq!(p.get("PATH_INFO"), Some(&b"/x"[..]));
        assert_eq!(p.get("NOPE"), None);
        for cut in 0..len {
            assert!(
                matches!(parse(&bytes[..cut]), Parsed::Incomplete { .. }),
                "cut {cut}"
            );
        }
        assert_eq!(parse(&bytes[..10]), Parsed::Incomplete { need: Some(len) });
    }

    #[test]
    fn malformed() {
        // A key length that runs past the packet.
        let bad = [0, 4, 0, 0, 9, 0, b'A', b'B'];
        assert!(matches!(parse(&bad), Parsed::Invalid(_)));
        // A key with no value length.
        let bad = [0, 3, 0, 0, 1, 0, b'A'];
        assert!(matches!(parse(&bad), Parsed::Invalid(_)));
        // An empty name.
        let bad = [0, 4, 0, 0, 0, 0, 0, 0];
        assert!(matches!(parse(&bad), Parsed::Invalid(_)));
        // An empty packet is a packet with no variables.
        assert_eq!(
            parse(&[0, 0, 0, 0]),
            Parsed::Packet(Packet {
                modifier1: 0,
                modifier2: 0,
                vars: vec![],
                len: 4
            })
        );
        let huge = vec![0u8; 70_000];
        assert_eq!(encode(0, 0, &[(b"K", &huge)]), None);
    }
}
