//! `dragoman --help`, generated from the option table so it cannot drift from what is accepted.

use std::fmt::Write;

use super::options::{Group, Kind, Status, OPTIONS};
use super::status_label;

const WIDTH: usize = 100;
const COLUMN: usize = 34;
/// Joins words that must not be wrapped apart; printed as a space.
const NBSP: char = '\u{1}';

/// The full help text.
pub fn text() -> String {
    let mut out = format!(
        "dragoman {}: serves a Python WSGI application (Django, Flask, ...) over HTTP.\n\n\
         Usage:\n  dragoman [OPTIONS] [MODULE[:CALLABLE]]\n  dragoman --ini site.ini\n  \
         dragoman compress DIR...     write .br and .gz siblings of static files\n\n\
         Every option can also be written in an ini file (`name = value` in a [uwsgi] or\n\
         [dragoman] section) or set in the environment (DRAGOMAN_NAME=value). Precedence:\n\
         command line, then environment, then ini files, then the default.\n",
        env!("CARGO_PKG_VERSION")
    );
    for group in Group::ALL {
        let _ = write!(out, "\n{}:\n", group.title());
        for spec in OPTIONS.iter().filter(|o| o.group == group) {
            let mut left = format!("  --{}", spec.name);
            if spec.kind == Kind::Value && !spec.metavar.is_empty() {
                let _ = write!(left, " {}", spec.metavar);
            }
            let mut words = match spec.status {
                Status::Ignored(why) => format!("accepted; {why}"),
                _ => spec.help.to_string(),
            };
            let default = spec.default.shown();
            if !default.is_empty() && !matches!(spec.status, Status::Ignored(_)) {
                // A non-breaking joiner keeps "(default: X)" on one line; see `columns`.
                let _ = write!(words, " (default:{NBSP}{default})");
            }
            if !spec.aliases.is_empty() {
                let names: Vec<String> = spec.aliases.iter().map(|a| format!("--{a}")).collect();
                let _ = write!(words, " [also {}]", names.join(", "));
            }
            if spec.status == Status::Planned {
                let _ = write!(words, " [{}]", status_label(spec).unwrap_or_default());
            }
            out.push_str(&columns(&left, &words));
        }
    }
    out.push_str("\nOther:\n");
    out.push_str(&columns("  -h, --help", "show this help and exit"));
    out.push_str(&columns("  -V, --version", "show the version and exit"));
    out
}

/// Lays out an option and its description in two columns, wrapping the description.
fn columns(left: &str, words: &str) -> String {
    let mut out = String::new();
    let mut line = format!("{left:<COLUMN$}");
    if left.len() >= COLUMN {
        out.push_str(left);
        out.push('\n');
        line = " ".repeat(COLUMN);
    }
    let mut first = true;
    for word in words.split(' ').filter(|w| !w.is_empty()) {
        if !first && line.len() + 1 + word.len() > WIDTH {
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(COLUMN);
            first = true;
        }
        if !first {
            line.push(' ');
        }
        line.push_str(word);
        first = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out.replace(NBSP, " ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn help_lists_every_group_and_defaults() {
        let text = super::text();
        assert!(text.contains("Listeners and HTTP:"));
        assert!(text.contains("--threads N"));
        assert!(text.contains("(default: 1)"));
        assert!(text.contains("(default: 127.0.0.1:8000)"));
        assert!(text.contains("[also --workers]"));
        assert!(text.contains("[not yet in effect]"));
        assert!(
            text.lines().all(|l| l.len() <= super::WIDTH),
            "a line is too long"
        );
    }
}
