//! The generated reference docs: `docs/options.md`, every option of the table in
//! [`super::options`] with its flag, ini key, environment variable, default, meaning and the
//! uWSGI and gunicorn names it answers to; and the table of gunicorn's settings in
//! `docs/migrating-from-gunicorn.md` (from [`super::gunicorn`]). Tests fail when either file
//! is stale; `DRAGOMAN_WRITE_DOCS=1 cargo test --lib options_doc` rewrites them.

use std::fmt::Write;

use super::gunicorn;
use super::options::{Group, Kind, OptionSpec, Status, OPTIONS};

/// A table cell: `|` escaped, newlines flattened.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The gunicorn flags (or settings, for those without a flag) whose job this option does.
fn gunicorn_names(spec: &OptionSpec) -> Vec<String> {
    gunicorn::SETTINGS
        .iter()
        .filter(|g| g.dragoman == Some(spec.name))
        .map(|g| {
            if g.flags.is_empty() {
                format!("`{}` (setting)", g.name)
            } else {
                g.flags
                    .split(", ")
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        })
        .collect()
}

/// The whole of docs/options.md.
pub(crate) fn options_markdown() -> String {
    let mut out = String::from(
        "# Options\n\n\
         <!-- Generated from the option table (src/config/options.rs) and the gunicorn mapping\n\
         (src/config/gunicorn.rs) by src/config/reference.rs; do not edit. A unit test fails when\n\
         it is stale: `DRAGOMAN_WRITE_DOCS=1 cargo test --lib options_doc` rewrites it. -->\n\n\
         Every option dragoman has, as `dragoman --help` lists them. Each can be given three ways: \
         `--name VALUE` on the command line, `name = VALUE` in an ini file (a `[uwsgi]` or \
         `[dragoman]` section), or `DRAGOMAN_NAME=VALUE` in the environment (a repeatable option \
         takes one value per line there). Precedence: command line, then environment, then ini \
         files, then the default. A flag written bare (`--vacuum`, or `vacuum` alone on an ini \
         line) means true.\n\n\
         \"Also answers to\" lists the other names the option takes, in every source: uWSGI's \
         spellings and gunicorn's. \"gunicorn\" names the gunicorn flag whose job the option does \
         (the differences are in [migrating-from-gunicorn.md](migrating-from-gunicorn.md)); \
         uWSGI's options, all 1327 of them, are in [configuration.md](configuration.md), and \
         moving a uWSGI site in [migrating-from-uwsgi.md](migrating-from-uwsgi.md).\n",
    );
    for group in Group::ALL {
        let _ = write!(
            out,
            "\n## {}\n\n\
             | flag | ini | environment | default | also answers to | gunicorn | meaning |\n\
             |---|---|---|---|---|---|---|\n",
            group.title()
        );
        for spec in OPTIONS.iter().filter(|o| o.group == group) {
            let value = match spec.kind {
                Kind::Flag => "true|false".to_string(),
                Kind::Value if spec.metavar.is_empty() => "VALUE".to_string(),
                Kind::Value => spec.metavar.to_string(),
            };
            let flag = match spec.kind {
                Kind::Flag => format!("`--{}`", spec.name),
                Kind::Value => format!("`--{} {}`", spec.name, value),
            };
            let ini = format!("`{} = {}`", spec.name, value);
            let default = match spec.default.shown() {
                d if d.is_empty() => String::new(),
                d => format!("`{d}`"),
            };
            let aliases = spec
                .aliases
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut meaning = match spec.status {
                Status::Active => spec.help.to_string(),
                Status::Planned => format!("{} (accepted, not in effect yet)", spec.help),
                Status::Ignored(why) => format!("accepted, does nothing: {why}"),
            };
            if spec.repeatable && !meaning.contains("repeatable") {
                meaning.push_str(" (repeatable)");
            }
            let _ = writeln!(
                out,
                "| {} | {} | `{}` | {} | {} | {} | {} |",
                cell(&flag),
                cell(&ini),
                spec.env_var(),
                cell(&default),
                aliases,
                gunicorn_names(spec).join(", "),
                cell(&meaning)
            );
        }
    }
    out
}

/// The table of gunicorn's settings in docs/migrating-from-gunicorn.md.
pub(crate) fn gunicorn_markdown() -> String {
    let mut out = String::from(
        "| gunicorn | dragoman | same flag works | what differs, or what instead |\n\
         |---|---|---|---|\n",
    );
    for g in gunicorn::SETTINGS {
        let gun = if g.flags.is_empty() {
            format!("`{}` (config file only)", g.name)
        } else {
            g.flags
                .split(", ")
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let ours = g.dragoman.map(|d| format!("`{d}`")).unwrap_or_default();
        let same = same_flag(g).map_or(String::new(), |f| format!("yes: `{f}`"));
        let _ = writeln!(out, "| {gun} | {ours} | {same} | {} |", cell(g.note));
    }
    out
}

/// gunicorn's long flag, when dragoman's command line takes it for the same option.
fn same_flag(g: &gunicorn::Setting) -> Option<&'static str> {
    let ours = g.dragoman?;
    g.flags.split(", ").find(|f| {
        f.strip_prefix("--")
            .and_then(super::options::lookup)
            .is_some_and(|spec| spec.name == ours)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn write_docs() -> bool {
        std::env::var_os("DRAGOMAN_WRITE_DOCS").is_some()
    }

    #[test]
    fn options_doc_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/options.md");
        let doc = options_markdown();
        if write_docs() {
            std::fs::write(&path, doc).expect("docs/options.md is writable");
            return;
        }
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            current == doc,
            "docs/options.md is stale: run `DRAGOMAN_WRITE_DOCS=1 cargo test --lib options_doc` \
             and commit the result"
        );
    }

    const BEGIN: &str = "<!-- gunicorn-settings:begin -->\n";
    const END: &str = "<!-- gunicorn-settings:end -->";

    #[test]
    fn options_doc_gunicorn_table_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/migrating-from-gunicorn.md");
        let doc = std::fs::read_to_string(&path).expect("docs/migrating-from-gunicorn.md exists");
        let start = doc.find(BEGIN).expect("the begin marker") + BEGIN.len();
        let end = doc.find(END).expect("the end marker");
        let table = gunicorn_markdown();
        if write_docs() {
            let new = format!("{}{table}{}", &doc[..start], &doc[end..]);
            std::fs::write(&path, new).expect("docs/migrating-from-gunicorn.md is writable");
            return;
        }
        assert!(
            doc[start..end] == table,
            "docs/migrating-from-gunicorn.md's table of gunicorn settings is stale: run \
             `DRAGOMAN_WRITE_DOCS=1 cargo test --lib options_doc` and commit the result"
        );
    }

    #[test]
    fn every_option_is_in_the_doc_once() {
        let doc = options_markdown();
        for spec in OPTIONS {
            let row = format!("| `--{}", spec.name);
            let rows = doc
                .lines()
                .filter(|l| l.starts_with(&row) && l[row.len()..].starts_with(['`', ' ']))
                .count();
            assert_eq!(rows, 1, "{}", spec.name);
        }
    }

    #[test]
    fn gunicorns_own_flags_work_where_the_table_says_so() {
        // `--workers`, `--bind`, `--timeout`, `--graceful-timeout`: aliases of dragoman's names.
        let same: Vec<&str> = gunicorn::SETTINGS.iter().filter_map(same_flag).collect();
        for flag in [
            "--workers",
            "--bind",
            "--timeout",
            "--graceful-timeout",
            "--pid",
        ] {
            assert!(same.contains(&flag), "{flag}");
        }
        assert!(!same.contains(&"--keep-alive"));
        let args: Vec<String> = ["--workers", "2", "--bind", ":8000", "--timeout", "30"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let super::super::source::Command::Run(cli) =
            super::super::source::from_cli(&args).expect("gunicorn's flags parse")
        else {
            panic!("not a run");
        };
        let names: Vec<&str> = cli.settings.iter().map(|s| s.spec.name).collect();
        assert_eq!(names, ["processes", "http", "harakiri"]);
    }
}
