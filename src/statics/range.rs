//! The `Range` header (RFC 9110 §14): pure parsing against a representation's length.
//!
//! The numbers are the client's: every sum and difference here is checked or saturating,
//! and a position too large for u64 is a position past any file, not an overflow.

/// A byte range, inclusive start, exclusive end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteRange {
    pub(crate) start: u64,
    pub(crate) end: u64,
}

impl ByteRange {
    pub(crate) fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// `bytes 0-499/1234`, for Content-Range.
    pub(crate) fn content_range(&self, total: u64) -> String {
        format!(
            "bytes {}-{}/{total}",
            self.start,
            self.end.saturating_sub(1)
        )
    }
}

/// What a Range header asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ranges {
    /// No usable Range header (absent, or not `bytes=`, or malformed): send everything.
    Whole,
    /// One satisfiable range: 206.
    One(ByteRange),
    /// Several satisfiable ranges, sorted and merged: multipart/byteranges.
    Many(Vec<ByteRange>),
    /// Nothing satisfiable: 416.
    Unsatisfiable,
}

/// At most this many ranges are answered as multipart; more are answered with the whole
/// file, as a defence against requests for thousands of tiny overlapping ranges.
const MAX_PARTS: usize = 16;

/// A position or suffix length: one or more digits (RFC 9110 §14.1.1). Digits too many for a
/// u64 mean a number larger than any file, so they saturate: `bytes=1-99999999999999999999`
/// is "from 1 to the end", as every other server reads it.
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u64>().unwrap_or(u64::MAX))
}

/// Parses `bytes=0-499`, `bytes=500-`, `bytes=-500` and lists of them.
pub(crate) fn parse(header: &str, len: u64) -> Ranges {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ranges::Whole; // other units are ignored (RFC 9110 §14.2)
    };
    let mut ranges = Vec::new();
    let mut any = false;
    for part in spec.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        any = true;
        let Some((first, last)) = part.split_once('-') else {
            return Ranges::Whole; // malformed: ignore the header
        };
        let (first, last) = (first.trim(), last.trim());
        let range = if first.is_empty() {
            // A suffix: the last N bytes.
            let Some(n) = number(last) else {
                return Ranges::Whole;
            };
            if n == 0 || len == 0 {
                continue;
            }
            ByteRange {
                start: len.saturating_sub(n),
                end: len,
            }
        } else {
            let Some(start) = number(first) else {
                return Ranges::Whole;
            };
            let end = if last.is_empty() {
                len
            } else {
                match number(last) {
                    // A last position at or past the end means the end (§14.1.2); below
                    // it, `l + 1 <= len` cannot overflow.
                    Some(l) if l >= start => l.checked_add(1).map_or(len, |e| e.min(len)),
                    _ => return Ranges::Whole,
                }
            };
            if start >= len {
                continue; // unsatisfiable part
            }
            ByteRange { start, end }
        };
        ranges.push(range);
    }
    if !any {
        return Ranges::Whole;
    }
    if ranges.is_empty() {
        return Ranges::Unsatisfiable;
    }
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    match merged.len() {
        1 => Ranges::One(merged[0]),
        n if n > MAX_PARTS => Ranges::Whole,
        _ => Ranges::Many(merged),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    #[test]
    fn single_ranges() {
        assert_eq!(parse("bytes=0-499", 1000), Ranges::One(r(0, 500)));
        assert_eq!(parse("bytes=500-", 1000), Ranges::One(r(500, 1000)));
        assert_eq!(parse("bytes=-200", 1000), Ranges::One(r(800, 1000)));
        assert_eq!(parse("bytes=-2000", 1000), Ranges::One(r(0, 1000)));
        assert_eq!(parse("bytes=900-5000", 1000), Ranges::One(r(900, 1000)));
        assert_eq!(r(0, 500).content_range(1000), "bytes 0-499/1000");
    }

    #[test]
    fn unsatisfiable_and_ignored() {
        assert_eq!(parse("bytes=1000-", 1000), Ranges::Unsatisfiable);
        assert_eq!(parse("bytes=5000-6000", 1000), Ranges::Unsatisfiable);
        assert_eq!(parse("bytes=-0", 1000), Ranges::Unsatisfiable);
        assert_eq!(parse("bytes=0-0", 0), Ranges::Unsatisfiable);
        assert_eq!(parse("items=0-5", 1000), Ranges::Whole);
        assert_eq!(parse("bytes=5-1", 1000), Ranges::Whole);
        assert_eq!(parse("bytes=a-b", 1000), Ranges::Whole);
        assert_eq!(parse("bytes=", 1000), Ranges::Whole);
        assert_eq!(parse("bytes=+1-5", 1000), Ranges::Whole);
        assert_eq!(parse("bytes=1-+5", 1000), Ranges::Whole);
    }

    /// The numbers at the edge of u64, and past it: never an overflow, never a range outside
    /// the file.
    #[test]
    fn numbers_at_the_edge_of_u64() {
        let max = u64::MAX;
        assert_eq!(
            parse(&format!("bytes=1-{max}"), 1000),
            Ranges::One(r(1, 1000))
        );
        assert_eq!(
            parse(&format!("bytes=0-{max}"), max),
            Ranges::One(r(0, max))
        );
        assert_eq!(
            parse(&format!("bytes={}-{max}", max - 1), max),
            Ranges::One(r(max - 1, max))
        );
        assert_eq!(
            parse("bytes=1-18446744073709551616", 1000),
            Ranges::One(r(1, 1000))
        );
        assert_eq!(
            parse("bytes=1-99999999999999999999999999", 1000),
            Ranges::One(r(1, 1000))
        );
        assert_eq!(
            parse(&format!("bytes=-{max}"), 1000),
            Ranges::One(r(0, 1000))
        );
        assert_eq!(
            parse("bytes=-99999999999999999999999999", 1000),
            Ranges::One(r(0, 1000))
        );
        assert_eq!(
            parse(&format!("bytes={max}-{max}"), 1000),
            Ranges::Unsatisfiable
        );
        assert_eq!(
            parse("bytes=99999999999999999999999999-", 1000),
            Ranges::Unsatisfiable
        );
        assert_eq!(
            parse(&format!("bytes=0-0, 2-{max}"), 1000),
            Ranges::Many(vec![r(0, 1), r(2, 1000)])
        );
        assert_eq!(r(5, 5).len(), 0);
        assert_eq!(r(0, 1).content_range(1), "bytes 0-0/1");
    }

    #[test]
    fn several_ranges_merge_and_sort() {
        assert_eq!(
            parse("bytes=0-9, 20-29", 100),
            Ranges::Many(vec![r(0, 10), r(20, 30)])
        );
        assert_eq!(
            parse("bytes=20-29,0-9", 100),
            Ranges::Many(vec![r(0, 10), r(20, 30)])
        );
        assert_eq!(parse("bytes=0-9,5-19", 100), Ranges::One(r(0, 20)));
        assert_eq!(parse("bytes=0-9,200-300", 100), Ranges::One(r(0, 10)));
        let many: String = (0..20)
            .map(|i| format!("{}-{},", i * 10, i * 10 + 1))
            .collect();
        assert_eq!(parse(&format!("bytes={many}"), 1000), Ranges::Whole);
    }
}
