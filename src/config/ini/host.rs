//! What the ini reader asks of the machine: environment variables, files (includes, `@(file)`,
//! `if-exists`, `for-glob`, `for-readline`), commands (`@(exec://...)`) and the facts behind the
//! magic variables (`%h` hostname, `%k` cores, `%u` user ...).
//!
//! The reader only sees this trait, so every rule is tested with a made-up machine, the fuzzer
//! runs one that can neither read files nor run commands, and the corpus test loads real ini
//! files in a sandbox where nothing outside the corpus can be read or run.

use std::path::{Path, PathBuf};

/// What a path names, for `if-exists`, `if-file` and `if-dir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathKind {
    Missing,
    File,
    Dir,
    /// A socket, a device: exists, but is neither a regular file nor a directory.
    Other,
}

/// The facts uWSGI's magic variables stand for (core/uwsgi.c fills them the same way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Facts {
    /// `%h`
    pub(crate) hostname: String,
    /// `%k`: CPU cores dragoman may run on.
    pub(crate) cpus: usize,
    /// `%u` `%U` `%g` `%G`: the ids and names of the user running dragoman (names fall back to
    /// the numbers, as in uWSGI).
    pub(crate) uid: u32,
    pub(crate) user: String,
    pub(crate) gid: u32,
    pub(crate) group: String,
    /// `%v`: the working directory.
    pub(crate) cwd: PathBuf,
    /// `%t` `%T`: start time, seconds and microseconds since the epoch.
    pub(crate) now_secs: u64,
    pub(crate) now_micros: u64,
    /// `%b`: the program's path.
    pub(crate) executable: String,
}

/// The machine as the ini reader sees it.
pub(crate) trait Host {
    /// An environment variable (`$(VAR)`, `if-env`).
    fn env(&self, name: &str) -> Option<String>;
    /// A file's text (includes, `@(file)`, `for-readline`); the error is the reason.
    fn read(&self, path: &Path) -> Result<String, String>;
    /// What `path` names.
    fn kind(&self, path: &Path) -> PathKind;
    /// The inode number of `path` (`%i`), without following a symlink.
    fn inode(&self, path: &Path) -> Option<u64>;
    /// The paths a shell glob matches, sorted (`for-glob`).
    fn glob(&self, pattern: &str) -> Vec<String>;
    /// Runs `command` with `/bin/sh -c` and returns what it printed (`@(exec://...)`).
    fn exec(&self, command: &str) -> Result<String, String>;
    /// The facts behind the magic variables.
    fn facts(&self) -> &Facts;
}

/// The real machine, with the process environment given by the caller (so `config::load` stays
/// a function of its arguments).
pub(crate) struct System<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    facts: Facts,
}

impl<'a> System<'a> {
    pub(crate) fn new(env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        System {
            env,
            facts: system_facts(),
        }
    }
}

fn system_facts() -> Facts {
    // SAFETY: getuid and getgid cannot fail and touch no memory of ours.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Facts {
        hostname: hostname(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        uid,
        user: user_name(uid).unwrap_or_else(|| uid.to_string()),
        gid,
        group: group_name(gid).unwrap_or_else(|| gid.to_string()),
        cwd: std::env::current_dir().unwrap_or_default(),
        now_secs: now.as_secs(),
        now_micros: now.as_micros().try_into().unwrap_or(u64::MAX),
        executable: std::env::current_exe()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf, which we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The user name of `uid` from the password database, by `getpwuid_r` (thread-safe).
fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 16384];
    // SAFETY: passwd is plain data that getpwuid_r fills; an all-zero value is a valid start.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to memory we own, of the size given; getpwuid_r writes the
    // strings into buf and sets found to &pwd or null.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: pw_name points to a NUL-terminated string inside buf, alive here.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// The group name of `gid` from the group database, by `getgrgid_r` (thread-safe).
fn group_name(gid: u32) -> Option<String> {
    let mut buf = vec![0u8; 16384];
    // SAFETY: group is plain data that getgrgid_r fills; an all-zero value is a valid start.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in user_name: every pointer is to memory we own, of the size given.
    let rc = unsafe {
        libc::getgrgid_r(
            gid,
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() || grp.gr_name.is_null() {
        return None;
    }
    // SAFETY: gr_name points to a NUL-terminated string inside buf, alive here.
    let name = unsafe { std::ffi::CStr::from_ptr(grp.gr_name) };
    Some(name.to_string_lossy().into_owned())
}

impl Host for System<'_> {
    fn env(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    fn read(&self, path: &Path) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| e.to_string())
    }

    fn kind(&self, path: &Path) -> PathKind {
        match std::fs::metadata(path) {
            Err(_) => PathKind::Missing,
            Ok(m) if m.is_file() => PathKind::File,
            Ok(m) if m.is_dir() => PathKind::Dir,
            Ok(_) => PathKind::Other,
        }
    }

    fn inode(&self, path: &Path) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(path).ok().map(|m| m.ino())
    }

    fn glob(&self, pattern: &str) -> Vec<String> {
        glob(pattern, &|dir| {
            std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    fn exec(&self, command: &str) -> Result<String, String> {
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run /bin/sh: {e}"))?;
        if !out.status.success() {
            return Err(format!("the command failed ({})", out.status));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn facts(&self) -> &Facts {
        &self.facts
    }
}

/// A shell glob (`*`, `?`, `[...]` within one path component), with `list` naming the entries
/// of a directory. As uWSGI's `glob(GLOB_NOCHECK)`: sorted, names starting with a dot only
/// when the pattern does, and a pattern that matches nothing is returned as itself.
pub(crate) fn glob(pattern: &str, list: &dyn Fn(&Path) -> Vec<String>) -> Vec<String> {
    let absolute = pattern.starts_with('/');
    let mut found: Vec<String> = vec![if absolute { "/".into() } else { String::new() }];
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let mut next = Vec::new();
        for base in &found {
            let dir = match base.trim_end_matches('/') {
                "" if base.is_empty() => ".",
                "" => "/",
                d => d,
            };
            let join = |name: &str| format!("{base}{name}{}", if last { "" } else { "/" });
            if !part.contains(['*', '?', '[']) {
                next.push(join(part));
                continue;
            }
            let Some(re) = glob_regex(part) else {
                continue;
            };
            let mut names: Vec<String> = list(Path::new(dir))
                .into_iter()
                .filter(|n| re.is_match(n) && (part.starts_with('.') || !n.starts_with('.')))
                .collect();
            names.sort();
            next.extend(names.iter().map(|n| join(n)));
        }
        found = next;
    }
    // Keep only what exists: a literal component may name nothing.
    let existing: Vec<String> = found
        .into_iter()
        .filter(|p| {
            let path = Path::new(p);
            let (dir, name) = (path.parent().unwrap_or(Path::new(".")), path.file_name());
            name.is_some_and(|name| {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                list(dir)
                    .iter()
                    .any(|n| n.as_str() == name.to_string_lossy())
            })
        })
        .collect();
    if existing.is_empty() {
        return vec![pattern.to_string()];
    }
    existing
}

/// One path component's glob as an anchored regular expression.
fn glob_regex(part: &str) -> Option<regex::Regex> {
    let mut re = String::from("^");
    let mut chars = part.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                re.push('[');
                if chars.peek() == Some(&'!') {
                    chars.next();
                    re.push('^');
                }
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    if c == '\\' || c == '[' {
                        re.push('\\');
                    }
                    re.push(c);
                }
                re.push(']');
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).ok()
}

/// A machine with nothing on it but one ini text: what the fuzzer and [`super::read`] use.
/// It reads no other file, runs no command, and its facts are fixed.
pub(crate) struct Closed<'a> {
    path: &'a Path,
    text: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
    facts: Facts,
}

impl<'a> Closed<'a> {
    pub(crate) fn new(
        path: &'a Path,
        text: &'a str,
        env: &'a dyn Fn(&str) -> Option<String>,
    ) -> Self {
        Closed {
            path,
            text,
            env,
            facts: Facts {
                hostname: "localhost".into(),
                cpus: 1,
                uid: 0,
                user: "root".into(),
                gid: 0,
                group: "root".into(),
                cwd: PathBuf::from("/"),
                now_secs: 0,
                now_micros: 0,
                executable: "dragoman".into(),
            },
        }
    }
}

impl Host for Closed<'_> {
    fn env(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    fn read(&self, path: &Path) -> Result<String, String> {
        if path == self.path {
            Ok(self.text.to_string())
        } else {
            Err("this reader reads one text and no other file".into())
        }
    }

    fn kind(&self, path: &Path) -> PathKind {
        if path == self.path {
            PathKind::File
        } else {
            PathKind::Missing
        }
    }

    fn inode(&self, _path: &Path) -> Option<u64> {
        None
    }

    fn glob(&self, pattern: &str) -> Vec<String> {
        vec![pattern.to_string()]
    }

    fn exec(&self, _command: &str) -> Result<String, String> {
        Err("this reader runs no command".into())
    }

    fn facts(&self) -> &Facts {
        &self.facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dir: &Path) -> Vec<String> {
        match dir.to_str().unwrap() {
            "/etc/app" => vec![
                "a.ini".into(),
                "b.ini".into(),
                ".hidden.ini".into(),
                "x.txt".into(),
            ],
            "/etc" => vec!["app".into()],
            "/" => vec!["etc".into()],
            _ => vec![],
        }
    }

    #[test]
    fn glob_matches_within_components_and_returns_the_pattern_when_nothing_matches() {
        assert_eq!(
            glob("/etc/app/*.ini", &tree),
            vec!["/etc/app/a.ini", "/etc/app/b.ini"]
        );
        assert_eq!(glob("/etc/app/[ab].ini", &tree).len(), 2);
        assert_eq!(glob("/etc/app/?.ini", &tree).len(), 2);
        assert_eq!(glob("/etc/app/*.yml", &tree), vec!["/etc/app/*.yml"]);
        assert_eq!(glob("/etc/*/a.ini", &tree), vec!["/etc/app/a.ini"]);
    }

    #[test]
    fn the_system_knows_its_facts() {
        let env = |_: &str| None;
        let s = System::new(&env);
        assert!(s.facts().cpus >= 1);
        assert!(!s.facts().user.is_empty() && !s.facts().group.is_empty());
        assert_eq!(s.exec("echo hi").unwrap(), "hi\n");
        assert!(s.exec("exit 3").unwrap_err().contains("failed"));
        assert_eq!(s.kind(Path::new("/")), PathKind::Dir);
        assert_eq!(s.kind(Path::new("/nonexistent/x")), PathKind::Missing);
    }
}
