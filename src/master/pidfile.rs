//! The pidfile, written by the master before it drops privileges, so often as root. A root
//! process that opens a path by name writes to whatever the name leads to at that moment: a
//! symbolic link, or a hard link, that the service user left there would have root overwrite
//! any file it points to. So the file is opened without following a final symbolic link
//! (`O_NOFOLLOW`), must be a regular file with no other name, and everything after the open
//! is done on the descriptor, never on the path again.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Writes `pid` and a newline to the pidfile at `path`; the error is a complete sentence.
/// Returns the open file, for [`rewrite`].
pub(crate) fn write(path: &Path, pid: u32) -> Result<File, String> {
    let refuse = |why: &str| {
        format!(
            "cannot write the pidfile {} (option 'pidfile'): {why}",
            path.display()
        )
    };
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o644)
        // O_NONBLOCK: a FIFO at the path fails the open instead of hanging the start.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => refuse(
                "it is a symbolic link, which dragoman does not write through (as root that \
                 would overwrite the file it points to); remove the link, or give the real path",
            ),
            _ => refuse(&format!(
                "{e}; check that its directory exists and is writable"
            )),
        })?;
    let meta = file.metadata().map_err(|e| refuse(&e.to_string()))?;
    if !meta.is_file() {
        return Err(refuse(
            "it is not a regular file; remove it, or name another path",
        ));
    }
    if meta.nlink() > 1 {
        return Err(refuse(
            "the file has another name (a hard link), and writing it would change that file \
             too; remove it, or name another path",
        ));
    }
    let mut file = file;
    put(&mut file, pid).map_err(|e| refuse(&e.to_string()))?;
    Ok(file)
}

/// Replaces the pid in a pidfile [`fn@write`] opened (after `daemonize2`, whose master has
/// another pid): through the descriptor, never the path, which as the service user dragoman
/// may no longer be allowed to open, and which may name another file by now.
pub(crate) fn rewrite(file: &mut File, pid: u32) -> io::Result<()> {
    put(file, pid)
}

fn put(file: &mut File, pid: u32) -> io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(format!("{pid}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_or_stale_pidfile_holds_the_pid_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.pid");
        write(&path, 42).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "42\n");
        std::fs::write(&path, "123456789\nleft over\n").unwrap();
        let mut file = write(&path, 7).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "7\n");
        rewrite(&mut file, 12345).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "12345\n");
        rewrite(&mut file, 8).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "8\n");
    }

    #[test]
    fn links_and_special_files_are_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let symlink = dir.path().join("sym.pid");
        std::os::unix::fs::symlink(&victim, &symlink).unwrap();
        let err = write(&symlink, 1).unwrap_err();
        assert!(err.contains("symbolic link"), "{err}");
        let hardlink = dir.path().join("hard.pid");
        std::fs::hard_link(&victim, &hardlink).unwrap();
        let err = write(&hardlink, 1).unwrap_err();
        assert!(err.contains("hard link"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        // A dangling symlink is not followed either (no file is created where it points).
        let dangling = dir.path().join("dangling.pid");
        std::os::unix::fs::symlink(dir.path().join("made-by-root"), &dangling).unwrap();
        assert!(write(&dangling, 1).is_err());
        assert!(!dir.path().join("made-by-root").exists());
        // A FIFO nobody reads fails at once rather than hanging.
        let fifo = dir.path().join("fifo.pid");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid C string and a mode; no memory is kept.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert!(write(&fifo, 1).is_err());
        let dir_path = dir.path().join("a-directory");
        std::fs::create_dir(&dir_path).unwrap();
        assert!(write(&dir_path, 1).is_err());
    }
}
