//! `--print-config`: the options in effect, each with where its value comes from (a default,
//! an ini file and line, an environment variable, a command-line flag), as an ini file's
//! lines. A value another source overrode is shown under the one that won, as a comment.

use std::fmt::Write as _;

use super::model::Config;
use super::options::{DefaultValue, Group, OptionSpec, Status, OPTIONS};
use super::source::Setting;

/// Options whose values are not shown (`--print-config` output goes to terminals and logs).
const SECRET: &[&str] = &["ssl-key-password"];

/// The text `--print-config` prints for the merged `settings` and the `config` built from
/// them.
pub(crate) fn effective(settings: &[Setting], config: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "; dragoman {}: the options in effect, each with where it comes from",
        env!("CARGO_PKG_VERSION")
    );
    out.push_str("[dragoman]\n");
    for group in Group::ALL {
        let lines: Vec<String> = OPTIONS
            .iter()
            .filter(|spec| spec.group == group)
            .flat_map(|spec| option_lines(spec, settings, config))
            .collect();
        if !lines.is_empty() {
            let _ = writeln!(out, "\n; {}", group.title());
            for line in lines {
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
    out
}

/// One option's lines: its values with their sources (or its default), then what they
/// overrode.
fn option_lines(spec: &OptionSpec, settings: &[Setting], config: &Config) -> Vec<String> {
    let given: Vec<&Setting> = settings
        .iter()
        .filter(|s| s.spec.name == spec.name)
        .collect();
    let status = match spec.status {
        Status::Active => String::new(),
        Status::Planned => " (not yet in effect)".into(),
        Status::Ignored(_) => " (nothing to do in dragoman)".into(),
    };
    let Some(top) = given.iter().map(|s| s.origin.rank()).max() else {
        return default_line(spec, config).into_iter().collect();
    };
    let mut lines = Vec::new();
    if spec.name == "ini" {
        // Shown, not repeated: read back, the line would read the file again.
        for s in &given {
            lines.push(format!(
                "; ini = {} ({}): its options are below",
                s.value, s.origin
            ));
        }
        return lines;
    }
    for s in given.iter().filter(|s| s.origin.rank() == top) {
        let (value, note) = match shown(spec, &s.value) {
            v if spec.name == "http" && v.trim().is_empty() => (
                super::defaults::HTTP.to_string(),
                " (empty: the default address)",
            ),
            v => (v, ""),
        };
        lines.push(line(
            spec.name,
            &value,
            &format!("{}{note}{status}", s.origin),
        ));
    }
    for s in given.iter().filter(|s| s.origin.rank() < top) {
        lines.push(format!(
            ";   overridden: {} = {} ({})",
            spec.name,
            shown(spec, &s.value),
            s.origin
        ));
    }
    lines
}

/// The default of an option nobody set, when it has one in effect.
fn default_line(spec: &OptionSpec, config: &Config) -> Option<String> {
    if spec.status != Status::Active {
        return None;
    }
    match spec.name {
        // The default listener exists only when no listener of any kind is given.
        "http" if config.listeners.iter().all(|l| l.origin.is_some()) => return None,
        // Its default depends on health-check.
        "shutdown-delay" => {
            let secs = config.shutdown_delay.as_secs();
            return (secs > 0)
                .then(|| line(spec.name, &secs.to_string(), "default with health-check"));
        }
        _ => {}
    }
    match spec.default {
        DefaultValue::None => None,
        default => Some(line(spec.name, &default.shown(), "default")),
    }
}

fn shown(spec: &OptionSpec, value: &str) -> String {
    if SECRET.contains(&spec.name) {
        "********".into()
    } else {
        value.trim().to_string()
    }
}

/// `name = value`, the source as a comment in a column of its own; above it for the options
/// whose values the ini reader takes whole (a trailing comment would become their value's).
fn line(name: &str, value: &str, source: &str) -> String {
    let setting = format!("{name} = {value}");
    if super::ini::raw_value(name) {
        return format!("; {source}\n{setting}");
    }
    format!("{setting:<40} ; {source}")
}

#[cfg(test)]
mod tests {
    use super::super::{load, Loaded};
    use std::io::Write;

    #[test]
    fn every_value_with_its_source() {
        let mut f = tempfile::Builder::new().suffix(".ini").tempfile().unwrap();
        f.write_all(b"[uwsgi]\nhttp =\nmodule = site.wsgi\nthreads = 2\nprocesses = 3\nssl-key-password = hunter2\n")
            .unwrap();
        let path = f.path().to_str().unwrap().to_string();
        let args: Vec<String> = ["--print-config", "--ini", &path, "--processes", "4"]
            .map(String::from)
            .to_vec();
        let env = vec![("DRAGOMAN_THREADS".to_string(), "8".to_string())];
        let Ok(Loaded::PrintConfig(text)) = load(&args, &env) else {
            panic!("--print-config loads");
        };
        let has = |start: &str, source: &str| {
            text.lines()
                .any(|l| l.starts_with(start) && l.ends_with(source))
        };
        assert!(
            has(
                "http = 127.0.0.1:8000",
                &format!("; {path} line 2 (empty: the default address)")
            ),
            "{text}"
        );
        assert!(
            has("module = site.wsgi", &format!("; {path} line 3")),
            "{text}"
        );
        assert!(
            has("threads = 8", "; environment variable DRAGOMAN_THREADS"),
            "{text}"
        );
        assert!(
            has(";   overridden: threads = 2", &format!("({path} line 4)")),
            "{text}"
        );
        assert!(
            has("processes = 4", "; command line option --processes"),
            "{text}"
        );
        assert!(has("listen = 1024", "; default"), "{text}");
        assert!(has("ssl-key-password = ********", "line 6"), "{text}");
        assert!(!text.contains("hunter2"));
        assert!(
            !text.contains("shutdown-delay"),
            "no health check, no delay"
        );
    }
}
