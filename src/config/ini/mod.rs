//! The ini reader, with uWSGI's semantics (core/ini.c, core/config.c, core/uwsgi.c). It sees the
//! machine only through [`host::Host`], so every rule is tested without touching the disk.
//!
//! In the order uWSGI does it:
//! 1. Each file's text gets its magic variables (`%d %n %h %k` ...; [`magic`]) replaced.
//! 2. Lines are read: `[uwsgi]` and `[dragoman]` sections (plus any lines before the first
//!    section; `file.ini:name` reads `[name]` instead); `key = value`, a bare `key` meaning true;
//!    whole-line `#`/`;` comments, and a trailing ` # comment` or ` ; comment` after a value
//!    (except in values that are commands or formats, see [`raw_value`]).
//! 3. Lines go through the config logic: `if-env`/`if-exists`/`if-opt`/... `endif` and
//!    `for`/`for-glob`/`for-times`/`for-readline` ... `endfor`, with `%(_)` the context value.
//! 4. `ini`/`include` read another file (or `:section` of the last one) in place; `inherit`
//!    appends one after the rest, as uWSGI does; a loop of includes is an error that names the
//!    chain.
//! 5. Once everything is assembled: `$(VAR)`, then `@(file)`/`@(exec://...)`, then `%(name)`
//!    ([`expand`]); a reference to nothing is left as written.

mod entry;
pub(crate) mod expand;
pub(crate) mod host;
pub(crate) mod magic;
#[cfg(test)]
pub(crate) mod tests_support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub(crate) use entry::{Entry, IniError};
use host::{Host, PathKind};

/// The context the text-only reader ([`read`]) expands in.
pub(crate) struct Context<'a> {
    /// The ini file's path as given (made absolute by the caller).
    pub(crate) path: &'a Path,
    /// Looks up an environment variable.
    pub(crate) env: &'a dyn Fn(&str) -> Option<String>,
}

/// Reads the selected sections of one ini text, without touching the machine: includes,
/// `@(file)`, `@(exec://...)` and the file tests of the config logic see nothing. This is the
/// fuzzed entry; `config::load` reads files with [`load`].
pub(crate) fn read(
    text: &str,
    section: Option<&str>,
    ctx: &Context<'_>,
) -> Result<(Vec<Entry>, Vec<IniError>), IniError> {
    let host = host::Closed::new(ctx.path, text, ctx.env);
    let spec = match section {
        Some(s) => format!("{}:{s}", ctx.path.display()),
        None => ctx.path.display().to_string(),
    };
    let mut reader = Reader::new(&host);
    reader.top(&spec, ctx.path, section)?;
    reader.finish()
}

/// A configuration read from files: its lines, what to warn about, and the names its values
/// refer to as `%(name)` (keys of those names are placeholders, not misspelt options).
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) entries: Vec<Entry>,
    pub(crate) warnings: Vec<IniError>,
    pub(crate) referenced: HashSet<String>,
}

/// Reads the ini file named by `spec` (`file.ini` or `file.ini:section`) and everything it
/// includes, from the machine `host` describes. `placeholders` are set before the file is read
/// (`--set-placeholder NAME=VALUE` on the command line), and win over the file's own of the
/// same name, as the command line wins over the file for options.
pub(crate) fn load(
    spec: &str,
    host: &dyn Host,
    placeholders: &[(String, String)],
) -> Result<Loaded, IniError> {
    let (file, section) = split_section(spec);
    let absolute = absolute(Path::new(file), &host.facts().cwd);
    let mut reader = Reader::new(host);
    reader
        .entries
        .extend(placeholders.iter().map(|(key, value)| Entry {
            key: key.clone(),
            value: Some(value.clone()),
            line: 0,
            file: None,
            placeholder: true,
        }));
    reader.top(file, &absolute, section)?;
    let referenced = std::mem::take(&mut reader.referenced);
    let (entries, warnings) = reader.finish()?;
    Ok(Loaded {
        entries,
        warnings,
        referenced,
    })
}

/// Values that are commands, formats or rules: a ` ; ` or ` # ` in them is part of the value
/// (`attach-daemon = cd /srv ; ./worker`), not a comment.
pub(crate) fn raw_value(key: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "attach-",
        "smart-attach-",
        "legion-attach-",
        "legion-smart-attach-",
        "exec-",
        "call-",
        "hook-",
        "cron",
        "unique-cron",
        "legion-cron",
        "route",
        "final-route",
        "error-route",
        "response-route",
        "declare-option",
        "worker-exec",
        "log-encoder",
        "log-req-encoder",
        "mule",
        "spooler-",
        "touch-exec",
        "pyargv",
        "eval",
    ];
    // The log formats whole, but not their neighbours (`logformat-strftime` is a flag).
    matches!(key, "log-format" | "logformat") || PREFIXES.iter().any(|p| key.starts_with(p))
}

/// A line of one section, before logic and expansion.
#[derive(Debug)]
struct RawLine<'a> {
    section: Option<&'a str>,
    key: &'a str,
    value: Option<&'a str>,
    line: usize,
}

/// The lines of a text, and the odd lines to warn about (line, message).
type Tokens<'a> = (Vec<RawLine<'a>>, Vec<(usize, String)>);

/// Splits a text into lines of `key = value`, with their sections. The only syntax error is a
/// section header without its `]`; a line uWSGI would take as an odd option name is returned
/// as a warning (it names no option, so uWSGI ignores it, and so does dragoman).
fn tokenize(text: &str) -> Result<Tokens<'_>, (usize, String)> {
    let mut section = None;
    let mut lines = Vec::new();
    let mut odd = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let name = rest.strip_suffix(']').ok_or_else(|| {
                (
                    line,
                    format!("section header {trimmed:?} must end with ']', as in `[uwsgi]`"),
                )
            })?;
            section = Some(name.trim());
            continue;
        }
        let full_value = trimmed.split_once('=').map(|(_, v)| v.trim());
        let (key, value) = match trimmed.split_once('=') {
            Some((k, v)) => {
                let k = k.trim();
                let v = if raw_value(k) {
                    v
                } else {
                    strip_trailing_comment(v)
                };
                (k, Some(v.trim()))
            }
            None => (strip_trailing_comment(trimmed).trim(), None),
        };
        if key.is_empty() {
            odd.push((
                line,
                "a value with no option name before its `=`; uWSGI ignores this line, and so \
                 does dragoman"
                    .to_string(),
            ));
            continue;
        }
        if key.contains(char::is_whitespace) {
            let first = key.split_whitespace().next().unwrap_or_default();
            let rest = match full_value {
                Some(v) => format!("{}={v}", key[first.len()..].trim()),
                None => key[first.len()..].trim().to_string(),
            };
            odd.push((
                line,
                format!(
                    "{key:?} is no option name (it has a space); uWSGI ignores this line, and so \
                     does dragoman; if you meant the option, write `{first} = {rest}`"
                ),
            ));
            continue;
        }
        lines.push(RawLine {
            section,
            key,
            value,
            line,
        });
    }
    Ok((lines, odd))
}

/// Drops a ` # comment` or ` ; comment` (the mark preceded by whitespace) from a value.
fn strip_trailing_comment(value: &str) -> &str {
    let bytes = value.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if (b == b'#' || b == b';') && i > 0 && bytes[i - 1].is_ascii_whitespace() {
            return &value[..i];
        }
    }
    value
}

/// The kinds of uWSGI's config logic (core/config.c).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Logic {
    IfEnv(bool),
    IfOpt(bool),
    IfExists(bool),
    IfFile(bool),
    IfDir(bool),
    IfReload(bool),
    IfHostname(bool),
    IfHostnameMatch(bool),
    IfPlugin(bool),
    For,
    ForGlob,
    ForTimes,
    ForReadline,
    Else,
}

impl Logic {
    /// The logic a key opens, if any (the `bool` is true for the `if-not-` forms).
    fn of(key: &str) -> Option<Logic> {
        Some(match key {
            "if-env" | "ifenv" => Logic::IfEnv(false),
            "if-not-env" => Logic::IfEnv(true),
            "if-opt" => Logic::IfOpt(false),
            "if-not-opt" => Logic::IfOpt(true),
            "if-exists" | "ifexists" => Logic::IfExists(false),
            "if-not-exists" => Logic::IfExists(true),
            "if-file" => Logic::IfFile(false),
            "if-not-file" => Logic::IfFile(true),
            "if-dir" | "ifdir" | "if-directory" => Logic::IfDir(false),
            "if-not-dir" => Logic::IfDir(true),
            "if-reload" => Logic::IfReload(false),
            "if-not-reload" => Logic::IfReload(true),
            "if-hostname" => Logic::IfHostname(false),
            "if-not-hostname" => Logic::IfHostname(true),
            "if-hostname-match" => Logic::IfHostnameMatch(false),
            "if-not-hostname-match" => Logic::IfHostnameMatch(true),
            "if-plugin" | "ifplugin" => Logic::IfPlugin(false),
            "if-not-plugin" => Logic::IfPlugin(true),
            "for" => Logic::For,
            "for-glob" => Logic::ForGlob,
            "for-times" => Logic::ForTimes,
            "for-readline" => Logic::ForReadline,
            "else" => Logic::Else,
            _ => return None,
        })
    }

    fn is_if(self) -> bool {
        !matches!(
            self,
            Logic::For | Logic::ForGlob | Logic::ForTimes | Logic::ForReadline | Logic::Else
        )
    }
}

/// The keys that close a block.
fn ends_block(key: &str) -> bool {
    matches!(key, "end" | "endif" | "end-if" | "endfor" | "end-for")
}

/// An open `if-...`/`for...`/`else` block.
#[derive(Debug, Clone)]
struct Block {
    logic: Logic,
    key: String,
    /// The argument, as written (magic variables only: uWSGI tests it before any expansion).
    arg: String,
    line: usize,
    file: Option<PathBuf>,
    /// Whether the last test of this `if` failed (for a following `else`).
    failed: bool,
}

/// One file being read, for include-loop protection and error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Open {
    path: PathBuf,
    section: Option<String>,
}

/// The state of one configuration read: what uWSGI keeps in its globals while it parses.
struct Reader<'h> {
    host: &'h dyn Host,
    entries: Vec<Entry>,
    warnings: Vec<IniError>,
    block: Option<Block>,
    /// The files being read, outermost first.
    stack: Vec<Open>,
    /// The last file read, for `ini = :section`.
    last_file: Option<(PathBuf, String)>,
    /// The first file's magic table, for the upper-case magic variables.
    first: Option<magic::Table>,
    /// `inherit` lines, read after everything else.
    inherits: Vec<Entry>,
    /// The file currently being read, as entries record it (`None` for the top file).
    current: Option<PathBuf>,
    /// Names used as `%(name)` in the files read.
    referenced: HashSet<String>,
}

/// The most lines a configuration may expand to (`for-times` and `for` multiply lines; a real
/// configuration has hundreds).
const MAX_ENTRIES: usize = 100_000;

/// How deep includes may nest before dragoman stops (a loop through differently written paths
/// would otherwise run until the stack is gone).
const MAX_DEPTH: usize = 32;

impl<'h> Reader<'h> {
    fn new(host: &'h dyn Host) -> Self {
        Reader {
            host,
            entries: Vec::new(),
            warnings: Vec::new(),
            block: None,
            stack: Vec::new(),
            last_file: None,
            first: None,
            inherits: Vec::new(),
            current: None,
            referenced: HashSet::new(),
        }
    }

    /// Reads the file the user named.
    fn top(&mut self, given: &str, absolute: &Path, section: Option<&str>) -> Result<(), IniError> {
        let text = self.host.read(absolute).map_err(|why| IniError {
            line: 0,
            message: format!("cannot read this ini file: {why}; check the path given to --ini"),
            file: None,
        })?;
        self.stack.push(Open {
            path: absolute.to_path_buf(),
            section: section.map(str::to_string),
        });
        self.file(given, absolute, section, &text, true)?;
        self.stack.pop();
        if let Some(b) = self.block.take() {
            self.warnings.push(IniError {
                line: b.line,
                message: format!(
                    "the `{}` block opened here has no `{}`; it runs to the end of the \
                     configuration",
                    b.key,
                    if b.logic.is_if() || b.logic == Logic::Else {
                        "endif"
                    } else {
                        "endfor"
                    }
                ),
                file: b.file,
            });
        }
        // `inherit` is applied after the rest of the configuration (core/uwsgi.c: it is not an
        // immediate option), so its values come after the file's own.
        while !self.inherits.is_empty() {
            let pending = std::mem::take(&mut self.inherits);
            for e in pending {
                self.include(&e)?;
            }
        }
        Ok(())
    }

    /// Expands the assembled configuration and returns it.
    fn finish(mut self) -> Result<(Vec<Entry>, Vec<IniError>), IniError> {
        expand::expand_all(&mut self.entries, self.host, &mut self.warnings)?;
        let mut seen = HashSet::new();
        self.warnings
            .retain(|w| seen.insert((w.file.clone(), w.line, w.message.clone())));
        Ok((self.entries, self.warnings))
    }

    /// Reads one file's text: magic variables, then its lines in the selected sections.
    fn file(
        &mut self,
        given: &str,
        absolute: &Path,
        section: Option<&str>,
        text: &str,
        top: bool,
    ) -> Result<(), IniError> {
        let table = magic::Table::for_file(given, absolute, section, self.host);
        let first = self.first.get_or_insert_with(|| table.clone()).clone();
        let (text, dropped) = magic::substitute(text, &table, &first, self.host);
        self.referenced.extend(referenced_placeholders(&text));
        for (line, magic::Dropped::Unknown(c)) in dropped {
            self.warnings.push(IniError {
                line,
                message: format!(
                    "%{c} is no magic variable; uWSGI replaces it with nothing, and so does \
                     dragoman (write %%{c} for a literal %{c})"
                ),
                file: self.current.clone(),
            });
        }
        self.last_file = Some((absolute.to_path_buf(), given.to_string()));
        let at = |line: usize, message: String, file: &Option<PathBuf>| IniError {
            line,
            message,
            file: file.clone(),
        };
        let (lines, odd) = tokenize(&text).map_err(|(l, m)| at(l, m, &self.current))?;
        for (line, message) in odd {
            self.warnings.push(at(line, message, &self.current));
        }
        let selected: Vec<&RawLine<'_>> = match section {
            Some(wanted) => {
                let found: Vec<&RawLine<'_>> =
                    lines.iter().filter(|l| l.section == Some(wanted)).collect();
                let header = text.lines().any(|l| l.trim() == format!("[{wanted}]"));
                if found.is_empty() && !header {
                    let message = format!("there is no [{wanted}] section in this file");
                    if top {
                        return Err(at(0, message, &self.current));
                    }
                    // uWSGI only warns here.
                    self.warnings.push(at(0, message, &self.current));
                }
                found
            }
            None => {
                let default =
                    |s: Option<&str>| matches!(s, None | Some("uwsgi") | Some("dragoman"));
                let has_default_section = text.lines().any(|l| {
                    let l = l.trim();
                    l == "[uwsgi]" || l == "[dragoman]"
                });
                let any_section = text.lines().any(|l| l.trim_start().starts_with('['));
                if top
                    && any_section
                    && !has_default_section
                    && lines.iter().all(|l| l.section.is_some())
                {
                    return Err(at(
                        0,
                        "this file has no [uwsgi] or [dragoman] section; add one, or name the \
                         section to read with `--ini file.ini:section`"
                            .into(),
                        &self.current,
                    ));
                }
                lines.iter().filter(|l| default(l.section)).collect()
            }
        };
        for l in selected {
            let entry = Entry {
                key: l.key.to_string(),
                value: l.value.map(str::to_string),
                line: l.line,
                file: self.current.clone(),
                placeholder: false,
            };
            self.line(entry)?;
        }
        Ok(())
    }

    /// One line through the config logic.
    fn line(&mut self, entry: Entry) -> Result<(), IniError> {
        if ends_block(&entry.key) {
            self.block = None;
            return Ok(());
        }
        if let Some(logic) = Logic::of(&entry.key) {
            let arg = entry.value.clone().unwrap_or_default();
            let failed = match (&self.block, logic) {
                (Some(b), Logic::Else) if b.logic.is_if() => b.failed,
                (_, Logic::Else) => {
                    return Err(entry.error(
                        "`else` with no `if-...` block open before it; uWSGI's `else` follows \
                         an `if-...` block's lines, as in `if-env = X` / ... / `else =` / ... / \
                         `endif =`"
                            .into(),
                    ))
                }
                (Some(b), _) => {
                    return Err(entry.error(format!(
                        "`{}` inside the `{}` block opened on line {}: uWSGI does not nest \
                         blocks (it stops with \"recursive logic\"), and neither does dragoman; \
                         close that block (`endif =` or `endfor =`) before this line",
                        entry.key, b.key, b.line
                    )))
                }
                (None, _) => false,
            };
            if arg.contains("%(") || arg.contains("$(") || arg.contains("@(") {
                self.warnings.push(entry.error(format!(
                    "`{}` tests {arg:?} as written: uWSGI runs its config logic before \
                     expanding $(...), @(...) and %(...), and so does dragoman",
                    entry.key
                )));
            }
            if matches!(logic, Logic::IfReload(_)) {
                self.warnings.push(entry.error(
                    "`if-reload`/`if-not-reload`: dragoman reads its configuration the same way \
                     at start and at reload, as a first start"
                        .into(),
                ));
            }
            self.block = Some(Block {
                logic,
                key: entry.key.clone(),
                arg,
                line: entry.line,
                file: entry.file.clone(),
                failed,
            });
            return Ok(());
        }
        let Some(mut block) = self.block.take() else {
            return self.add(entry);
        };
        let produced = self.apply(&mut block, &entry)?;
        // An include inside a block is read whole, outside the block (as uWSGI does).
        for e in produced {
            self.add(e)?;
        }
        self.block = Some(block);
        Ok(())
    }

    /// What one line inside a block becomes: no line, the line, or one line per item.
    fn apply(&mut self, block: &mut Block, entry: &Entry) -> Result<Vec<Entry>, IniError> {
        let with = |ctx: &str| {
            let mut e = entry.clone();
            e.value = e.value.map(|v| v.replace("%(_)", ctx));
            e
        };
        let arg = block.arg.clone();
        let host = self.host;
        let compare = |name_value: &str, actual: Option<String>, negate: bool| {
            // `NAME` tests presence, `NAME=value` the value.
            let expected = name_value.split_once('=').map(|(_, v)| v);
            let pass = match (&actual, expected) {
                (None, _) => false,
                (Some(a), Some(want)) => a == want,
                (Some(_), None) => true,
            };
            (pass != negate).then(|| actual.unwrap_or_default())
        };
        let name = arg.split_once('=').map_or(arg.as_str(), |(n, _)| n);
        let test_path = |want: &dyn Fn(PathKind) -> bool, negate: bool| {
            (want(host.kind(Path::new(&arg))) != negate).then(|| arg.clone())
        };
        let outcome: Option<String> = match block.logic {
            Logic::IfEnv(neg) => compare(&arg, host.env(name), neg),
            Logic::IfOpt(neg) => {
                let value = self
                    .entries
                    .iter()
                    .find(|e| e.key == name)
                    .map(|e| e.value.clone().unwrap_or_else(|| "true".into()));
                compare(&arg, value, neg)
            }
            Logic::IfExists(neg) => test_path(&|k| k != PathKind::Missing, neg),
            Logic::IfFile(neg) => test_path(&|k| k == PathKind::File, neg),
            Logic::IfDir(neg) => test_path(&|k| k == PathKind::Dir, neg),
            Logic::IfReload(neg) => neg.then(String::new),
            Logic::IfHostname(neg) => ((host.facts().hostname == arg) != neg).then(|| arg.clone()),
            Logic::IfHostnameMatch(neg) => {
                let re = regex::Regex::new(&arg).map_err(|e| IniError {
                    line: block.line,
                    message: format!("`{}`: {arg:?} is not a regular expression: {e}", block.key),
                    file: block.file.clone(),
                })?;
                (re.is_match(&host.facts().hostname) != neg).then(|| arg.clone())
            }
            Logic::IfPlugin(neg) => {
                // Python and HTTP are built into dragoman; it loads no other plugin.
                let built_in = arg.starts_with("python") || arg == "http";
                (built_in != neg).then(|| arg.clone())
            }
            Logic::Else => {
                return Ok(if block.failed {
                    vec![entry.clone()]
                } else {
                    vec![]
                })
            }
            Logic::For => return Ok(arg.split(' ').filter(|t| !t.is_empty()).map(with).collect()),
            Logic::ForGlob => return Ok(host.glob(&arg).iter().map(|p| with(p)).collect()),
            Logic::ForTimes => {
                let n = expand::arithmetic(&arg, &|_| None)
                    .parse::<u32>()
                    .unwrap_or(0)
                    .min(10_000);
                return Ok((1..=n).map(|i| with(&i.to_string())).collect());
            }
            Logic::ForReadline => {
                return match host.read(Path::new(&arg)) {
                    Ok(text) => Ok(text.lines().map(with).collect()),
                    Err(why) => {
                        self.warnings.push(IniError {
                            line: block.line,
                            message: format!(
                                "`for-readline`: cannot read {arg}: {why}; the block adds \
                                 nothing, as in uWSGI"
                            ),
                            file: block.file.clone(),
                        });
                        Ok(vec![])
                    }
                };
            }
        };
        block.failed = outcome.is_none();
        Ok(outcome.map(|ctx| vec![with(&ctx)]).unwrap_or_default())
    }

    /// Records an entry, reading the file it includes if it is an include.
    fn add(&mut self, entry: Entry) -> Result<(), IniError> {
        if self.entries.len() >= MAX_ENTRIES {
            return Err(entry.error(format!(
                "the configuration expands to more than {MAX_ENTRIES} lines here; check the \
                 `for` blocks and includes"
            )));
        }
        match entry.key.as_str() {
            "ini" | "include" => {
                let saved = self.block.take();
                let result = self.include(&entry);
                self.block = saved;
                result
            }
            "inherit" => {
                self.inherits.push(entry);
                Ok(())
            }
            "set" | "set-placeholder" | "set-ph" => {
                let value = entry.value.clone().unwrap_or_default();
                let (key, value) = value.split_once('=').ok_or_else(|| {
                    entry.error(format!(
                        "`{}` expects NAME=VALUE, as in `{} = project=shop`",
                        entry.key, entry.key
                    ))
                })?;
                self.entries.push(Entry {
                    key: key.trim().to_string(),
                    value: Some(value.trim().to_string()),
                    placeholder: entry.key != "set",
                    ..entry
                });
                Ok(())
            }
            _ => {
                self.entries.push(entry);
                Ok(())
            }
        }
    }

    /// Reads the file an `ini`, `include` or `inherit` line names, in place.
    fn include(&mut self, entry: &Entry) -> Result<(), IniError> {
        let spec = entry.value.clone().unwrap_or_default();
        let (file, section) = split_section(&spec);
        if let Some((scheme, _)) = file.split_once("://") {
            return Err(entry.error(format!(
                "`{} = {spec}`: dragoman reads ini files from the disk, not from `{scheme}://`; \
                 save the file and give its path",
                entry.key
            )));
        }
        let ext = Path::new(file)
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase());
        if matches!(
            ext.as_deref(),
            Some("xml" | "yaml" | "yml" | "json" | "js" | "toml")
        ) {
            return Err(entry.error(format!(
                "`{} = {spec}`: dragoman reads ini files only; write that file's options in ini \
                 form (`name = value` under [uwsgi]) and include the .ini",
                entry.key
            )));
        }
        let (absolute, given) = if file.is_empty() {
            // `ini = :section` reads a section of the last file read (uWSGI's `last_file`).
            let (path, given) = self.last_file.clone().ok_or_else(|| {
                entry.error(format!(
                    "`{} = {spec}` names a section of the last file read, and none was read",
                    entry.key
                ))
            })?;
            (path, given)
        } else {
            (
                absolute(Path::new(file), &self.host.facts().cwd),
                file.to_string(),
            )
        };
        let open = Open {
            path: absolute.clone(),
            section: section.map(str::to_string),
        };
        if self.stack.contains(&open) || self.stack.len() >= MAX_DEPTH {
            let chain: Vec<String> = self
                .stack
                .iter()
                .chain(std::iter::once(&open))
                .map(|o| match &o.section {
                    Some(s) => format!("{}:{s}", o.path.display()),
                    None => o.path.display().to_string(),
                })
                .collect();
            return Err(entry.error(format!(
                "`{} = {spec}` includes a file that is already being read: {}; remove one of \
                 these includes",
                entry.key,
                chain.join(" -> ")
            )));
        }
        let text = self.host.read(&absolute).map_err(|why| {
            let beside = entry
                .file
                .as_deref()
                .or_else(|| self.stack.first().map(|o| o.path.as_path()))
                .and_then(Path::parent)
                .map(|d| d.join(file));
            let hint = match beside {
                Some(b) if !file.starts_with('/') && self.host.kind(&b) == PathKind::File => {
                    format!(
                        "; relative paths are from the working directory, as in uWSGI: write \
                         `{} = %d{file}` for the one beside this ini file",
                        entry.key
                    )
                }
                _ => "; give an existing ini file".into(),
            };
            entry.error(format!(
                "`{} = {spec}`: cannot read {}: {why}{hint}",
                entry.key,
                absolute.display()
            ))
        })?;
        self.stack.push(open);
        let saved = self.current.replace(absolute.clone());
        let result = self.file(&given, &absolute, section, &text, false);
        self.current = saved;
        self.stack.pop();
        result
    }
}

/// Makes `path` absolute against `cwd`, without resolving symlinks.
fn absolute(path: &Path, cwd: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    }
}

/// The names used as `%(name)` anywhere in the text: keys defining them are placeholders.
pub(crate) fn referenced_placeholders(text: &str) -> HashSet<String> {
    let mut names = HashSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("%(") {
        let after = &rest[start + 2..];
        match after.find(')') {
            Some(end) => {
                for word in after[..end].split_whitespace() {
                    names.insert(word.to_string());
                }
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    names
}

/// Splits `--ini file.ini:section` into the path and the section, leaving a path alone when the
/// part after the last `:` looks like a path rather than a section name. `:section` alone is a
/// section of the last file read.
pub(crate) fn split_section(spec: &str) -> (&str, Option<&str>) {
    match spec.rsplit_once(':') {
        Some((file, section))
            if !section.is_empty()
                && !section.contains('/')
                && (file.is_empty() || !Path::new(spec).exists()) =>
        {
            (file, Some(section))
        }
        _ => (spec, None),
    }
}

#[cfg(test)]
mod tests;
