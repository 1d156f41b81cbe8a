//! Where a setting came from, and the settings each source contributes.
//!
//! Every value carries its [`Origin`], so an error about it can name the file and line (or the
//! flag, or the environment variable) and show the fix in that source's own syntax.

use std::fmt;
use std::path::{Path, PathBuf};

use super::ini;
use super::options::{self, Kind, OptionSpec};
use super::uwsgi;
use super::values;

/// Where a value was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    Ini { file: PathBuf, line: usize },
    Env { var: String },
    Cli { flag: String },
    Positional,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Ini { file, line } => write!(f, "{} line {line}", file.display()),
            Origin::Env { var } => write!(f, "environment variable {var}"),
            Origin::Cli { flag } => write!(f, "command line option {flag}"),
            Origin::Positional => write!(f, "the application argument"),
        }
    }
}

impl Origin {
    /// How `option = example` is written in this source, for error messages.
    pub(crate) fn example(&self, spec: &OptionSpec, example: &str) -> String {
        match self {
            Origin::Ini { .. } => format!("`{} = {example}`", spec.name),
            Origin::Env { .. } => format!("`{}={example}`", spec.env_var()),
            Origin::Cli { .. } | Origin::Positional => format!("`--{} {example}`", spec.name),
        }
    }

    /// The precedence of the source: higher wins.
    pub(crate) fn rank(&self) -> u8 {
        match self {
            Origin::Ini { .. } => 1,
            Origin::Env { .. } => 2,
            Origin::Cli { .. } | Origin::Positional => 3,
        }
    }
}

/// One value for one option, with where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Setting {
    pub(crate) spec: &'static OptionSpec,
    pub(crate) value: String,
    pub(crate) origin: Origin,
}

/// A configuration error: what is wrong, where, and how to fix it. Printed as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// Several problems as one error, one a line.
    pub(crate) fn joined(errors: Vec<ConfigError>) -> ConfigError {
        let lines: Vec<String> = errors.into_iter().map(|e| e.0).collect();
        ConfigError(lines.join("\n"))
    }

    /// The problems, one a line.
    pub(crate) fn lines(&self) -> impl Iterator<Item = &str> {
        self.0.lines()
    }
}

fn unknown_option(name: &str, origin: &Origin) -> ConfigError {
    // gunicorn's flags first: `--worker-class` is no typo of anything dragoman has.
    let hint = match (super::gunicorn::hint(name), suggest(name)) {
        (Some(gunicorn), _) => format!("; {gunicorn}"),
        (None, Some(s)) => format!("; did you mean '{s}'?"),
        (None, None) => "; `dragoman --help` lists every option".into(),
    };
    ConfigError(format!("{origin}: unknown option '{name}'{hint}"))
}

/// The known option name closest to a misspelt one (dragoman's and uWSGI's names), if any is
/// close enough to be a likely typo: `proceses`, `vaccum`, `maximum-requests`.
fn suggest(name: &str) -> Option<&'static str> {
    let name = name.to_ascii_lowercase().replace('_', "-");
    // Spelt-out words of uWSGI's abbreviations.
    let short = name
        .replace("maximum", "max")
        .replace("minimum", "min")
        .replace("number-of-", "");
    let candidates = options::OPTIONS
        .iter()
        .flat_map(|o| std::iter::once(o.name).chain(o.aliases.iter().copied()))
        .chain(uwsgi::names());
    candidates
        .flat_map(|candidate| {
            [&name, &short].map(|n| (strsim::damerau_levenshtein(n, candidate), candidate))
        })
        .filter(|(distance, candidate)| {
            // Short names are one edit from many others: allow one edit below 7 letters.
            let allowed = if candidate.len() <= 6 {
                1
            } else {
                2.max(candidate.len() / 4)
            };
            // And at most a third of the letters: `app` is not a misspelt `pp`.
            *distance <= allowed && distance * 3 <= candidate.len()
        })
        .min_by_key(|(distance, candidate)| (*distance, options::lookup(candidate).is_none()))
        .map(|(_, candidate)| options::lookup(candidate).map_or(candidate, |o| o.name))
}

/// A startup line about an option that is set but does nothing (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    /// Logged as a warning: an option not in effect (yet), as opposed to one dragoman never
    /// needs (an info line).
    pub(crate) not_yet: bool,
    pub(crate) text: String,
}

/// What one `--ini` file (and what it includes) contributes: settings, and the lines to log.
#[derive(Debug, Default)]
pub(crate) struct IniSettings {
    pub(crate) settings: Vec<Setting>,
    /// Keys refused (every one of them, not only the first).
    pub(crate) errors: Vec<ConfigError>,
    /// Warnings about the file itself (an unset `$(VAR)`, a likely typo).
    pub(crate) warnings: Vec<String>,
    /// uWSGI options dragoman accepts without acting on them.
    pub(crate) notices: Vec<Notice>,
}

/// Reads one ini file (`spec` may end in `:section`) into settings. `strict` is true when the
/// command line or the environment asked for strict mode; the file can ask for it too.
pub(crate) fn from_ini(
    spec: &str,
    host: &dyn ini::host::Host,
    strict: bool,
    placeholders: &[(String, String)],
) -> Result<IniSettings, ConfigError> {
    let (file, _) = ini::split_section(spec);
    let shown = PathBuf::from(file);
    let at = |e_file: &Option<PathBuf>, line: usize| Origin::Ini {
        file: e_file.clone().unwrap_or_else(|| shown.clone()),
        line,
    };
    let place = |e_file: &Option<PathBuf>, line: usize| {
        if line == 0 {
            e_file.as_ref().unwrap_or(&shown).display().to_string()
        } else {
            at(e_file, line).to_string()
        }
    };
    let loaded = ini::load(spec, host, placeholders)
        .map_err(|e| ConfigError(format!("{}: {}", place(&e.file, e.line), e.message)))?;
    let strict = strict
        || loaded.entries.iter().any(|e| {
            e.key == "strict"
                && e.value
                    .as_deref()
                    .is_none_or(|v| values::parse_bool(v) != Some(false))
        });
    let mut out = IniSettings {
        warnings: loaded
            .warnings
            .iter()
            .map(|w| format!("{}: {}", place(&w.file, w.line), w.message))
            .collect(),
        ..IniSettings::default()
    };
    let mut noticed = std::collections::HashSet::new();
    for e in loaded.entries {
        let origin = at(&e.file, e.line);
        if e.placeholder {
            continue;
        }
        if let Some(spec) = options::lookup(&e.key) {
            let value = e.value.unwrap_or_else(|| bare_value(spec, &origin));
            out.settings.push(Setting {
                spec,
                value,
                origin,
            });
            continue;
        }
        let value = e.value.clone().unwrap_or_default();
        let class = uwsgi::classify(&e.key);
        match uwsgi_only(&e.key, &value, &origin, class) {
            Err(refused) => {
                out.errors.push(refused);
                continue;
            }
            Ok(Some(notice)) => {
                if noticed.insert(e.key.clone()) {
                    out.notices.push(notice);
                }
                continue;
            }
            Ok(None) => {}
        }
        match class {
            Some(_) => {}
            None if strict => {
                let hint = match suggest(&e.key) {
                    Some(s) => format!("did you mean '{s}'? "),
                    None => String::new(),
                };
                out.errors.push(ConfigError(format!(
                    "{origin}: unknown option '{}'; {hint}`strict` is on, so a key that is no option is refused (as in uWSGI): fix the name, or set a placeholder with `set-placeholder = {}=...`",
                    e.key, e.key
                )));
            }
            None => {
                // A uWSGI placeholder (custom option), usable as %(key). Silent when something
                // refers to it; a warning when its name looks like a misspelt option.
                if !loaded.referenced.contains(&e.key) {
                    if let Some(s) = suggest(&e.key) {
                        out.warnings.push(format!(
                            "{origin}: '{}' is no option, so it is kept as a placeholder (usable as %({})), as uWSGI does; did you mean '{s}'?",
                            e.key, e.key
                        ));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// What dragoman does with an option name it has no option of its own for (`class`, from
/// [`uwsgi::classify`]), in an ini file or on the command line: the refusal (routing rules
/// that deny, TLS, gevent ...), the line to log (a uWSGI option covered by design, or not
/// implemented), or nothing to say.
fn uwsgi_only(
    key: &str,
    value: &str,
    origin: &Origin,
    class: Option<uwsgi::Class>,
) -> Result<Option<Notice>, ConfigError> {
    if let Some(why) = uwsgi::refused_value(key, value) {
        return Err(ConfigError(format!(
            "{origin}: option '{key}' is refused: {why}"
        )));
    }
    Ok(match class {
        Some(uwsgi::Class::Refused(why)) => {
            return Err(ConfigError(format!(
                "{origin}: uWSGI option '{key}' is refused: {why}"
            )))
        }
        Some(uwsgi::Class::ByDesign(why)) => Some(Notice {
            not_yet: false,
            text: format!("option '{key}' ({origin}) has nothing to do in dragoman: {why}"),
        }),
        Some(uwsgi::Class::Warned(why)) => Some(Notice {
            not_yet: true,
            text: format!(
                "uWSGI option '{key}' ({origin}) is not implemented in dragoman and is ignored: {why}"
            ),
        }),
        _ => None,
    })
}

/// The value of a bare `key` line or `--flag`: true for flags, empty otherwise (which the
/// validator then reports as missing).
fn bare_value(spec: &OptionSpec, _origin: &Origin) -> String {
    match spec.kind {
        Kind::Flag => "true".into(),
        Kind::Value => String::new(),
    }
}

/// Reads the `DRAGOMAN_*` environment variables. A repeatable option takes one value per line.
/// Every unknown variable is an error, not only the first.
pub(crate) fn from_env(vars: &[(String, String)]) -> (Vec<Setting>, Vec<ConfigError>) {
    let mut settings = Vec::new();
    let mut errors = Vec::new();
    for (var, value) in vars {
        let Some(name) = var.strip_prefix("DRAGOMAN_") else {
            continue;
        };
        let origin = Origin::Env { var: var.clone() };
        let option_name = name.to_ascii_lowercase().replace('_', "-");
        let Some(spec) = options::lookup(&option_name).filter(|s| s.env_var() == *var) else {
            errors.push(unknown_option(&option_name, &origin));
            continue;
        };
        let values: Vec<&str> = if spec.repeatable {
            value
                .lines()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect()
        } else {
            vec![value.trim()]
        };
        for v in values {
            settings.push(Setting {
                spec,
                value: v.to_string(),
                origin: origin.clone(),
            });
        }
    }
    (settings, errors)
}

/// What the command line asks for.
#[derive(Debug)]
pub(crate) enum Command {
    Help,
    Version,
    Run(Cli),
}

/// A command line that asks for a run (or a check).
#[derive(Debug)]
pub(crate) struct Cli {
    pub(crate) settings: Vec<Setting>,
    pub(crate) mode: Mode,
    /// `--set-placeholder NAME=VALUE` (`--set-ph`, `--set`): what the ini files read as
    /// `%(NAME)`, as uWSGI's command line gives it to them.
    pub(crate) placeholders: Vec<(String, String)>,
    /// uWSGI options given on the command line that dragoman accepts without acting on them.
    pub(crate) notices: Vec<Notice>,
}

/// What to do with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Serve (the usual).
    Serve,
    /// `--check`: report every problem of the configuration and the application, then exit.
    Check,
    /// `--print-config`: print the effective options and where each comes from, then exit.
    PrintConfig,
    /// `--health-check [URL]`: ask a running server's health check once, then exit 0 or 1.
    /// Without a URL, the configuration says where.
    Probe(Option<String>),
}

/// Parses the command line (without argv\[0\]): `--name value`, `--name=value`, bare `--flag`,
/// and at most one positional `module[:callable]`.
pub(crate) fn from_cli(args: &[String]) -> Result<Command, ConfigError> {
    let mut settings = Vec::new();
    let mut placeholders = Vec::new();
    let mut notices = Vec::new();
    let mut positional: Option<&str> = None;
    let mut mode = Mode::Serve;
    let mut set_mode = |new: Mode, arg: &str| {
        if mode != Mode::Serve {
            return Err(ConfigError(format!(
                "{arg} with another of --check, --print-config, --health-check; give one"
            )));
        }
        mode = new;
        Ok(())
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--check" => {
                set_mode(Mode::Check, arg)?;
                continue;
            }
            "--print-config" => {
                set_mode(Mode::PrintConfig, arg)?;
                continue;
            }
            _ => {}
        }
        // `--health-check /healthz` sets the path served; `--health-check` alone, or with a
        // URL, asks a running server.
        if let Some(rest) = arg.strip_prefix("--health-check") {
            let value = match rest.strip_prefix('=') {
                Some(v) => Some(v.to_string()),
                None if rest.is_empty() => match args.get(i) {
                    Some(next) if !next.starts_with('-') => {
                        i += 1;
                        Some(next.clone())
                    }
                    _ => None,
                },
                None => None,
            };
            if !rest.is_empty() && !rest.starts_with('=') {
                // Another option that starts the same way: read below.
            } else {
                match value {
                    Some(path) if path.starts_with('/') => settings.push(Setting {
                        spec: options::lookup("health-check").expect("the option exists"),
                        value: path,
                        origin: Origin::Cli {
                            flag: "--health-check".into(),
                        },
                    }),
                    Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                        set_mode(Mode::Probe(Some(url)), arg)?
                    }
                    None => set_mode(Mode::Probe(None), arg)?,
                    Some(other) => {
                        return Err(ConfigError(format!(
                            "command line option --health-check: got {other:?}; give a path to \
                             serve the health check at (`--health-check /healthz`), or nothing \
                             or a URL to ask a running server (`--health-check \
                             http://127.0.0.1:8000/healthz`)"
                        )))
                    }
                }
                continue;
            }
        }
        let Some(body) = arg.strip_prefix("--") else {
            if arg.starts_with('-') && arg.len() > 1 {
                return Err(ConfigError(format!(
                    "unknown command line switch {arg}; options are written --name value (see `dragoman --help`)"
                )));
            }
            if let Some(first) = positional {
                return Err(ConfigError(format!(
                    "two applications given ({first} and {arg}); dragoman serves one application, \
                     written as module:callable"
                )));
            }
            positional = Some(arg);
            continue;
        };
        let (name, inline_value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let origin = Origin::Cli {
            flag: format!("--{name}"),
        };
        let Some(spec) = options::lookup(name) else {
            // uWSGI's names: the value is the next argument unless uWSGI's option takes none.
            let class = uwsgi::classify(name);
            if class.is_none() {
                return Err(unknown_option(name, &origin));
            }
            let value = match inline_value {
                Some(v) => v,
                None if uwsgi::takes_no_value(name) => String::new(),
                None => {
                    let v = args.get(i).ok_or_else(|| {
                        ConfigError(format!("{origin} needs a value, as in `--{name} VALUE`"))
                    })?;
                    i += 1;
                    v.clone()
                }
            };
            if matches!(name, "set" | "set-placeholder" | "set-ph") {
                let (key, v) = value.split_once('=').ok_or_else(|| {
                    ConfigError(format!(
                        "{origin} expects NAME=VALUE, as in `--{name} project=shop`; got {value:?}"
                    ))
                })?;
                let (key, v) = (key.trim().to_string(), v.trim().to_string());
                // `--set` sets an option too (uWSGI: `--set processes=4`), not only `%(processes)`.
                if let Some(spec) = options::lookup(&key).filter(|_| name == "set") {
                    settings.push(Setting {
                        spec,
                        value: v.clone(),
                        origin: origin.clone(),
                    });
                }
                placeholders.push((key, v));
                continue;
            }
            if class == Some(uwsgi::Class::Reader) {
                return Err(ConfigError(format!(
                    "{origin}: `{name}` is read inside ini files (includes and config logic); \
                     write it in the ini file, or name the file with `--ini`"
                )));
            }
            notices.extend(uwsgi_only(name, &value, &origin, class)?);
            continue;
        };
        let value = match (inline_value, spec.kind) {
            // uWSGI's `--memory-report`, `--log-date`, `--chmod-socket` take a value only as
            // `--name=value`; alone they mean what the bare ini key means. dragoman's own
            // spelling `--chmod-socket 660` keeps working: the next argument is the value when
            // it is one of the option's kind, never the application or another option.
            (None, Kind::Value) if uwsgi::takes_no_value(name) => {
                match args.get(i).filter(|next| optional_value_fits(name, next)) {
                    Some(next) => {
                        i += 1;
                        next.clone()
                    }
                    None => String::new(),
                }
            }
            (Some(v), _) => v,
            (None, Kind::Flag) => "true".into(),
            (None, Kind::Value) => {
                let v = args.get(i).ok_or_else(|| {
                    ConfigError(format!(
                        "{origin} needs a value, as in `--{} {}`",
                        spec.name,
                        if spec.metavar.is_empty() {
                            "VALUE"
                        } else {
                            spec.metavar
                        }
                    ))
                })?;
                i += 1;
                v.clone()
            }
        };
        settings.push(Setting {
            spec,
            value,
            origin,
        });
    }
    if let Some(app) = positional {
        settings.push(Setting {
            spec: options::lookup("module").expect("the module option exists"),
            value: app.to_string(),
            origin: Origin::Positional,
        });
    }
    Ok(Command::Run(Cli {
        settings,
        mode,
        placeholders,
        notices,
    }))
}

/// Whether `next`, the argument after a bare `--name` whose value uWSGI makes optional, is that
/// option's value: a mode for `chmod-socket`, a level for `memory-report`, a strftime format
/// (or yes/no) for `log-date`. Anything else (the application, another option) is left for
/// what follows.
fn optional_value_fits(name: &str, next: &str) -> bool {
    if next.is_empty() || next.starts_with('-') {
        return false;
    }
    match name {
        "chmod-socket" => {
            next.bytes().all(|b| (b'0'..=b'7').contains(&b)) || values::parse_bool(next).is_some()
        }
        "log-date" => next.contains('%') || values::parse_bool(next).is_some(),
        _ => next == "2" || values::parse_bool(next).is_some(),
    }
}

/// Makes a path absolute against the current directory, without resolving symlinks.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn run(list: &[&str]) -> Vec<Setting> {
        match from_cli(&args(list)).unwrap() {
            Command::Run(cli) => cli.settings,
            other => panic!("expected settings, got {other:?}"),
        }
    }

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(suggest("proceses"), Some("processes"));
        assert_eq!(suggest("thread"), Some("threads"));
        assert_eq!(suggest("static_map"), Some("static-map"));
        assert_eq!(suggest("modul"), Some("module"));
        assert_eq!(suggest("completely-unrelated"), None);
        // The typos the issue names.
        assert_eq!(suggest("vaccum"), Some("vacuum"));
        assert_eq!(suggest("process"), Some("processes"));
        assert_eq!(suggest("maximum-requests"), Some("max-requests"));
    }

    #[test]
    fn cli_forms() {
        let s = run(&["--http", ":8000", "--threads=4", "--master", "app:wsgi"]);
        let got: Vec<_> = s.iter().map(|s| (s.spec.name, s.value.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("http", ":8000"),
                ("threads", "4"),
                ("master", "true"),
                ("module", "app:wsgi")
            ]
        );
        assert_eq!(s[3].origin, Origin::Positional);
        assert!(matches!(from_cli(&args(&["--help"])), Ok(Command::Help)));
        let mode = |list: &[&str]| match from_cli(&args(list)) {
            Ok(Command::Run(cli)) => Ok(cli.mode),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.0),
        };
        assert_eq!(mode(&["--check", "--ini", "a.ini"]), Ok(Mode::Check));
        assert_eq!(mode(&["--print-config", "app"]), Ok(Mode::PrintConfig));
        assert_eq!(mode(&["--health-check"]), Ok(Mode::Probe(None)));
        assert_eq!(
            mode(&["--health-check", "--ini", "a.ini"]),
            Ok(Mode::Probe(None))
        );
        assert_eq!(
            mode(&["--health-check", "http://127.0.0.1:8000/healthz"]),
            Ok(Mode::Probe(Some("http://127.0.0.1:8000/healthz".into())))
        );
        assert_eq!(mode(&["--health-check=/healthz", "app"]), Ok(Mode::Serve));
        let s = run(&["--health-check", "/healthz", "app"]);
        assert_eq!(
            (s[0].spec.name, s[0].value.as_str()),
            ("health-check", "/healthz")
        );
        assert!(mode(&["--health-check", "app"])
            .unwrap_err()
            .contains("give a path"));
        assert!(mode(&["--check", "--print-config"])
            .unwrap_err()
            .contains("give one"));
        assert!(matches!(from_cli(&args(&["-V"])), Ok(Command::Version)));
    }

    #[test]
    fn cli_errors() {
        let e = from_cli(&args(&["--proceses", "2"])).unwrap_err();
        assert_eq!(
            e.0,
            "command line option --proceses: unknown option 'proceses'; did you mean 'processes'?"
        );
        // A gunicorn flag dragoman lacks says what does its job.
        let e = from_cli(&args(&["--worker-class", "gthread"])).unwrap_err();
        assert!(
            e.0.starts_with(
                "command line option --worker-class: unknown option 'worker-class'; \
                 gunicorn's --worker-class is dragoman's --threads: `sync` is"
            ),
            "{e}"
        );
        let e = from_cli(&args(&["--http"])).unwrap_err();
        assert!(e.0.contains("needs a value"), "{e}");
        let e = from_cli(&args(&["a:b", "c:d"])).unwrap_err();
        assert!(e.0.contains("two applications"), "{e}");
    }

    #[test]
    fn env_vars() {
        let vars = vec![
            ("DRAGOMAN_HTTP".to_string(), ":1\n:2\n".to_string()),
            ("DRAGOMAN_THREADS".to_string(), " 3 ".to_string()),
            ("OTHER".to_string(), "x".to_string()),
        ];
        let (s, errors) = from_env(&vars);
        assert!(errors.is_empty());
        let got: Vec<_> = s.iter().map(|s| (s.spec.name, s.value.as_str())).collect();
        assert_eq!(got, vec![("http", ":1"), ("http", ":2"), ("threads", "3")]);
        let (_, e) = from_env(&[
            ("DRAGOMAN_THRADS".into(), "1".into()),
            ("DRAGOMAN_PROCESES".into(), "1".into()),
        ]);
        assert_eq!(e.len(), 2, "every unknown variable is reported");
        assert_eq!(
            e[0].0,
            "environment variable DRAGOMAN_THRADS: unknown option 'thrads'; did you mean 'threads'?"
        );
    }
}
