//! `py-autoreload` (development): every few seconds, look at the modification time of every
//! loaded Python module's file; when one changes, ask the master for a graceful reload (an
//! [`Event::Reload`] on the event pipe), which starts workers that import the new code. Runs in
//! worker 1 only.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use pyo3::prelude::*;

use crate::ipc::{Event, Sender};
use crate::{info, warn};

/// Watches until a file changes, then asks the master for a reload through `events`.
pub(crate) async fn watch(every: Duration, events: Sender) {
    let mut seen: HashMap<PathBuf, SystemTime> = HashMap::new();
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        let files = Python::attach(module_files).unwrap_or_else(|e| {
            warn!("py-autoreload: cannot list the loaded modules: {e}");
            Vec::new()
        });
        for file in files {
            let Ok(modified) = std::fs::metadata(&file).and_then(|m| m.modified()) else {
                continue;
            };
            match seen.insert(file.clone(), modified) {
                Some(before) if before != modified => {
                    info!("py-autoreload: {} changed; reloading", file.display());
                    events.send(Event::Reload);
                    return;
                }
                _ => {}
            }
        }
    }
}

/// The source files of the modules in `sys.modules`.
fn module_files(py: Python<'_>) -> PyResult<Vec<PathBuf>> {
    let modules = py.import("sys")?.getattr("modules")?.call_method0("copy")?;
    let mut files = Vec::new();
    for module in modules.call_method0("values")?.try_iter()? {
        let Ok(Some(file)) = module?.getattr_opt("__file__") else {
            continue;
        };
        if let Ok(path) = file.extract::<String>() {
            if path.ends_with(".py") {
                files.push(PathBuf::from(path));
            }
        }
    }
    Ok(files)
}
