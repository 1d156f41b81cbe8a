//! The settings that win, and the typed readers `build` uses on them: each reader names the
//! setting's origin, what was expected and an example when a value is wrong.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::source::{ConfigError, Origin, Setting};
use super::values::parse_bool;

/// The settings that win for each option: those of the highest-ranked source that set it.
pub(crate) struct Resolved<'a> {
    by_option: HashMap<&'static str, Vec<&'a Setting>>,
    /// Values read the way uWSGI reads them, with a guess to report.
    pub(crate) warnings: std::cell::RefCell<Vec<String>>,
}

impl<'a> Resolved<'a> {
    pub(crate) fn new(settings: &'a [Setting]) -> Self {
        let mut by_option: HashMap<&'static str, Vec<&'a Setting>> = HashMap::new();
        for s in settings {
            by_option.entry(s.spec.name).or_default().push(s);
        }
        for values in by_option.values_mut() {
            let top = values.iter().map(|s| s.origin.rank()).max().unwrap_or(0);
            values.retain(|s| s.origin.rank() == top);
        }
        Resolved {
            by_option,
            warnings: Default::default(),
        }
    }

    /// Every winning value of a repeatable option, in order.
    pub(crate) fn all(&self, name: &str) -> &[&'a Setting] {
        self.by_option.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The winning value of a single-valued option: the last one written.
    pub(crate) fn last(&self, name: &str) -> Option<&'a Setting> {
        self.all(name).last().copied()
    }

    /// A flag: a bare flag is true; `default` when unset.
    pub(crate) fn flag(&self, name: &str, default: bool) -> bool {
        self.last(name)
            .map(|s| s.value.is_empty() || parse_bool(&s.value).unwrap_or(default))
            .unwrap_or(default)
    }

    /// A whole number of at least `min`, or `default`.
    pub(crate) fn count(
        &self,
        name: &str,
        min: usize,
        example: &str,
        default: usize,
    ) -> Result<usize, ConfigError> {
        let Some(s) = self.last(name) else {
            return Ok(default);
        };
        // uWSGI reads numbers with atoi: `threads = true` is 0, its default. dragoman does the
        // same, and says so.
        if parse_bool(&s.value).is_some() && s.value.trim().parse::<usize>().is_err() {
            self.warnings.borrow_mut().push(format!(
                "{}: option '{}' expects a number, as in {}, not {:?}; uWSGI reads it as 0 (the \
                 default), and so does dragoman ({default})",
                s.origin,
                s.spec.name,
                s.origin.example(s.spec, example),
                s.value.trim()
            ));
            return Ok(default);
        }
        count(s, min, example)
    }

    /// A number where 0 (and unset) means off.
    pub(crate) fn optional_count(
        &self,
        name: &str,
        example: &str,
    ) -> Result<Option<u64>, ConfigError> {
        Ok(Some(self.count(name, 0, example, 0)? as u64).filter(|n| *n > 0))
    }

    /// Seconds where 0 (and unset) means off.
    pub(crate) fn seconds(&self, name: &str) -> Result<Option<Duration>, ConfigError> {
        Ok(self.optional_count(name, "30")?.map(Duration::from_secs))
    }

    /// A path, if set (an empty value is an error).
    pub(crate) fn path(&self, name: &str, example: &str) -> Result<Option<PathBuf>, ConfigError> {
        self.last(name)
            .map(|s| nonempty_path(s, example))
            .transpose()
    }

    /// A path with its origin.
    pub(crate) fn path_at(
        &self,
        name: &str,
        example: &str,
    ) -> Result<Option<(PathBuf, Origin)>, ConfigError> {
        self.last(name)
            .map(|s| nonempty_path(s, example).map(|p| (p, s.origin.clone())))
            .transpose()
    }

    /// The values of a repeatable option as paths.
    pub(crate) fn paths(&self, name: &str) -> Vec<PathBuf> {
        self.all(name)
            .iter()
            .map(|s| PathBuf::from(s.value.trim()))
            .collect()
    }

    /// The values of a repeatable option as trimmed text.
    pub(crate) fn texts(&self, name: &str) -> Vec<String> {
        self.all(name)
            .iter()
            .map(|s| s.value.trim().to_string())
            .collect()
    }

    /// A single text value, if set and not empty.
    pub(crate) fn text(&self, name: &str) -> Option<String> {
        self.last(name)
            .map(|s| s.value.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// An octal permission mask.
    pub(crate) fn octal(&self, name: &str, example: &str) -> Result<Option<u32>, ConfigError> {
        self.last(name)
            .map(|s| {
                u32::from_str_radix(s.value.trim(), 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| bad_value(s, "an octal permission mask", example))
            })
            .transpose()
    }
}

/// An error about one setting's value: where, what was expected, an example, what was given.
pub(crate) fn bad_value(s: &Setting, expected: &str, example: &str) -> ConfigError {
    let got = if s.value.is_empty() {
        "got an empty value".to_string()
    } else {
        format!("got {:?}", s.value)
    };
    ConfigError(format!(
        "{}: option '{}' expects {expected}, as in {}; {got}{}",
        s.origin,
        s.spec.name,
        s.origin.example(s.spec, example),
        unresolved(&s.value)
    ))
}

/// Why a value still holds a reference: the fix for the commonest cause of a bad value in a
/// uWSGI file (a variable its deployment sets, a placeholder given on uWSGI's command line).
fn unresolved(value: &str) -> String {
    let reference = |mark: &str| {
        value.find(mark).and_then(|start| {
            value[start..]
                .find(')')
                .map(|end| value[start + 2..start + end].to_string())
        })
    };
    if let Some(name) = reference("$(") {
        let var = name.split([':', '-']).next().unwrap_or(&name);
        format!(" ($({name}) is not set in the environment: set {var} before starting dragoman)")
    } else if let Some(name) = reference("%(") {
        format!(
            " (%({name}) names no option or placeholder of the configuration: set `{name} = ...` \
             in the ini file)"
        )
    } else {
        String::new()
    }
}

pub(crate) fn count(s: &Setting, min: usize, example: &str) -> Result<usize, ConfigError> {
    s.value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n >= min)
        .ok_or_else(|| bad_value(s, &format!("a whole number of at least {min}"), example))
}

pub(crate) fn nonempty_path(s: &Setting, example: &str) -> Result<PathBuf, ConfigError> {
    if s.value.trim().is_empty() {
        Err(bad_value(s, "a path", example))
    } else {
        Ok(PathBuf::from(s.value.trim()))
    }
}
