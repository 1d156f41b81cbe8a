//! uWSGI's magic variables: `%` and one character, replaced in the whole text of an ini file
//! as soon as it is read, before any line is parsed (core/uwsgi.c `config_magic_table_fill`,
//! core/utils.c `magic_sub`). Each file gets its own table, so `%d` in an included file is that
//! file's directory; the upper-case letters keep the values of the first file read.

use std::path::Path;

use super::host::Host;

/// The values of one file's magic variables.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    /// `%o` the name as given, `%p` the absolute path, `%s` the file name, `%d` its directory
    /// with a trailing slash, `%e` the extension, `%n` the name without it, `%c` the directory's
    /// name, `%x` the section asked for, `%i` the inode, `%j` the hash of `%p`, `%0`..`%9` the
    /// components of the directory.
    pub(crate) o: String,
    pub(crate) p: String,
    pub(crate) s: String,
    pub(crate) d: String,
    pub(crate) e: String,
    pub(crate) n: String,
    pub(crate) c: String,
    pub(crate) x: String,
    pub(crate) i: String,
    pub(crate) j: String,
    pub(crate) dirs: Vec<String>,
}

impl Table {
    /// The table for the file at `absolute` (named `given` by the user), read for `section`.
    pub(crate) fn for_file(
        given: &str,
        absolute: &Path,
        section: Option<&str>,
        host: &dyn Host,
    ) -> Self {
        let p = absolute.to_string_lossy().into_owned();
        let (dir, s) = match p.rfind('/') {
            Some(i) => (p[..=i].to_string(), p[i + 1..].to_string()),
            None => (String::new(), p.clone()),
        };
        let (n, e) = match s.rfind('.') {
            Some(i) => (s[..i].to_string(), s[i + 1..].to_string()),
            None => (s.clone(), String::new()),
        };
        let trimmed = dir.trim_end_matches('/');
        let c = trimmed.rsplit('/').next().unwrap_or_default().to_string();
        let dirs = trimmed
            .split('/')
            .filter(|d| !d.is_empty())
            .take(10)
            .map(str::to_string)
            .collect();
        Table {
            o: given.to_string(),
            j: djb33x_hex(p.as_bytes()),
            i: host
                .inode(absolute)
                .map(|i| i.to_string())
                .unwrap_or_default(),
            p,
            d: dir,
            s,
            e,
            n,
            c,
            x: section.unwrap_or_default().to_string(),
            dirs,
        }
    }
}

/// `%j`: uWSGI's djb33x hash of the path, as the hex of its four bytes in memory order
/// (core/hash.c, core/utils.c `uwsgi_str_to_hex`; little-endian on the machines dragoman runs on).
fn djb33x_hex(bytes: &[u8]) -> String {
    let mut hash: u32 = 5381;
    for &b in bytes {
        // uWSGI reads the path as (signed) chars.
        hash = (hash << 5).wrapping_add(hash) ^ (b as i8 as i32 as u32);
    }
    hash.to_le_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What one `%` sequence turned into, for the reader to report.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// A letter uWSGI has no value for: uWSGI replaces it with nothing, and so does dragoman.
    Unknown(char),
}

/// Replaces the magic variables of `text`. `file` is this file's table, `first` the first
/// file's (for the upper-case letters). Returns the text and the unknown letters dropped, with
/// their line numbers.
pub(crate) fn substitute(
    text: &str,
    file: &Table,
    first: &Table,
    host: &dyn Host,
) -> (String, Vec<(usize, Dropped)>) {
    let facts = host.facts();
    let mut out = String::with_capacity(text.len());
    let mut dropped = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' {
            line += 1;
        }
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(&m) = chars.peek() else {
            out.push('%');
            break;
        };
        // A `%` at the end of a line stays: uWSGI would swallow the newline with it and join
        // two lines, which no file means.
        if m == '\n' || m == '\r' {
            out.push('%');
            continue;
        }
        chars.next();
        let digit = |t: &Table, d: char| {
            let i = d as usize - '0' as usize;
            t.dirs.get(i).cloned().unwrap_or_default()
        };
        let value: String = match m {
            '%' => "%".into(),
            // Placeholders are expanded after the whole configuration is read.
            '(' => "%(".into(),
            'o' => file.o.clone(),
            'p' => file.p.clone(),
            's' => file.s.clone(),
            'd' => file.d.clone(),
            'e' => file.e.clone(),
            'n' => file.n.clone(),
            'c' => file.c.clone(),
            'x' => file.x.clone(),
            'i' => file.i.clone(),
            'j' => file.j.clone(),
            'O' => first.o.clone(),
            'P' => first.p.clone(),
            'S' => first.s.clone(),
            'D' => first.d.clone(),
            'E' => first.e.clone(),
            'N' => first.n.clone(),
            'C' => first.c.clone(),
            'X' => first.x.clone(),
            'I' => first.i.clone(),
            'J' => first.j.clone(),
            '0'..='9' => digit(file, m),
            'v' => facts.cwd.to_string_lossy().into_owned(),
            'h' => facts.hostname.clone(),
            'k' => facts.cpus.to_string(),
            't' => facts.now_secs.to_string(),
            'T' => facts.now_micros.to_string(),
            'u' => facts.uid.to_string(),
            'U' => facts.user.clone(),
            'g' => facts.gid.to_string(),
            'G' => facts.group.clone(),
            'b' => facts.executable.clone(),
            // dragoman's version: an ini that names log files by version keeps working.
            'V' => env!("CARGO_PKG_VERSION").into(),
            '[' => "\x1b".into(),
            other => {
                dropped.push((line, Dropped::Unknown(other)));
                String::new()
            }
        };
        out.push_str(&value);
    }
    (out, dropped)
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::FakeHost;
    use super::*;

    #[test]
    fn file_variables_as_uwsgi_fills_them() {
        let host = FakeHost::default();
        let t = Table::for_file(
            "conf/site.prod.ini",
            Path::new("/srv/app/conf/site.prod.ini"),
            Some("web"),
            &host,
        );
        assert_eq!(t.o, "conf/site.prod.ini");
        assert_eq!(t.p, "/srv/app/conf/site.prod.ini");
        assert_eq!(t.s, "site.prod.ini");
        assert_eq!(t.d, "/srv/app/conf/");
        assert_eq!(t.e, "ini");
        assert_eq!(t.n, "site.prod");
        assert_eq!(t.c, "conf");
        assert_eq!(t.x, "web");
        assert_eq!(t.dirs, vec!["srv", "app", "conf"]);
        assert_eq!(t.i, "4242");
        // djb33x("/a") = ((5381 * 33) ^ '/') * 33 ^ 'a', as bytes in memory order.
        let h: u32 = ((5381u32 * 33) ^ 47).wrapping_mul(33) ^ 97;
        let expected: String = h.to_le_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(djb33x_hex(b"/a"), expected);
    }

    #[test]
    fn substitution_of_every_documented_letter() {
        let host = FakeHost::default();
        let t = Table::for_file("a.ini", Path::new("/srv/x/a.ini"), None, &host);
        let first = Table::for_file("/etc/main.ini", Path::new("/etc/main.ini"), None, &host);
        let (out, dropped) = substitute(
            "%d|%p|%s|%n|%e|%c|%0|%1|%2|%N|%D|%h|%k|%u|%U|%g|%G|%v|%t|%T|%V|%%|%(x)|%[|%z|100%\n",
            &t,
            &first,
            &host,
        );
        let want = format!(
            "/srv/x/|/srv/x/a.ini|a.ini|a|ini|x|srv|x||main|/etc/|web1|8|1000|www|1001|staff|/work|\
             1700000000|1700000000123456|{}|%|%(x)|\x1b||100%\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(out, want);
        assert_eq!(dropped, vec![(1, Dropped::Unknown('z'))]);
    }
}
