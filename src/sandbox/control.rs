//! Acting on running sandboxes from any lasso process: list them (removing the leftovers of a
//! monitor that died, detected by PID *and* start time), stop them (TERM, a grace period, then
//! KILL, through a pidfd so a recycled PID is never signalled), and build the process of a
//! command run inside (`gated_exec` runs it).

use super::launch::{cleanup_sandbox, engine_root, sandbox_dir};
use super::record::{Record, FILE};
use super::SandboxError;
use crate::engine::container::Runtime;
use crate::engine::namespaces::{pidfd_open, pidfd_signal, pidfd_wait_exit};
use crate::engine::state::is_alive;
use crate::paths::Dirs;
use std::time::Duration;

pub(crate) fn runtime(dirs: &Dirs) -> Runtime {
    Runtime::new(engine_root(dirs))
}

/// Removes a sandbox whose monitor is gone: kills what is left in it, its pasta, its cgroup,
/// its state and its directory.
pub fn remove_leftovers(dirs: &Dirs, id: &str) {
    let dir = sandbox_dir(dirs, id);
    // A daemonised pasta is no child of anything of ours and outlives the monitor that held
    // it; it may even still be starting. It is found by its command line (unless the sandbox
    // had no network, so no pasta).
    let offline = Record::load(&dir.join(FILE)).is_ok_and(|r| r.network == "none");
    if !offline {
        crate::net::pasta::stop_all_started_with(&dir.join(super::network::PASTA_PIDFILE));
    }
    cleanup_sandbox(&runtime(dirs), id, &dir);
}

/// The ids that have a sandbox directory.
fn ids(dirs: &Dirs) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(&dirs.runtime)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| crate::plan::SandboxId::parse(n).is_some())
        .collect();
    out.sort();
    out
}

/// Removes the leftovers of every sandbox whose monitor died; returns their ids. A directory
/// without a record is being prepared by a live lasso (the record is written first), or is
/// debris from a crash during planning: it is removed only when it holds no engine state.
pub fn remove_dead(dirs: &Dirs) -> Vec<String> {
    let mut removed = Vec::new();
    for id in ids(dirs) {
        let path = sandbox_dir(dirs, &id).join(FILE);
        match Record::load(&path) {
            Ok(r) if r.monitor_alive() => {}
            Ok(_) => {
                remove_leftovers(dirs, &id);
                removed.push(id);
            }
            Err(_) => {}
        }
    }
    removed
}

/// The live sandboxes, after removing dead ones.
pub fn list(dirs: &Dirs) -> Vec<Record> {
    remove_dead(dirs);
    ids(dirs)
        .into_iter()
        .filter_map(|id| Record::load(&sandbox_dir(dirs, &id).join(FILE)).ok())
        .filter(Record::monitor_alive)
        .collect()
}

/// The live record of `id`; a dead one is cleaned up and reported as not running.
pub fn find(dirs: &Dirs, id: &str) -> Result<Record, SandboxError> {
    if crate::plan::SandboxId::parse(id).is_none() {
        return Err(SandboxError::NotFound { id: id.into() });
    }
    let r = Record::load(&sandbox_dir(dirs, id).join(FILE))
        .map_err(|_| SandboxError::NotFound { id: id.into() })?;
    if !r.monitor_alive() {
        remove_leftovers(dirs, id);
        return Err(SandboxError::NotRunning { id: id.into() });
    }
    Ok(r)
}

/// Stops `id`: SIGTERM to its init, `grace` to exit, then SIGKILL; waits for the monitor to
/// clean up (and cleans up itself if the monitor does not).
pub fn stop(dirs: &Dirs, id: &str, grace: Duration) -> Result<(), SandboxError> {
    let r = find(dirs, id)?;
    if r.init_alive() {
        if let Ok(fd) = pidfd_open(r.init_pid) {
            // Checked after opening the pidfd: from here the fd names this very process.
            if is_alive(r.init_pid, r.init_start) {
                let _ = pidfd_signal(&fd, libc::SIGTERM);
                if !pidfd_wait_exit(&fd, grace.as_millis() as i32) {
                    let _ = pidfd_signal(&fd, libc::SIGKILL);
                    pidfd_wait_exit(&fd, 10_000);
                }
            }
        }
    }
    if let Ok(fd) = pidfd_open(r.monitor_pid) {
        if is_alive(r.monitor_pid, r.monitor_start) {
            pidfd_wait_exit(&fd, 10_000);
        }
    }
    if sandbox_dir(dirs, id).exists() && !r.monitor_alive() {
        remove_leftovers(dirs, id);
    }
    Ok(())
}

/// The process of an exec: the sandbox's own process settings with another command.
pub(crate) fn exec_process(
    rt: &Runtime,
    id: &str,
    cmd: &[String],
    terminal: bool,
) -> Result<oci_spec::runtime::Process, SandboxError> {
    let spec = rt
        .store
        .load_spec(id)
        .map_err(|e| SandboxError::Protocol(e.to_string()))?;
    let mut p = spec
        .process()
        .clone()
        .ok_or_else(|| SandboxError::Protocol("the sandbox's spec has no process".into()))?;
    p.set_args(Some(cmd.to_vec()));
    p.set_terminal(Some(terminal));
    // The session's terminal starts at the user's size, as `up`'s does.
    p.set_console_size(
        terminal
            .then(|| super::attach::window_size(0))
            .flatten()
            .and_then(|(rows, cols)| crate::plan::console_size(rows, cols)),
    );
    Ok(p)
}

// Running a command inside is `gated_exec`'s: every process started into a sandbox is gated.
