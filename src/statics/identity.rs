//! What tells one version of a file from another without reading it: its device and inode,
//! size, and modification and change times (to the nanosecond). mtime and size alone miss the
//! commonest deploys: `rsync -a` writes a new file, gives it the old one's mtime and renames it
//! over (same mtime, same size, a new inode), and `cp --preserve=timestamps` rewrites a file in
//! place and puts its mtime back (same inode, a new ctime: no one but the kernel sets ctime).

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One version of one regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Identity {
    pub(crate) fn of(meta: &Metadata) -> Identity {
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// The identity of the regular file at `path` (symlinks followed), if there is one.
    pub(crate) fn at(path: &Path) -> Option<Identity> {
        let meta = std::fs::metadata(path).ok().filter(Metadata::is_file)?;
        Some(Identity::of(&meta))
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The modification time (years outside what SystemTime holds saturate to the epoch).
    pub(crate) fn modified(&self) -> SystemTime {
        let (secs, nanos) = self.mtime;
        let nanos = Duration::from_nanos(u64::try_from(nanos).unwrap_or(0));
        let at = match u64::try_from(secs) {
            Ok(secs) => UNIX_EPOCH.checked_add(Duration::from_secs(secs)),
            Err(_) => UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs())),
        };
        at.and_then(|t| t.checked_add(nanos)).unwrap_or(UNIX_EPOCH)
    }

    /// Whole seconds of the modification time since the epoch (0 before it), for ETags.
    pub(crate) fn mtime_secs(&self) -> u64 {
        u64::try_from(self.mtime.0).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    #[test]
    fn tells_versions_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"one").unwrap();
        let first = Identity::at(&path).unwrap();
        assert_eq!(Identity::at(&path), Some(first));
        assert_eq!(first.len(), 3);
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert_eq!(first.modified(), mtime);

        // Renamed over, same size and mtime: another inode.
        std::fs::write(dir.path().join("g"), b"two").unwrap();
        File::options()
            .write(true)
            .open(dir.path().join("g"))
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        std::fs::rename(dir.path().join("g"), &path).unwrap();
        let second = Identity::at(&path).unwrap();
        assert_ne!(second, first);

        // Rewritten in place, mtime put back: the ctime moved.
        std::thread::sleep(Duration::from_millis(20));
        let f = File::options().write(true).open(&path).unwrap();
        std::io::Write::write_all(&mut &f, b"six").unwrap();
        f.set_modified(mtime).unwrap();
        assert_ne!(Identity::at(&path).unwrap(), second);

        assert_eq!(Identity::at(dir.path()), None, "a directory is no file");
        assert_eq!(Identity::at(&dir.path().join("missing")), None);
    }
}
