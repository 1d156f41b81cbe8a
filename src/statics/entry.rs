//! What the cache keeps for a path: a servable file with its representations, or a directory
//! that redirects. Made and served by [`super::StaticFiles`], kept by [`super::cache`].

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::HeaderValue;

use super::disk::KeptFile;
use super::encoding::Coding;
use super::identity::Identity;

/// One representation of a file: the file itself, or a precompressed sibling.
pub(super) struct Rep {
    pub(super) coding: Option<Coding>,
    pub(super) path: PathBuf,
    /// The version of the file this representation was read from: a descriptor opened later
    /// by path must show the same, or the entry is loaded again.
    pub(super) identity: Identity,
    /// The length responses promise: the bytes read when `data` holds them (whatever fstat
    /// said), else fstat's.
    pub(super) len: u64,
    pub(super) etag: HeaderValue,
    /// The bytes, when small enough to keep.
    pub(super) data: Option<Bytes>,
    /// Otherwise the open file, kept while the budget allows.
    pub(super) kept: RefCell<Option<KeptFile>>,
}

/// A resolved, servable file with everything its responses need.
pub(super) struct FileEntry {
    pub(super) reps: Vec<Rep>,
    /// The modification time responses state and validate against (see [`super::dates`]).
    pub(super) modified: SystemTime,
    pub(super) content_type: HeaderValue,
    pub(super) last_modified: HeaderValue,
    pub(super) cache_control: Option<HeaderValue>,
    /// Seconds for an `Expires` header (static-expires rules).
    pub(super) expires: Option<u64>,
    /// The identity of each file the entry was made from (or that it is absent), to notice
    /// any change.
    pub(super) fingerprint: Vec<(PathBuf, Option<Identity>)>,
    pub(super) checked: Cell<Instant>,
}

/// A cache entry: a file, or a directory that redirects to its slashed path.
pub(super) enum Entry {
    File(FileEntry),
    Redirect {
        checked: Cell<Instant>,
        dir: PathBuf,
        /// Where to: the normal spelling of the path with its slash, never `//host`.
        location: String,
    },
}

impl Entry {
    /// When the entry was last found to match the disk.
    pub(super) fn checked(&self) -> Instant {
        match self {
            Entry::File(f) => f.checked.get(),
            Entry::Redirect { checked, .. } => checked.get(),
        }
    }

    /// What the entry holds in memory, roughly: its structures, paths and cached bytes.
    pub(super) fn memory(&self) -> u64 {
        let path = |p: &Path| p.as_os_str().len();
        let bytes = size_of::<Entry>()
            + match self {
                Entry::File(f) => {
                    f.reps
                        .iter()
                        .map(|r| {
                            size_of::<Rep>()
                                + path(&r.path)
                                + r.etag.len()
                                + r.data.as_ref().map_or(0, Bytes::len)
                        })
                        .sum::<usize>()
                        + f.fingerprint
                            .iter()
                            .map(|(p, _)| size_of::<(PathBuf, Option<Identity>)>() + path(p))
                            .sum::<usize>()
                        + f.content_type.len()
                        + f.last_modified.len()
                        + f.cache_control.as_ref().map_or(0, HeaderValue::len)
                }
                Entry::Redirect { dir, location, .. } => path(dir) + location.len(),
            };
        bytes as u64
    }
}
