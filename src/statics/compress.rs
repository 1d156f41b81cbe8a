//! `dragoman compress DIR...`: writes `x.br` and `x.gz` beside every file `x` worth
//! compressing, for the static server to send to clients that accept them (as
//! `python -m whitenoise.compress` does), and records each in its directory's manifest
//! ([`super::manifest`]) with the size and SHA-256 of the file it was made from: the server
//! serves a variant only when the manifest says it was made from the file as it is now.
//! Skips files in compressed formats and files that do not shrink. A second run reads and
//! hashes every file but compresses only what changed: a variant whose record still matches
//! is left alone (and only its mtime is brought up to the file's when a deploy copied the same
//! bytes again), so running it after every `collectstatic` is cheap.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::encoding::Coding;
use super::manifest::{self, Digest, Record};
use super::mime;

/// Files smaller than this are not worth a request header's worth of savings.
const MIN_SIZE: u64 = 256;
/// The codings written, smallest first (zstd would never win over brotli at its best
/// level, and every client that accepts zstd accepts br).
const CODINGS: [Coding; 2] = [Coding::Brotli, Coding::Gzip];
/// The suffix of the temporary files variants and manifests are written through.
const TMP_SUFFIX: &str = ".dragoman-tmp";

/// What happened to each file, for the summary.
#[derive(Default, Debug, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) written: usize,
    /// Variants still good whose mtime was brought up to their file's (a copy of the same
    /// bytes made the file newer than its variants).
    pub(crate) refreshed: usize,
    pub(crate) up_to_date: usize,
    pub(crate) skipped: usize,
}

/// Runs the subcommand; returns the exit code.
pub(crate) fn run(args: &[String]) -> i32 {
    let (quiet, dirs): (Vec<&String>, Vec<&String>) =
        args.iter().partition(|a| *a == "-q" || *a == "--quiet");
    if dirs.is_empty() || dirs.iter().any(|d| d.starts_with('-')) {
        eprintln!(
            "usage: dragoman compress [--quiet] DIR...\n\nwrites DIR/**/x.br and x.gz for the \
             files worth compressing, and DIR/**/{} recording what each was made from",
            manifest::NAME
        );
        return 2;
    }
    let mut total = Summary::default();
    for dir in dirs {
        match compress_dir(Path::new(dir), &mut total) {
            Ok(()) => {}
            Err(e) => {
                eprintln!("dragoman compress: {dir}: {e}");
                return 1;
            }
        }
    }
    if quiet.is_empty() {
        println!(
            "dragoman compress: {} compressed file(s) written, {} refreshed, {} up to date, {} \
             not worth compressing",
            total.written, total.refreshed, total.up_to_date, total.skipped
        );
    }
    0
}

/// Compresses every file under `dir`, and writes each directory's manifest.
pub(crate) fn compress_dir(dir: &Path, summary: &mut Summary) -> std::io::Result<()> {
    let manifest_path = dir.join(manifest::NAME);
    let old = match std::fs::read(&manifest_path) {
        Ok(text) => manifest::parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    let mut records = Vec::new();
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            compress_dir(&path, summary)?;
        } else if kind.is_file() {
            compress_file(&path, &old, &mut records, summary)?;
        }
    }
    if records.is_empty() {
        match std::fs::remove_file(&manifest_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    } else {
        let text = manifest::render(&records);
        if std::fs::read(&manifest_path).ok().as_deref() != Some(text.as_bytes()) {
            write_atomically(&manifest_path, text.as_bytes())?;
        }
    }
    Ok(())
}

fn compress_file(
    path: &Path,
    old: &[Record],
    records: &mut Vec<Record>,
    summary: &mut Summary,
) -> std::io::Result<()> {
    let Some(name) = path.file_name() else {
        return Ok(());
    };
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(name);
    let text = name.to_string_lossy();
    if text == manifest::NAME || text.ends_with(TMP_SUFFIX) {
        return Ok(());
    }
    let meta = std::fs::metadata(path)?;
    if mime::already_compressed(&text) || meta.len() < MIN_SIZE {
        summary.skipped += 1;
        return Ok(());
    }
    let data = std::fs::read(path)?;
    let original = Digest::of(&data);
    let modified = meta.modified()?;
    let (mut written, mut refreshed, mut kept) = (false, false, false);
    for coding in CODINGS {
        let target = sibling(path, coding);
        let recorded = old
            .iter()
            .find(|r| r.name == bytes && r.coding == coding && r.original == original);
        if let Some(record) = recorded {
            if std::fs::read(&target).is_ok_and(|v| Digest::of(&v) == record.variant) {
                refreshed |= not_older(&target, modified)?;
                kept = true;
                records.push(record.clone());
                continue;
            }
        }
        let compressed = match coding {
            Coding::Brotli => brotli_bytes(&data)?,
            _ => gzip_bytes(&data)?,
        };
        if compressed.len() < data.len() {
            write_atomically(&target, &compressed)?;
            not_older(&target, modified)?;
            written = true;
            records.push(Record {
                name: bytes.to_vec(),
                coding,
                original,
                variant: Digest::of(&compressed),
            });
        } else if target.exists() {
            std::fs::remove_file(&target)?; // a stale sibling that would now be larger
        }
    }
    if written {
        summary.written += 1;
    } else if refreshed {
        summary.refreshed += 1;
    } else if kept {
        summary.up_to_date += 1;
    } else {
        summary.skipped += 1;
    }
    Ok(())
}

fn sibling(path: &Path, coding: Coding) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(coding.suffix());
    s.into()
}

/// Brings a variant's mtime up to its file's, if it is older (the server serves no variant
/// older than its file): a file dated in the future, or copied again with the same bytes.
/// Says whether it had to.
fn not_older(variant: &Path, original: SystemTime) -> std::io::Result<bool> {
    let file = File::options().write(true).open(variant)?;
    if file.metadata()?.modified()? >= original {
        return Ok(false);
    }
    file.set_modified(original.max(SystemTime::now()))?;
    Ok(true)
}

/// Writes through a temporary name and renames, so a server never sends half a file.
fn write_atomically(target: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(TMP_SUFFIX);
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, target)
}

fn brotli_bytes(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / 3);
    {
        let mut writer = brotli::CompressorWriter::new(&mut out, 64 * 1024, 11, 22);
        writer.write_all(data)?;
    }
    Ok(out)
}

fn gzip_bytes(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn writes_siblings_for_what_shrinks() {
        let dir = tempfile::tempdir().unwrap();
        let css = dir.path().join("sub").join("app.css");
        std::fs::create_dir_all(css.parent().unwrap()).unwrap();
        std::fs::write(&css, "body { color: red }\n".repeat(500)).unwrap();
        std::fs::write(dir.path().join("logo.png"), vec![7u8; 5000]).unwrap();
        std::fs::write(dir.path().join("tiny.js"), b"x()").unwrap();
        let mut random = vec![0u8; 5000];
        std::fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut random)
            .unwrap();
        std::fs::write(dir.path().join("noise.txt"), &random).unwrap();

        let mut summary = Summary::default();
        compress_dir(dir.path(), &mut summary).unwrap();
        assert_eq!(summary.written, 1, "{summary:?}");
        let gz = std::fs::read(sibling(&css, Coding::Gzip)).unwrap();
        let mut unzipped = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, "body { color: red }\n".repeat(500));
        let br = std::fs::read(sibling(&css, Coding::Brotli)).unwrap();
        let mut unbr = Vec::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_end(&mut unbr)
            .unwrap();
        assert_eq!(unbr.len(), 10_000);
        assert!(!dir.path().join("logo.png.gz").exists());
        assert!(!dir.path().join("noise.txt.br").exists());

        // A second run finds everything up to date.
        let mut again = Summary::default();
        compress_dir(dir.path(), &mut again).unwrap();
        assert_eq!(again.up_to_date, 1);
        assert_eq!(again.written, 0);
    }

    fn records(dir: &Path) -> Vec<Record> {
        manifest::parse(&std::fs::read(dir.join(manifest::NAME)).unwrap_or_default())
    }

    /// The manifest records, for each variant, the size and SHA-256 of the file it was made
    /// from and its own; variants nobody recorded, or that changed since, are made again;
    /// a file copied again with the same bytes gets its variants' mtimes brought up, not
    /// recompressed; records of files that are gone go too.
    #[test]
    fn the_manifest_says_what_each_variant_was_made_from() {
        let dir = tempfile::tempdir().unwrap();
        let css = dir.path().join("app.css");
        let text = "body { color: red }\n".repeat(500);
        std::fs::write(&css, &text).unwrap();
        std::fs::write(sibling(&css, Coding::Gzip), b"not made by dragoman").unwrap();
        let mut summary = Summary::default();
        compress_dir(dir.path(), &mut summary).unwrap();
        assert_eq!(summary.written, 1);
        let made = records(dir.path());
        assert_eq!(made.len(), 2);
        for r in &made {
            assert_eq!(r.name, b"app.css");
            assert_eq!(r.original, Digest::of(text.as_bytes()));
            let variant = std::fs::read(sibling(&css, r.coding)).unwrap();
            assert_eq!(r.variant, Digest::of(&variant));
        }
        let gz = std::fs::read(sibling(&css, Coding::Gzip)).unwrap();
        assert!(
            gz.starts_with(&[0x1f, 0x8b]),
            "the foreign .gz was replaced"
        );

        // Edited since: made again.
        std::fs::write(sibling(&css, Coding::Brotli), b"edited").unwrap();
        let mut summary = Summary::default();
        compress_dir(dir.path(), &mut summary).unwrap();
        assert_eq!(summary.written, 1);
        assert_eq!(records(dir.path()), made);

        // The same bytes copied again, newer than the variants: only their mtimes move.
        let later = SystemTime::now() + std::time::Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(&css)
            .unwrap()
            .set_modified(later)
            .unwrap();
        let before = std::fs::read(sibling(&css, Coding::Brotli)).unwrap();
        let mut summary = Summary::default();
        compress_dir(dir.path(), &mut summary).unwrap();
        assert_eq!((summary.refreshed, summary.written), (1, 0), "{summary:?}");
        assert_eq!(
            std::fs::read(sibling(&css, Coding::Brotli)).unwrap(),
            before
        );
        for coding in CODINGS {
            let variant = std::fs::metadata(sibling(&css, coding)).unwrap();
            assert!(variant.modified().unwrap() >= later);
        }

        // New content: new variants, new records.
        std::fs::write(&css, text.replace("red", "tan")).unwrap();
        compress_dir(dir.path(), &mut Summary::default()).unwrap();
        let remade = records(dir.path());
        assert!(remade
            .iter()
            .all(|r| r.original == Digest::of(text.replace("red", "tan").as_bytes())));

        // The file gone: no records, no manifest.
        std::fs::remove_file(&css).unwrap();
        compress_dir(dir.path(), &mut Summary::default()).unwrap();
        assert!(!dir.path().join(manifest::NAME).exists());
    }
}
