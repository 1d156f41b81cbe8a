//! The ini reader, with uWSGI's semantics. Pure functions on strings: reading the file is the
//! caller's job, so every rule here is tested without touching the disk.
//!
//! - `[uwsgi]` and `[dragoman]` sections are read (in file order), plus any lines before the first
//!   section; `file.ini:name` reads section `[name]` instead.
//! - `key = value`; a bare `key` means `key = true`; repeated keys accumulate.
//! - Whole-line comments start with `#` or `;`; a value's trailing ` # comment` is dropped.
//! - `%(name)` is the last value set for an option or placeholder earlier in the file,
//!   `$(VAR)` an environment variable, `%d %p %s %n %e %c` the file's directory, path, name,
//!   stem, extension and directory name (uWSGI's magic variables), `%%` a literal `%`.

use std::collections::{HashMap, HashSet};
use std::path::Path;

/// One `key = value` line of the selected sections, after expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    /// `None` for a bare key (`master` alone), which means true.
    pub value: Option<String>,
    pub line: usize,
}

/// A problem in an ini file, with the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniError {
    pub line: usize,
    pub message: String,
}

/// A raw line before section selection and expansion.
#[derive(Debug)]
struct RawEntry<'a> {
    section: Option<&'a str>,
    key: &'a str,
    value: Option<&'a str>,
    line: usize,
}

/// Splits an ini file into entries, checking the syntax of every line.
fn tokenize(text: &str) -> Result<Vec<RawEntry<'_>>, IniError> {
    let mut section = None;
    let mut entries = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let name = rest.strip_suffix(']').ok_or_else(|| IniError {
                line,
                message: format!("section header {trimmed:?} must end with ']', as in `[uwsgi]`"),
            })?;
            section = Some(name.trim());
            continue;
        }
        let (key, value) = match trimmed.split_once('=') {
            Some((k, v)) => (k.trim(), Some(strip_trailing_comment(v).trim())),
            None => (strip_trailing_comment(trimmed).trim(), None),
        };
        if key.is_empty() {
            return Err(IniError {
                line,
                message: "a line must start with an option name, as in `http = :8000`".into(),
            });
        }
        if key.contains(char::is_whitespace) {
            return Err(IniError {
                line,
                message: format!(
                    "{key:?} is not an option name; write options as `name = value`, one per line"
                ),
            });
        }
        entries.push(RawEntry {
            section,
            key,
            value,
            line,
        });
    }
    Ok(entries)
}

/// Drops a ` # comment` (a `#` preceded by whitespace) from the end of a value.
fn strip_trailing_comment(value: &str) -> &str {
    let bytes = value.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && i > 0 && bytes[i - 1].is_ascii_whitespace() {
            return &value[..i];
        }
    }
    value
}

/// The context `%(...)`, `$(...)` and the magic variables are expanded in.
pub struct Context<'a> {
    /// The ini file's path as given (made absolute by the caller).
    pub path: &'a Path,
    /// Looks up an environment variable.
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// Reads the selected sections of an ini file and expands its variables.
///
/// `section`: `Some(name)` from `file.ini:name`; `None` for the default sections. Returns the
/// entries in file order and warnings (for example an unset `$(VAR)`).
pub fn read(
    text: &str,
    section: Option<&str>,
    ctx: &Context<'_>,
) -> Result<(Vec<Entry>, Vec<IniError>), IniError> {
    let raw = tokenize(text)?;
    let selected: Vec<&RawEntry<'_>> = match section {
        Some(wanted) => {
            if !raw.iter().any(|e| e.section == Some(wanted))
                && !text.contains(&format!("[{wanted}]"))
            {
                return Err(IniError {
                    line: 0,
                    message: format!("there is no [{wanted}] section in this file"),
                });
            }
            raw.iter().filter(|e| e.section == Some(wanted)).collect()
        }
        None => {
            let default = |s: Option<&str>| matches!(s, None | Some("uwsgi") | Some("dragoman"));
            let any_section = text.lines().any(|l| l.trim_start().starts_with('['));
            let has_default_section = text.lines().any(|l| {
                let l = l.trim();
                l == "[uwsgi]" || l == "[dragoman]"
            });
            if any_section && !has_default_section && raw.iter().all(|e| e.section.is_some()) {
                return Err(IniError {
                    line: 0,
                    message: "this file has no [uwsgi] or [dragoman] section; add one, or name \
                              the section to read with `--ini file.ini:section`"
                        .into(),
                });
            }
            raw.iter().filter(|e| default(e.section)).collect()
        }
    };

    // A key that some value refers to as %(key) is a placeholder (uWSGI's custom variables), not
    // an unknown option; the caller needs to know which ones those are.
    let mut values: HashMap<String, String> = HashMap::new();
    let mut warnings = Vec::new();
    let mut entries = Vec::with_capacity(selected.len());
    for e in selected {
        let value = match e.value {
            Some(v) => Some(expand(v, e.line, &values, ctx, &mut warnings)?),
            None => None,
        };
        values.insert(
            e.key.to_string(),
            value.clone().unwrap_or_else(|| "true".into()),
        );
        entries.push(Entry {
            key: e.key.to_string(),
            value,
            line: e.line,
        });
    }
    Ok((entries, warnings))
}

/// The names used as `%(name)` anywhere in the text: keys defining them are placeholders.
pub fn referenced_placeholders(text: &str) -> HashSet<String> {
    let mut names = HashSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("%(") {
        let after = &rest[start + 2..];
        match after.find(')') {
            Some(end) => {
                names.insert(after[..end].trim().to_string());
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    names
}

/// Expands `%(name)`, `$(VAR)`, `%%` and the magic variables in one value.
fn expand(
    value: &str,
    line: usize,
    values: &HashMap<String, String>,
    ctx: &Context<'_>,
    warnings: &mut Vec<IniError>,
) -> Result<String, IniError> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        match (c, next) {
            ('%', Some('(')) | ('$', Some('(')) => {
                let body = &value[i + 2..];
                let end = body.find(')').ok_or_else(|| IniError {
                    line,
                    message: format!("`{c}(` has no closing `)` in {value:?}"),
                })?;
                let name = body[..end].trim();
                if c == '%' {
                    let v = values.get(name).ok_or_else(|| IniError {
                        line,
                        message: format!(
                            "%({name}) refers to an option or placeholder that is not set before \
                             this line; set `{name} = ...` above it"
                        ),
                    })?;
                    out.push_str(v);
                } else {
                    match (ctx.env)(name) {
                        Some(v) => out.push_str(&v),
                        None => warnings.push(IniError {
                            line,
                            message: format!(
                                "$({name}) is not set in the environment; it expands to nothing"
                            ),
                        }),
                    }
                }
                // Skip past the `(`, the name and the `)`.
                let skip_to = i + 2 + end + 1;
                while chars.peek().is_some_and(|&(j, _)| j < skip_to) {
                    chars.next();
                }
            }
            ('%', Some(m)) if "dpsnec%".contains(m) => {
                chars.next();
                out.push_str(&magic(m, ctx.path));
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// uWSGI's magic variables for the config file at `path`.
fn magic(letter: char, path: &Path) -> String {
    let dir = path
        .parent()
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_default();
    match letter {
        // uWSGI's %d ends with a slash, so `%dstatic` is a path.
        'd' => format!("{}/", dir.trim_end_matches('/')),
        'p' => path.to_string_lossy().into_owned(),
        's' => file_part(path.file_name()),
        'n' => file_part(path.file_stem()),
        'e' => file_part(path.extension()),
        'c' => path
            .parent()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        _ => "%".into(),
    }
}

fn file_part(part: Option<&std::ffi::OsStr>) -> String {
    part.map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Splits `--ini file.ini:section` into the path and the section, leaving a path alone when the
/// part after the last `:` looks like a path rather than a section name.
pub fn split_section(spec: &str) -> (&str, Option<&str>) {
    match spec.rsplit_once(':') {
        Some((file, section))
            if !file.is_empty()
                && !section.is_empty()
                && !section.contains('/')
                && !Path::new(spec).exists() =>
        {
            (file, Some(section))
        }
        _ => (spec, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_env(name: &str) -> Option<String> {
        match name {
            "HOME_DIR" => Some("/home/site".into()),
            _ => None,
        }
    }

    fn read_default(text: &str) -> Result<(Vec<Entry>, Vec<IniError>), IniError> {
        let ctx = Context {
            path: Path::new("/srv/site/conf/site.ini"),
            env: &ctx_env,
        };
        read(text, None, &ctx)
    }

    fn pairs(entries: &[Entry]) -> Vec<(String, Option<String>)> {
        entries
            .iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect()
    }

    fn kv(k: &str, v: Option<&str>) -> (String, Option<String>) {
        (k.to_string(), v.map(str::to_string))
    }

    #[test]
    fn design_md_example_loads() {
        let text = "[uwsgi]\nhttp       = :8000\nstatic-map = /static=/myproj/static\n\
                    static-map = /media=/myproj/media\nchdir      = /myproj\n\
                    module     = myproj.wsgi\nhome       = /myproj/venv  # this is the virtualenv path\n\
                    master     = true\nprocesses  = 10\nvacuum     = true\n";
        let (entries, warnings) = read_default(text).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(
            pairs(&entries),
            vec![
                kv("http", Some(":8000")),
                kv("static-map", Some("/static=/myproj/static")),
                kv("static-map", Some("/media=/myproj/media")),
                kv("chdir", Some("/myproj")),
                kv("module", Some("myproj.wsgi")),
                kv("home", Some("/myproj/venv")),
                kv("master", Some("true")),
                kv("processes", Some("10")),
                kv("vacuum", Some("true")),
            ]
        );
        assert_eq!(entries[5].line, 7);
    }

    #[test]
    fn comments_bare_keys_and_no_section() {
        let text = "# a comment\n; another\nmaster\nhttp = :8000 # trailing\nenv = A=b#c\n";
        let (entries, _) = read_default(text).unwrap();
        assert_eq!(
            pairs(&entries),
            vec![
                kv("master", None),
                kv("http", Some(":8000")),
                kv("env", Some("A=b#c"))
            ]
        );
    }

    #[test]
    fn sections_select_and_other_sections_are_skipped() {
        let text = "[other]\nhttp = :1\n[uwsgi]\nhttp = :2\n[dragoman]\nthreads = 4\n";
        let (entries, _) = read_default(text).unwrap();
        assert_eq!(
            pairs(&entries),
            vec![kv("http", Some(":2")), kv("threads", Some("4"))]
        );

        let ctx = Context {
            path: Path::new("/x.ini"),
            env: &ctx_env,
        };
        let (entries, _) = read(text, Some("other"), &ctx).unwrap();
        assert_eq!(pairs(&entries), vec![kv("http", Some(":1"))]);
        let err = read(text, Some("missing"), &ctx).unwrap_err();
        assert!(err.message.contains("no [missing] section"), "{err:?}");
    }

    #[test]
    fn a_file_with_only_foreign_sections_is_an_error() {
        let err = read_default("[app:main]\nuse = egg:x\n").unwrap_err();
        assert!(
            err.message.contains("no [uwsgi] or [dragoman] section"),
            "{err:?}"
        );
    }

    #[test]
    fn placeholders_env_and_magic_variables() {
        let text = "[uwsgi]\nproject = shop\nbase = /srv/%(project)\nchdir = %(base)/app\n\
                    home = $(HOME_DIR)/venv\nstatic-map = /static=%dstatic\nlogto = %n.log\n\
                    pct = 100%%\nunset = x$(NOPE)y\n";
        let (entries, warnings) = read_default(text).unwrap();
        let got: HashMap<_, _> = entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.clone().unwrap()))
            .collect();
        assert_eq!(got["chdir"], "/srv/shop/app");
        assert_eq!(got["home"], "/home/site/venv");
        assert_eq!(got["static-map"], "/static=/srv/site/conf/static");
        assert_eq!(got["logto"], "site.log");
        assert_eq!(got["pct"], "100%");
        assert_eq!(got["unset"], "xy");
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].line, 9);
        assert!(warnings[0].message.contains("$(NOPE)"));
        let refs = referenced_placeholders(text);
        assert!(refs.contains("project") && refs.contains("base"));
    }

    #[test]
    fn undefined_placeholder_names_the_line() {
        let err = read_default("[uwsgi]\nchdir = %(base)/app\nbase = /srv\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("%(base)"), "{err:?}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = read_default("[uwsgi\nhttp = :8000\n").unwrap_err();
        assert_eq!(err.line, 1);
        let err = read_default("[uwsgi]\n= :8000\n").unwrap_err();
        assert_eq!(err.line, 2);
        let err = read_default("[uwsgi]\nhttp :8000\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("name = value"), "{err:?}");
    }

    #[test]
    fn section_suffix_on_ini_path() {
        assert_eq!(split_section("site.ini:prod"), ("site.ini", Some("prod")));
        assert_eq!(split_section("site.ini"), ("site.ini", None));
        assert_eq!(split_section("/a:b/site.ini"), ("/a:b/site.ini", None));
    }
}
