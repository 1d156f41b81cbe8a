//! Where a setting came from, and the settings each source contributes.
//!
//! Every value carries its [`Origin`], so an error about it can name the file and line (or the
//! flag, or the environment variable) and show the fix in that source's own syntax.

use std::fmt;
use std::path::{Path, PathBuf};

use super::ini;
use super::options::{self, Kind, OptionSpec};

/// Where a value was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
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
    pub fn example(&self, spec: &OptionSpec, example: &str) -> String {
        match self {
            Origin::Ini { .. } => format!("`{} = {example}`", spec.name),
            Origin::Env { .. } => format!("`{}={example}`", spec.env_var()),
            Origin::Cli { .. } | Origin::Positional => format!("`--{} {example}`", spec.name),
        }
    }

    /// The precedence of the source: higher wins.
    pub fn rank(&self) -> u8 {
        match self {
            Origin::Ini { .. } => 1,
            Origin::Env { .. } => 2,
            Origin::Cli { .. } | Origin::Positional => 3,
        }
    }
}

/// One value for one option, with where it came from.
#[derive(Debug, Clone)]
pub struct Setting {
    pub spec: &'static OptionSpec,
    pub value: String,
    pub origin: Origin,
}

/// A configuration error: what is wrong, where, and how to fix it. Printed as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn unknown_option(name: &str, origin: &Origin) -> ConfigError {
    let hint = match options::suggest(name) {
        Some(s) => format!("; did you mean '{s}'?"),
        None => "; `dragoman --help` lists every option".into(),
    };
    ConfigError(format!("{origin}: unknown option '{name}'{hint}"))
}

/// Reads one ini file (`path` may end in `:section`) into settings, with warnings.
pub fn from_ini(
    spec_path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Vec<Setting>, Vec<String>), ConfigError> {
    let (file, section) = ini::split_section(spec_path);
    let text = std::fs::read_to_string(file).map_err(|e| {
        ConfigError(format!(
            "cannot read ini file {file}: {e}; check the path given to --ini"
        ))
    })?;
    let path = absolute(Path::new(file));
    let ctx = ini::Context { path: &path, env };
    let shown = PathBuf::from(file);
    let at = |line| Origin::Ini {
        file: shown.clone(),
        line,
    };
    let (entries, warnings) = ini::read(&text, section, &ctx).map_err(|e| {
        let where_ = if e.line == 0 {
            shown.display().to_string()
        } else {
            at(e.line).to_string()
        };
        ConfigError(format!("{where_}: {}", e.message))
    })?;
    let placeholders = ini::referenced_placeholders(&text);
    let mut settings = Vec::with_capacity(entries.len());
    for e in entries {
        let origin = at(e.line);
        let Some(spec) = options::lookup(&e.key) else {
            if placeholders.contains(&e.key) || e.key == "set-placeholder" || e.key == "set-ph" {
                continue; // a uWSGI custom placeholder, used as %(name) elsewhere
            }
            return Err(unknown_option(&e.key, &origin));
        };
        let value = e.value.unwrap_or_else(|| bare_value(spec, &origin));
        settings.push(Setting {
            spec,
            value,
            origin,
        });
    }
    let warnings = warnings
        .into_iter()
        .map(|w| format!("{}: {}", at(w.line), w.message))
        .collect();
    Ok((settings, warnings))
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
pub fn from_env(vars: &[(String, String)]) -> Result<Vec<Setting>, ConfigError> {
    let mut settings = Vec::new();
    for (var, value) in vars {
        let Some(name) = var.strip_prefix("DRAGOMAN_") else {
            continue;
        };
        let origin = Origin::Env { var: var.clone() };
        let option_name = name.to_ascii_lowercase().replace('_', "-");
        let spec = options::lookup(&option_name)
            .filter(|s| s.env_var() == *var)
            .ok_or_else(|| unknown_option(&option_name, &origin))?;
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
    Ok(settings)
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Help,
    Version,
    Run(Vec<Setting>),
}

/// Parses the command line (without argv\[0\]): `--name value`, `--name=value`, bare `--flag`,
/// and at most one positional `module[:callable]`.
pub fn from_cli(args: &[String]) -> Result<Command, ConfigError> {
    let mut settings = Vec::new();
    let mut positional: Option<&str> = None;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            _ => {}
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
        let spec = options::lookup(name).ok_or_else(|| unknown_option(name, &origin))?;
        let value = match (inline_value, spec.kind) {
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
    Ok(Command::Run(settings))
}

/// Makes a path absolute against the current directory, without resolving symlinks.
pub fn absolute(path: &Path) -> PathBuf {
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
            Command::Run(s) => s,
            other => panic!("expected settings, got {other:?}"),
        }
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
        assert!(matches!(from_cli(&args(&["-V"])), Ok(Command::Version)));
    }

    #[test]
    fn cli_errors() {
        let e = from_cli(&args(&["--proceses", "2"])).unwrap_err();
        assert_eq!(
            e.0,
            "command line option --proceses: unknown option 'proceses'; did you mean 'processes'?"
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
        let s = from_env(&vars).unwrap();
        let got: Vec<_> = s.iter().map(|s| (s.spec.name, s.value.as_str())).collect();
        assert_eq!(got, vec![("http", ":1"), ("http", ":2"), ("threads", "3")]);
        let e = from_env(&[("DRAGOMAN_THRADS".into(), "1".into())]).unwrap_err();
        assert_eq!(
            e.0,
            "environment variable DRAGOMAN_THRADS: unknown option 'thrads'; did you mean 'threads'?"
        );
    }
}
