//! A made-up machine for the reader's tests: files, environment and facts given by the test.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::host::{Facts, Host, PathKind};

/// Files and directories in memory, an environment, fixed facts; commands are answered from a
/// table so a test can see what ran.
pub(crate) struct FakeHost {
    pub(crate) files: HashMap<PathBuf, String>,
    pub(crate) dirs: Vec<PathBuf>,
    pub(crate) env: HashMap<String, String>,
    pub(crate) commands: HashMap<String, String>,
    pub(crate) facts: Facts,
}

impl Default for FakeHost {
    fn default() -> Self {
        FakeHost {
            files: HashMap::new(),
            dirs: Vec::new(),
            env: HashMap::new(),
            commands: HashMap::new(),
            facts: Facts {
                hostname: "web1".into(),
                cpus: 8,
                uid: 1000,
                user: "www".into(),
                gid: 1001,
                group: "staff".into(),
                cwd: PathBuf::from("/work"),
                now_secs: 1_700_000_000,
                now_micros: 1_700_000_000_123_456,
                executable: "/usr/bin/dragoman".into(),
            },
        }
    }
}

impl FakeHost {
    pub(crate) fn file(mut self, path: &str, text: &str) -> Self {
        self.files.insert(PathBuf::from(path), text.to_string());
        self
    }
    pub(crate) fn dir(mut self, path: &str) -> Self {
        self.dirs.push(PathBuf::from(path));
        self
    }
    pub(crate) fn var(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }
    pub(crate) fn command(mut self, command: &str, output: &str) -> Self {
        self.commands.insert(command.into(), output.into());
        self
    }
}

impl Host for FakeHost {
    fn env(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }
    fn read(&self, path: &Path) -> Result<String, String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| "No such file or directory (os error 2)".into())
    }
    fn kind(&self, path: &Path) -> PathKind {
        if self.files.contains_key(path) {
            PathKind::File
        } else if self.dirs.iter().any(|d| d == path) {
            PathKind::Dir
        } else {
            PathKind::Missing
        }
    }
    fn inode(&self, _path: &Path) -> Option<u64> {
        Some(4242)
    }
    fn glob(&self, pattern: &str) -> Vec<String> {
        super::host::glob(pattern, &|dir| {
            let mut names: Vec<String> = self
                .files
                .keys()
                .chain(self.dirs.iter())
                .filter(|p| p.parent() == Some(dir))
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            names.sort();
            names.dedup();
            names
        })
    }
    fn exec(&self, command: &str) -> Result<String, String> {
        self.commands
            .get(command)
            .cloned()
            .ok_or_else(|| "the command failed (exit status: 127)".into())
    }
    fn facts(&self) -> &Facts {
        &self.facts
    }
}
