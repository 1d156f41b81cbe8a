//! Static and media files, served straight from disk in Rust, never touching Python.
//!
//! A request whose path falls under a mount (`static-map`, `static-map2`, `check-static`) is
//! resolved to a file; a file that exists is served, anything else goes to the application
//! (so Django can 404 it). On the way: ETag/Last-Modified and 304s, Range (206, 416,
//! multipart/byteranges, If-Range), precompressed variants by Accept-Encoding, Cache-Control
//! (a year, immutable, for content-hashed names), index files and the `/docs` -> `/docs/`
//! redirect, and refusal of every path that could escape the mount.
//!
//! Hot files are kept in a per-worker cache (bounded; files up to 16 KiB with their bytes,
//! larger ones by their metadata), revalidated against the disk at most once a second, so a
//! cached small file costs no file system call at all. Larger files go out with sendfile from
//! a descriptor the entry keeps open (a bounded number of them, see [`disk::Descriptors`]),
//! so a cached large file costs no open or close either.

mod cache;
pub(crate) mod compress;
mod conditional;
mod dates;
mod disk;
pub(crate) mod encoding;
mod entry;
mod identity;
mod manifest;
mod mime;
pub(crate) mod path;
pub(crate) mod range;

use std::cell::{Cell, RefCell};
use std::fs::{File, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use crate::config::StaticConfig;
use crate::http::file::{FileBody, Piece};
use crate::http::{error_response, Body, RequestBody, Route};
use cache::Cache;
use conditional::Validators;
use disk::{Descriptors, Failure};
use encoding::Coding;
use entry::{Entry, FileEntry, Rep};
use identity::Identity;
use path::Refusal;
use range::{ByteRange, Ranges};

/// Files up to this size are kept in memory with their bytes; larger ones are sent from the
/// file, with sendfile on plaintext connections (cheaper than copying from memory above about
/// this size: see docs/static-files.md).
const CACHE_FILE_MAX: u64 = 16 * 1024;
/// How stale a cache entry may get before the disk is checked again.
const REVALIDATE: Duration = Duration::from_secs(1);
/// Most entries the cache holds (metadata included), whatever their size.
const CACHE_ENTRIES_MAX: usize = 10_000;
const A_YEAR: u64 = 365 * 24 * 3600;

/// One mount, longest prefixes first.
struct Mount {
    prefix: String,
    target: PathBuf,
}

impl Mount {
    /// The Location of the redirect from a directory below the mount to its slashed path:
    /// built from the normal spelling, percent-encoded, so it is always a path on this site.
    /// From the raw request path, `GET //evil.example` under a mount at `/` would redirect to
    /// `//evil.example/`, which browsers read as another host.
    fn location(&self, key: &[u8]) -> String {
        let prefix = self.prefix.trim_end_matches('/');
        let encoded = percent_encoding::percent_encode(key, LOCATION_ESCAPES);
        let location = format!("{prefix}{encoded}/");
        // The key is empty or a `/` and a non-empty segment, and the prefix has no final
        // `/`, so this starts with one `/` already; the trim keeps the promise even for a
        // configured prefix that starts with `//`.
        format!("/{}", location.trim_start_matches('/'))
    }

    /// The URL path of a path below the mount in its normal spelling (decoded), which
    /// `static-expires-uri` patterns match.
    fn uri(&self, key: &[u8]) -> String {
        let key = String::from_utf8_lossy(key);
        match self.prefix.as_str() {
            "/" if key.is_empty() => "/".into(),
            "/" => key.into_owned(),
            prefix => format!("{prefix}{key}"),
        }
    }
}

/// A representation just opened: the descriptor it was read from stays at hand (for its
/// hash) until the entry is made, kept beyond only as the budget allows.
struct Loaded {
    rep: Rep,
    /// Whether the reads agreed with fstat.
    settled: bool,
    /// The open file, when the bytes are not in memory.
    file: Option<Rc<File>>,
}

/// The digest of a representation: of its bytes in memory, or read from its descriptor.
fn digest(data: &Option<Bytes>, file: Option<&File>) -> Option<manifest::Digest> {
    match (data, file) {
        (Some(data), _) => Some(manifest::Digest::of(data)),
        (None, Some(file)) => manifest::Digest::of_file(file).ok(),
        (None, None) => None,
    }
}

/// What a request path resolved to.
enum Resolved {
    Found(Rc<Entry>),
    /// Nothing there: the application handles the request.
    Missing,
    /// A path that is not served: answered at once.
    Refused(StatusCode, &'static str),
}

/// The static files of one worker.
pub(crate) struct StaticFiles {
    mounts: Vec<Mount>,
    config: StaticConfig,
    cache: RefCell<Cache>,
    descriptors: Rc<Descriptors>,
}

impl StaticFiles {
    /// `None` when no mount is configured.
    pub(crate) fn new(config: &StaticConfig) -> Option<Rc<StaticFiles>> {
        if config.mounts.is_empty() {
            return None;
        }
        let mut mounts: Vec<Mount> = config
            .mounts
            .iter()
            .map(|m| Mount {
                prefix: m.prefix.clone(),
                target: m.target.clone(),
            })
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.prefix.len()));
        Some(Rc::new(StaticFiles {
            cache: RefCell::new(Cache::new(
                mounts.len(),
                CACHE_ENTRIES_MAX,
                config.cache_bytes,
            )),
            mounts,
            config: config.clone(),
            descriptors: Descriptors::new(),
        }))
    }

    /// Serves the request from disk if it names a static file; `None` passes it on.
    pub(crate) fn handle<B>(&self, req: &Request<B>) -> Option<Response<Body>> {
        // A file found changed (or gone) when a response opens it is looked up again, once.
        match self.attempt(req) {
            Err(Failure::Changed | Failure::Gone) => self.attempt(req).unwrap_or_else(fail),
            outcome => outcome.unwrap_or_else(fail),
        }
    }

    /// One try at [`StaticFiles::handle`].
    fn attempt<B>(&self, req: &Request<B>) -> Result<Option<Response<Body>>, Failure> {
        let path = req.uri().path();
        let Some((index, mount, rest)) = self.mount_for(path) else {
            return Ok(None);
        };
        let (key, wants_dir) = match path::normalise(rest, self.config.dotfiles) {
            Ok(normal) => normal,
            Err(Refusal::BadRequest(why)) => {
                return Ok(Some(error_response(StatusCode::BAD_REQUEST, why, false)))
            }
            Err(Refusal::Hidden) => {
                return Ok(Some(error_response(StatusCode::NOT_FOUND, "", false)))
            }
        };
        let cached = self.cache.borrow().get(index, &key);
        let entry = match cached {
            Some(entry) if self.still_valid(&entry) => entry,
            stale => {
                if stale.is_some() {
                    // Gone now, with the descriptor it may keep (a deleted file's space
                    // must not stay held), whatever the path resolves to next.
                    self.cache.borrow_mut().forget(index, &key);
                }
                match self.resolve(index, mount, &key, wants_dir)? {
                    Resolved::Found(entry) => entry,
                    Resolved::Missing => {
                        crate::metrics::record::static_miss();
                        return Ok(None);
                    }
                    Resolved::Refused(status, why) => {
                        return Ok(Some(error_response(status, why, false)))
                    }
                }
            }
        };
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut response = error_response(StatusCode::METHOD_NOT_ALLOWED, "", false);
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Ok(Some(response));
        }
        let response = match &*entry {
            Entry::File(file) => self.respond(file, req),
            Entry::Redirect { location, .. } => Ok(redirect(location, req.uri().query())),
        };
        if response.is_err() {
            self.cache.borrow_mut().forget(index, &key);
        }
        response.map(Some)
    }

    /// The mount a path falls under (its index too), and the rest of the path below it.
    fn mount_for<'p>(&self, path: &'p str) -> Option<(usize, &Mount, &'p str)> {
        self.mounts.iter().enumerate().find_map(|(i, m)| {
            if m.prefix == "/" {
                return Some((i, m, path));
            }
            let rest = path.strip_prefix(m.prefix.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then_some((i, m, rest))
        })
    }

    /// Whether a cached entry still describes the disk (checked at most once a second).
    fn still_valid(&self, entry: &Entry) -> bool {
        let checked = match entry {
            Entry::File(f) => &f.checked,
            Entry::Redirect { checked, .. } => checked,
        };
        if checked.get().elapsed() < REVALIDATE {
            return true;
        }
        let valid = match entry {
            Entry::File(f) => f
                .fingerprint
                .iter()
                .all(|(p, seen)| Identity::at(p) == *seen),
            Entry::Redirect { dir, .. } => dir.is_dir(),
        };
        if valid {
            checked.set(Instant::now());
        }
        valid
    }

    /// Resolves a path below a mount, in its normal spelling, on disk.
    fn resolve(
        &self,
        mount_index: usize,
        mount: &Mount,
        key: &[u8],
        wants_dir: bool,
    ) -> Result<Resolved, Failure> {
        let mut candidate = mount.target.clone();
        for s in key.split(|&b| b == b'/').filter(|s| !s.is_empty()) {
            candidate.push(std::ffi::OsStr::from_bytes(s));
        }
        let Ok(meta) = std::fs::metadata(&candidate) else {
            return Ok(Resolved::Missing);
        };
        if !self.inside(mount, &candidate) {
            return Ok(Resolved::Refused(StatusCode::NOT_FOUND, ""));
        }
        let file = if meta.is_dir() {
            let index = self
                .config
                .index
                .iter()
                .map(|name| candidate.join(name))
                .find_map(|p| {
                    let m = std::fs::metadata(&p).ok().filter(Metadata::is_file)?;
                    Some((p, m))
                });
            match (index, wants_dir) {
                (None, _) => return Ok(Resolved::Missing),
                (Some(_), false) => {
                    let entry = Rc::new(Entry::Redirect {
                        checked: Cell::new(Instant::now()),
                        dir: candidate,
                        location: mount.location(key),
                    });
                    self.cache
                        .borrow_mut()
                        .remember(mount_index, key, entry.clone());
                    return Ok(Resolved::Found(entry));
                }
                (Some((index, _)), true) => {
                    if !self.inside(mount, &index) {
                        return Ok(Resolved::Refused(StatusCode::NOT_FOUND, ""));
                    }
                    index
                }
            }
        } else if meta.is_file() && !wants_dir {
            candidate
        } else {
            return Ok(Resolved::Missing);
        };
        let entry = match self.load(mount, &file, &mount.uri(key)) {
            Ok(entry) => entry,
            Err(Failure::Gone) => return Ok(Resolved::Missing),
            Err(failure) => return Err(failure),
        };
        let entry = Rc::new(Entry::File(entry));
        self.cache
            .borrow_mut()
            .remember(mount_index, key, entry.clone());
        Ok(Resolved::Found(entry))
    }

    /// Whether a path, symlinks resolved, stays inside its mount (or a static-safe directory).
    fn inside(&self, mount: &Mount, path: &Path) -> bool {
        let (Ok(real), Ok(root)) = (
            std::fs::canonicalize(path),
            std::fs::canonicalize(&mount.target),
        ) else {
            return false;
        };
        real.starts_with(&root)
            || self
                .config
                .safe
                .iter()
                .filter_map(|d| std::fs::canonicalize(d).ok())
                .any(|d| real.starts_with(d))
    }

    /// Reads what serving a file needs: its representations, validators and headers. Each
    /// file is opened once and known by that descriptor (see [`disk`]).
    fn load(&self, mount: &Mount, file: &Path, uri: &str) -> Result<FileEntry, Failure> {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut original = self.load_rep(file, None)?;
        let settled = original.settled;
        let modified = original.rep.identity.modified();
        // The ETag stays mtime-size, as nginx's: the same file on two servers (or after a
        // copy that keeps the mtime) gets the same tag, so caches keep validating across
        // them. The identity (inode, ctime) decides when to reload, not what to call it.
        let base_tag = format!(
            "{:x}-{:x}",
            original.rep.identity.mtime_secs(),
            original.rep.len
        );
        original.rep.etag = etag(&base_tag);
        let mut fingerprint = vec![(file.to_path_buf(), Some(original.rep.identity))];
        let variants = if self.config.precompressed {
            self.variants(mount, file, &original, &mut fingerprint)
        } else {
            Vec::new()
        };
        let mut reps = vec![original.rep];
        reps.extend(variants);
        let full = file.to_string_lossy();
        let expires = self
            .config
            .expires
            .iter()
            .find(|(re, _)| re.is_match(&full))
            .or_else(|| {
                self.config
                    .expires_uri
                    .iter()
                    .find(|(re, _)| re.is_match(uri))
            })
            .map(|(_, secs)| *secs);
        let cache_control = match expires {
            Some(secs) => Some(format!("public, max-age={secs}")),
            None if self.config.immutable && path::is_hashed_name(&name) => {
                Some(format!("public, max-age={A_YEAR}, immutable"))
            }
            None => self
                .config
                .max_age
                .map(|secs| format!("public, max-age={secs}")),
        };
        let stated = dates::last_modified(modified, SystemTime::now());
        // A file whose reads contradicted its fstat is changing as it is read: the entry is
        // checked against the disk again on its next request.
        let now = Instant::now();
        let checked = if settled {
            now
        } else {
            now.checked_sub(REVALIDATE).unwrap_or(now)
        };
        Ok(FileEntry {
            reps,
            modified: stated,
            content_type: HeaderValue::from_static(mime::content_type(&name)),
            last_modified: dates::header(stated),
            cache_control: cache_control.and_then(|c| HeaderValue::from_str(&c).ok()),
            expires,
            fingerprint,
            checked: Cell::new(checked),
        })
    }

    /// Opens one representation (its ETag is the caller's to set): a small file is read
    /// whole from the descriptor that was fstat'ed (its length is what the reads returned),
    /// a larger one is kept open if the budget allows. Also says whether the reads agreed
    /// with fstat.
    fn load_rep(&self, path: &Path, coding: Option<Coding>) -> Result<Loaded, Failure> {
        let (file, mut identity) = disk::open(path)?;
        let mut data = None;
        let mut settled = true;
        if identity.len() <= CACHE_FILE_MAX {
            data = disk::read_whole(&file, CACHE_FILE_MAX)?;
            let got = data.as_ref().map(|d| d.len() as u64);
            settled = got == Some(identity.len());
            if got.is_none() {
                // It grew past what is kept in memory while it was read: served from the
                // descriptor, at the size it has now.
                identity = Identity::of(&file.metadata()?);
            }
        }
        let len = data.as_ref().map_or(identity.len(), |d| d.len() as u64);
        let file = data.is_none().then(|| Rc::new(file));
        let kept = file.as_ref().and_then(|f| self.descriptors.keep(f));
        let rep = Rep {
            coding,
            path: path.to_path_buf(),
            etag: HeaderValue::from_static("\"\""),
            identity,
            len,
            data,
            kept: RefCell::new(kept),
        };
        Ok(Loaded { rep, settled, file })
    }

    /// The precompressed variants of `file` that may be served in its place, each with an
    /// ETag of its own. A sibling `file.br`, `file.gz` or `file.zst` is served only when all
    /// hold (see [`manifest`]): it is a regular file inside the mount (symlinks as for any
    /// file), not older than the original, and the directory's manifest says it was made by
    /// `dragoman compress` from the original's current contents (size and SHA-256) and that it
    /// is the very variant made (its size and SHA-256). The cheap checks go first; the hashes
    /// are taken once per load, from the descriptors the files were read from.
    fn variants(
        &self,
        mount: &Mount,
        file: &Path,
        original: &Loaded,
        fingerprint: &mut Vec<(PathBuf, Option<Identity>)>,
    ) -> Vec<Rep> {
        let siblings: Vec<(Coding, PathBuf, Identity)> = Coding::ALL
            .into_iter()
            .filter_map(|coding| {
                let mut sibling = file.as_os_str().to_owned();
                sibling.push(coding.suffix());
                let sibling = PathBuf::from(sibling);
                let seen = Identity::at(&sibling);
                fingerprint.push((sibling.clone(), seen));
                Some((coding, sibling, seen?))
            })
            .collect();
        if siblings.is_empty() {
            return Vec::new();
        }
        // The manifest is part of what the entry was made from: a new `dragoman compress` run
        // (or a manifest removed) reloads it.
        let manifest_path = file.with_file_name(manifest::NAME);
        fingerprint.push((manifest_path.clone(), Identity::at(&manifest_path)));
        let Some(text) = self.read_manifest(mount, &manifest_path) else {
            return Vec::new();
        };
        let name = file.file_name().map(|n| n.as_bytes()).unwrap_or_default();
        let original_rep = &original.rep;
        let mut original_digest = None;
        let mut reps = Vec::new();
        for (coding, sibling, seen) in siblings {
            let Some(record) = manifest::find(&text, name, coding) else {
                continue; // nobody made it with dragoman: never served
            };
            if record.original.len != original_rep.len
                || record.variant.len != seen.len()
                || seen.modified() < original_rep.identity.modified()
                || !self.inside(mount, &sibling)
            {
                continue;
            }
            if original_digest.is_none() {
                original_digest = digest(&original_rep.data, original.file.as_deref());
            }
            if original_digest != Some(record.original) {
                return Vec::new(); // the manifest describes another version of the file
            }
            let Ok(loaded) = self.load_rep(&sibling, Some(coding)) else {
                continue;
            };
            if loaded.rep.identity != seen
                || digest(&loaded.rep.data, loaded.file.as_deref()) != Some(record.variant)
            {
                continue; // replaced or edited since dragoman made it
            }
            let mut rep = loaded.rep;
            rep.etag = etag(&format!("{}-{}", record.variant.short(), coding.token()));
            reps.push(rep);
        }
        reps
    }

    /// A directory's manifest, if it is a regular file inside the mount (symlinks as for any
    /// file) of a sane size.
    fn read_manifest(&self, mount: &Mount, path: &Path) -> Option<Vec<u8>> {
        if !self.inside(mount, path) {
            return None;
        }
        let (file, identity) = disk::open(path).ok()?;
        if identity.len() > manifest::MAX_BYTES {
            return None;
        }
        disk::read_whole(&file, manifest::MAX_BYTES)
            .ok()
            .flatten()
            .map(Vec::from)
    }

    /// The response for a GET or HEAD of a file.
    fn respond<B>(&self, entry: &FileEntry, req: &Request<B>) -> Result<Response<Body>, Failure> {
        let headers = req.headers();
        let variants: Vec<(Coding, u64)> = entry.reps[1..]
            .iter()
            .filter_map(|r| Some((r.coding?, r.len)))
            .collect();
        let accept = headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|h| h.to_str().ok());
        let chosen = encoding::choose(accept, entry.reps[0].len, &variants);
        let rep = entry
            .reps
            .iter()
            .find(|r| r.coding == chosen)
            .unwrap_or(&entry.reps[0]);
        let etag_text = rep.etag.to_str().unwrap_or("");
        let validators = Validators {
            etag: etag_text,
            modified: entry.modified,
        };

        let mut response = Response::new(Body::Empty);
        let h = response.headers_mut();
        h.insert(header::ETAG, rep.etag.clone());
        h.insert(header::LAST_MODIFIED, entry.last_modified.clone());
        if let Some(cc) = &entry.cache_control {
            h.insert(header::CACHE_CONTROL, cc.clone());
        }
        if let Some(secs) = entry.expires {
            h.insert(header::EXPIRES, dates::expires(SystemTime::now(), secs));
        }
        if !variants.is_empty() {
            h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        }
        if conditional::not_modified(headers, &validators) {
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            return Ok(response);
        }
        let h = response.headers_mut();
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Some(coding) = rep.coding {
            h.insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_static(coding.token()),
            );
        }
        let ranges = match headers.get(header::RANGE).and_then(|r| r.to_str().ok()) {
            Some(spec)
                if req.method() == Method::GET
                    && conditional::range_allowed(headers, &validators) =>
            {
                range::parse(spec, rep.len)
            }
            _ => Ranges::Whole,
        };
        let head_only = req.method() == Method::HEAD;
        let (status, content_type, pieces) = match ranges {
            Ranges::Unsatisfiable => {
                let mut r = error_response(StatusCode::RANGE_NOT_SATISFIABLE, "", false);
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", rep.len)) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return Ok(r);
            }
            Ranges::Whole => (
                StatusCode::OK,
                entry.content_type.clone(),
                vec![Piece::Range {
                    offset: 0,
                    len: rep.len,
                }],
            ),
            Ranges::One(r) => {
                if let Ok(v) = HeaderValue::from_str(&r.content_range(rep.len)) {
                    response.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                (
                    StatusCode::PARTIAL_CONTENT,
                    entry.content_type.clone(),
                    vec![Piece::Range {
                        offset: r.start,
                        len: r.len(),
                    }],
                )
            }
            Ranges::Many(ranges) => {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                let boundary = format!("dragoman{nanos:x}");
                let content_type =
                    HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}"))
                        .unwrap_or(HeaderValue::from_static("multipart/byteranges"));
                (
                    StatusCode::PARTIAL_CONTENT,
                    content_type,
                    multipart(&ranges, rep.len, &entry.content_type, &boundary),
                )
            }
        };
        *response.status_mut() = status;
        let total: u64 = pieces
            .iter()
            .map(|p| match p {
                Piece::Bytes(b) => b.len() as u64,
                Piece::Range { len, .. } => *len,
            })
            .sum();
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, content_type);
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
        if head_only {
            return Ok(response);
        }
        let body = match &rep.data {
            // From the cache: slices of the cached bytes, never copied (one slice for a whole
            // file or a range; multipart is rare enough to join). The ranges were taken
            // against `rep.len`, which is `data.len()`; checked all the same.
            Some(data) => {
                let part = |p: &Piece| match p {
                    Piece::Bytes(b) => Ok(b.clone()),
                    Piece::Range { offset, len } => slice(data, *offset, *len)
                        .ok_or_else(|| Failure::Failed(std::io::Error::other("a range"))),
                };
                match pieces.as_slice() {
                    [one] => Body::full(part(one)?),
                    _ => Body::full(Bytes::from(
                        pieces
                            .iter()
                            .map(part)
                            .collect::<Result<Vec<_>, _>>()?
                            .concat(),
                    )),
                }
            }
            None => Body::File(FileBody::new(self.open(rep)?, pieces)),
        };
        *response.body_mut() = body;
        Ok(response)
    }

    /// The open file of a representation not kept in memory: the one its entry keeps, or
    /// opened again, when it still is the version the entry was made from (and then kept, if
    /// the budget allows now).
    fn open(&self, rep: &Rep) -> Result<Rc<File>, Failure> {
        if let Some(kept) = &*rep.kept.borrow() {
            return Ok(kept.file.clone());
        }
        let (file, identity) = disk::open(&rep.path)?;
        if identity != rep.identity {
            return Err(Failure::Changed);
        }
        let file = Rc::new(file);
        *rep.kept.borrow_mut() = self.descriptors.keep(&file);
        Ok(file)
    }
}

/// `len` bytes of `data` from `offset`, if they are there.
fn slice(data: &Bytes, offset: u64, len: u64) -> Option<Bytes> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    (end <= data.len()).then(|| data.slice(start..end))
}

/// The answer when a file cannot be served from disk. None is a 404: the file is there, and
/// a 404 is what caches keep (RFC 9111 §4.2.2); a 503 they do not.
fn fail(failure: Failure) -> Option<Response<Body>> {
    let (status, why) = match failure {
        // Gone between the lookup and the open: the application answers, as for any path
        // that names no file.
        Failure::Gone => return None,
        // Out of descriptors (idle connections took them, say): not logged per request, the
        // worker already says when it cannot accept.
        Failure::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "no file descriptor free"),
        // Changing faster than it can be loaded twice in a row.
        Failure::Changed => (StatusCode::SERVICE_UNAVAILABLE, "the file is changing"),
        Failure::Forbidden => (StatusCode::FORBIDDEN, ""),
        Failure::Failed(e) => {
            crate::warn!("a static file could not be read: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the file could not be read",
            )
        }
    };
    let mut response = error_response(status, why, false);
    let h = response.headers_mut();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(response)
}

/// A quoted entity tag.
fn etag(opaque: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{opaque}\"")).unwrap_or(HeaderValue::from_static("\"\""))
}

/// The pieces of a multipart/byteranges body (RFC 9110 §14.6).
fn multipart(
    ranges: &[ByteRange],
    total: u64,
    content_type: &HeaderValue,
    boundary: &str,
) -> Vec<Piece> {
    let content_type = content_type.to_str().unwrap_or("application/octet-stream");
    let mut pieces = Vec::with_capacity(ranges.len() * 2 + 1);
    for r in ranges {
        let head = format!(
            "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {}\r\n\r\n",
            r.content_range(total)
        );
        pieces.push(Piece::Bytes(Bytes::from(head)));
        pieces.push(Piece::Range {
            offset: r.start,
            len: r.len(),
        });
    }
    pieces.push(Piece::Bytes(Bytes::from(format!("\r\n--{boundary}--\r\n"))));
    pieces
}

/// Bytes escaped in a Location path: controls, non-ASCII, and what would end or change the
/// path (`?`, `#`, `%`, space, quotes, and `\`, which browsers read as `/`).
const LOCATION_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// `/docs` -> `/docs/`, keeping the query.
fn redirect(location: &str, query: Option<&str>) -> Response<Body> {
    let location = match query {
        Some(q) => format!("{location}?{q}"),
        None => location.to_string(),
    };
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// Static files answer before the application.
impl Route for StaticFiles {
    fn route(&self, req: &Request<RequestBody>) -> Option<Response<Body>> {
        self.handle(req)
    }

    fn kind(&self) -> crate::metrics::RouteKind {
        crate::metrics::RouteKind::Static
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::StaticMount;
    use crate::config::Origin;
    use http_body_util::BodyExt;

    fn site() -> (tempfile::TempDir, Rc<StaticFiles>) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("static");
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::write(root.join("app.css"), "body{color:red}\n".repeat(100)).unwrap();
        std::fs::write(root.join("app.css.gz"), b"gzipped").unwrap();
        vouch(&root, "app.css", Coding::Gzip);
        std::fs::write(root.join("docs/index.html"), b"<h1>docs</h1>").unwrap();
        std::fs::write(dir.path().join("secret.txt"), b"secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("escape.txt")).unwrap();
        let config = StaticConfig {
            mounts: vec![StaticMount {
                prefix: "/static".into(),
                target: root,
                origin: Origin::Positional,
            }],
            index: vec!["index.html".into()],
            immutable: true,
            precompressed: true,
            cache_bytes: 1024 * 1024,
            ..StaticConfig::default()
        };
        (dir, StaticFiles::new(&config).unwrap())
    }

    /// Records in `dir`'s manifest that `name`'s `coding` variant, as it is now, was made
    /// from `name` as it is now (what `dragoman compress` does after making it).
    fn vouch(dir: &Path, name: &str, coding: Coding) {
        let path = dir.join(manifest::NAME);
        let mut records = manifest::parse(&std::fs::read(&path).unwrap_or_default());
        records.retain(|r| !(r.name == name.as_bytes() && r.coding == coding));
        records.push(manifest::Record {
            name: name.as_bytes().to_vec(),
            coding,
            original: manifest::Digest::of(&std::fs::read(dir.join(name)).unwrap()),
            variant: manifest::Digest::of(
                &std::fs::read(dir.join(format!("{name}{}", coding.suffix()))).unwrap(),
            ),
        });
        std::fs::write(path, manifest::render(&records)).unwrap();
    }

    fn get(files: &StaticFiles, path: &str, headers: &[(&str, &str)]) -> Option<Response<Body>> {
        let mut req = Request::get(path).body(()).unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        files.handle(&req)
    }

    /// The cache entry a request path would be served from.
    fn cached(files: &StaticFiles, path: &str) -> Option<Rc<Entry>> {
        let (index, _, rest) = files.mount_for(path)?;
        let (key, _) = path::normalise(rest, files.config.dotfiles).ok()?;
        files.cache.borrow().get(index, &key)
    }

    /// Makes a cached entry old enough to be checked against the disk on its next request.
    fn due_for_a_check(files: &StaticFiles, path: &str) {
        if let Some(Entry::File(f)) = cached(files, path).as_deref() {
            f.checked.set(Instant::now() - REVALIDATE * 2);
        }
    }

    fn body(r: Response<Body>) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(r.into_body().collect())
            .unwrap()
            .to_bytes()
            .to_vec()
    }

    #[test]
    fn serves_validates_and_negotiates() {
        let (_dir, files) = site();
        let r = get(&files, "/static/app.css", &[]).unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/css; charset=utf-8");
        assert_eq!(r.headers()["vary"], "Accept-Encoding");
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        assert_eq!(body(r).len(), 1600);
        let r = get(&files, "/static/app.css", &[("if-none-match", &etag)]).unwrap();
        assert_eq!(r.status(), 304);
        let r = get(&files, "/static/app.css", &[("accept-encoding", "gzip")]).unwrap();
        assert_eq!(r.headers()["content-encoding"], "gzip");
        assert_ne!(r.headers()["etag"].to_str().unwrap(), etag);
        assert_eq!(body(r), b"gzipped");
        let r = get(&files, "/static/app.css", &[("range", "bytes=0-3")]).unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(r.headers()["content-range"], "bytes 0-3/1600");
        assert_eq!(body(r), b"body");
    }

    /// A precompressed sibling is served in the file's place only when dragoman made it from
    /// the file as it is now: vouched for by the manifest (original's and variant's size and
    /// SHA-256), not older than the file, inside the mount. Each such variant has its own
    /// ETag, named by its hash.
    #[test]
    fn variants_only_when_made_from_the_current_file() {
        let (dir, files) = site();
        let root = dir.path().join("static");
        let css = "body{color:red}\n".repeat(100);
        let encoding = |path: &str| {
            let r = get(&files, path, &[("accept-encoding", "gzip, br")]).unwrap();
            let coding = r.headers().get("content-encoding").cloned();
            let etag = r.headers()["etag"].to_str().unwrap().to_string();
            (
                coding.map(|c| c.to_str().unwrap().to_string()),
                etag,
                body(r),
            )
        };
        let recheck = |path: &str| due_for_a_check(&files, path);

        let (coding, gz_tag, data) = encoding("/static/app.css");
        assert_eq!(
            (coding.as_deref(), &data[..]),
            (Some("gzip"), &b"gzipped"[..])
        );
        let digest = manifest::Digest::of(b"gzipped");
        assert_eq!(gz_tag, format!("\"{}-gzip\"", digest.short()));
        let plain = get(&files, "/static/app.css", &[]).unwrap();
        assert_ne!(plain.headers()["etag"].to_str().unwrap(), gz_tag);

        // Nobody vouched for it.
        std::fs::write(root.join("other.css"), &css).unwrap();
        std::fs::write(root.join("other.css.br"), b"evil").unwrap();
        assert_eq!(encoding("/static/other.css").0, None);

        // Edited after it was made (same length, even).
        std::fs::write(root.join("app.css.gz"), b"gzipXed").unwrap();
        recheck("/static/app.css");
        assert_eq!(encoding("/static/app.css").0, None);
        vouch(&root, "app.css", Coding::Gzip);
        recheck("/static/app.css");
        assert_eq!(encoding("/static/app.css").0.as_deref(), Some("gzip"));

        // A new original: the manifest describes the old one.
        std::fs::write(root.join("app.css"), css.replace("red", "tan")).unwrap();
        recheck("/static/app.css");
        let (coding, tag, data) = encoding("/static/app.css");
        assert_eq!(coding, None);
        assert_eq!(data, css.replace("red", "tan").as_bytes());
        assert_ne!(tag, gz_tag);

        // Vouched for, but older than the original.
        vouch(&root, "app.css", Coding::Gzip);
        let variant = File::options()
            .write(true)
            .open(root.join("app.css.gz"))
            .unwrap();
        let original_mtime = std::fs::metadata(root.join("app.css"))
            .unwrap()
            .modified()
            .unwrap();
        variant
            .set_modified(original_mtime - Duration::from_secs(60))
            .unwrap();
        recheck("/static/app.css");
        assert_eq!(encoding("/static/app.css").0, None);
        variant
            .set_modified(original_mtime + Duration::from_secs(60))
            .unwrap();
        recheck("/static/app.css");
        assert_eq!(encoding("/static/app.css").0.as_deref(), Some("gzip"));

        // The same bytes, vouched for, but through a symlink out of the mount.
        std::fs::write(dir.path().join("outside.gz"), b"gzipXed").unwrap();
        std::fs::remove_file(root.join("app.css.gz")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside.gz"), root.join("app.css.gz")).unwrap();
        vouch(&root, "app.css", Coding::Gzip);
        recheck("/static/app.css");
        assert_eq!(encoding("/static/app.css").0, None);

        // Large ones, hashed from their descriptors.
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 7) as u8).collect();
        std::fs::write(root.join("big.js"), &big).unwrap();
        std::fs::write(
            root.join("big.js.br"),
            vec![9u8; CACHE_FILE_MAX as usize * 2],
        )
        .unwrap();
        vouch(&root, "big.js", Coding::Brotli);
        let (coding, _, data) = encoding("/static/big.js");
        assert_eq!(coding.as_deref(), Some("br"));
        assert!(data == vec![9u8; CACHE_FILE_MAX as usize * 2]);
        let mut f = File::options()
            .write(true)
            .open(root.join("big.js.br"))
            .unwrap();
        std::io::Write::write_all(&mut f, &[8u8]).unwrap();
        recheck("/static/big.js");
        assert_eq!(encoding("/static/big.js").0, None);
    }

    #[test]
    fn directories_missing_files_and_escapes() {
        let (_dir, files) = site();
        let r = get(&files, "/static/docs?x=1", &[]).unwrap();
        assert_eq!(r.status(), 301);
        assert_eq!(r.headers()["location"], "/static/docs/?x=1");
        assert_eq!(
            body(get(&files, "/static/docs/", &[]).unwrap()),
            b"<h1>docs</h1>"
        );
        assert!(get(&files, "/static/missing.css", &[]).is_none());
        assert!(get(&files, "/other/app.css", &[]).is_none());
        assert_eq!(
            get(&files, "/static/escape.txt", &[]).unwrap().status(),
            404
        );
        assert_eq!(
            get(&files, "/static/%2e%2e/secret.txt", &[])
                .unwrap()
                .status(),
            400
        );
        assert_eq!(get(&files, "/static/.hidden", &[]).unwrap().status(), 404);
    }

    /// A mount at `/`: `GET //evil.example` (a directory with an index) redirects to
    /// `/evil.example/`, never to `//evil.example/` (another host, to a browser).
    #[test]
    fn directory_redirects_stay_on_the_site() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("evil.example")).unwrap();
        std::fs::write(dir.path().join("evil.example/index.html"), b"x").unwrap();
        std::fs::create_dir_all(dir.path().join("a b")).unwrap();
        std::fs::write(dir.path().join("a b/index.html"), b"x").unwrap();
        let config = StaticConfig {
            mounts: vec![StaticMount {
                prefix: "/".into(),
                target: dir.path().to_path_buf(),
                origin: Origin::Positional,
            }],
            index: vec!["index.html".into()],
            cache_bytes: 1024 * 1024,
            ..StaticConfig::default()
        };
        let files = StaticFiles::new(&config).unwrap();
        for (path, location) in [
            ("//evil.example", "/evil.example/"),
            ("///evil.example?a=1", "/evil.example/?a=1"),
            ("/evil.example", "/evil.example/"),
            ("//a%20b", "/a%20b/"),
        ] {
            let r = get(&files, path, &[]).unwrap();
            assert_eq!(r.status(), 301, "{path}");
            assert_eq!(r.headers()["location"], location, "{path}");
        }
    }

    #[test]
    fn cache_notices_changes() {
        let (dir, files) = site();
        assert_eq!(
            body(get(&files, "/static/docs/", &[]).unwrap()),
            b"<h1>docs</h1>"
        );
        std::fs::write(
            dir.path().join("static/docs/index.html"),
            b"<h1>new docs</h1>",
        )
        .unwrap();
        // Still the cached copy within the revalidation window...
        due_for_a_check(&files, "/static/docs/");
        // ...and the new file once the entry is checked again.
        assert_eq!(
            body(get(&files, "/static/docs/", &[]).unwrap()),
            b"<h1>new docs</h1>"
        );
    }

    /// However a client spells a path, the file has one entry; the cache stays within its
    /// entries and bytes, keys and structures counted, whatever the requests.
    #[test]
    fn one_entry_per_file_and_the_cache_bounded() {
        let (dir, files) = site();
        for spelling in [
            "/static/app.css",
            "/static//app.css",
            "/static/%61pp.css",
            "/static///app%2Ecss",
        ] {
            assert_eq!(
                get(&files, spelling, &[]).unwrap().status(),
                200,
                "{spelling}"
            );
        }
        assert_eq!(files.cache.borrow().len(), 1);
        let one = files.cache.borrow().bytes();
        assert!(one > 1600, "the bytes held and more: {one}");

        // Many files against a small budget: never more than it.
        let mut small = files.config.clone();
        small.cache_bytes = 8 * 1024;
        let small = StaticFiles::new(&small).unwrap();
        for i in 0..200 {
            std::fs::write(dir.path().join(format!("static/f{i}.txt")), [b'x'; 100]).unwrap();
            let path = format!("/static/f{i}.txt");
            assert_eq!(body(get(&small, &path, &[]).unwrap()), [b'x'; 100]);
            assert_eq!(
                body(get(&small, &format!("/static//f{i}.txt"), &[]).unwrap()),
                [b'x'; 100]
            );
            let cache = small.cache.borrow();
            assert!(cache.bytes() <= 8 * 1024, "{} bytes", cache.bytes());
        }
        let cache = small.cache.borrow();
        assert!(
            cache.len() > 5 && cache.len() < 80,
            "{} entries",
            cache.len()
        );
    }

    /// `rsync -a`'s replacement: a new file with the old one's mtime and size renamed over
    /// it, and `cp --preserve=timestamps`'s: the same file rewritten in place, its mtime put
    /// back. The inode, or the ctime, tells them apart; the new bytes are served once the
    /// entry is checked again, whether kept in memory or sent from a kept descriptor.
    #[test]
    fn a_replacement_with_the_same_mtime_and_size_is_noticed() {
        let (dir, files) = site();
        for (name, size) in [
            ("small.bin", 1000),
            ("large.bin", CACHE_FILE_MAX as usize * 2),
        ] {
            let path = dir.path().join("static").join(name);
            let url = format!("/static/{name}");
            let (old, new, newer) = (vec![1u8; size], vec![2u8; size], vec![3u8; size]);
            std::fs::write(&path, &old).unwrap();
            let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
            for _ in 0..2 {
                assert_eq!(body(get(&files, &url, &[]).unwrap()), old, "{name}");
            }
            let tmp = dir.path().join("static").join(".tmp");
            std::fs::write(&tmp, &new).unwrap();
            File::options()
                .write(true)
                .open(&tmp)
                .unwrap()
                .set_modified(mtime)
                .unwrap();
            std::fs::rename(&tmp, &path).unwrap();
            due_for_a_check(&files, &url);
            assert!(
                body(get(&files, &url, &[]).unwrap()) == new,
                "{name}: renamed over"
            );

            let mut f = File::options().write(true).open(&path).unwrap();
            std::io::Write::write_all(&mut f, &newer).unwrap();
            f.set_modified(mtime).unwrap();
            drop(f);
            due_for_a_check(&files, &url);
            assert!(
                body(get(&files, &url, &[]).unwrap()) == newer,
                "{name}: in place"
            );
        }
    }

    /// A large file not kept open is opened again per request: if that descriptor shows
    /// another version than the entry was made from (even within the second before the
    /// entry's check), the entry is loaded again rather than sent with the old length and
    /// tag; a file deleted meanwhile goes to the application.
    #[test]
    fn a_descriptor_opened_later_must_show_the_same_version() {
        let (dir, mut files) = site();
        Rc::get_mut(&mut files).unwrap().descriptors = Descriptors::with_max(0);
        let path = dir.path().join("static/big.bin");
        let size = CACHE_FILE_MAX as usize * 2;
        std::fs::write(&path, vec![1u8; size]).unwrap();
        let first = get(&files, "/static/big.bin", &[]).unwrap();
        let tag = first.headers()["etag"].clone();
        assert!(body(first) == vec![1u8; size]);
        std::fs::write(dir.path().join("static/new"), vec![2u8; size + 10]).unwrap();
        std::fs::rename(dir.path().join("static/new"), &path).unwrap();
        let second = get(&files, "/static/big.bin", &[]).unwrap();
        assert_ne!(second.headers()["etag"], tag);
        assert_eq!(second.headers()["content-length"], (size + 10).to_string());
        assert!(body(second) == vec![2u8; size + 10]);
        std::fs::remove_file(&path).unwrap();
        assert!(get(&files, "/static/big.bin", &[]).is_none());
    }

    /// No descriptor to be had for a file that is there: 503 with Retry-After, never the
    /// 404 a CDN would cache; a file the worker may not read: 403.
    #[test]
    fn errors_of_the_file_system_are_never_a_404() {
        let answer = |errno: i32| fail(Failure::from(std::io::Error::from_raw_os_error(errno)));
        for errno in [libc::EMFILE, libc::ENFILE] {
            let r = answer(errno).unwrap();
            assert_eq!(r.status(), 503);
            assert_eq!(r.headers()["retry-after"], "1");
            assert_eq!(r.headers()["cache-control"], "no-store");
        }
        assert_eq!(answer(libc::EACCES).unwrap().status(), 403);
        assert_eq!(answer(libc::EIO).unwrap().status(), 500);
        assert!(
            answer(libc::ENOENT).is_none(),
            "gone: the application answers"
        );
    }

    #[test]
    fn large_files_stay_open_within_the_budget_and_close_when_gone() {
        let (dir, mut files) = site();
        Rc::get_mut(&mut files).unwrap().descriptors = Descriptors::with_max(1);
        let big = |n: u8| vec![n; CACHE_FILE_MAX as usize + 1000];
        std::fs::write(dir.path().join("static/one.bin"), big(1)).unwrap();
        std::fs::write(dir.path().join("static/two.bin"), big(2)).unwrap();
        for _ in 0..3 {
            assert_eq!(body(get(&files, "/static/one.bin", &[]).unwrap()), big(1));
            assert_eq!(body(get(&files, "/static/two.bin", &[]).unwrap()), big(2));
        }
        // One kept (the budget), the other opened per request.
        assert_eq!(files.descriptors.open(), 1);
        let kept = |path: &str| match cached(&files, path).as_deref() {
            Some(Entry::File(f)) => f.reps[0].kept.borrow().is_some(),
            _ => false,
        };
        assert!(kept("/static/one.bin") && !kept("/static/two.bin"));
        // Deleted: once the entry is checked again, the request falls through to the app
        // and the descriptor is closed (the file's space is not held).
        std::fs::remove_file(dir.path().join("static/one.bin")).unwrap();
        due_for_a_check(&files, "/static/one.bin");
        assert!(get(&files, "/static/one.bin", &[]).is_none());
        assert_eq!(files.descriptors.open(), 0);
        assert!(cached(&files, "/static/one.bin").is_none());
        // The freed slot goes to the next file opened.
        assert_eq!(body(get(&files, "/static/two.bin", &[]).unwrap()), big(2));
        assert!(kept("/static/two.bin"));
    }
}
