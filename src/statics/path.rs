//! Turning the part of a request path below a mount into file-name segments, refusing
//! anything that could reach outside the mount: `..` (also percent-encoded), encoded slashes
//! and backslashes, NUL bytes, overlong paths; and into the one normal spelling of those
//! segments, which the cache is keyed by (`/a//b.css`, `/a/%62.css` and `/a/b.css` are one
//! file, so one entry). Pure functions; the file system checks (symlinks) are in the caller.

use std::borrow::Cow;

/// Why a path is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Malformed or hostile: 400.
    BadRequest(&'static str),
    /// A valid request for something not shown (a dotfile): 404.
    Hidden,
}

/// Longest request path (after the mount) considered; longer is refused.
const MAX_PATH: usize = 4096;
/// Longest single file name (Linux's NAME_MAX).
const MAX_NAME: usize = 255;

/// The decoded segments of `rest` (the raw, still percent-encoded path after the mount
/// prefix), and whether it ends with `/` (a directory was asked for).
pub(crate) fn segments(rest: &str, dotfiles: bool) -> Result<(Vec<Vec<u8>>, bool), Refusal> {
    if rest.len() > MAX_PATH {
        return Err(Refusal::BadRequest("the path is too long"));
    }
    let lower = rest.to_ascii_lowercase();
    if rest.contains('\\') || lower.contains("%5c") {
        return Err(Refusal::BadRequest(
            "backslashes are not allowed in static paths",
        ));
    }
    if lower.contains("%2f") {
        return Err(Refusal::BadRequest(
            "encoded slashes are not allowed in static paths",
        ));
    }
    if lower.contains("%00") || rest.contains('\0') {
        return Err(Refusal::BadRequest("NUL bytes are not allowed in paths"));
    }
    let mut out = Vec::new();
    for raw in rest.split('/').filter(|s| !s.is_empty()) {
        let segment: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
        if segment == b"." || segment == b".." {
            return Err(Refusal::BadRequest(
                "dot segments are not allowed in static paths",
            ));
        }
        if segment.len() > MAX_NAME {
            return Err(Refusal::BadRequest("a file name in the path is too long"));
        }
        if segment.contains(&0) {
            return Err(Refusal::BadRequest("NUL bytes are not allowed in paths"));
        }
        if segment.first() == Some(&b'.') && !dotfiles {
            return Err(Refusal::Hidden);
        }
        out.push(segment);
    }
    Ok((out, rest.ends_with('/')))
}

/// The normal spelling of a path below a mount: `/` and the decoded segments, each after a
/// `/`, and a final `/` when a directory was asked for. Two request paths naming the same
/// file have the same normal spelling; the one a client most likely sent (no `%`, no `//`)
/// is its own, and costs no allocation.
pub(crate) fn normalise(rest: &str, dotfiles: bool) -> Result<(Cow<'_, [u8]>, bool), Refusal> {
    let dir = rest.ends_with('/');
    if is_normal(rest) {
        return Ok((Cow::Borrowed(rest.as_bytes()), dir));
    }
    let (segments, dir) = segments(rest, dotfiles)?;
    let mut key = Vec::with_capacity(rest.len());
    for s in &segments {
        key.push(b'/');
        key.extend_from_slice(s);
    }
    if dir {
        key.push(b'/');
    }
    Ok((Cow::Owned(key), dir))
}

/// Whether `rest` is already its normal spelling and is served: empty, or `/` then segments
/// of the plainest bytes (no `%`, `\`, NUL; no empty segment but a final one; none starting
/// with `.`), within the lengths [`segments`] allows. Anything else goes the long way.
fn is_normal(rest: &str) -> bool {
    if rest.is_empty() || rest == "/" {
        return true;
    }
    let Some(body) = rest.strip_prefix('/') else {
        return false;
    };
    if rest.len() > MAX_PATH {
        return false;
    }
    let body = body.strip_suffix('/').unwrap_or(body);
    body.split('/').all(|s| {
        !s.is_empty()
            && s.len() <= MAX_NAME
            && !s.starts_with('.')
            && !s.bytes().any(|b| matches!(b, b'%' | b'\\' | 0))
    })
}

/// Whether a file name carries a content hash, as Django's ManifestStaticFilesStorage and
/// bundlers write them (`app.3f2a9c1b7e4d.css`): such files never change, so they may be
/// cached for a year.
pub(crate) fn is_hashed_name(name: &str) -> bool {
    let mut parts = name.rsplit('.');
    let (Some(_ext), Some(hash), Some(stem)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !stem.is_empty()
        && (8..=32).contains(&hash.len())
        && hash
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && hash.bytes().any(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(rest: &str) -> Vec<String> {
        segments(rest, false)
            .unwrap()
            .0
            .into_iter()
            .map(|s| String::from_utf8(s).unwrap())
            .collect()
    }

    #[test]
    fn plain_paths() {
        assert_eq!(ok("/admin/css/base.css"), vec!["admin", "css", "base.css"]);
        assert_eq!(ok("//a///b"), vec!["a", "b"]);
        assert_eq!(ok("/caf%C3%A9.txt"), vec!["café.txt"]);
        assert_eq!(ok("/a%20b"), vec!["a b"]);
        assert!(segments("/docs/", false).unwrap().1);
        assert!(!segments("/docs", false).unwrap().1);
    }

    #[test]
    fn traversal_is_refused() {
        for bad in [
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E/etc/passwd",
            "/.%2e/x",
            "/a/%2e",
            "/..%2fetc%2fpasswd",
            "/..%2Fetc",
            "/a%5c..%5cb",
            "/a\\b",
            "/a%00.css",
            "/a%2f..%2fb",
        ] {
            assert!(
                matches!(segments(bad, false), Err(Refusal::BadRequest(_))),
                "{bad} was not refused"
            );
        }
        let long = format!("/{}", "a".repeat(300));
        assert!(matches!(
            segments(&long, false),
            Err(Refusal::BadRequest(_))
        ));
        let deep = "/a".repeat(3000);
        assert!(matches!(
            segments(&deep, false),
            Err(Refusal::BadRequest(_))
        ));
    }

    #[test]
    fn dotfiles_are_hidden_unless_allowed() {
        assert_eq!(segments("/.env", false), Err(Refusal::Hidden));
        assert_eq!(segments("/.git/config", false), Err(Refusal::Hidden));
        assert_eq!(segments("/%2egit/config", false), Err(Refusal::Hidden));
        assert!(segments("/.well-known/x", true).is_ok());
    }

    fn normal(rest: &str) -> (String, bool) {
        let (key, dir) = normalise(rest, false).unwrap();
        (String::from_utf8(key.into_owned()).unwrap(), dir)
    }

    #[test]
    fn one_file_one_spelling() {
        for spelling in [
            "/a/b.css",
            "//a/b.css",
            "/a///b.css",
            "/%61/b.css",
            "/a/%62%2Ecss",
        ] {
            assert_eq!(normal(spelling), ("/a/b.css".into(), false), "{spelling}");
        }
        assert_eq!(normal("/a/"), ("/a/".into(), true));
        assert_eq!(normal("/a//"), ("/a/".into(), true));
        assert_eq!(normal("//"), ("/".into(), true));
        assert_eq!(normal("/"), ("/".into(), true));
        assert_eq!(normal(""), ("".into(), false));
        assert_eq!(normal("/caf%C3%A9"), ("/café".into(), false));
        // The plain spelling is borrowed, not copied.
        assert!(matches!(
            normalise("/a/b.css", false),
            Ok((Cow::Borrowed(_), false))
        ));
        // What segments refuses, normalise refuses.
        assert!(normalise("/a/../b", false).is_err());
        assert!(normalise("/a%2fb", false).is_err());
        assert_eq!(normalise("/.env", false), Err(Refusal::Hidden));
        assert!(normalise("/.well-known/x", true).is_ok());
        assert!(normalise(&"/a".repeat(3000), false).is_err());
    }

    #[test]
    fn hashed_names() {
        assert!(is_hashed_name("app.3f2a9c1b7e4d.css"));
        assert!(is_hashed_name("base.a1b2c3d4.js"));
        assert!(!is_hashed_name("app.css"));
        assert!(!is_hashed_name("jquery.min.js"));
        assert!(!is_hashed_name("app.deadbeef.css")); // no digit: likely a word
        assert!(!is_hashed_name("app.3F2A9C1B7E4D.css"));
        assert!(!is_hashed_name(".3f2a9c1b7e4d.css"));
    }
}
