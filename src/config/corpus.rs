//! The corpus test: every real uWSGI ini file of `tests/uwsgi-inis` (public projects' files,
//! listed with their repository, commit and licence in `SOURCES`) is loaded as dragoman would
//! load it, in a sandbox where nothing can be bound, imported, run or read outside the corpus:
//! the configuration is built and checked, and that is all. Each file is loaded or refused;
//! a refusal must say what to change; the test fails below 95% loaded.
//!
//! `cargo test --lib corpus -- --nocapture` prints the table.

use std::path::{Path, PathBuf};

use super::ini::host::{Facts, Host, PathKind};

/// A machine with the corpus folder on it and little else: the environment the project's
/// image sets (from `SOURCES`), the kernel's read-only settings under /proc/sys, no commands.
struct Sandbox {
    root: PathBuf,
    env: Vec<(String, String)>,
    facts: Facts,
}

impl Sandbox {
    fn inside(&self, path: &Path) -> bool {
        path.starts_with(&self.root) || path.starts_with("/proc/sys")
    }
}

impl Host for Sandbox {
    fn env(&self, name: &str) -> Option<String> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
    fn read(&self, path: &Path) -> Result<String, String> {
        if !self.inside(path) {
            return Err("outside the sandbox".into());
        }
        std::fs::read_to_string(path).map_err(|e| e.to_string())
    }
    fn kind(&self, path: &Path) -> PathKind {
        match std::fs::metadata(path) {
            Ok(m) if self.inside(path) && m.is_file() => PathKind::File,
            Ok(m) if self.inside(path) && m.is_dir() => PathKind::Dir,
            _ => PathKind::Missing,
        }
    }
    fn inode(&self, _path: &Path) -> Option<u64> {
        None
    }
    fn glob(&self, pattern: &str) -> Vec<String> {
        vec![pattern.to_string()]
    }
    fn exec(&self, _command: &str) -> Result<String, String> {
        Err("the sandbox runs no command".into())
    }
    fn facts(&self) -> &Facts {
        &self.facts
    }
}

/// One corpus file's outcome.
struct Outcome {
    file: String,
    loaded: bool,
    /// The refusal, or the count of warnings and notices.
    detail: String,
}

/// The environment each file's project sets in its image (the optional sixth column of
/// `SOURCES`: `NAME=value,NAME=value`).
fn image_env(root: &Path, file: &str) -> Vec<(String, String)> {
    let sources = std::fs::read_to_string(root.join("SOURCES")).expect("SOURCES exists");
    sources
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .find(|cols| cols[0] == file)
        .and_then(|cols| cols.get(5).map(|env| env.to_string()))
        .map(|env| {
            env.split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn load_corpus() -> Vec<Outcome> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/uwsgi-inis");
    let mut sandbox = Sandbox {
        root: root.clone(),
        env: Vec::new(),
        facts: Facts {
            hostname: "sandbox".into(),
            cpus: 2,
            uid: 1000,
            user: "app".into(),
            gid: 1000,
            group: "app".into(),
            cwd: root.clone(),
            now_secs: 1_700_000_000,
            now_micros: 1_700_000_000_000_000,
            executable: "/usr/bin/dragoman".into(),
        },
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/uwsgi-inis exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "ini"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let mut args = vec!["--ini".to_string(), path.to_string_lossy().into_owned()];
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            sandbox.env = image_env(&root, &file);
            let mut result = super::load_with(&args, &[], &sandbox);
            // A file that names no application is a part of a configuration whose application
            // comes from the command line (`uwsgi --ini base.ini --module app`): load it so.
            let fragment = matches!(&result, Err(e) if e.0.contains("no application to serve"));
            if fragment {
                args.push("app:application".into());
                result = super::load_with(&args, &[], &sandbox);
            }
            if std::env::var("CORPUS_VERBOSE").is_ok() {
                if let Ok(super::Loaded::Run(c)) = &result {
                    for w in &c.warnings {
                        println!("  warning: {w}");
                    }
                }
            }
            match result {
                Ok(super::Loaded::Run(c)) => Outcome {
                    file,
                    loaded: true,
                    detail: format!(
                        "{}{} warnings, {} notices",
                        if fragment {
                            "no application of its own (given on the command line); "
                        } else {
                            ""
                        },
                        c.warnings.len(),
                        c.notices.len()
                    ),
                },
                Ok(_) => unreachable!("--ini asks for a run"),
                Err(e) => Outcome {
                    file,
                    loaded: false,
                    detail: e.0,
                },
            }
        })
        .collect()
}

/// Whether a refusal is one the issue orders (TLS, authentication, routing rules that deny,
/// isolation, gevent and async loops, other languages' applications): these files cannot load
/// by design, whatever the reader does.
fn refused_by_design(detail: &str) -> bool {
    detail.contains(" is refused: ")
}

#[test]
fn at_least_95_percent_of_real_uwsgi_inis_load() {
    let outcomes = load_corpus();
    assert!(
        outcomes.len() >= 100,
        "the corpus has {} files",
        outcomes.len()
    );
    let loaded = outcomes.iter().filter(|o| o.loaded).count();
    let by_design = outcomes
        .iter()
        .filter(|o| !o.loaded && refused_by_design(&o.detail))
        .count();
    println!("{:<8} {:<70} detail", "outcome", "file");
    for o in &outcomes {
        let outcome = match (o.loaded, refused_by_design(&o.detail)) {
            (true, _) => "loaded",
            (false, true) => "REFUSED*",
            (false, false) => "REFUSED",
        };
        println!("{outcome:<8} {:<70} {}", o.file, o.detail);
    }
    let total = outcomes.len();
    let share = loaded as f64 * 100.0 / total as f64;
    let loadable = total - by_design;
    let loadable_share = loaded as f64 * 100.0 / loadable as f64;
    println!(
        "corpus: {loaded} of {total} loaded ({share:.1}%); {} refused, {by_design} of them (*) by \
         design (options dragoman must refuse); {loaded} of the other {loadable} loaded \
         ({loadable_share:.1}%)",
        total - loaded
    );
    // A refusal names the file (and line) and what to do.
    for o in outcomes.iter().filter(|o| !o.loaded) {
        assert!(o.detail.contains(&o.file), "{}: {}", o.file, o.detail);
    }
    assert!(
        loadable_share >= 95.0,
        "only {loadable_share:.1}% of the files with no option dragoman must refuse load"
    );
}
