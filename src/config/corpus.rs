//! The corpus test: every real uWSGI ini file of `tests/uwsgi-inis` (public projects' files,
//! listed with their repository, commit and licence in `SOURCES`) is loaded as dragoman would
//! load it, in a sandbox where nothing can be bound, imported, run or read outside the corpus:
//! the configuration is built and checked, and that is all. Each file is loaded or refused;
//! a refusal must say what to change; the test fails below 95% loaded (of all files, and of
//! those with no option dragoman must refuse). Each file is given what its project's deployment
//! gives it: the environment its image sets and the arguments its start script adds.
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

/// One file's row of `SOURCES`: the columns after the first.
fn source_row(root: &Path, file: &str) -> Vec<String> {
    let sources = std::fs::read_to_string(root.join("SOURCES")).expect("SOURCES exists");
    sources
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').map(str::to_string).collect::<Vec<_>>())
        .find(|cols| cols[0] == file)
        .unwrap_or_default()
}

/// The environment each file's project sets in its image (the optional sixth column of
/// `SOURCES`: `NAME=value,NAME=value`).
fn image_env(row: &[String]) -> Vec<(String, String)> {
    row.get(5)
        .map(|env| {
            env.split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// The arguments the project's start script gives after `--ini` (the optional seventh column
/// of `SOURCES`, split at spaces).
fn start_args(row: &[String]) -> Vec<String> {
    row.get(6)
        .map(|args| args.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The sandbox the corpus is loaded in (`env` set per file).
fn sandbox(root: &Path) -> Sandbox {
    Sandbox {
        root: root.to_path_buf(),
        env: Vec::new(),
        facts: Facts {
            hostname: "sandbox".into(),
            cpus: 2,
            uid: 1000,
            user: "app".into(),
            gid: 1000,
            group: "app".into(),
            cwd: root.to_path_buf(),
            now_secs: 1_700_000_000,
            now_micros: 1_700_000_000_000_000,
            executable: "/usr/bin/dragoman".into(),
        },
    }
}

fn load_corpus() -> Vec<Outcome> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/uwsgi-inis");
    let mut sandbox = sandbox(&root);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/uwsgi-inis exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "ini"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let row = source_row(&root, &file);
            let mut args = vec!["--ini".to_string(), path.to_string_lossy().into_owned()];
            args.extend(start_args(&row));
            sandbox.env = image_env(&row);
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
    // The goal counts every file, those with an option dragoman must refuse too.
    assert!(share >= 95.0, "only {share:.1}% of the real files load");
    assert!(
        loadable_share >= 95.0,
        "only {loadable_share:.1}% of the files with no option dragoman must refuse load"
    );
}

/// The corpus files that use `mount` or `manage-script-name` load with them in effect (no
/// "not yet in effect" notice), each application where uWSGI would serve it.
#[test]
fn real_inis_with_mount_load_with_their_mounts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/uwsgi-inis");
    let mut sandbox = sandbox(&root);
    let mut try_load = |file: &str| {
        sandbox.env = image_env(&source_row(&root, file));
        let args = [
            "--ini".to_string(),
            root.join(file).to_string_lossy().into(),
        ];
        match super::load_with(&args, &[], &sandbox) {
            Ok(super::Loaded::Run(c)) => Ok(c),
            Ok(_) => unreachable!("--ini asks for a run"),
            Err(e) => Err(e),
        }
    };
    let mut files: Vec<String> = std::fs::read_dir(&root)
        .expect("tests/uwsgi-inis exists")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| f.ends_with(".ini"))
        .filter(|f| {
            let text = std::fs::read_to_string(root.join(f)).unwrap_or_default();
            text.lines().any(|l| {
                let key = l.trim_start().split('=').next().unwrap_or("").trim();
                key == "mount" || key == "manage-script-name"
            })
        })
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    let mut loaded = 0;
    for file in &files {
        // Refused for another option (kobotoolbox's unset $(UWSGI_HARAKIRI), asoucase's
        // cheaper above processes): the corpus test reports those.
        let Ok(c) = try_load(file) else { continue };
        loaded += 1;
        for n in &c.notices {
            assert!(
                !(n.not_yet
                    && (n.text.contains(" mount (") || n.text.contains("manage-script-name ("))),
                "{file}: {}",
                n.text
            );
        }
    }
    assert!(loaded >= 9, "{loaded} of {files:?}");
    let mut load = |file: &str| try_load(file).unwrap_or_else(|e| panic!("{file}: {e}"));
    let prefixes = |c: &super::Config| -> Vec<String> {
        c.mounts
            .iter()
            .map(|m| format!("{}={}", m.prefix, m.target.describe()))
            .collect()
    };
    // Two mounts and no main application (its `module` is commented out): the first mount is
    // uWSGI's default application.
    let c = load("ace-ecosystem--ACE--etc--uwsgi.ini");
    assert!(!c.main_app && !c.no_default_app);
    assert_eq!(
        prefixes(&c),
        [
            "/ace=ace_uwsgi.py:application",
            "/api=api_uwsgi.py:application"
        ]
    );
    // Six mounts of files, no main application, and no-default-app.
    let c = load("arXiv--arxiv-docs--deploy--uwsgi.ini");
    assert!(!c.main_app && c.no_default_app);
    assert_eq!(c.mounts.len(), 6);
    assert_eq!(
        prefixes(&c)[0],
        "/about=/opt/arxiv/about/wsgi.py:application"
    );
    // A mount at the root is the main application.
    let c = load("agateau--tmc2--docker--uwsgi.ini");
    assert!(c.main_app && c.mounts.is_empty());
    assert_eq!(c.app.describe(), "main:app");
    // `mount = %(url)=%(module)` with url = /: the main application, served once.
    let c = load("getpatchwork--patchwork--lib--uwsgi--patchwork.ini");
    assert!(
        c.main_app && c.mounts.is_empty() && c.warnings.is_empty(),
        "{:?}",
        c.warnings
    );
    // An unset `$(APPLICATION_ROOT)` as the prefix: uWSGI never routes to it; neither does
    // dragoman, with a warning, and the main application serves everything.
    let c = load("arXiv--arxiv-docs--deploy--uwsgi-labs.ini");
    assert!(c.main_app && c.mounts.is_empty());
    assert!(c
        .warnings
        .iter()
        .any(|w| w.contains("the prefix $(APPLICATION_ROOT) names nothing set")));
    // `callable` applies to a mounted file, as uWSGI's mount loader reads it.
    let c = load("Andrew-Dickinson--node-explorer--explorer-backend--uwsgi.ini");
    assert_eq!(prefixes(&c), ["/api=app.py:app"]);
}
