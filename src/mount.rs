//! uWSGI's `mount`: several applications in one process, each under a URL prefix. Pure
//! functions on the prefixes and the request path, tested without Python; the WSGI bridge
//! ([`crate::wsgi`]) holds the loaded applications and calls [`longest`] per request, and
//! only when there are mounts (a site without them pays one length check).
//!
//! The rules are uWSGI 2.0's `manage-script-name` (core/protocol.c, `uwsgi_parse_vars`): the
//! mount whose prefix is the longest match wins; a prefix matches only up to a path-segment
//! boundary (`/app` takes `/app` and `/app/x`, never `/app2`), and a trailing `/` of a prefix is
//! ignored. SCRIPT_NAME is the prefix, PATH_INFO the rest: `/app` alone gives an empty
//! PATH_INFO, `/app/` gives `/`.

/// A mount's prefix as the router compares it: it starts with `/` and has no trailing `/`;
/// `""` is the root (`mount = /=app` or an empty prefix: the main application's place). `None`
/// when the prefix does not start with `/`.
pub(crate) fn normalize(prefix: &str) -> Option<&str> {
    let prefix = prefix.trim();
    if prefix.is_empty() {
        return Some("");
    }
    if !prefix.starts_with('/') {
        return None;
    }
    Some(prefix.trim_end_matches('/'))
}

/// Whether `prefix` (normalized, not the root) takes `path`: `path` starts with it and goes
/// on, if at all, with a `/`.
pub(crate) fn takes(prefix: &[u8], path: &[u8]) -> bool {
    path.starts_with(prefix) && matches!(path.get(prefix.len()), None | Some(b'/'))
}

/// The index of the mount that serves `path` (the percent-decoded request path): the longest
/// prefix that takes it, the first given among equal ones. `None`: no mount does (the main
/// application's, or a 404).
pub(crate) fn longest<'a>(
    prefixes: impl IntoIterator<Item = &'a [u8]>,
    path: &[u8],
) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (i, prefix) in prefixes.into_iter().enumerate() {
        if !prefix.is_empty()
            && best.is_none_or(|(_, len)| prefix.len() > len)
            && takes(prefix, path)
        {
            best = Some((i, prefix.len()));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefixes: &[&str], path: &str) -> Option<usize> {
        longest(prefixes.iter().map(|p| p.as_bytes()), path.as_bytes())
    }

    #[test]
    fn prefixes_are_normalized_as_uwsgi_compares_them() {
        assert_eq!(normalize("/app"), Some("/app"));
        assert_eq!(normalize(" /app/ "), Some("/app"));
        assert_eq!(normalize("/app//"), Some("/app"));
        assert_eq!(normalize("/"), Some(""));
        assert_eq!(normalize(""), Some(""));
        assert_eq!(normalize("app"), None);
        assert_eq!(normalize("http://x/app"), None);
    }

    #[test]
    fn a_prefix_matches_on_a_segment_boundary() {
        assert!(takes(b"/app", b"/app"));
        assert!(takes(b"/app", b"/app/"));
        assert!(takes(b"/app", b"/app/x/y"));
        assert!(!takes(b"/app", b"/app2"));
        assert!(!takes(b"/app", b"/ap"));
        assert!(!takes(b"/app", b"/"));
        assert!(!takes(b"/app", b"/other/app"));
        assert!(takes(b"/a/b", b"/a/b/c"));
        assert!(!takes(b"/a/b", b"/a/bc"));
    }

    #[test]
    fn the_longest_prefix_wins() {
        let mounts = ["/app", "/app/admin", "/api"];
        assert_eq!(route(&mounts, "/app/x"), Some(0));
        assert_eq!(route(&mounts, "/app/admin"), Some(1));
        assert_eq!(route(&mounts, "/app/admin/users"), Some(1));
        assert_eq!(route(&mounts, "/app/administrator"), Some(0));
        assert_eq!(route(&mounts, "/api/v1"), Some(2));
        assert_eq!(route(&mounts, "/app2"), None);
        assert_eq!(route(&mounts, "/"), None);
        assert_eq!(route(&mounts, ""), None);
        // The order given does not matter, only the length.
        assert_eq!(route(&["/app/admin", "/app"], "/app/admin/x"), Some(0));
        assert_eq!(route(&["/app/admin", "/app"], "/app/x"), Some(1));
    }

    #[test]
    fn equal_prefixes_go_to_the_first_and_the_root_is_never_matched() {
        assert_eq!(route(&["/a", "/a"], "/a/x"), Some(0));
        assert_eq!(route(&["", "/a"], "/x"), None);
        assert_eq!(route(&["", "/a"], "/a"), Some(1));
        assert_eq!(route(&[], "/a"), None);
    }

    #[test]
    fn paths_are_bytes() {
        assert_eq!(
            longest([&b"/caf\xc3\xa9"[..]], b"/caf\xc3\xa9/menu"),
            Some(0)
        );
        assert_eq!(longest([&b"/caf"[..]], b"/caf\xc3\xa9"), None);
    }
}
