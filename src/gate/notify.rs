//! The notification side of the gate: receives each exec the filter stopped, reads its path and
//! argv from the caller's memory, identifies the executable, asks the decider and answers —
//! `EACCES` when blocked; when allowed, hands the call to `trace`, which seizes the caller,
//! answers CONTINUE and verifies the exec event against the expectation (which is what makes
//! CONTINUE safe; see seccomp_unotify(2) on why it is not on its own).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::filter::{
    ARCH_I386, ARCH_X86_64, NR_EXECVE, NR_EXECVEAT, NR_I386_EXECVE, NR_I386_EXECVEAT,
    NR_X32_EXECVE, NR_X32_EXECVEAT,
};
use super::identity::{ExecPath, Viewpoint};
use super::monitor::{Pending, Shared};
use super::{procmem, trace, ExecOutcome, ExecRequest, GateVerdict};

const AT_EMPTY_PATH: u64 = 0x1000;
const AT_FDCWD: i32 = -100;

/// One worker's loop: serves notifications until every process under the filter is gone
/// (the listener then reports POLLHUP). Workers block in RECV itself, which since kernel 6.6
/// returns when the filter loses its last user; with `poll_first` (older kernels, one worker)
/// a poll waits for a notification or the end before each RECV.
pub(crate) fn serve(fd: i32, shared: &Shared, poll_first: bool) -> io::Result<()> {
    loop {
        if poll_first {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd on the stack.
            if unsafe { libc::poll(&mut pfd, 1, -1) } < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if pfd.revents & libc::POLLIN == 0 {
                return Ok(());
            }
        }
        // SAFETY: the kernel requires a zeroed seccomp_notif and fills it in.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: RECV writes one seccomp_notif into `req`.
        if unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) } != 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                // ENOENT: the caller died (or was killed) before we took its notification, or
                // no process is left to notify.
                Some(libc::ENOENT) | Some(libc::EINTR) => {
                    if hung_up(fd) {
                        return Ok(());
                    }
                    continue;
                }
                _ => return Err(e),
            }
        }
        handle(fd, &req, shared);
    }
}

fn hung_up(fd: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd on the stack, zero timeout.
    let r = unsafe { libc::poll(&mut pfd, 1, 0) };
    r > 0 && pfd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}

/// Whether the notification `id` is still pending, i.e. the pid in it still names the very
/// process that made the call and not a recycled one (seccomp_unotify(2), NOTIF_ID_VALID).
fn still_valid(fd: i32, id: u64) -> bool {
    // SAFETY: ID_VALID reads one u64 from the pointer.
    unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 }
}

/// Answers notification `id`: the errno, or go on with the call. Returns false when the caller
/// was no longer waiting (ENOENT: it was killed, or a signal interrupted the wait and the call
/// will be restarted as a new notification).
pub(crate) fn respond(fd: i32, id: u64, errno: Option<i32>) -> bool {
    let resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: errno.map_or(0, |e| -e),
        flags: if errno.is_some() {
            0
        } else {
            libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32
        },
    };
    // SAFETY: SEND reads one seccomp_notif_resp.
    unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) == 0 }
}

struct Call {
    dirfd: Option<i32>,
    path_ptr: u64,
    argv_ptr: u64,
    empty_path: bool,
    width: usize,
}

fn decode(req: &libc::seccomp_notif) -> Option<Call> {
    let d = &req.data;
    let a = d.args;
    let (width, at) = match (d.arch, d.nr) {
        (ARCH_X86_64, NR_EXECVE) => (8, false),
        (ARCH_X86_64, NR_EXECVEAT) => (8, true),
        (ARCH_X86_64, NR_X32_EXECVE) => (4, false),
        (ARCH_X86_64, NR_X32_EXECVEAT) => (4, true),
        (ARCH_I386, NR_I386_EXECVE) => (4, false),
        (ARCH_I386, NR_I386_EXECVEAT) => (4, true),
        _ => return None,
    };
    let arg = |i: usize| {
        if width == 4 {
            a[i] & 0xffff_ffff
        } else {
            a[i]
        }
    };
    Some(if at {
        let dirfd = arg(0) as u32 as i32;
        Call {
            dirfd: (dirfd != AT_FDCWD).then_some(dirfd),
            path_ptr: arg(1),
            argv_ptr: arg(2),
            empty_path: arg(4) & AT_EMPTY_PATH != 0,
            width,
        }
    } else {
        Call {
            dirfd: None,
            path_ptr: arg(0),
            argv_ptr: arg(1),
            empty_path: false,
            width,
        }
    })
}

fn handle(fd: i32, req: &libc::seccomp_notif, shared: &Shared) {
    crate::phases::mark("gate-notified");
    let pid = req.pid as i32;
    let Some(call) = decode(req) else {
        // Not an exec entry point this gate knows: whatever the kernel loads is decided at the
        // exec event.
        trace::follow(fd, req.id, pid, None, shared);
        return;
    };
    let mem = procmem::Remote(pid);
    let read = procmem::read_exec_args(&mem, call.path_ptr, call.argv_ptr, call.width);
    let Ok((path, argv)) = read else {
        // Unreadable arguments (EFAULT for the kernel too), or memory this monitor may not read:
        // should the exec succeed after all, the exec event decides on what really ran.
        if still_valid(fd, req.id) {
            trace::follow(fd, req.id, pid, None, shared);
        }
        return;
    };
    let how = match (call.empty_path && path.is_empty(), call.dirfd) {
        (true, Some(dfd)) => ExecPath::Fd(dfd),
        _ => ExecPath::Path {
            dirfd: call.dirfd,
            path: &path,
        },
    };
    let ident = &shared.ident;
    // A command line allowed before, on the same unchanged file: the kept answer (see `memo`
    // for why the exec event keeps this sound).
    if let (Some(memo), ExecPath::Path { dirfd: None, .. }) = (&shared.memo, how) {
        if let Some(hit) = memo.lookup(&path, &argv) {
            if still_valid(fd, req.id) {
                let pending = Pending {
                    request: ExecRequest {
                        pid,
                        path,
                        exe: hit.exe,
                        argv,
                        ..ExecRequest::default()
                    },
                    verdict: hit.verdict,
                    expected: hit.expected,
                };
                trace::follow(fd, req.id, pid, Some(pending), shared);
            }
            return;
        }
    }
    let mut found = ident.identify_exec(ident.viewpoint(pid), how, &argv);
    // Not found from the sandbox's root (the path, or a script's interpreter): the caller may
    // stand in another root (see `Identifier::with_root`); its own is asked before the call is
    // answered with the error.
    if matches!(&found, Err(e) if not_found(e)) {
        found = ident.identify_exec(Viewpoint::own(pid), how, &argv);
    }
    let (exe, expected) = match found {
        Ok(x) => x,
        Err(e) => {
            // The path names no file in the caller's view (an `execvp` walking PATH): the kernel
            // would fail the call the same way, so it is answered here without a trace. Other
            // failures are left to the kernel, with the exec event deciding should it succeed.
            match e.raw_os_error() {
                Some(n) if not_found(&e) => {
                    respond(fd, req.id, Some(n));
                }
                _ if still_valid(fd, req.id) => trace::follow(fd, req.id, pid, None, shared),
                _ => {}
            }
            return;
        }
    };
    let mut request = ExecRequest {
        pid,
        path,
        exe,
        argv,
        ..ExecRequest::default()
    };
    // Everything above was read from the process the notification names only if the
    // notification is still pending now: a pid cannot be recycled while its owner waits here.
    if !still_valid(fd, req.id) {
        return;
    }
    let verdict = shared.decider.decide(&request);
    crate::phases::mark("gate-decided");
    if let (Some(memo), None) = (&shared.memo, call.dirfd) {
        memo.remember(
            &request.path,
            &request.argv,
            &request.exe,
            &expected,
            &verdict,
        );
    }
    if verdict.allow {
        // The audit's parent, uid and cwd are read at the exec event, while the thread is
        // traced and stopped (a tracee's pid cannot be recycled).
        let pending = Pending {
            request,
            verdict,
            expected,
        };
        trace::follow(fd, req.id, pid, Some(pending), shared);
    } else {
        fill_in(&mut request);
        if still_valid(fd, req.id) {
            refuse(fd, req.id, &request, &verdict, shared);
        }
    }
}

/// The lookup errors the kernel's own exec would give for the same path.
fn not_found(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::ENAMETOOLONG)
    )
}

/// The parent, effective uid and working directory of the caller, for the audit.
pub(crate) fn fill_in(request: &mut ExecRequest) {
    (request.ppid, request.uid) = procmem::parent_and_uid(request.pid);
    request.cwd = procmem::cwd(request.pid);
}

/// Refuses one exec with EACCES, tells the agent why and audits it.
pub(crate) fn refuse(
    fd: i32,
    id: u64,
    request: &ExecRequest,
    verdict: &GateVerdict,
    shared: &Shared,
) {
    tell_agent(
        request.pid,
        &format!("lasso: blocked: {}\n", verdict.reason),
    );
    shared.count(ExecOutcome::Refused);
    // In the log before the caller sees EACCES.
    shared.offpath.audit_now(
        &*shared.audit,
        request.clone(),
        verdict.clone(),
        ExecOutcome::Refused,
    );
    respond(fd, id, Some(libc::EACCES));
}

const PIDFD_THREAD: u32 = libc::O_EXCL as u32;

/// Writes one line to the target's stderr, through a duplicate of its own open file description
/// (pidfd_getfd), never by reopening /proc/PID/fd/2: a reopen by the root monitor would get
/// write access the sandbox never had (fd 2 opened read-only on a root-owned file) and could
/// block forever on a FIFO. The duplicate carries the sandbox's own access mode; the write is
/// skipped unless poll says it cannot block, and it is shorter than PIPE_BUF so it is atomic.
pub(crate) fn tell_agent(pid: i32, line: &str) {
    let line = &line.as_bytes()[..line.len().min(512)];
    let pidfd = [PIDFD_THREAD, 0].into_iter().find_map(|flags| {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, flags) };
        // SAFETY: a non-negative result is a fresh descriptor that we now own.
        (r >= 0).then(|| unsafe { OwnedFd::from_raw_fd(r as i32) })
    });
    let Some(pidfd) = pidfd else { return };
    // SAFETY: pidfd_getfd duplicates descriptor 2 of the target into ours, or returns -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), 2, 0) };
    if r < 0 {
        return;
    }
    // SAFETY: a fresh descriptor that we now own.
    let err = unsafe { OwnedFd::from_raw_fd(r as i32) };
    let mut pfd = libc::pollfd {
        fd: err.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    if unsafe { libc::poll(&mut pfd, 1, 0) } == 1 && pfd.revents & libc::POLLOUT != 0 {
        // SAFETY: writes `line` from our memory; MSG-less write on whatever fd 2 is. A broken
        // pipe gives EPIPE here because the Rust runtime ignores SIGPIPE.
        unsafe { libc::write(err.as_raw_fd(), line.as_ptr().cast(), line.len()) };
    }
}
