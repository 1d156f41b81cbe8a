//! The record `dragoman compress` keeps of the precompressed variants it made: one file per
//! directory, [`NAME`], one line per variant, naming the file it was made from with that
//! file's size and SHA-256, and the variant's own size and SHA-256. The server serves
//! `app.css.gz` in place of `app.css` only when this record says it was made from `app.css` as
//! it is now and the `.gz` is the one made (see `load` in the parent module): a variant
//! nobody made with dragoman (a `.gz` uploaded next to a media file, one left from the last
//! deploy, one edited since) is never sent in the original's place.
//!
//! Why a content hash, and not the original's mtime or inode: a deploy that copies the same
//! bytes again (`collectstatic`, a container build, `rsync` without `-t`) changes those and
//! not the content, and the variants stay good; a deploy that changes the bytes, however it
//! sets the times, changes the hash. The size goes with it to refuse a mismatch before any
//! hashing. SHA-256 and not a checksum: whoever can write a file next to the original must not
//! be able to craft one that matches a recorded variant (CRC32 and the like can be forced to
//! any value by appending four bytes). With SHA-NI it hashes about 1.5 GB/s (256 MiB read
//! from a descriptor in 0.17 s, release build, this machine): a 1 MiB bundle costs under a
//! millisecond, once per file per worker when the file is loaded, never per request.
//!
//! The format, plain text so that it diffs and greps:
//!
//! ```text
//! # dragoman compress: ...
//! app.css br 16000 <sha256 hex> 3100 <sha256 hex>
//! ```
//!
//! File names are percent-encoded (space, `%`, controls and non-ASCII bytes); a line that does
//! not parse is ignored, as is a manifest too large to be one.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use percent_encoding::{percent_decode, percent_encode, AsciiSet, CONTROLS};
use sha2::{Digest as _, Sha256};

use super::encoding::Coding;

/// The manifest's file name in each directory.
pub(crate) const NAME: &str = ".dragoman-variants";

/// The most a manifest is read (a directory of 100,000 variants makes about 16 MB).
pub(crate) const MAX_BYTES: u64 = 64 << 20;

const HEADER: &str = "# dragoman compress: the precompressed variants made in this directory, \
one per line:\n# file coding file-size file-sha256 variant-size variant-sha256\n";

/// Bytes escaped in a file name: what would break a line or a field, and `%` itself.
const NAME_ESCAPES: &AsciiSet = &CONTROLS.add(b' ').add(b'%');

/// What identifies one file's contents: its size and SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Digest {
    pub(crate) len: u64,
    pub(crate) sha256: [u8; 32],
}

impl Digest {
    pub(crate) fn of(data: &[u8]) -> Digest {
        Digest {
            len: data.len() as u64,
            sha256: Sha256::digest(data).into(),
        }
    }

    /// The digest of a file read from its descriptor, from offset 0 to its end, with
    /// positioned reads (the descriptor's offset is left alone: a response may share it).
    pub(crate) fn of_file(file: &File) -> io::Result<Digest> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut offset: u64 = 0;
        loop {
            let at = libc::off_t::try_from(offset).map_err(io::Error::other)?;
            // SAFETY: pread writes at most `buf.len()` bytes into `buf`, which we own and
            // which is that long; the descriptor is open for the borrow of `file`.
            let n =
                unsafe { libc::pread(file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), at) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let n = n as usize; // n >= 0 and at most buf.len()
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            offset += n as u64;
        }
        Ok(Digest {
            len: offset,
            sha256: hasher.finalize().into(),
        })
    }

    /// The first 8 bytes of the hash in hex: enough to name a version in an ETag.
    pub(crate) fn short(&self) -> String {
        hex(&self.sha256[..8])
    }
}

/// One variant made by `dragoman compress`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// The original's file name (in the manifest's directory).
    pub(crate) name: Vec<u8>,
    pub(crate) coding: Coding,
    pub(crate) original: Digest,
    pub(crate) variant: Digest,
}

impl Record {
    fn line(&self) -> String {
        format!(
            "{} {} {} {} {} {}\n",
            percent_encode(&self.name, NAME_ESCAPES),
            self.coding.token(),
            self.original.len,
            hex(&self.original.sha256),
            self.variant.len,
            hex(&self.variant.sha256),
        )
    }

    fn parse(line: &[u8]) -> Option<Record> {
        let line = std::str::from_utf8(line).ok()?;
        let mut fields = line.split(' ');
        let mut next = || fields.next().filter(|f| !f.is_empty());
        let name: Vec<u8> = percent_decode(next()?.as_bytes()).collect();
        let coding = Coding::from_token(next()?)?;
        let original = Digest {
            len: next()?.parse().ok()?,
            sha256: unhex(next()?)?,
        };
        let variant = Digest {
            len: next()?.parse().ok()?,
            sha256: unhex(next()?)?,
        };
        if next().is_some() || name.is_empty() || name.contains(&b'/') {
            return None;
        }
        Some(Record {
            name,
            coding,
            original,
            variant,
        })
    }
}

/// Every record a manifest's text holds (lines that do not parse are skipped).
pub(crate) fn parse(text: &[u8]) -> Vec<Record> {
    text.split(|&b| b == b'\n')
        .filter(|l| !l.starts_with(b"#"))
        .filter_map(Record::parse)
        .collect()
}

/// The record of the `coding` variant of file `name`, if the manifest has one.
pub(crate) fn find(text: &[u8], name: &[u8], coding: Coding) -> Option<Record> {
    let token = coding.token().as_bytes();
    text.split(|&b| b == b'\n')
        .filter(|l| !l.starts_with(b"#"))
        // Cheap before the parse: the second field names the coding.
        .filter(|l| l.split(|&b| b == b' ').nth(1) == Some(token))
        .filter_map(Record::parse)
        .find(|r| r.name == name)
}

/// A manifest's text, records sorted (so the file only changes when they do).
pub(crate) fn render(records: &[Record]) -> String {
    let mut records: Vec<&Record> = records.iter().collect();
    records.sort_by(|a, b| (&a.name, a.coding.token()).cmp(&(&b.name, b.coding.token())));
    let mut text = HEADER.to_string();
    for r in records {
        text.push_str(&r.line());
    }
    text
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let text = text.as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &[u8], coding: Coding) -> Record {
        Record {
            name: name.to_vec(),
            coding,
            original: Digest::of(b"the original"),
            variant: Digest::of(b"the variant"),
        }
    }

    #[test]
    fn round_trip_and_lookup() {
        let records = vec![
            record(b"app.css", Coding::Gzip),
            record(b"app.css", Coding::Brotli),
            record("a b%\n\u{e9}.js".as_bytes(), Coding::Gzip),
        ];
        let text = render(&records);
        assert!(text.starts_with("# dragoman compress"));
        assert!(text.contains("a%20b%25%0A%C3%A9.js gzip 12 "), "{text}");
        let mut back = parse(text.as_bytes());
        back.sort_by_key(|r| (r.name.clone(), r.coding.token()));
        let mut want = records.clone();
        want.sort_by_key(|r| (r.name.clone(), r.coding.token()));
        assert_eq!(back, want);
        assert_eq!(
            find(text.as_bytes(), b"app.css", Coding::Brotli),
            Some(records[1].clone())
        );
        assert_eq!(find(text.as_bytes(), b"app.css", Coding::Zstd), None);
        assert_eq!(find(text.as_bytes(), b"other.css", Coding::Gzip), None);
        assert_eq!(
            Digest::of(b"abc").short(),
            "ba7816bf8f01cfea",
            "SHA-256 of abc"
        );
    }

    #[test]
    fn what_does_not_parse_is_ignored() {
        let good = record(b"app.css", Coding::Gzip).line();
        let text = format!(
            "garbage\n\napp.css gzip 1 2 3 4\napp.css gzip x {h} 1 {h}\napp.css deflate 1 {h} 1 {h}\n\
             a/b gzip 1 {h} 1 {h}\n{good}{extra}\n\u{ff}\n",
            h = "ab".repeat(32),
            extra = good.trim_end().to_string() + " more",
        );
        let records = parse(text.as_bytes());
        assert_eq!(records, vec![record(b"app.css", Coding::Gzip)]);
        assert_eq!(unhex(&"zz".repeat(32)), None);
    }

    #[test]
    fn a_file_is_hashed_whole_from_its_descriptor() {
        let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &data).unwrap();
        assert_eq!(Digest::of_file(&file).unwrap(), Digest::of(&data));
    }
}
