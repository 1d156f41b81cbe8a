//! Preparing the Python interpreter for the application (in the master, before forking, so
//! every worker starts the same): `env`, `chdir`, `sys.path`, the virtualenv named by `home`;
//! and loading the application callable (in each worker).
//!
//! In two steps, because the master often starts as root: [`prepare`] runs no code of the
//! application's (environment, working directory, the virtualenv's Python version checked), so
//! it runs first and its errors come before anything is bound; [`set_import_paths`] runs the
//! virtualenv's `.pth` files (`site.addsitedir` executes their `import` lines: code from the
//! application's tree), so it runs after the privilege drop.

use std::path::{Path, PathBuf};

use pyo3::exceptions::{PyFileNotFoundError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::config::{AppSource, AppTarget, Config};

/// What [`prepare`] found for [`set_import_paths`]: the virtualenv's site-packages directories
/// (found while the master may still read everything, used once it may not).
pub(crate) struct Prepared {
    site_dirs: Vec<PathBuf>,
}

/// Applies the config's environment and working directory, and checks the virtualenv; runs
/// nothing from the application's tree. The error is a complete message for the user.
pub(crate) fn prepare(py: Python<'_>, config: &Config) -> Result<Prepared, String> {
    let os = py.import("os").map_err(|e| e.to_string())?;
    let environ = os.getattr("environ").map_err(|e| e.to_string())?;
    for (key, value) in &config.env {
        environ
            .set_item(key, value)
            .map_err(|e| format!("cannot set environment variable {key}: {e}"))?;
    }
    if let Some((dir, origin)) = &config.chdir {
        std::env::set_current_dir(dir).map_err(|e| {
            format!(
                "{origin}: option 'chdir' names {}, which cannot be entered: {e}; give an existing directory",
                dir.display()
            )
        })?;
    }
    if let Some(args) = &config.pyargv {
        set_argv(py, args).map_err(|e| format!("cannot set sys.argv (option 'pyargv'): {e}"))?;
    }
    // A virtualenv for another Python is an error before anything is bound.
    Ok(Prepared {
        site_dirs: venv_dirs(py, config)?,
    })
}

/// The `bin` directory of the application's virtualenv: `home`'s, or the one dragoman runs
/// from (Python's `sys.prefix` differs from `sys.base_prefix` in a virtualenv); `None` outside
/// one. The commands dragoman runs (attached daemons, cron jobs, hooks) find it first on PATH.
pub(crate) fn venv_bin(py: Python<'_>, config: &Config) -> Option<PathBuf> {
    if let Some((home, _)) = &config.home {
        return Some(absolute(home).join("bin"));
    }
    let sys = py.import("sys").ok()?;
    let prefix: String = sys.getattr("prefix").ok()?.extract().ok()?;
    let base: String = sys.getattr("base_prefix").ok()?.extract().ok()?;
    if prefix == base {
        return None;
    }
    let executable: String = sys.getattr("executable").ok()?.extract().ok()?;
    Some(Path::new(&executable).parent()?.to_path_buf())
}

/// `pyargv`: the application's `sys.argv` is dragoman's program (`sys.argv[0]`, as before)
/// followed by these words, as uWSGI gives them (it puts `uwsgi` first). Without the option,
/// `sys.argv` stays dragoman's own command line.
fn set_argv(py: Python<'_>, args: &[String]) -> PyResult<()> {
    let argv = py.import("sys")?.getattr("argv")?.cast_into::<PyList>()?;
    let program: String = match argv.get_item(0) {
        Ok(first) => first.extract()?,
        Err(_) => "dragoman".to_string(),
    };
    let new = PyList::new(py, std::iter::once(program).chain(args.iter().cloned()))?;
    py.import("sys")?.setattr("argv", new)
}

/// The site-packages directories of the `home` virtualenv (none without one); the error says
/// why it cannot be used.
fn venv_dirs(py: Python<'_>, config: &Config) -> Result<Vec<PathBuf>, String> {
    let Some((home, origin)) = &config.home else {
        return Ok(Vec::new());
    };
    let running = python_version(py).map_err(|e| e.to_string())?;
    venv_site_packages(home, running).map_err(|why| {
        let executable = py
            .import("sys")
            .and_then(|sys| sys.getattr("executable"))
            .map(|e| e.to_string())
            .unwrap_or_default();
        format!(
            "{origin}: option 'home': {}",
            why.message(home, running, &executable)
        )
    })
}

/// Sets `sys.path`: the working directory, the virtualenv's packages (running its `.pth`
/// files), then `pythonpath`. Call after the privilege drop: a `.pth` file's `import` lines are
/// the virtualenv's code, and must not run as root.
pub(crate) fn set_import_paths(
    py: Python<'_>,
    config: &Config,
    prepared: &Prepared,
) -> Result<(), String> {
    let sys = py.import("sys").map_err(|e| e.to_string())?;
    let path = sys
        .getattr("path")
        .and_then(|p| p.cast_into::<PyList>().map_err(PyErr::from))
        .map_err(|e| e.to_string())?;

    // Like gunicorn: the working directory first, so `dragoman mysite.wsgi` finds `mysite`.
    let cwd =
        std::env::current_dir().map_err(|e| format!("cannot read the working directory: {e}"))?;
    insert_front(&path, &[cwd]).map_err(|e| e.to_string())?;

    if let Some((home, origin)) = &config.home {
        let dirs = &prepared.site_dirs;
        // site.addsitedir skips a directory it cannot list without a word: say it here, since
        // the service user may not be allowed to read what root could.
        for dir in dirs {
            std::fs::read_dir(dir).map_err(|e| {
                format!(
                    "{origin}: option 'home': {} cannot be read by this user ({}): {e}; \
                     make the virtualenv readable by the user dragoman runs as",
                    dir.display(),
                    whoami()
                )
            })?;
        }
        add_site_dirs(py, &path, dirs).map_err(|e| e.to_string())?;
        py.import("os")
            .and_then(|os| os.getattr("environ"))
            .and_then(|environ| environ.set_item("VIRTUAL_ENV", home.to_string_lossy().as_ref()))
            .map_err(|e| e.to_string())?;
    }
    let extra: Vec<PathBuf> = config.pythonpath.iter().map(|p| absolute(p)).collect();
    insert_front(&path, &extra).map_err(|e| e.to_string())?;
    Ok(())
}

/// "uid 33, gid 33", for messages about permissions.
fn whoami() -> String {
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    format!("uid {uid}, gid {gid}")
}

fn absolute(path: &Path) -> PathBuf {
    crate::config::source::absolute(path)
}

/// Puts directories at the front of `sys.path`, in the given order, without duplicates.
fn insert_front(path: &Bound<'_, PyList>, dirs: &[PathBuf]) -> PyResult<()> {
    for dir in dirs.iter().rev() {
        let dir = dir.to_string_lossy();
        while path.contains(dir.as_ref())? {
            path.call_method1("remove", (dir.as_ref(),))?;
        }
        path.insert(0, dir.as_ref())?;
    }
    Ok(())
}

/// `site.addsitedir` for each directory (so `.pth` files work), with everything it added moved
/// to the front of `sys.path`: the virtualenv's packages win over the interpreter's own.
fn add_site_dirs(py: Python<'_>, path: &Bound<'_, PyList>, dirs: &[PathBuf]) -> PyResult<()> {
    let before: Vec<String> = path.extract()?;
    let site = py.import("site")?;
    for dir in dirs {
        site.call_method1("addsitedir", (dir.to_string_lossy().as_ref(),))?;
    }
    let after: Vec<String> = path.extract()?;
    let added: Vec<PathBuf> = after
        .into_iter()
        .filter(|p| !before.contains(p))
        .map(PathBuf::from)
        .collect();
    // Keep the working directory first.
    let first: Option<String> = before.first().cloned();
    insert_front(path, &added)?;
    if let Some(first) = first {
        insert_front(path, &[PathBuf::from(first)])?;
    }
    Ok(())
}

fn python_version(py: Python<'_>) -> PyResult<(u32, u32)> {
    let info = py.import("sys")?.getattr("version_info")?;
    Ok((info.get_item(0)?.extract()?, info.get_item(1)?.extract()?))
}

/// Why a `home` directory cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum VenvProblem {
    Missing,
    NotAVenv,
    OtherPython(u32, u32),
}

impl VenvProblem {
    fn message(&self, home: &Path, running: (u32, u32), executable: &str) -> String {
        let home = home.display();
        match self {
            VenvProblem::Missing => format!("{home} does not exist; give the virtualenv's directory"),
            VenvProblem::NotAVenv => format!(
                "{home} is not a virtualenv (it has no pyvenv.cfg and no lib/python{}.{}/site-packages); \
                 give the directory that contains bin/ and lib/",
                running.0, running.1
            ),
            VenvProblem::OtherPython(major, minor) => format!(
                "{home} is a virtualenv for Python {major}.{minor}, but dragoman runs on Python {}.{} \
                 ({executable}); packages built for one Python version do not load in another. \
                 Fix: install dragoman into that virtualenv and run it from there \
                 ({home}/bin/pip install dragoman, then {home}/bin/dragoman), or recreate the \
                 virtualenv with Python {}.{}",
                running.0, running.1, running.0, running.1
            ),
        }
    }
}

/// The site-packages directories of the virtualenv at `home`, if it is for the running
/// Python version (`running` = (major, minor)).
pub(crate) fn venv_site_packages(
    home: &Path,
    running: (u32, u32),
) -> Result<Vec<PathBuf>, VenvProblem> {
    if !home.is_dir() {
        return Err(VenvProblem::Missing);
    }
    let declared = std::fs::read_to_string(home.join("pyvenv.cfg"))
        .ok()
        .and_then(|cfg| venv_version(&cfg));
    let found: Vec<(u32, u32)> = ["lib", "lib64"]
        .iter()
        .filter_map(|lib| std::fs::read_dir(home.join(lib)).ok())
        .flatten()
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let (major, minor) = name.strip_prefix("python")?.split_once('.')?;
            Some((major.parse().ok()?, minor.parse().ok()?))
        })
        .collect();
    let version = match declared {
        Some(v) => v,
        None if found.contains(&running) => running,
        None => match found.first() {
            Some(&other) => other,
            None => return Err(VenvProblem::NotAVenv),
        },
    };
    if version != running {
        return Err(VenvProblem::OtherPython(version.0, version.1));
    }
    let dirs: Vec<PathBuf> = ["lib", "lib64"]
        .iter()
        .map(|lib| {
            home.join(lib)
                .join(format!("python{}.{}", running.0, running.1))
                .join("site-packages")
        })
        .filter(|d| d.is_dir())
        .collect();
    if dirs.is_empty() {
        return Err(VenvProblem::NotAVenv);
    }
    Ok(dirs)
}

/// The (major, minor) version in a `pyvenv.cfg` (`version = 3.12.1`, or virtualenv's
/// `version_info = 3.12.1.final.0`).
fn venv_version(cfg: &str) -> Option<(u32, u32)> {
    cfg.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        if !matches!(key.trim(), "version" | "version_info") {
            return None;
        }
        let mut parts = value.trim().split('.');
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    })
}

/// Imports the application and returns the callable. A factory (`pkg.app:create_app()`) is
/// called here, with no arguments, and what it returns is the application: once per process
/// that loads the application (each worker, or the master with `preload`).
pub(crate) fn load_callable(py: Python<'_>, target: &AppTarget) -> PyResult<Py<PyAny>> {
    let module = match &target.source {
        AppSource::Module(name) => py
            .import("importlib")?
            .call_method1("import_module", (name,))?,
        AppSource::File(file) => load_file(py, file)?,
    };
    let mut app = module.getattr(target.callable.as_str())?;
    if target.factory {
        if !app.is_callable() {
            let kind = app.get_type().name()?.to_string();
            return Err(PyTypeError::new_err(format!(
                "{} calls {} as a factory, but it is a {kind}; name the function that makes the \
                 application, or drop the `()` to serve {} itself",
                target.describe(),
                target.callable,
                target.callable
            )));
        }
        let made = app.call0()?;
        if !made.is_callable() {
            let kind = made.get_type().name()?.to_string();
            let mut shown = made.repr()?.to_string();
            if shown.chars().count() > 80 {
                shown = shown.chars().take(77).collect::<String>() + "...";
            }
            return Err(PyTypeError::new_err(format!(
                "{} returned {shown} ({kind}), not a callable WSGI application; the factory \
                 must return the application (a Flask or Django app, or a WSGI function)",
                target.describe()
            )));
        }
        app = made;
    }
    if !app.is_callable() {
        let kind = app.get_type().name()?.to_string();
        return Err(PyTypeError::new_err(format!(
            "{} is a {kind}, not a callable WSGI application",
            target.describe()
        )));
    }
    Ok(app.unbind())
}

/// Loads a Python file as a module, with its directory first on `sys.path` (as `python file.py`
/// would). The module is named after the file when that name is free, so other modules that
/// `import app` get the same module rather than a second copy.
fn load_file<'py>(py: Python<'py>, file: &Path) -> PyResult<Bound<'py, PyAny>> {
    let file = absolute(file);
    if !file.is_file() {
        return Err(PyFileNotFoundError::new_err(format!(
            "wsgi-file {} does not exist",
            file.display()
        )));
    }
    let sys = py.import("sys")?;
    if let Some(dir) = file.parent() {
        let path = sys.getattr("path")?.cast_into::<PyList>()?;
        insert_front(&path, &[dir.to_path_buf()])?;
    }
    let modules = sys.getattr("modules")?;
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = if !stem.is_empty()
        && stem.chars().all(|c| c == '_' || c.is_alphanumeric())
        && !stem.starts_with(|c: char| c.is_ascii_digit())
        && !modules.contains(stem.as_str())?
    {
        stem
    } else {
        "dragoman_wsgi_file".to_string()
    };
    let util = py.import("importlib.util")?;
    let spec = util.call_method1(
        "spec_from_file_location",
        (name.as_str(), file.to_string_lossy().as_ref()),
    )?;
    let module = util.call_method1("module_from_spec", (&spec,))?;
    modules.set_item(name.as_str(), &module)?;
    if let Err(err) = spec
        .getattr("loader")?
        .call_method1("exec_module", (&module,))
    {
        let _ = modules.del_item(name.as_str());
        return Err(err);
    }
    Ok(module)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn venv(version_line: Option<&str>, lib: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        if let Some(line) = version_line {
            std::fs::write(
                dir.path().join("pyvenv.cfg"),
                format!("home = /usr/bin\n{line}\n"),
            )
            .unwrap();
        }
        std::fs::create_dir_all(dir.path().join("lib").join(lib).join("site-packages")).unwrap();
        dir
    }

    #[test]
    fn venv_of_the_running_version() {
        let v = venv(Some("version = 3.11.7"), "python3.11");
        let dirs = venv_site_packages(v.path(), (3, 11)).unwrap();
        assert_eq!(dirs, vec![v.path().join("lib/python3.11/site-packages")]);
    }

    #[test]
    fn venv_of_another_version() {
        let v = venv(Some("version_info = 3.12.1.final.0"), "python3.12");
        assert_eq!(
            venv_site_packages(v.path(), (3, 11)),
            Err(VenvProblem::OtherPython(3, 12))
        );
        let v = venv(None, "python3.13");
        assert_eq!(
            venv_site_packages(v.path(), (3, 11)),
            Err(VenvProblem::OtherPython(3, 13))
        );
        let message =
            VenvProblem::OtherPython(3, 12).message(Path::new("/v"), (3, 11), "/usr/bin/python3");
        assert!(
            message.contains("for Python 3.12, but dragoman runs on Python 3.11"),
            "{message}"
        );
        assert!(message.contains("/v/bin/pip install dragoman"), "{message}");
    }

    #[test]
    fn not_a_venv() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            venv_site_packages(d.path(), (3, 11)),
            Err(VenvProblem::NotAVenv)
        );
        assert_eq!(
            venv_site_packages(&d.path().join("nope"), (3, 11)),
            Err(VenvProblem::Missing)
        );
    }
}
