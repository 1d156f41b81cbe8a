//! Reading files for serving. A file is opened once, and everything about it comes from that
//! descriptor: its identity from fstat, its bytes from reads of the same descriptor, and a
//! size that the reads contradict is not believed (a file that shrinks between a stat by path
//! and a read by path once made every request for it panic). The descriptors cache entries
//! keep open come out of a budget, so connections always have the rest.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;

use super::identity::Identity;

/// Most descriptors the cache keeps open, whatever the descriptor limit.
const KEPT_FILES_MAX: usize = 1024;

/// Why a file could not be served from disk.
#[derive(Debug)]
pub(super) enum Failure {
    /// Not there (any more), or not a regular file: the application answers.
    Gone,
    /// Not the file the cache entry was made from: it is loaded again.
    Changed,
    /// No descriptor to be had (EMFILE, ENFILE), or no memory for one: the file is there,
    /// so a 503 to try again, never a 404 (which a CDN would cache).
    Unavailable,
    /// The worker may not read it (EACCES, EPERM).
    Forbidden,
    /// Any other error of the file system.
    Failed(io::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        match e.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::ENAMETOOLONG) => Failure::Gone,
            Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM) => Failure::Unavailable,
            Some(libc::EACCES | libc::EPERM) => Failure::Forbidden,
            _ => Failure::Failed(e),
        }
    }
}

/// Opens a regular file (symlinks followed) and reads its identity from the descriptor.
pub(super) fn open(path: &Path) -> Result<(File, Identity), Failure> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Failure::Gone);
    }
    Ok((file, Identity::of(&meta)))
}

/// Reads a file from its descriptor, whole, if it holds at most `max` bytes (`None` if it
/// holds more). However large fstat said it was: what the reads return is the file.
pub(super) fn read_whole(file: &File, max: u64) -> Result<Option<Bytes>, Failure> {
    let mut data = Vec::new();
    // One byte past the limit tells a file that grew past it from one that fits exactly.
    let got = file.take(max.saturating_add(1)).read_to_end(&mut data)?;
    Ok((got as u64 <= max).then(|| Bytes::from(data)))
}

/// The descriptors cache entries keep open, against a budget: an eighth of the descriptor
/// limit (as read when the worker starts, after the master raised the soft limit to the hard
/// one), and never more than [`KEPT_FILES_MAX`]. The rest is the connections'.
pub(super) struct Descriptors {
    open: Cell<usize>,
    max: usize,
}

impl Descriptors {
    pub(super) fn new() -> Rc<Descriptors> {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the limits into the struct we pass, nothing else.
        let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
        } else {
            1024
        };
        Descriptors::with_max((soft / 8).min(KEPT_FILES_MAX))
    }

    pub(super) fn with_max(max: usize) -> Rc<Descriptors> {
        Rc::new(Descriptors {
            open: Cell::new(0),
            max,
        })
    }

    /// Keeps `file` open for a cache entry, if the budget has room.
    pub(super) fn keep(self: &Rc<Self>, file: &Rc<File>) -> Option<KeptFile> {
        if self.open.get() >= self.max {
            return None;
        }
        self.open.set(self.open.get() + 1);
        Some(KeptFile {
            file: file.clone(),
            budget: self.clone(),
        })
    }

    #[cfg(test)]
    pub(super) fn open(&self) -> usize {
        self.open.get()
    }
}

/// A file a cache entry keeps open; its descriptor goes back to the budget when the entry
/// goes (and closes once the last response sending from it is done).
pub(super) struct KeptFile {
    pub(super) file: Rc<File>,
    budget: Rc<Descriptors>,
}

impl Drop for KeptFile {
    fn drop(&mut self) {
        self.budget
            .open
            .set(self.budget.open.get().saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sysfs files say 4096 bytes and hold a few, as a file that shrank after its stat does;
    /// procfs files say 0 and hold more. The reads decide.
    #[test]
    fn the_reads_decide_the_size() {
        let online = Path::new("/sys/devices/system/cpu/online");
        let (file, identity) = open(online).unwrap();
        assert_eq!(identity.len(), 4096);
        let data = read_whole(&file, 16 * 1024).unwrap().unwrap();
        assert_eq!(data, std::fs::read(online).unwrap());
        assert!(data.len() < 4096);

        let ostype = Path::new("/proc/sys/kernel/ostype");
        let (file, identity) = open(ostype).unwrap();
        assert_eq!(identity.len(), 0);
        assert_eq!(read_whole(&file, 16).unwrap().unwrap(), "Linux\n");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [7u8; 100]).unwrap();
        let (file, _) = open(&path).unwrap();
        assert!(
            read_whole(&file, 99).unwrap().is_none(),
            "more than the limit"
        );
        let (file, _) = open(&path).unwrap();
        assert_eq!(read_whole(&file, 100).unwrap().unwrap().len(), 100);
        assert!(matches!(open(dir.path()), Err(Failure::Gone)));
        assert!(matches!(open(&dir.path().join("no")), Err(Failure::Gone)));
        assert!(matches!(open(&path.join("x")), Err(Failure::Gone)));
    }

    #[test]
    fn the_budget_is_kept() {
        let budget = Descriptors::with_max(1);
        let file = Rc::new(tempfile::tempfile().unwrap());
        let kept = budget.keep(&file).unwrap();
        assert!(budget.keep(&file).is_none());
        drop(kept);
        assert_eq!(budget.open(), 0);
        assert!(budget.keep(&file).is_some());
    }
}
