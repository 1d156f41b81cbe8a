//! The reader against what uWSGI's documentation and source say each construct does.

use std::collections::HashMap;
use std::path::Path;

use super::tests_support::FakeHost;
use super::*;

const SITE: &str = "/srv/site/conf/site.ini";

fn ctx_env(name: &str) -> Option<String> {
    match name {
        "HOME_DIR" => Some("/home/site".into()),
        _ => None,
    }
}

fn read_default(text: &str) -> Result<(Vec<Entry>, Vec<IniError>), IniError> {
    let ctx = Context {
        path: Path::new(SITE),
        env: &ctx_env,
    };
    read(text, None, &ctx)
}

/// Loads `SITE` (with `text`) from `host`.
fn load_with(host: FakeHost, text: &str) -> Result<(Vec<Entry>, Vec<IniError>), IniError> {
    let host = host.file(SITE, text);
    load(SITE, &host, &[]).map(|l| (l.entries, l.warnings))
}

fn pairs(entries: &[Entry]) -> Vec<(String, Option<String>)> {
    entries
        .iter()
        .map(|e| (e.key.clone(), e.value.clone()))
        .collect()
}

fn kv(k: &str, v: Option<&str>) -> (String, Option<String>) {
    (k.to_string(), v.map(str::to_string))
}

fn values(entries: &[Entry]) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for e in entries {
        m.entry(e.key.clone())
            .or_default()
            .push(e.value.clone().unwrap_or_default());
    }
    m
}

#[test]
fn design_md_example_loads() {
    let text = "[uwsgi]\nhttp       = :8000\nstatic-map = /static=/myproj/static\n\
                static-map = /media=/myproj/media\nchdir      = /myproj\n\
                module     = myproj.wsgi\nhome       = /myproj/venv  # this is the virtualenv path\n\
                master     = true\nprocesses  = 10\nvacuum     = true\n";
    let (entries, warnings) = read_default(text).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        pairs(&entries),
        vec![
            kv("http", Some(":8000")),
            kv("static-map", Some("/static=/myproj/static")),
            kv("static-map", Some("/media=/myproj/media")),
            kv("chdir", Some("/myproj")),
            kv("module", Some("myproj.wsgi")),
            kv("home", Some("/myproj/venv")),
            kv("master", Some("true")),
            kv("processes", Some("10")),
            kv("vacuum", Some("true")),
        ]
    );
    assert_eq!(entries[5].line, 7);
}

#[test]
fn comments_bare_keys_and_no_section() {
    let text = "# a comment\n; another\nmaster\nhttp = :8000 # trailing\nenv = A=b#c\n\
                max-requests = 1000 ; recycle now and then\nenv = B=x;y\n\
                attach-daemon = cd /srv ; ./worker # keeps its marks\n";
    let (entries, _) = read_default(text).unwrap();
    assert_eq!(
        pairs(&entries),
        vec![
            kv("master", None),
            kv("http", Some(":8000")),
            kv("env", Some("A=b#c")),
            kv("max-requests", Some("1000")),
            kv("env", Some("B=x;y")),
            kv(
                "attach-daemon",
                Some("cd /srv ; ./worker # keeps its marks")
            ),
        ]
    );
}

#[test]
fn sections_select_and_other_sections_are_skipped() {
    let text = "[other]\nhttp = :1\n[uwsgi]\nhttp = :2\n[dragoman]\nthreads = 4\n";
    let (entries, _) = read_default(text).unwrap();
    assert_eq!(
        pairs(&entries),
        vec![kv("http", Some(":2")), kv("threads", Some("4"))]
    );
    let ctx = Context {
        path: Path::new("/x.ini"),
        env: &ctx_env,
    };
    let (entries, _) = read(text, Some("other"), &ctx).unwrap();
    assert_eq!(pairs(&entries), vec![kv("http", Some(":1"))]);
    let err = read(text, Some("missing"), &ctx).unwrap_err();
    assert!(err.message.contains("no [missing] section"), "{err:?}");
}

#[test]
fn a_file_with_only_foreign_sections_is_an_error() {
    let err = read_default("[app:main]\nuse = egg:x\n").unwrap_err();
    assert!(
        err.message.contains("no [uwsgi] or [dragoman] section"),
        "{err:?}"
    );
}

#[test]
fn placeholders_env_and_magic_variables() {
    let text = "[uwsgi]\nproject = shop\nbase = /srv/%(project)\nchdir = %(base)/app\n\
                home = $(HOME_DIR)/venv\nstatic-map = /static=%dstatic\nlogto = %n.log\n\
                pct = 100%%\nunset = x$(NOPE)y\n";
    let (entries, warnings) = read_default(text).unwrap();
    let got = values(&entries);
    assert_eq!(got["chdir"], ["/srv/shop/app"]);
    assert_eq!(got["home"], ["/home/site/venv"]);
    assert_eq!(got["static-map"], ["/static=/srv/site/conf/static"]);
    assert_eq!(got["logto"], ["site.log"]);
    assert_eq!(got["pct"], ["100%"]);
    // uWSGI leaves an unset $(VAR) as written (its getenv hook returns NULL).
    assert_eq!(got["unset"], ["x$(NOPE)y"]);
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].line, 9);
    assert!(warnings[0].message.contains("$(NOPE)"));
    let refs = referenced_placeholders(text);
    assert!(refs.contains("project") && refs.contains("base"));
}

#[test]
fn a_placeholder_is_the_first_value_anywhere_and_unknown_ones_stay() {
    // uWSGI expands placeholders once everything is read, with the first value of the key
    // (core/config.c uwsgi_get_exported_opt): a later line can define it, and a
    // redefinition does not change it.
    let text = "[uwsgi]\nchdir = %(base)/app\nbase = /srv\nbase = /other\n\
                log-format = %(addr) [%(ltime)] %(status) %(_)\n";
    let (entries, warnings) = read_default(text).unwrap();
    let got = values(&entries);
    assert_eq!(got["chdir"], ["/srv/app"]);
    assert_eq!(got["log-format"], ["%(addr) [%(ltime)] %(status) %(_)"]);
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn placeholder_arithmetic_and_loops() {
    let text = "[uwsgi]\nworkers = %(cores * 2)\ncores = 4\nport = %(base ++)\nbase = 8000\n";
    let (entries, _) = read_default(text).unwrap();
    let got = values(&entries);
    assert_eq!(got["workers"], ["8"]);
    assert_eq!(got["port"], ["8001"]);
    let err = read_default("[uwsgi]\na = x%(b)\nb = %(a)\n").unwrap_err();
    assert!(err.message.contains("refers to itself"), "{err:?}");
    assert_eq!(err.line, 2);
}

#[test]
fn environment_defaults() {
    let host = FakeHost::default().var("SET", "yes").var("EMPTY", "");
    let (entries, warnings) = load_with(
        host,
        "[uwsgi]\na = $(SET:-no)\nb = $(EMPTY:-fallback)\nc = $(EMPTY-fallback)\n\
         d = $(UNSET-fallback)\n",
    )
    .unwrap();
    let got = values(&entries);
    assert_eq!(
        (&got["a"][0], &got["b"][0], &got["c"][0], &got["d"][0]),
        (
            &"yes".to_string(),
            &"fallback".to_string(),
            &String::new(),
            &"fallback".to_string()
        )
    );
    assert!(warnings.is_empty());
}

#[test]
fn at_reads_a_file_or_a_command() {
    let host = FakeHost::default()
        .file("/etc/hostname", "box\n")
        .command("echo 4", "4\n");
    let (entries, _) = load_with(
        host,
        "[uwsgi]\nname = @(/etc/hostname)\nprocesses = @(exec://echo 4)\n",
    )
    .unwrap();
    let got = values(&entries);
    assert_eq!(got["name"], ["box"]);
    assert_eq!(got["processes"], ["4"]);
    let err = load_with(FakeHost::default(), "[uwsgi]\nx = @(/missing)\n").unwrap_err();
    assert!(
        err.message.contains("@(/missing) cannot be read"),
        "{err:?}"
    );
    let err = load_with(FakeHost::default(), "[uwsgi]\nx = @(exec://false)\n").unwrap_err();
    assert!(err.message.contains("must print the value and exit 0"));
    let err = load_with(FakeHost::default(), "[uwsgi]\nx = @(http://a/b)\n").unwrap_err();
    assert!(err.message.contains("@(exec://curl -fsS URL)"), "{err:?}");
}

#[test]
fn every_magic_variable_in_a_loaded_file() {
    let (entries, warnings) =
        load_with(FakeHost::default(), "[uwsgi]\na = %h %k %U %G %c %x %Y\n").unwrap();
    // Values are trimmed after the magic variables are replaced (an empty %x, a dropped %Y).
    assert_eq!(values(&entries)["a"], ["web1 8 www staff conf"]);
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].message.contains("%Y is no magic variable"));
}

#[test]
fn if_env_and_if_not_env() {
    // ConfigLogic.rst: `if-env = PATH` puts the value in %(_); `NAME=value` tests the value.
    let text = "[uwsgi]\nif-env = APP_ENV\nenv = MODE=%(_)\nendif =\n\
                if-env = APP_ENV=prod\nprocesses = 8\nendif =\nif-env = APP_ENV=dev\n\
                processes = 1\nendif =\nif-not-env = MISSING\nthreads = 2\nendif =\n\
                if-not-env = APP_ENV\nthreads = 99\nendif\n";
    let (entries, _) = load_with(FakeHost::default().var("APP_ENV", "prod"), text).unwrap();
    assert_eq!(
        pairs(&entries),
        vec![
            kv("env", Some("MODE=prod")),
            kv("processes", Some("8")),
            kv("threads", Some("2")),
        ]
    );
}

#[test]
fn if_exists_file_dir_and_else() {
    let host = FakeHost::default()
        .file("/srv/local.ini", "[uwsgi]\nthreads = 3\n")
        .dir("/srv/static");
    let text = "[uwsgi]\nif-exists = /srv/local.ini\nini = %(_)\nendif =\n\
                if-file = /srv/static\nbad = 1\nelse =\nstatic-map = /s=/srv/static\nendif =\n\
                if-dir = /srv/static\ncheck-static = %(_)\nendif =\n\
                if-not-exists = /srv/none\nvacuum = true\nendif =\n\
                if-not-file = /srv/local.ini\nbad = 2\nendif =\nif-not-dir = /srv/local.ini\n\
                ok = yes\nendif =\n";
    let (entries, _) = load_with(host, text).unwrap();
    assert_eq!(
        pairs(&entries),
        vec![
            kv("threads", Some("3")),
            kv("static-map", Some("/s=/srv/static")),
            kv("check-static", Some("/srv/static")),
            kv("vacuum", Some("true")),
            kv("ok", Some("yes")),
        ]
    );
}

#[test]
fn if_opt_sees_what_was_set_above() {
    // ConfigLogic.rst: only options set above the if-opt count; NAME=value compares.
    let text = "[uwsgi]\ncheaper = 3\nif-opt = cheaper\nprint = cheaper with %(_)\nendif =\n\
                if-opt = cheaper=4\nbad = 1\nendif =\nif-not-opt = later\nok = 1\nendif =\n\
                later = 1\n";
    let (entries, _) = read_default(text).unwrap();
    assert_eq!(
        pairs(&entries),
        vec![
            kv("cheaper", Some("3")),
            kv("print", Some("cheaper with 3")),
            kv("ok", Some("1")),
            kv("later", Some("1")),
        ]
    );
}

#[test]
fn for_loops_repeat_each_line() {
    // ConfigLogic.rst: the loop applies to each line of the block separately.
    let text = "[uwsgi]\nfor = a b c\nsocket = /var/run/%(_).socket\n\
                http-socket = /var/run/%(_)-http.socket\nendfor =\nmodule = helloworld\n";
    let (entries, _) = read_default(text).unwrap();
    let got: Vec<String> = entries
        .iter()
        .map(|e| e.value.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        got,
        vec![
            "/var/run/a.socket",
            "/var/run/b.socket",
            "/var/run/c.socket",
            "/var/run/a-http.socket",
            "/var/run/b-http.socket",
            "/var/run/c-http.socket",
            "helloworld"
        ]
    );
    assert!(entries.iter().take(6).all(|e| e.line == 3 || e.line == 4));
    let host = FakeHost::default()
        .file("/srv/apps/a.ini", "")
        .file("/srv/apps/b.ini", "")
        .file("/srv/mounts.txt", "/a=a.py\n/b=b.py\n");
    let text = "[uwsgi]\nfor-glob = /srv/apps/*.ini\ntouch-reload = %(_)\nendfor =\n\
                for-times = 3\nworker = %(_)\nendfor =\nfor-readline = /srv/mounts.txt\n\
                mount = %(_)\nendfor =\n";
    let (entries, _) = load_with(host, text).unwrap();
    let got = values(&entries);
    assert_eq!(got["touch-reload"], ["/srv/apps/a.ini", "/srv/apps/b.ini"]);
    assert_eq!(got["worker"], ["1", "2", "3"]);
    assert_eq!(got["mount"], ["/a=a.py", "/b=b.py"]);
}

#[test]
fn blocks_do_not_nest_and_else_needs_an_if() {
    let err = read_default("[uwsgi]\nfor = a b\nif-env = X\nendif\nendfor\n").unwrap_err();
    assert_eq!(err.line, 3);
    assert!(err.message.contains("does not nest"), "{err:?}");
    let err = read_default("[uwsgi]\nelse =\nx = 1\n").unwrap_err();
    assert!(err.message.contains("no `if-...` block"), "{err:?}");
    let (_, warnings) = read_default("[uwsgi]\nif-env = X\nx = 1\n").unwrap();
    assert!(
        warnings[0].message.contains("has no `endif`"),
        "{warnings:?}"
    );
}

#[test]
fn includes_are_read_in_place() {
    // ParsingOrder.rst: "expand asap": the included file's options come at the include.
    let host = FakeHost::default()
        .file(
            "/work/file2.ini",
            "[uwsgi]\nmaster = true\nprocesses = 4\n[app1]\nplugin = rack\n",
        )
        .file("/srv/site/conf/common.ini", "[uwsgi]\nvacuum = true\n");
    let text = "[uwsgi]\nsocket = :3031\nini = file2.ini\nsocket = :3032\nini = :app1\n\
                include = %dcommon.ini\n";
    let (entries, _) = load_with(host, text).unwrap();
    assert_eq!(
        pairs(&entries),
        vec![
            kv("socket", Some(":3031")),
            kv("master", Some("true")),
            kv("processes", Some("4")),
            kv("socket", Some(":3032")),
            kv("plugin", Some("rack")),
            kv("vacuum", Some("true")),
        ]
    );
    assert_eq!(
        entries[1].file.as_deref(),
        Some(Path::new("/work/file2.ini"))
    );
    assert_eq!(entries[1].line, 2);
    assert_eq!(entries[0].file, None);
}

#[test]
fn ini_colon_section_reads_the_same_file() {
    let text = "[uwsgi]\nini = :base\nprocesses = 2\n[base]\nmaster = true\nmodule = app\n";
    let (entries, _) = load_with(FakeHost::default(), text).unwrap();
    assert_eq!(
        pairs(&entries),
        vec![
            kv("master", Some("true")),
            kv("module", Some("app")),
            kv("processes", Some("2")),
        ]
    );
}

#[test]
fn inherit_comes_after_the_file() {
    let host = FakeHost::default().file("/work/base.ini", "[uwsgi]\nprocesses = 4\nmaster\n");
    let text = "[uwsgi]\ninherit = base.ini\nprocesses = 8\n";
    let (entries, _) = load_with(host, text).unwrap();
    assert_eq!(
        pairs(&entries),
        vec![
            kv("processes", Some("8")),
            kv("processes", Some("4")),
            kv("master", None),
        ]
    );
}

#[test]
fn include_loops_and_missing_files_name_the_file_and_line() {
    let host =
        FakeHost::default().file("/work/b.ini", "[uwsgi]\n\nini = /srv/site/conf/site.ini\n");
    let err = load_with(host, "[uwsgi]\nini = /work/b.ini\n").unwrap_err();
    assert_eq!(err.file.as_deref(), Some(Path::new("/work/b.ini")));
    assert_eq!(err.line, 3);
    assert!(
        err.message
            .contains("/srv/site/conf/site.ini -> /work/b.ini -> /srv/site/conf/site.ini"),
        "{err:?}"
    );
    let host = FakeHost::default().file("/srv/site/conf/near.ini", "");
    let err = load_with(host, "[uwsgi]\nprocesses = 1\nini = near.ini\n").unwrap_err();
    assert_eq!((err.line, err.file.clone()), (3, None));
    assert!(err.message.contains("write `ini = %dnear.ini`"), "{err:?}");
    let err = load_with(FakeHost::default(), "[uwsgi]\nyaml = x.yml\nini = x.yml\n").unwrap_err();
    assert!(err.message.contains("reads ini files only"), "{err:?}");
}

#[test]
fn set_and_set_placeholder() {
    let (entries, _) =
        read_default("[uwsgi]\nset-ph = dir=/srv\nset = processes=%(n)\nset-placeholder = n=3\n")
            .unwrap();
    assert_eq!(
        pairs(&entries),
        vec![
            kv("dir", Some("/srv")),
            kv("processes", Some("3")),
            kv("n", Some("3")),
        ]
    );
    assert!(entries[0].placeholder && !entries[1].placeholder && entries[2].placeholder);
}

#[test]
fn odd_lines_are_ignored_with_a_warning_as_uwsgi_ignores_them() {
    let (entries, warnings) = read_default("[uwsgi]\n= :8000\nhttp :8000\nmodule = a\n").unwrap();
    assert_eq!(pairs(&entries), vec![kv("module", Some("a"))]);
    assert_eq!(warnings.len(), 2);
    assert_eq!(warnings[0].line, 2);
    assert!(
        warnings[1].message.contains("write `http = :8000`"),
        "{warnings:?}"
    );
    let err = read_default("[uwsgi\nhttp = :8000\n").unwrap_err();
    assert_eq!(err.line, 1);
}

#[test]
fn section_suffix_on_ini_path() {
    assert_eq!(split_section("site.ini:prod"), ("site.ini", Some("prod")));
    assert_eq!(split_section("site.ini"), ("site.ini", None));
    assert_eq!(split_section("/a:b/site.ini"), ("/a:b/site.ini", None));
    assert_eq!(split_section(":base"), ("", Some("base")));
}

#[test]
fn the_text_only_reader_reads_and_runs_nothing_else() {
    let err = read_default("[uwsgi]\nini = /etc/passwd\n").unwrap_err();
    assert!(err.message.contains("cannot read /etc/passwd"), "{err:?}");
    let err = read_default("[uwsgi]\nx = @(exec://touch /tmp/x)\n").unwrap_err();
    assert!(err.message.contains("runs no command"), "{err:?}");
}

#[test]
fn expansion_is_bounded() {
    let text = "[uwsgi]\na = xxxxxxxxxxxxxxxx\nb = %(a)%(a)%(a)%(a)%(a)%(a)%(a)%(a)\n\
                c = %(b)%(b)%(b)%(b)%(b)%(b)%(b)%(b)\nd = %(c)%(c)%(c)%(c)%(c)%(c)%(c)%(c)\n\
                e = %(d)%(d)%(d)%(d)%(d)%(d)%(d)%(d)\nf = %(e)%(e)%(e)%(e)%(e)%(e)%(e)%(e)\n\
                g = %(f)%(f)%(f)%(f)%(f)%(f)%(f)%(f)\n";
    match read_default(text) {
        Err(err) => assert!(err.message.contains("longer than"), "{err:?}"),
        Ok((entries, _)) => panic!("expanded to {} lines, unbounded", entries.len()),
    }
    let text = "[uwsgi]\nfor-times = 10000\na = %(_)\nb = %(_)\nc = %(_)\nd = %(_)\n\
                e = %(_)\nf = %(_)\ng = %(_)\nh = %(_)\ni = %(_)\nj = %(_)\nk = %(_)\n";
    match read_default(text) {
        Err(err) => assert!(err.message.contains("more than 100000 lines"), "{err:?}"),
        Ok((entries, _)) => panic!("expanded to {} lines, unbounded", entries.len()),
    }
}

#[test]
fn formats_and_commands_are_taken_whole_but_not_their_neighbours() {
    assert!(raw_value("log-format"));
    assert!(raw_value("logformat"));
    assert!(raw_value("attach-daemon"));
    assert!(!raw_value("logformat-strftime"));
    assert!(!raw_value("log-format-strftime"));
    assert!(!raw_value("log-master"));
}
