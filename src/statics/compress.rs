//! `dragoman compress DIR...`: writes `x.br` and `x.gz` beside every file `x` worth
//! compressing, for the static server to send to clients that accept them (as
//! `python -m whitenoise.compress` does). Skips files in compressed formats, files that do not
//! shrink, and siblings already newer than their file.

use std::io::Write;
use std::path::Path;

use super::mime;

/// Files smaller than this are not worth a request header's worth of savings.
const MIN_SIZE: u64 = 256;

/// What happened to each file, for the summary.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Summary {
    pub written: usize,
    pub up_to_date: usize,
    pub skipped: usize,
}

/// Runs the subcommand; returns the exit code.
pub fn run(args: &[String]) -> i32 {
    let (quiet, dirs): (Vec<&String>, Vec<&String>) =
        args.iter().partition(|a| *a == "-q" || *a == "--quiet");
    if dirs.is_empty() || dirs.iter().any(|d| d.starts_with('-')) {
        eprintln!("usage: dragoman compress [--quiet] DIR...\n\nwrites DIR/**/x.br and x.gz for the files worth compressing");
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
            "dragoman compress: {} compressed file(s) written, {} up to date, {} not worth compressing",
            total.written, total.up_to_date, total.skipped
        );
    }
    0
}

/// Compresses every file under `dir`.
pub fn compress_dir(dir: &Path, summary: &mut Summary) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            compress_dir(&path, summary)?;
        } else if kind.is_file() {
            compress_file(&path, summary)?;
        }
    }
    Ok(())
}

fn compress_file(path: &Path, summary: &mut Summary) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let meta = std::fs::metadata(path)?;
    if mime::already_compressed(&name) || meta.len() < MIN_SIZE {
        summary.skipped += 1;
        return Ok(());
    }
    let modified = meta.modified()?;
    let fresh = |suffix: &str| {
        std::fs::metadata(sibling(path, suffix))
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= modified)
    };
    if fresh(".br") && fresh(".gz") {
        summary.up_to_date += 1;
        return Ok(());
    }
    let data = std::fs::read(path)?;
    let mut wrote = false;
    for (suffix, compressed) in [(".br", brotli_bytes(&data)?), (".gz", gzip_bytes(&data)?)] {
        let target = sibling(path, suffix);
        if compressed.len() < data.len() {
            write_atomically(&target, &compressed)?;
            wrote = true;
        } else if target.exists() {
            std::fs::remove_file(&target)?; // a stale sibling that would now be larger
        }
    }
    if wrote {
        summary.written += 1;
    } else {
        summary.skipped += 1;
    }
    Ok(())
}

fn sibling(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    s.into()
}

/// Writes through a temporary name and renames, so a server never sends half a file.
fn write_atomically(target: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
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
        let gz = std::fs::read(sibling(&css, ".gz")).unwrap();
        let mut unzipped = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, "body { color: red }\n".repeat(500));
        let br = std::fs::read(sibling(&css, ".br")).unwrap();
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
}
