//! `hook-master-start` at run time: the `exec:` and `safeexec:` commands, run one after the
//! other as the master starts (the workers start meanwhile, as in uWSGI), each a child of the
//! master whose output is logged, none waited for: the loop hears of its exit like any other.
//! A failed `exec:` stops dragoman, as uWSGI's "FATAL hook failed, destroying instance".
//! (The `unix_signal:` hooks are not run: they change what the master does on a signal, see
//! `decide::signal_action`.)

use std::collections::VecDeque;
use std::ffi::CString;

use super::command::{self, Launch};
use super::decide::{self, OnSignal};
use super::output::Outputs;
use super::signals;
use super::worker::describe_exit;
use crate::config::Hook;
use crate::{error, info, warn};

/// The hook commands still to run, and the one running.
pub(super) struct Hooks {
    queue: VecDeque<(String, bool)>,
    /// (pid, command, fatal).
    running: Option<(libc::pid_t, String, bool)>,
    env: Vec<CString>,
}

impl Hooks {
    /// The commands to run; says at once what the `unix_signal:` hooks change.
    pub(crate) fn new(hooks: &[Hook], env: Vec<CString>) -> Hooks {
        for hook in hooks {
            if let Hook::Signal { signal, .. } = hook {
                let name = signals::name(*signal);
                let does = match decide::on_signal(*signal, hooks) {
                    OnSignal::GracefulStop => "stops dragoman gracefully",
                    OnSignal::ImmediateStop => "stops dragoman now",
                    OnSignal::Reload => "reloads dragoman gracefully",
                    _ => continue,
                };
                let default = decide::on_signal(*signal, &[]) == decide::on_signal(*signal, hooks);
                let already = if default {
                    " (as it does by default)"
                } else {
                    ""
                };
                info!("hook-master-start: {name} {does}{already}");
            }
        }
        let queue = hooks
            .iter()
            .filter_map(|h| match h {
                Hook::Exec { command, fatal } => Some((command.clone(), *fatal)),
                Hook::Signal { .. } => None,
            })
            .collect();
        Hooks {
            queue,
            running: None,
            env,
        }
    }

    /// Starts the next command when none runs. An error is the reason dragoman must stop.
    pub(crate) fn supervise(&mut self, outputs: &mut Outputs) -> Result<(), String> {
        while self.running.is_none() {
            let Some((command, fatal)) = self.queue.pop_front() else {
                return Ok(());
            };
            let launch = Launch {
                command: &command,
                env: &self.env,
                die_with_master: true,
                ..Launch::default()
            };
            match command::spawn(&launch) {
                Ok(started) => {
                    info!("hook-master-start (pid {}): {command}", started.pid);
                    if let Some(output) = started.output {
                        outputs.add(output, format!("hook-master-start[{}]", started.pid));
                    }
                    self.running = Some((started.pid, command, fatal));
                }
                Err(e) if fatal => {
                    return Err(format!("hook-master-start: cannot run {command:?}: {e}"))
                }
                Err(e) => error!("hook-master-start: cannot run {command:?}: {e}"),
            }
        }
        Ok(())
    }

    /// A child the loop reaped: `None` if it was no hook's; `Some(Err(why))` when a failed
    /// `exec:` must stop dragoman.
    pub(crate) fn exited(
        &mut self,
        pid: libc::pid_t,
        status: libc::c_int,
    ) -> Option<Result<(), String>> {
        let (_, command, fatal) = self.running.take_if(|(p, _, _)| *p == pid)?;
        let how = describe_exit(status);
        let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        Some(match (ok, fatal) {
            (true, _) => {
                info!("hook-master-start (pid {pid}) {how}: {command}");
                Ok(())
            }
            (false, false) => {
                warn!("hook-master-start (pid {pid}) {how} (safeexec, going on): {command}");
                Ok(())
            }
            (false, true) => Err(format!(
                "hook-master-start (pid {pid}) {how}: {command}; stopping dragoman (use \
                 safeexec: for a command whose failure may be ignored)"
            )),
        })
    }

    /// dragoman stops: the rest is not run, the one running gets SIGTERM.
    pub(crate) fn stop(&mut self) {
        self.queue.clear();
        if let Some((pid, _, _)) = &self.running {
            command::signal_group(*pid, libc::SIGTERM);
        }
    }
}
