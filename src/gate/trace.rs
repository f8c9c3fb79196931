//! The exec-event verifier: the ptrace side of the gate, one exec at a time. For an exec the
//! notification side allowed (or could not read), the worker seizes the calling thread with
//! `PTRACE_O_TRACEEXEC`, answers CONTINUE, and waits for the thread's next stop. At
//! PTRACE_EVENT_EXEC — the new image is loaded but has not run an instruction — what the kernel
//! really executed (/proc/PID/exe by device, inode and content stamp; /proc/PID/cmdline) is
//! compared with what was allowed; a mismatch is decided again on the real image and killed
//! with SIGKILL when blocked. Then the worker detaches: between execs nothing is traced, so
//! forks, clones and exits never wait for the monitor.
//!
//! Why this is race-free:
//! - The thread is seized before CONTINUE is sent, so its exec cannot complete untraced; the
//!   exec event stops the new image before its first instruction (ptrace(2)), whatever another
//!   thread or a process sharing the memory rewrote after the notification was read.
//! - `PTRACE_O_EXITKILL`: should the monitor die while a thread is seized, the thread is killed.
//!   With the monitor gone the listener is closed, and every later exec fails (ENOSYS).
//! - A failed exec has no exec event. `PTRACE_INTERRUPT` right after CONTINUE asks for a stop at
//!   the thread's next return to user space: a successful exec reports its exec event first
//!   (and any trap clears the pending interrupt, kernel/signal.c `ptrace_stop`), a failed one
//!   stops there. Either way the worker's wait is bounded by one exec. Any stop other than the
//!   exec event is on the way back to user space, past the exec, so detaching there is safe;
//!   should the interrupt cut the exec short (an interruptible wait inside it), the call is
//!   restarted as a new notification and gated again.
//! - A non-leader thread's exec is reported under the thread-group id, the former thread id in
//!   PTRACE_GETEVENTMSG; the worker waits for "any of my tracees" (`__WNOTHREAD`), and it has
//!   exactly one. When two threads of a process exec at once, the loser is released by the
//!   kernel without an event (the worker sees ECHILD); the winner is verified by its own worker.
//! - vfork: the child is seized alone; the parent stays suspended until the exec and needs
//!   nothing.

use std::io;
use std::os::unix::ffi::OsStrExt;

use super::identity::Stamp;
use super::monitor::{Pending, Shared};
use super::notify::{fill_in, refuse, respond, tell_agent};
use super::offpath::{exe_stat, Fields};
use super::{procmem, ExecOutcome, ExecRequest, GateVerdict};

const EVENT_EXEC: i32 = 4;
const EVENT_STOP: i32 = 128;

/// Sees one exec notification through: seize, CONTINUE, verify at the exec event or detach at
/// the stop that follows a failed exec.
pub(crate) fn follow(fd: i32, id: u64, tid: i32, pending: Option<Pending>, shared: &Shared) {
    if let Err(e) = seize(tid, shared) {
        match e {
            Seize::Gone => {}
            // Another worker still traces this thread: this notification came from a failed
            // exec's next exec before that worker's interrupt, which withdraws it; the call
            // comes again once the thread is released.
            Seize::Busy => {}
            Seize::Denied(e) => {
                let mut request = pending.map(|p| p.request).unwrap_or_default();
                request.pid = tid;
                let verdict = GateVerdict::block(
                    format!("the exec gate cannot trace pid {tid} to verify its exec: {e}"),
                    None,
                );
                refuse(fd, id, &request, &verdict, shared);
            }
        }
        return;
    }
    // A false answer (the caller was killed, or a signal interrupted its wait and the call
    // will be restarted) needs nothing more: the stop that follows is handled below.
    respond(fd, id, None);
    crate::phases::mark("gate-seized-responded");
    // SAFETY: PTRACE_INTERRUPT takes no pointers; the thread is our tracee.
    unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0) };
    let mut pending = pending;
    // The audit's parent, uid and cwd are read at the exec event, not now: with the
    // synchronous wake-up the caller waits on this CPU for whatever this worker does before
    // it sleeps, and a /proc entry read now or then costs the same.
    loop {
        let mut status = 0;
        // __WNOTHREAD: this worker's tracee only; other workers and the caller's own children
        // are not ours to reap.
        // SAFETY: waitpid writes the status into a local.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL | libc::__WNOTHREAD) };
        if pid < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            // ECHILD: released by the kernel (another thread's exec won); nothing ran.
            return;
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            shared.reaped(pid, status);
            return;
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        let sig = libc::WSTOPSIG(status);
        match status >> 16 {
            EVENT_EXEC => match on_exec(pid, pending.take(), shared) {
                Verified::Run(ran) => {
                    detach(pid, 0);
                    crate::phases::mark("gate-detached");
                    let (req, verdict) = *ran;
                    // Written once the program runs, by the off-path thread: the entry is the
                    // same, the stop shorter.
                    shared.count(ExecOutcome::Ran);
                    shared.offpath.audit(req, verdict, ExecOutcome::Ran);
                    return;
                }
                // Killed: reap it on the next turn.
                Verified::Killed => {}
            },
            // The interrupt's stop (SIGTRAP) or a group-stop: detaching puts a group-stop back
            // in place (ptrace(2), "detach").
            EVENT_STOP => {
                detach(pid, 0);
                return;
            }
            // A signal-delivery stop: deliver the signal unchanged.
            _ => {
                detach(pid, sig);
                return;
            }
        }
    }
}

enum Seize {
    Gone,
    Busy,
    Denied(io::Error),
}

fn seize(tid: i32, shared: &Shared) -> Result<(), Seize> {
    let opts = (libc::PTRACE_O_TRACEEXEC | libc::PTRACE_O_EXITKILL) as libc::c_long;
    for attempt in 0..2 {
        // SAFETY: PTRACE_SEIZE takes its options as the data argument, no pointers.
        if unsafe { libc::ptrace(libc::PTRACE_SEIZE, tid, 0, opts) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ESRCH) => return Err(Seize::Gone),
            Some(libc::EPERM) => {
                let tracer = procmem::status(tid).tracer;
                if shared.is_worker(tracer) {
                    return Err(Seize::Busy);
                }
                // Released by a worker between the attempt and the look: try once more.
                if tracer == 0 && attempt == 0 {
                    continue;
                }
                return Err(Seize::Denied(e));
            }
            _ => return Err(Seize::Denied(e)),
        }
    }
    Err(Seize::Denied(io::Error::from_raw_os_error(libc::EPERM)))
}

fn detach(pid: i32, sig: i32) {
    // SAFETY: PTRACE_DETACH takes the signal to deliver as its data argument, no pointers. By
    // number: nix's Signal has no real-time signals, which must not be dropped.
    unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, sig as libc::c_long) };
}

enum Verified {
    Run(Box<(ExecRequest, GateVerdict)>),
    Killed,
}

/// Verifies one exec event: the tracee may run (to be audited once it does), or was killed.
fn on_exec(pid: i32, pending: Option<Pending>, shared: &Shared) -> Verified {
    crate::phases::mark("gate-exec-event");
    let argv = match procmem::exec_argv(pid) {
        Ok(a) => a,
        Err(_) => return kill_unidentified(pid, shared, "its command line cannot be read"),
    };
    if let Some(p) = pending {
        // One lookup of the pid's /proc entry serves the image's stamp and the audit's cwd.
        let dir = Fields::proc_dir(pid);
        let stamp = match &dir {
            Some(d) => exe_stat(d).map(|st| Stamp::of_stat(&st)),
            None => shared.ident.stamp_running(pid).ok(),
        };
        if stamp == Some(p.expected.image) && p.expected.argv == argv {
            let mut req = p.request;
            req.pid = pid;
            // Read while the thread is stopped: a process that exits at once (`true`) would
            // take its cwd with it before any later reader.
            Fields::read_from(pid, dir.as_ref()).apply(&mut req);
            // A script rewritten or replaced between its check and now would hand the
            // interpreter other code than was allowed: the exec does not go on.
            if let Some(script) = shared.ident.changed_script(pid, &p.expected) {
                let verdict = GateVerdict::block(
                    format!(
                        "script {} changed between its check and its exec",
                        String::from_utf8_lossy(&script)
                    ),
                    None,
                );
                return kill_with(pid, req, verdict, shared);
            }
            return Verified::Run(Box::new((req, p.verdict)));
        }
    }
    let exe = match shared.ident.identify_running(pid, &argv) {
        Ok(exe) => exe,
        Err(_) => return kill_unidentified(pid, shared, "its executable cannot be read"),
    };
    let mut req = ExecRequest {
        pid,
        path: exe.resolved.as_os_str().as_bytes().to_vec(),
        exe,
        argv,
        ..ExecRequest::default()
    };
    fill_in(&mut req);
    let verdict = shared.decider.decide(&req);
    if verdict.allow {
        return Verified::Run(Box::new((req, verdict)));
    }
    kill_with(pid, req, verdict, shared)
}

fn kill_with(pid: i32, req: ExecRequest, verdict: GateVerdict, shared: &Shared) -> Verified {
    tell_agent(pid, &format!("lasso: killed: {}\n", verdict.reason));
    // In the log while the tracee is still stopped, before anyone can see it die.
    shared.count(ExecOutcome::KilledMismatch);
    shared
        .offpath
        .audit_now(&*shared.audit, req, verdict, ExecOutcome::KilledMismatch);
    kill(pid);
    Verified::Killed
}

/// Fails closed: an image the gate cannot identify does not run.
fn kill_unidentified(pid: i32, shared: &Shared, why: &str) -> Verified {
    let req = ExecRequest {
        pid,
        ..ExecRequest::default()
    };
    let verdict = GateVerdict::block(
        format!("the exec gate could not verify pid {pid}: {why}"),
        None,
    );
    shared.count(ExecOutcome::KilledMismatch);
    shared
        .offpath
        .audit_now(&*shared.audit, req, verdict, ExecOutcome::KilledMismatch);
    kill(pid);
    Verified::Killed
}

fn kill(pid: i32) {
    // SIGKILL to a ptrace-stopped tracee ends it without it ever leaving the stop: the new
    // image never runs. SAFETY: kill(2) with a pid we trace.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}
