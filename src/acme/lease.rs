//! A lock in the cache directory with a lease: several dragoman instances sharing `acme-cache`
//! (one machine, or several on a shared volume) order a certificate once. The instance that
//! creates the lock file orders; the others wait, then load what it stored.
//!
//! The lock file names its holder and when the lease ends. The holder renews the lease while
//! it works ([`Lease::renew`]) and removes the file when it is done. A holder that died
//! leaves a file whose lease ends: once it has, the next instance takes the lock over. No
//! `flock`: it means nothing across machines on many shared volumes, and a lock that outlives
//! its holder would stop renewals for good.
//!
//! Taking over is two steps that cannot both succeed for two instances: the stale file is
//! renamed to a name of the taker's own (only one rename of a file succeeds), and the lock is
//! created with `link` (which fails if the file exists). A taker that finds it renamed a lock
//! made fresh meanwhile puts it back. The clocks of the machines sharing a volume must agree
//! to well within a lease (a minute): the end of a lease is written in seconds since the
//! epoch.

use std::fs;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::tls::acme_cache as cache;

/// How long a lease lasts unless renewed.
pub(crate) const LEASE: Duration = Duration::from_secs(60);
/// How often a holder renews its lease while it works.
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(15);

/// Who holds a lock, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    /// `host pid N` (and a random part, so that two holders never share a name).
    pub(crate) who: String,
    /// When the lease ends (seconds since the epoch).
    pub(crate) until: u64,
}

impl Holder {
    fn encode(&self) -> String {
        format!("holder {}\nuntil {}\n", self.who, self.until)
    }

    fn decode(text: &str) -> Option<Holder> {
        let mut who = None;
        let mut until = None;
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("holder", v)) => who = Some(v.to_string()),
                Some(("until", v)) => until = v.trim().parse().ok(),
                _ => {}
            }
        }
        Some(Holder {
            who: who?,
            until: until?,
        })
    }

    fn live(&self, now: SystemTime) -> bool {
        self.until > seconds(now)
    }
}

fn seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// What trying to take a lock gave.
#[derive(Debug)]
pub(crate) enum Taken {
    /// This process holds it now.
    Mine(Lease),
    /// Another one does.
    Held(Holder),
}

/// A lock this process holds; removed when dropped.
#[derive(Debug)]
pub(crate) struct Lease {
    path: PathBuf,
    me: String,
}

/// This process's name in lock files: its host, its pid, and a random part.
pub(crate) fn me() -> String {
    let mut host = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer we own.
    let ok = unsafe { libc::gethostname(host.as_mut_ptr().cast(), host.len()) } == 0;
    let end = host.iter().position(|b| *b == 0).unwrap_or(host.len());
    let host = if ok {
        String::from_utf8_lossy(&host[..end]).into_owned()
    } else {
        "?".to_string()
    };
    let tag = (super::schedule::random_fraction() * 1e9) as u64;
    format!("{host} pid {} ({tag:x})", std::process::id())
}

/// Tries to take the lock at `path` for `me`; an error is the cache's (unwritable).
pub(crate) fn take(path: &Path, me: &str, now: SystemTime) -> io::Result<Taken> {
    let dir = path.parent().unwrap_or(Path::new("."));
    cache::make_dir(dir)?;
    let holder = Holder {
        who: me.to_string(),
        until: seconds(now + LEASE),
    };
    // Twice at most: once as it is, once after taking a stale lock over.
    for _ in 0..2 {
        if create(path, &holder)? {
            return Ok(Taken::Mine(Lease {
                path: path.to_path_buf(),
                me: me.to_string(),
            }));
        }
        let current = read(path)?;
        match current {
            // Gone meanwhile: try again.
            None => continue,
            Some(h) if h.live(now) => return Ok(Taken::Held(h)),
            // Stale (or unreadable garbage): take it over.
            Some(_) => {
                if !take_over(path, me, now)? {
                    // Someone else did, or made it fresh: theirs.
                    return Ok(match read(path)? {
                        Some(h) => Taken::Held(h),
                        None => Taken::Held(Holder {
                            who: "another instance".into(),
                            until: seconds(now),
                        }),
                    });
                }
            }
        }
    }
    Ok(Taken::Held(read(path)?.unwrap_or(Holder {
        who: "another instance".into(),
        until: seconds(now),
    })))
}

/// Creates the lock file holding `holder`, whole: false if it exists.
fn create(path: &Path, holder: &Holder) -> io::Result<bool> {
    let temporary = temporary_name(path, &holder.who);
    cache::write_atomic(&temporary, holder.encode().as_bytes())?;
    let linked = fs::hard_link(&temporary, path);
    let _ = fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// The holder a lock file names; `None` when there is no file. A file that says nothing
/// readable is taken as a lease that ended.
fn read(path: &Path) -> io::Result<Option<Holder>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(Holder::decode(&text).unwrap_or(Holder {
            who: "an unreadable lock".into(),
            until: 0,
        }))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Moves a stale lock out of the way; true when it was stale and is gone.
fn take_over(path: &Path, me: &str, now: SystemTime) -> io::Result<bool> {
    let aside = temporary_name(path, &format!("{me} stale"));
    match fs::rename(path, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    let moved = read(&aside)?;
    if moved.as_ref().is_some_and(|h| h.live(now)) {
        // Made fresh between the look and the rename: put it back (unless yet another lock
        // was made meanwhile, which then stands).
        let _ = fs::hard_link(&aside, path);
        let _ = fs::remove_file(&aside);
        return Ok(false);
    }
    let _ = fs::remove_file(&aside);
    Ok(true)
}

/// A name next to the lock, of this process's own.
fn temporary_name(path: &Path, who: &str) -> PathBuf {
    let tag: String = who
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("lock");
    path.with_file_name(format!(".{name}.{tag}"))
}

impl Lease {
    /// Pushes the lease's end on; false when the lock is no longer this process's (it was
    /// taken over after the lease ended: the work under it should stop).
    pub(crate) fn renew(&self, now: SystemTime) -> bool {
        match read(&self.path) {
            Ok(Some(h)) if h.who == self.me => {}
            _ => return false,
        }
        let holder = Holder {
            who: self.me.clone(),
            until: seconds(now + LEASE),
        };
        cache::write_atomic(&self.path, holder.encode().as_bytes()).is_ok()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if matches!(read(&self.path), Ok(Some(h)) if h.who == self.me) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_until_the_lease_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locks/a.test.lock");
        let now = SystemTime::now();
        let Taken::Mine(lease) = take(&path, "one", now).unwrap() else {
            panic!("the first takes it");
        };
        match take(&path, "two", now).unwrap() {
            Taken::Held(h) => assert_eq!(h.who, "one"),
            Taken::Mine(_) => panic!("held by one"),
        }
        assert!(lease.renew(now + Duration::from_secs(50)));
        // Renewed: still held after the first lease would have ended.
        let later = now + Duration::from_secs(70);
        assert!(matches!(take(&path, "two", later).unwrap(), Taken::Held(_)));
        drop(lease);
        assert!(!path.exists());
        assert!(matches!(take(&path, "two", later).unwrap(), Taken::Mine(_)));
    }

    #[test]
    fn a_dead_holders_lock_is_taken_over_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.test.lock");
        let now = SystemTime::now();
        let Taken::Mine(dead) = take(&path, "dead", now).unwrap() else {
            panic!("free");
        };
        std::mem::forget(dead);
        let after = now + LEASE + Duration::from_secs(1);
        let Taken::Mine(lease) = take(&path, "heir", after).unwrap() else {
            panic!("the lease ended: taken over");
        };
        // The heir's lock stands against a second taker.
        match take(&path, "third", after).unwrap() {
            Taken::Held(h) => assert_eq!(h.who, "heir"),
            Taken::Mine(_) => panic!("taken twice"),
        }
        // The dead holder, come back, finds it lost its lock.
        let ghost = Lease {
            path: path.clone(),
            me: "dead".into(),
        };
        assert!(!ghost.renew(after));
        drop(ghost);
        assert!(path.exists(), "a ghost does not remove the heir's lock");
        assert!(lease.renew(after));
        // Nothing is left beside the lock.
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn garbage_is_a_lease_that_ended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.test.lock");
        fs::write(&path, "not a lock").unwrap();
        assert!(matches!(
            take(&path, "me", SystemTime::now()).unwrap(),
            Taken::Mine(_)
        ));
        let unwritable = Path::new("/proc/no/such/dir/a.lock");
        assert!(take(unwritable, "me", SystemTime::now()).is_err());
    }
}
