//! The exec-event verifier: the ptrace side of the gate. It seizes the sandbox's init, follows
//! every fork, vfork and clone, and at each PTRACE_EVENT_EXEC — when the new image is loaded but
//! has not run an instruction — compares what the kernel really executed (/proc/PID/exe by device,
//! inode and content stamp; /proc/PID/cmdline) with what the notification side allowed. A
//! mismatch (the path or argv was rewritten after it was read, or the exec never passed the
//! notification) is decided again on the real image; a blocked one is killed with SIGKILL.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::sync::mpsc::Sender;

use nix::sys::ptrace::{self, Options};
use nix::unistd::Pid;

use super::monitor::Shared;
use super::notify::tell_agent;
use super::{procmem, ExecOutcome, ExecRequest, GateVerdict};

const EVENT_FORK: i32 = 1;
const EVENT_VFORK: i32 = 2;
const EVENT_CLONE: i32 = 3;
const EVENT_EXEC: i32 = 4;
const EVENT_STOP: i32 = 128;

/// Seizes `root`, reports the outcome on `seized`, then handles events until no tracee is left.
/// Returns the root's raw wait status.
pub(crate) fn trace(
    root: i32,
    shared: &Shared,
    seized: Sender<io::Result<()>>,
) -> io::Result<Option<i32>> {
    let opts = Options::PTRACE_O_TRACEEXEC
        | Options::PTRACE_O_TRACEFORK
        | Options::PTRACE_O_TRACEVFORK
        | Options::PTRACE_O_TRACECLONE
        | Options::PTRACE_O_EXITKILL;
    if let Err(e) = ptrace::seize(Pid::from_raw(root), opts) {
        let _ = seized.send(Err(io::Error::from(e)));
        return Err(io::Error::from(e));
    }
    // SAFETY: gettid has no arguments.
    shared.tracer_tid.store(
        unsafe { libc::gettid() },
        std::sync::atomic::Ordering::Release,
    );
    let _ = seized.send(Ok(()));
    let mut root_status = None;
    loop {
        let mut status = 0;
        // __WNOTHREAD: only this thread's tracees. Other children of the monitor process (the
        // engine's helpers, a test harness's commands) belong to other threads' waits.
        // SAFETY: waitpid writes the status into a local.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL | libc::__WNOTHREAD) };
        if pid < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => return Ok(root_status),
                _ => return Err(e),
            }
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            if pid == root {
                root_status = Some(status);
            }
            shared.pending_take(pid);
            continue;
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        let sig = libc::WSTOPSIG(status);
        let event = status >> 16;
        let p = Pid::from_raw(pid);
        // ESRCH from any request below means the tracee was killed meanwhile; its exit status
        // comes next from waitpid, so errors of the requests are ignored.
        match event {
            EVENT_EXEC => {
                if on_exec(pid, shared) {
                    let _ = ptrace::cont(p, None);
                }
            }
            EVENT_FORK | EVENT_VFORK | EVENT_CLONE => {
                let _ = ptrace::cont(p, None);
            }
            EVENT_STOP if sig == libc::SIGTRAP => {
                // The first stop of a newly auto-attached child.
                let _ = ptrace::cont(p, None);
            }
            EVENT_STOP => {
                // A group-stop (SIGSTOP, SIGTSTP, ...): stay stopped as the job control asked,
                // but keep reporting (PTRACE_LISTEN), as ptrace(2) prescribes for seized tracees.
                // SAFETY: PTRACE_LISTEN takes no pointers.
                unsafe { libc::ptrace(libc::PTRACE_LISTEN, pid, 0, 0) };
            }
            _ => {
                // A signal-delivery stop: deliver the signal unchanged (by number: nix's Signal
                // has no real-time signals, which must not be dropped).
                // SAFETY: PTRACE_CONT takes the signal number as its data argument, no pointers.
                unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, sig as libc::c_long) };
            }
        }
    }
}

/// Verifies one exec event; returns whether the tracee may go on (it was killed otherwise).
fn on_exec(pid: i32, shared: &Shared) -> bool {
    let p = Pid::from_raw(pid);
    // The thread that called execve; differs from `pid` when a non-leader thread exec'd.
    let former = ptrace::getevent(p).map(|t| t as i32).unwrap_or(pid);
    let pending = shared.pending_take(former);
    let argv = match procmem::cmdline(pid) {
        Ok(a) => a,
        Err(_) => return kill_unidentified(pid, shared, "its command line cannot be read"),
    };
    if let (Some(p), Ok(stamp)) = (&pending, shared.ident.stamp_running(pid)) {
        if p.expected.image == stamp && p.expected.argv == argv {
            let mut req = p.request.clone();
            req.pid = pid;
            shared.audit.exec(&req, &p.verdict, ExecOutcome::Ran);
            shared.count(ExecOutcome::Ran);
            return true;
        }
    }
    let exe = match shared.ident.identify_running(pid, &argv) {
        Ok(exe) => exe,
        Err(_) => return kill_unidentified(pid, shared, "its executable cannot be read"),
    };
    let status = procmem::status(pid);
    let req = ExecRequest {
        pid,
        ppid: status.ppid,
        uid: status.euid,
        cwd: procmem::cwd(pid),
        path: exe.resolved.as_os_str().as_bytes().to_vec(),
        exe,
        argv,
    };
    let verdict = shared.decider.decide(&req);
    if verdict.allow {
        shared.audit.exec(&req, &verdict, ExecOutcome::Ran);
        shared.count(ExecOutcome::Ran);
        return true;
    }
    tell_agent(pid, &format!("lasso: killed: {}\n", verdict.reason));
    kill(pid);
    shared
        .audit
        .exec(&req, &verdict, ExecOutcome::KilledMismatch);
    shared.count(ExecOutcome::KilledMismatch);
    false
}

/// Fails closed: an image the gate cannot identify does not run.
fn kill_unidentified(pid: i32, shared: &Shared, why: &str) -> bool {
    kill(pid);
    let req = ExecRequest {
        pid,
        ..ExecRequest::default()
    };
    let verdict = GateVerdict::block(
        format!("the exec gate could not verify pid {pid}: {why}"),
        None,
    );
    shared
        .audit
        .exec(&req, &verdict, ExecOutcome::KilledMismatch);
    shared.count(ExecOutcome::KilledMismatch);
    false
}

fn kill(pid: i32) {
    // SIGKILL to a ptrace-stopped tracee ends it without it ever leaving the stop: the new
    // image never runs. SAFETY: kill(2) with a pid we trace.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}
