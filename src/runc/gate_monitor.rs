//! The gate monitor of a `run.lasso.profile` container: one small process per container,
//! forked by `lasso-runc create` and detached from the client (new session, double fork: the
//! client waits on `create` alone, and the monitor never becomes a child it must reap). It
//! opens the container's own audit log, waits for init's seccomp listener (init sends it after
//! `start`, right before its execve), traces init and decides every exec in the container with
//! the profile (`sandbox::gate_link`), writes one entry per exec, and seals the log and exits
//! when the container's last process is gone. `delete` finds it through a small record in the
//! container's state directory and makes sure it is gone.
//!
//! Owns the monitor process and its record. Deciding is `policy`'s, tracing `gate`'s, the
//! chain `audit`'s; it must not touch the container beyond what the gate does.

use super::egress::{ClientNetns, ContainerNet, Filtered};
use super::profile::Opted;
use crate::audit::{Event, Genesis, KeyRing, Kind, Outcome, Writer};
use crate::engine::namespaces::{pidfd_open, pidfd_signal, pidfd_wait_exit};
use crate::engine::state::{is_alive, process_start_time, write_atomic, StateStore};
use crate::paths::Dirs;
use crate::sandbox::monitor::null_stdio;
use crate::sandbox::{audit_log, gate_link};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The record in the container's state directory.
const RECORD: &str = "lasso-gate.json";
/// How long `delete` lets the monitor seal the log after the container died before it kills it.
const SEAL_GRACE_MS: i32 = 3000;

#[derive(Debug, thiserror::Error)]
pub enum GateMonitorError {
    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
    #[error("the exec gate's monitor for container {id} did not start: {msg}")]
    NotStarted { id: String, msg: String },
}

/// Where `delete` finds the monitor.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct MonitorRecord {
    pub pid: i32,
    pub start: u64,
    /// The audit log file.
    pub log: PathBuf,
    /// The client's network namespace holding lasso's table, if any (for `delete`, should the
    /// monitor not have removed it).
    #[serde(default)]
    pub netns: Option<ClientNetns>,
}

/// The record's path for container `id`.
pub fn record_path(store: &StateStore, id: &str) -> PathBuf {
    store.dir(id).join(RECORD)
}

/// The process a monitor gates (with everything it starts).
pub enum Gated {
    /// The container's init, known once `create` made it.
    Init(i32),
    /// A process `exec` is about to start: the runtime writes its host PID (4 bytes, native
    /// order) on this pipe before the process execs.
    Exec(OwnedFd),
}

/// What the monitor needs; everything is resolved before the fork.
pub struct MonitorPlan {
    /// The container's id.
    pub id: String,
    /// The log's id: the container's for its init, `<id>-exec-<pid>` for an exec session
    /// (the container's log has one writer, its own monitor).
    pub log_id: String,
    pub gated: Gated,
    pub opted: Opted,
    pub dirs: Dirs,
    /// Where `delete` finds the monitor (None for an exec session: it ends with its process,
    /// which `delete` kills with the container).
    pub record: Option<PathBuf>,
    /// The container's state directory, for the gate's exec counts.
    pub state_dir: PathBuf,
    /// The command the container runs, for the log's start entry.
    pub command: Vec<String>,
    /// The container's filtered network namespace, whose resolver and drop reader this
    /// monitor runs (its init's monitor only).
    pub net: Option<Filtered>,
}

/// Forks the detached monitor with `sock` (the gate hand-over's monitor end). Returns once the
/// monitor runs, its log is open and its record is written; or why it could not start.
pub fn spawn(plan: MonitorPlan, sock: UnixStream) -> Result<(), GateMonitorError> {
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|source| {
            GateMonitorError::Sys {
                what: "pipe for the gate monitor".into(),
                source,
            }
        })?;
    // SAFETY: lasso-runc is single-threaded here; the children run our own code only and
    // leave with _exit.
    match unsafe { nix::unistd::fork() }.map_err(|source| GateMonitorError::Sys {
        what: "fork the gate monitor".into(),
        source,
    })? {
        nix::unistd::ForkResult::Child => {
            drop(ready_r);
            let _ = nix::unistd::setsid();
            // SAFETY: as above. The intermediate exits at once: the monitor is re-parented
            // (to the client's subreaper or init) and leads no terminal.
            match unsafe { nix::unistd::fork() } {
                Ok(nix::unistd::ForkResult::Child) => {
                    let code = monitor_main(plan, sock, ready_w);
                    // SAFETY: _exit skips atexit handlers inherited from the CLI.
                    unsafe { libc::_exit(code) }
                }
                // SAFETY: as above.
                _ => unsafe { libc::_exit(0) },
            }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(ready_w);
            drop(sock);
            let _ = nix::sys::wait::waitpid(child, None);
            let mut msg = String::new();
            let _ = std::fs::File::from(ready_r).read_to_string(&mut msg);
            if msg == "ok" {
                Ok(())
            } else {
                Err(GateMonitorError::NotStarted {
                    id: plan.id,
                    msg: if msg.is_empty() {
                        "it exited before it was ready".into()
                    } else {
                        msg
                    },
                })
            }
        }
    }
}

/// Closes every descriptor but stdio and `keep`: the client's pipes (containerd's shim waits
/// for their end), its console socket and whatever it passed to `create` must not live on in
/// a process that outlasts the call.
fn close_inherited(keep: &[RawFd]) {
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: closing descriptors this process owns and no Rust object refers to
            // (the only live objects are `keep`).
            unsafe { libc::close(fd) };
        }
    }
}

fn monitor_main(mut plan: MonitorPlan, sock: UnixStream, ready: OwnedFd) -> i32 {
    // Its argv is still `lasso-runc create ...`; the name tells an operator what it is.
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"lasso-gate".as_ptr(), 0, 0, 0) };
    null_stdio();
    let mut keep = vec![sock.as_raw_fd(), ready.as_raw_fd()];
    if let Gated::Exec(fd) = &plan.gated {
        keep.push(fd.as_raw_fd());
    }
    if let Some(net) = &plan.net {
        keep.extend(net.fds());
    }
    close_inherited(&keep);
    let mut ready = Some(ready);
    let report = |ready: &mut Option<OwnedFd>, msg: &str| {
        if let Some(fd) = ready.take() {
            let _ = std::fs::File::from(fd).write_all(msg.as_bytes());
        }
    };
    let log = match open_log(&plan) {
        Ok(w) => Arc::new(w),
        Err(msg) => {
            report(&mut ready, &msg);
            return 1;
        }
    };
    let client_netns = plan.net.as_ref().and_then(|n| n.client.clone());
    // The resolver listens before `start` can be called: the process may resolve at once.
    let mut net = match plan.net.take().map(|f| f.serve(log.clone())) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(e)) => {
            report(&mut ready, &e.to_string());
            return 1;
        }
    };
    let (pid, start) = (
        std::process::id() as i32,
        process_start_time(std::process::id() as i32).unwrap_or(0),
    );
    let rec = MonitorRecord {
        pid,
        start,
        log: log.path(),
        netns: client_netns,
    };
    if let Some(path) = &plan.record {
        let text = serde_json::to_vec(&rec).unwrap_or_default();
        if let Err(e) = write_atomic(path, &text) {
            report(&mut ready, &format!("write {}: {e}", path.display()));
            end_net(&mut net);
            return 1;
        }
    }
    report(&mut ready, "ok");
    // The decider learns the blocked programs' identities (a walk of the program directories
    // and some hashing): done here, while init still waits for `start` (or `exec` for its
    // process), instead of between the hand-over and the process's first instruction.
    let profile = Arc::new(plan.opted.profile);
    let decider = Arc::new(gate_link::PolicyDecider::new(profile.clone()));
    let sink = Arc::new(gate_link::AuditSink::new(
        log.clone(),
        &profile,
        plan.state_dir.join(gate_link::COUNTS_FILE),
    ));
    let is_exec = matches!(plan.gated, Gated::Exec(_));
    let pid = match plan.gated {
        Gated::Init(pid) => pid,
        Gated::Exec(fd) => {
            let mut b = [0u8; 4];
            match std::fs::File::from(fd).read_exact(&mut b) {
                Ok(()) => i32::from_ne_bytes(b),
                Err(_) => {
                    drop(sink);
                    let _ = log.append(Event::new(
                        Kind::SandboxStop,
                        Outcome::Info,
                        "the exec'd process was never started",
                    ));
                    return seal(log);
                }
            }
        }
    };
    let served = serve(&sock, pid, decider, sink);
    let status = match served {
        Ok(Some(m)) => gate_link::finish(m, pid).unwrap_or(255),
        // Deleted before `start` (or the exec failed): the process never handed its
        // listener over.
        Ok(None) => {
            end_net(&mut net);
            let _ = log.append(Event::new(
                Kind::SandboxStop,
                Outcome::Info,
                if is_exec {
                    "the exec'd process ended before its execve"
                } else {
                    "the container was deleted before it started"
                },
            ));
            return seal(log);
        }
        Err(e) => {
            end_net(&mut net);
            let _ = log.append(Event::new(
                Kind::SandboxStop,
                Outcome::Error,
                format!("exec gate: {e}"),
            ));
            let _ = seal(log);
            return 1;
        }
    };
    // The container is gone: the last drops are read (into the log, before its stop entry) and
    // lasso's table leaves a namespace the client may keep.
    end_net(&mut net);
    match audit_log::stop_shared(log, status) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

fn end_net(net: &mut Option<ContainerNet>) {
    if let Some(n) = net.take() {
        n.finish();
    }
}

/// Receives the process's listener, traces it and lets it go on to its execve. `Ok(None)` when
/// the process died before handing the listener over.
fn serve(
    sock: &UnixStream,
    pid: i32,
    decider: Arc<gate_link::PolicyDecider>,
    sink: Arc<gate_link::AuditSink>,
) -> Result<Option<crate::gate::Monitor>, crate::gate::GateError> {
    let Ok(listener) = crate::gate::recv_listener(sock.as_fd()) else {
        return Ok(None);
    };
    let m = crate::gate::Monitor::start(pid, listener, decider, sink)?;
    crate::gate::ack_traced(sock.as_fd())?;
    Ok(Some(m))
}

fn seal(log: Arc<Writer>) -> i32 {
    match Arc::try_unwrap(log) {
        Ok(w) => i32::from(w.seal().is_err()),
        Err(w) => i32::from(w.sync().is_err()),
    }
}

/// Opens the container's log (genesis with the profile's name and digest) and records that it
/// was created.
fn open_log(plan: &MonitorPlan) -> Result<Writer, String> {
    let dir = &plan.opted.audit_dir;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            format!(
                "cannot create the audit directory {} (annotation run.lasso.audit): {e}",
                dir.display()
            )
        })?;
    let ring = KeyRing::open(&plan.dirs.config).map_err(|e| format!("audit key ring: {e}"))?;
    let p = &plan.opted.profile;
    let mut genesis = Genesis::new(
        plan.log_id.clone(),
        p.name.clone(),
        format!("sha256:{}", p.digest()),
    );
    genesis.agent = Some("oci".into());
    let w = Writer::create(dir, &ring, genesis).map_err(|e| format!("audit log: {e}"))?;
    let (what, init) = match &plan.gated {
        Gated::Init(pid) => ("container created under lasso's profile", Some(*pid)),
        Gated::Exec(_) => ("exec session in a container under lasso's profile", None),
    };
    let details = serde_json::json!({
        "runtime": "lasso-runc",
        "container": plan.id,
        "profile_source": plan.opted.source,
        "init_pid": init,
        "command": plan.command,
    });
    w.append(Event::new(Kind::SandboxStart, Outcome::Info, what).with_details(details))
        .map_err(|e| format!("audit log: {e}"))?;
    Ok(w)
}

/// Reads the monitor record of container `id`, if it has one.
pub fn read_record(path: &Path) -> Option<MonitorRecord> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// After the container is gone: gives its monitor a moment to seal the log, then kills it if
/// it is still there (never a reused PID: the start time must match).
pub fn reap(rec: &MonitorRecord) {
    if !is_alive(rec.pid, rec.start) {
        return;
    }
    let Ok(fd) = pidfd_open(rec.pid) else { return };
    if !is_alive(rec.pid, rec.start) {
        return;
    }
    if !pidfd_wait_exit(&fd, SEAL_GRACE_MS) {
        let _ = pidfd_signal(&fd, libc::SIGKILL);
        let _ = pidfd_wait_exit(&fd, SEAL_GRACE_MS);
    }
}
