//! `lasso exec` and `lasso shell ID`: a process started into a running sandbox. It is not a
//! descendant of the sandbox's gated init, so it gets a gate of its own: the command line is
//! decided first (`policy::decide_argv` with the sandbox's profile: blocked means exit 126 and
//! nothing starts), then the process installs the gate's filter like init does and this CLI
//! process becomes its monitor (the gate's worker threads) until it exits, deciding every
//! exec of the session with the same profile.
//!
//! As an unprivileged user the session is gated the same way: the engine makes the process
//! traceable by this (unprivileged) monitor right before its execve, which Landlock keeps out
//! of the sandbox's reach (see `engine::process::finish_and_exec`); hosts where that cannot
//! hold are refused.
//!
//! The sandbox's own log has one writer (its monitor, another process), so a session writes its
//! entries to a log of its own, `<id>-exec-<pid>`, whose genesis names the same profile and
//! digest; `lasso audit verify` checks it like any other.

use super::control::{exec_process, find, runtime};
use super::gate_link::{AuditSink, PolicyDecider};
use super::record::Record;
use super::{io_err, sys_err, SandboxError};
use crate::audit::{Event, ExecDetails, Genesis, KeyRing, Kind, Outcome, Writer};
use crate::engine::exec::ExecOptions;
use crate::engine::namespaces::pidfd_open;
use crate::paths::Dirs;
use crate::policy::{self, decide_argv, ResolvedProfile};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::sync::Arc;

/// What a session ended with.
pub enum Ended {
    /// The exit status, as a shell reports it.
    Exited(i32),
    /// The command line was refused before anything started: the reason.
    Blocked(String),
}

fn audit_err(e: crate::audit::AuditError) -> SandboxError {
    SandboxError::Audit(e.to_string())
}

/// The profile the sandbox started with, loaded again from where it came from; refused when
/// the file changed since (the digest differs), since its rules would no longer be the ones
/// the sandbox's log names.
pub fn sandbox_profile(dirs: &Dirs, rec: &Record) -> Result<ResolvedProfile, SandboxError> {
    if rec.profile_source.is_empty() {
        return Err(SandboxError::Refused(format!(
            "sandbox {} has no profile on record (started by an older lasso); stop it and start it again",
            rec.id
        )));
    }
    let p = if rec.profile_source.contains('/') {
        policy::ProfileSource::file(std::path::Path::new(&rec.profile_source))
            .and_then(|s| policy::resolve(s, dirs))
    } else {
        policy::load(&rec.profile_source, dirs)
    }
    .map_err(|e| SandboxError::Refused(format!("the sandbox's profile: {e}")))?;
    if !rec.profile_digest.is_empty() && p.digest() != rec.profile_digest {
        return Err(SandboxError::Refused(format!(
            "profile {} changed since sandbox {} started (digest {} now, {} then); restart the sandbox to use the new rules",
            rec.profile_source,
            rec.id,
            p.digest(),
            rec.profile_digest
        )));
    }
    Ok(p)
}

fn open_log(dirs: &Dirs, rec: &Record, p: &ResolvedProfile) -> Result<Writer, SandboxError> {
    let ring = KeyRing::open(&dirs.config).map_err(audit_err)?;
    let mut g = Genesis::new(
        format!("{}-exec-{}", rec.id, std::process::id()),
        p.name.clone(),
        format!("sha256:{}", p.digest()),
    );
    g.agent = Some(rec.agent.clone());
    Writer::create(&dirs.audit_logs, &ring, g).map_err(audit_err)
}

/// Runs `cmd` in sandbox `id` under its profile, gated; with `terminal`, on this terminal.
pub fn run(dirs: &Dirs, id: &str, cmd: &[String], terminal: bool) -> Result<Ended, SandboxError> {
    let rec = find(dirs, id)?;
    if !nix::unistd::geteuid().is_root() {
        unprivileged_gate_possible(id)?;
    }
    let profile = Arc::new(sandbox_profile(dirs, &rec)?);
    let argv: Vec<Vec<u8>> = cmd.iter().map(|a| a.as_bytes().to_vec()).collect();
    let d = decide_argv(&profile, &argv);
    if !d.permits(profile.commands.mode) {
        let writer = Arc::new(open_log(dirs, &rec, &profile)?);
        let reason = format!("{}: {}", d.program, d.reason);
        let details = ExecDetails {
            argv,
            rule: d.rule.map(|r| r.to_string()),
            ..ExecDetails::default()
        };
        let mut v = details.to_value();
        if let Some(o) = v.as_object_mut() {
            o.insert("result".into(), "refused".into());
            o.insert("via".into(), "lasso exec".into());
        }
        writer
            .append(Event::new(Kind::Exec, Outcome::Blocked, reason.clone()).with_details(v))
            .map_err(audit_err)?;
        seal(writer)?;
        return Ok(Ended::Blocked(reason));
    }
    gated(dirs, id, &rec, cmd, terminal, profile).map(Ended::Exited)
}

/// What an unprivileged monitor needs to trace the session (see `engine::exec`): a kernel that
/// enforces Landlock (which keeps the sandbox's processes away from the session while it is
/// dumpable) and a Yama setting that lets a user trace its own descendants. Refused rather
/// than run ungated.
fn unprivileged_gate_possible(id: &str) -> Result<(), SandboxError> {
    let refuse = |why: String| {
        SandboxError::Refused(format!(
            "lasso exec/shell into sandbox {id}: {why}; nothing runs ungated: run it as root, or from inside the sandbox's own session (`lasso attach {id}`)"
        ))
    };
    if crate::engine::landlock::kernel_abi() < 1 {
        return Err(refuse(
            "this kernel enforces no Landlock, which gating a session as an unprivileged user needs (enable it with lsm=...,landlock on the kernel command line; see `lasso doctor`)".into(),
        ));
    }
    let yama = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").ok();
    if let Some(scope) = yama
        .as_deref()
        .filter(|s| yama_forbids_unprivileged_ptrace(s))
    {
        return Err(refuse(format!(
            "kernel.yama.ptrace_scope is {}, which forbids the gate's ptrace for unprivileged users (set it to 1 with `sysctl kernel.yama.ptrace_scope=1`)",
            scope.trim()
        )));
    }
    Ok(())
}

/// Whether Yama's `ptrace_scope` (the file's text) leaves an unprivileged monitor no way to
/// trace its session. 1 (descendants only) is fine: the session stays this process's child
/// (`engine::exec` makes it a subreaper). 2 (admin only) and 3 (none) are not; an unreadable
/// value is taken as the strictest.
fn yama_forbids_unprivileged_ptrace(scope: &str) -> bool {
    scope.trim().parse::<u32>().map_or(true, |n| n >= 2)
}

fn seal(w: Arc<Writer>) -> Result<(), SandboxError> {
    match Arc::try_unwrap(w) {
        Ok(w) => w.seal().map(|_| ()).map_err(audit_err),
        Err(w) => w.sync().map_err(audit_err),
    }
}

fn gated(
    dirs: &Dirs,
    id: &str,
    rec: &Record,
    cmd: &[String],
    terminal: bool,
    profile: Arc<ResolvedProfile>,
) -> Result<i32, SandboxError> {
    let rt = runtime(dirs);
    let process = exec_process(&rt, id, cmd, terminal)?;
    let dir = super::launch::sandbox_dir(dirs, id);
    let (mine, theirs) = super::gate_link::socket_pair()?;
    let (pid_r, pid_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys_err("pipe"))?;
    let counts = dir.join(format!("gate-exec-{}.json", std::process::id()));
    let sink = Arc::new(AuditSink::deferred(&profile, counts));
    let decider = Arc::new(PolicyDecider::cached(profile.clone(), &dirs.runtime));
    let thread_sink = sink.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    // The process waits for the trace before its execve, and `exec` returns only after it:
    // the monitor's side runs in a thread meanwhile.
    let monitor = std::thread::spawn(move || -> Result<(i32, crate::gate::Monitor), String> {
        let mut pid = [0u8; 4];
        let mut f = std::fs::File::from(pid_r);
        // From here until the read returns this thread allocates nothing and holds no lock:
        // the engine forks from this process meanwhile.
        let _ = ready_tx.send(());
        f.read_exact(&mut pid)
            .map_err(|e| format!("the exec'd process's pid: {e}"))?;
        let pid = i32::from_ne_bytes(pid);
        let listener = crate::gate::recv_listener(mine.as_fd()).map_err(|e| e.to_string())?;
        let m = crate::gate::Monitor::start(pid, listener, decider, thread_sink)
            .map_err(|e| e.to_string())?;
        crate::gate::ack_traced(mine.as_fd()).map_err(|e| e.to_string())?;
        Ok((pid, m))
    });
    let _ = ready_rx.recv();
    let (sock, console) = if terminal {
        let sock = dir.join(format!("shell-{}.sock", std::process::id()));
        let l = UnixListener::bind(&sock).map_err(io_err("bind console socket"))?;
        (Some(sock), Some(l))
    } else {
        (None, None)
    };
    let started = rt.exec(
        id,
        &ExecOptions {
            process,
            detach: true,
            pid_file: None,
            console_socket: sock.clone(),
            preserve_fds: 0,
            gate_socket: Some(theirs.as_raw_fd()),
            pid_notify: Some(pid_w.as_raw_fd()),
        },
    );
    drop(theirs);
    drop(pid_w);
    if let Some(s) = &sock {
        let _ = std::fs::remove_file(s);
    }
    let joined = monitor
        .join()
        .map_err(|_| SandboxError::Protocol("the exec gate's thread panicked".into()));
    started?;
    let (pid, m) = joined?.map_err(|e| SandboxError::Protocol(format!("exec gate: {e}")))?;
    // Every fork of the session's start is done: the log (and its flush thread) may open.
    match open_log(dirs, rec, &profile) {
        Ok(w) => sink.set_writer(Arc::new(w)),
        Err(e) => tracing::warn!("sandbox {id}: exec session log: {e}"),
    }
    if let Some(l) = console {
        let pidfd: OwnedFd = pidfd_open(pid).map_err(sys_err("pidfd_open of the shell"))?;
        let (conn, _) = l.accept().map_err(io_err("accept console socket"))?;
        let master = super::attach::recv_fd(&conn)?;
        super::attach::proxy_pty(&master, &pidfd)?;
    }
    let status = super::gate_link::finish(m, pid);
    if let Some(w) = sink.take_writer() {
        seal(w)?;
    }
    status
}

#[cfg(test)]
mod tests {
    use super::yama_forbids_unprivileged_ptrace as forbids;

    #[test]
    fn yama_descendant_tracing_is_enough_for_a_session_and_admin_only_is_not() {
        assert!(!forbids("0\n"));
        assert!(!forbids("1\n"));
        assert!(forbids("2\n"));
        assert!(forbids("3\n"));
        assert!(forbids("garbage"));
    }
}
