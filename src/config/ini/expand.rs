//! The three expansion passes uWSGI runs once the whole configuration is assembled
//! (core/uwsgi.c `uwsgi_setup`, core/utils.c `uwsgi_apply_config_pass`): first `$(VAR)`
//! (environment), then `@(file)` (a file's text, or a command's output with `exec://`), then
//! `%(name)` (placeholders, with uWSGI's arithmetic). A reference whose target does not exist is
//! left as written, as uWSGI does: that is how request variables such as `%(status)` reach
//! `log-format` untouched.

use std::path::Path;

use super::entry::{Entry, IniError};
use super::host::Host;

/// How many replacements one value may take before dragoman calls it a loop (`a = %(a)`;
/// uWSGI would spin forever).
const MAX_REPLACEMENTS: usize = 64;

/// The longest a value may grow by expansion (references to references can double it at each
/// step; no real configuration comes near this).
const MAX_VALUE: usize = 1 << 20;

/// Runs the three passes over every value, in uWSGI's order.
pub(crate) fn expand_all(
    entries: &mut [Entry],
    host: &dyn Host,
    warnings: &mut Vec<IniError>,
) -> Result<(), IniError> {
    for e in entries.iter_mut() {
        let Some(value) = e.value.clone() else {
            continue;
        };
        let v = pass(
            &value,
            '$',
            e,
            &mut |name| Ok(env_var(name, host)),
            warnings,
        )?;
        e.value = Some(v);
    }
    for e in entries.iter_mut() {
        let Some(value) = e.value.clone() else {
            continue;
        };
        let at = e.clone();
        let v = pass(
            &value,
            '@',
            &at,
            &mut |name| at_file(name, &at, host).map(Some),
            warnings,
        )?;
        e.value = Some(v);
    }
    for i in 0..entries.len() {
        let Some(value) = entries[i].value.clone() else {
            continue;
        };
        let e = entries[i].clone();
        let v = {
            let snapshot: &[Entry] = entries;
            pass(
                &value,
                '%',
                &e,
                &mut |name| Ok(placeholder(name, snapshot)),
                warnings,
            )?
        };
        entries[i].value = Some(v);
    }
    Ok(())
}

/// One pass over one value: each `<symbol>(key)` (parentheses may nest) whose key `hook` knows
/// is replaced, and the value is scanned again from the start, as uWSGI does.
fn pass(
    value: &str,
    symbol: char,
    entry: &Entry,
    hook: &mut dyn FnMut(&str) -> Result<Option<String>, IniError>,
    warnings: &mut Vec<IniError>,
) -> Result<String, IniError> {
    let mut v = value.to_string();
    let mut replacements = 0;
    let mut from = 0;
    'scan: loop {
        let bytes = v.as_bytes();
        let mut i = from;
        while i + 1 < bytes.len() {
            if bytes[i] != symbol as u8 || bytes[i + 1] != b'(' {
                i += 1;
                continue;
            }
            let start = i + 2;
            let mut depth = 0usize;
            let mut end = None;
            for (j, &b) in bytes.iter().enumerate().skip(start) {
                match b {
                    b'(' => depth += 1,
                    b')' if depth == 0 => {
                        end = Some(j);
                        break;
                    }
                    b')' => depth -= 1,
                    _ => {}
                }
            }
            let Some(end) = end else {
                break 'scan; // no closing parenthesis: left as written, as uWSGI does
            };
            let key = v[start..end].to_string();
            if !key.is_empty() {
                match hook(&key)? {
                    Some(found) => {
                        replacements += 1;
                        if replacements > MAX_REPLACEMENTS {
                            return Err(entry.error(format!(
                                "{symbol}({key}) keeps expanding into more references \
                                 ({MAX_REPLACEMENTS} replacements in one value); a placeholder \
                                 refers to itself, directly or through others"
                            )));
                        }
                        v = format!("{}{found}{}", &v[..i], &v[end + 1..]);
                        if v.len() > MAX_VALUE {
                            return Err(entry.error(format!(
                                "{symbol}({key}) makes the value longer than {MAX_VALUE} bytes; \
                                 placeholders that repeat each other grow without end"
                            )));
                        }
                        from = 0;
                        continue 'scan;
                    }
                    None if symbol == '$' => warnings.push(entry.error(format!(
                        "$({key}) is not set in the environment; it is left as written, as \
                         uWSGI leaves it"
                    ))),
                    None => {}
                }
            }
            i = end + 1;
        }
        break;
    }
    Ok(v)
}

/// `$(VAR)`, with uWSGI's defaults: `$(VAR:-default)` when unset or empty, `$(VAR-default)` when
/// unset (core/utils.c `uwsgi_getenv_with_default`).
fn env_var(name: &str, host: &dyn Host) -> Option<String> {
    if let Some((var, default)) = name.split_once(":-") {
        return Some(
            host.env(var)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_string()),
        );
    }
    if let Some((var, default)) = name.split_once('-') {
        return Some(host.env(var).unwrap_or_else(|| default.to_string()));
    }
    host.env(name)
}

/// `@(path)` or `@(exec://command)`: the text, less one trailing newline (core/uwsgi.c
/// `uwsgi_at_file_read`).
fn at_file(name: &str, entry: &Entry, host: &dyn Host) -> Result<String, IniError> {
    let mut text = if let Some(command) = name.strip_prefix("exec://") {
        host.exec(command).map_err(|why| {
            entry.error(format!(
                "@(exec://{command}): {why}; the command must print the value and exit 0"
            ))
        })?
    } else if let Some((scheme, _)) = name.split_once("://") {
        return Err(entry.error(format!(
            "@({name}): dragoman reads files and `exec://` commands, not `{scheme}://`; \
             write @(exec://...) with a command that prints the value (for a URL: \
             @(exec://curl -fsS URL))"
        )));
    } else {
        host.read(Path::new(name)).map_err(|why| {
            entry.error(format!(
                "@({name}) cannot be read: {why}; give the path of a readable file \
                 (relative paths are from the working directory)"
            ))
        })?
    };
    if text.ends_with('\n') || text.ends_with('\r') {
        text.pop();
    }
    Ok(text)
}

/// `%(name)`: the first value given to `name` anywhere in the configuration (uWSGI's
/// `uwsgi_get_exported_opt`), or uWSGI's arithmetic when the name has spaces.
fn placeholder(name: &str, entries: &[Entry]) -> Option<String> {
    let value_of = |key: &str| -> Option<String> {
        entries
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.clone().unwrap_or_else(|| "true".into()))
    };
    if !name.contains(' ') {
        return value_of(name);
    }
    Some(arithmetic(name, &value_of))
}

/// uWSGI's placeholder arithmetic (core/config.c `uwsgi_manage_placeholder`): the items are
/// separated by spaces and read left to right, with no precedence; an item is a number or the
/// name of an option; `+ - * /` apply to the next item, `++` and `--` to the result so far, and
/// two items with no operator between them are joined as text. `%(foo + bar + 3 * 2)` is
/// `((foo + bar) + 3) * 2`; division by zero gives 0.
pub(crate) fn arithmetic(expr: &str, value_of: &dyn Fn(&str) -> Option<String>) -> String {
    #[derive(Clone, Copy)]
    enum Op {
        Concat,
        Add,
        Sub,
        Mul,
        Div,
    }
    let mut op = Op::Concat;
    let mut current: Option<String> = None;
    for token in expr.split(' ').filter(|t| !t.is_empty()) {
        let item = match token {
            "+" => {
                op = Op::Add;
                continue;
            }
            "-" => {
                op = Op::Sub;
                continue;
            }
            "*" => {
                op = Op::Mul;
                continue;
            }
            "/" => {
                op = Op::Div;
                continue;
            }
            "++" | "--" => {
                if let Some(c) = &current {
                    let n = leading_int(c);
                    let n = if token == "++" {
                        n.wrapping_add(1)
                    } else {
                        n.wrapping_sub(1)
                    };
                    current = Some(n.to_string());
                }
                op = Op::Concat;
                continue;
            }
            t if t.bytes().all(|b| b.is_ascii_digit()) => t.to_string(),
            t => value_of(t).unwrap_or_default(),
        };
        let a = current.as_deref().map_or(0, leading_int);
        let b = leading_int(&item);
        current = Some(match op {
            Op::Concat => format!("{}{item}", current.as_deref().unwrap_or_default()),
            Op::Add => a.wrapping_add(b).to_string(),
            Op::Sub => a.wrapping_sub(b).to_string(),
            Op::Mul => a.wrapping_mul(b).to_string(),
            Op::Div if b == 0 => "0".into(),
            Op::Div => a.wrapping_div(b).to_string(),
        });
        op = Op::Concat;
    }
    current.unwrap_or_default()
}

/// C's `strtoll(s, NULL, 10)`: leading blanks, an optional sign, digits; 0 when there are none.
fn leading_int(s: &str) -> i64 {
    let s = s.trim_start();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        n = n.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if neg {
        -n
    } else {
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "foo" => Some("17".into()),
            "bar" => Some("30".into()),
            "two" => Some("2".into()),
            "nine" => Some("9".into()),
            "x" => Some("29".into()),
            _ => None,
        }
    }

    #[test]
    fn arithmetic_is_uwsgis_pipeline() {
        // The examples of uWSGI's documentation (Configuration.rst, "Placeholders math").
        assert_eq!(arithmetic("foo + bar + 3", &lookup), "50");
        assert_eq!(arithmetic("foo + bar + 3 * 2", &lookup), "100");
        assert_eq!(arithmetic("x ++", &lookup), "30");
        assert_eq!(arithmetic("two nine ++", &lookup), "30");
        assert_eq!(arithmetic("two nine", &lookup), "29");
        assert_eq!(arithmetic("bar / 0", &lookup), "0");
        assert_eq!(arithmetic("bar - foo", &lookup), "13");
        assert_eq!(arithmetic("missing + 1", &lookup), "1");
        assert_eq!(leading_int(" 42 ; x"), 42);
        assert_eq!(leading_int("-3"), -3);
        assert_eq!(leading_int("abc"), 0);
    }
}
