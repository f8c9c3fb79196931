//! `exec`: a new process inside a running container. A helper forked from the runtime becomes
//! non-dumpable (the host binary stays out of the container's /proc/<pid>/exe), joins all of
//! init's namespaces at once with setns(pidfd), and forks the process itself, which lands in
//! the container's pid namespace. That process gets the console, credentials, no_new_privs,
//! the close-on-exec sweep and execve exactly as init does (`process`). The runtime is made a
//! child subreaper so the process stays its child to wait for, as runc's exec does.
//!
//! A gated process whose monitor (the caller of `exec`) lacks CAP_SYS_PTRACE, the rootless
//! case, must be traceable by it at its first exec: it becomes dumpable right before its
//! execve, which is safe only while the container is confined by Landlock (required, or the
//! process does not start; see `process::finish_and_exec`). Because it stays the runtime's
//! child (subreaper), the monitor is its ancestor, which Yama's `ptrace_scope=1` asks of a
//! tracer.

use super::console;
use super::container::{wait_child, Container, ContainerError, Runtime};
use super::namespaces::{self, clone_flag};
use super::prepared::Prepared;
use super::process;
use super::state::{self, Status};
use super::sync::Channel;
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Process};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

/// Options of `exec`.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub process: Process,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
    /// The exec gate's hand-over socket for this process (see `CreateOptions::gate_socket`).
    /// The gate's monitor is the caller of `exec`: without CAP_SYS_PTRACE, the process is made
    /// traceable by it (see the module's documentation).
    pub gate_socket: Option<std::os::fd::RawFd>,
    /// Where the runtime writes the process's host PID (4 bytes, native order) as soon as it
    /// is known, before the process execs: a gate monitor must trace it before the hand-over
    /// completes, and `exec` itself returns only after the execve.
    pub pid_notify: Option<std::os::fd::RawFd>,
}

/// Namespaces of `pid` that differ from ours: the ones to join.
fn namespaces_to_join(pid: i32) -> CloneFlags {
    use std::os::unix::fs::MetadataExt;
    let ino = |p: String| std::fs::metadata(p).ok().map(|m| m.ino());
    let mut flags = CloneFlags::empty();
    for (name, t) in [
        ("user", LinuxNamespaceType::User),
        ("mnt", LinuxNamespaceType::Mount),
        ("pid", LinuxNamespaceType::Pid),
        ("net", LinuxNamespaceType::Network),
        ("ipc", LinuxNamespaceType::Ipc),
        ("uts", LinuxNamespaceType::Uts),
        ("cgroup", LinuxNamespaceType::Cgroup),
        ("time", LinuxNamespaceType::Time),
    ] {
        let theirs = ino(format!("/proc/{pid}/ns/{name}"));
        if theirs.is_some() && theirs != ino(format!("/proc/self/ns/{name}")) {
            flags |= clone_flag(t);
        }
    }
    flags
}

impl Runtime {
    /// Runs a process in container `id`. Returns its exit code, or 0 once it started when
    /// detached.
    pub fn exec(&self, id: &str, opts: &ExecOptions) -> Result<i32, ContainerError> {
        let c: Container = self.load(id)?;
        match c.status {
            Status::Running | Status::Created => {}
            Status::Stopped => return Err(ContainerError::NotRunning(id.into())),
            Status::Paused => {
                return Err(ContainerError::Unsupported(format!(
                    "cannot exec in paused container {id}: resume it first"
                )))
            }
        }
        let p = &opts.process;
        if p.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(ContainerError::Unsupported(
                "exec: no command given (args is empty)".into(),
            ));
        }
        if p.terminal().unwrap_or(false) && opts.console_socket.is_none() {
            return Err(ContainerError::TerminalWithoutSocket);
        }
        let pidfd = namespaces::pidfd_open(c.state.pid)
            .map_err(|_| ContainerError::NotRunning(id.into()))?;
        if !state::is_alive(c.state.pid, c.state.pid_start) {
            return Err(ContainerError::NotRunning(id.into()));
        }
        let join = namespaces_to_join(c.state.pid);
        let console = match &opts.console_socket {
            Some(path) => Some(OwnedFd::from(
                std::os::unix::net::UnixStream::connect(path).map_err(|source| {
                    ContainerError::ConsoleSocket {
                        path: path.clone(),
                        source,
                    }
                })?,
            )),
            None => None,
        };
        let spec = self.store.load_spec(id)?;
        // The container's seccomp policy applies to every process in it, as in runc.
        let prepared = Prepared::new(p, spec.linux().as_ref())?
            .with_baseline(super::confine::wants_baseline(&spec))?;
        let landlock =
            super::confine::landlock_rules(&spec).map_err(ContainerError::Unsupported)?;
        // Without CAP_SYS_PTRACE the monitor can seize the process only once it is dumpable.
        let traceable = opts.gate_socket.is_some() && !may_trace_anything();
        if traceable && landlock.is_none() {
            return Err(ContainerError::Unsupported(format!(
                "exec into {id}: the gate's unprivileged monitor needs the process confined by Landlock (the container has no {} annotation); run as root",
                super::confine::LANDLOCK_ANNOTATION
            )));
        }
        let args = HelperArgs {
            landlock: landlock.as_ref(),
            traceable,
            join,
            process: p,
            prepared: &prepared,
            console: console.as_ref(),
            setgroups_allowed: !(c.state.rootless && join.contains(CloneFlags::CLONE_NEWUSER)),
            preserve_fds: opts.preserve_fds,
            gate: opts.gate_socket,
        };
        // SAFETY: prctl with integer arguments; makes orphaned descendants our children, so
        // the process (a grandchild) can be waited for.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let (parent, child) = Channel::pair()?;
        let helper = namespaces::clone3(CloneFlags::empty())?;
        let Some(helper) = helper else {
            drop(parent);
            run_helper(&child, &pidfd, &args);
        };
        drop(child);
        drop(console);
        // The helper joins the container's cgroup before it forks, so the process is limited
        // and counted (ps, kill --all, pause) from its first instruction.
        let joined = match &c.state.cgroup {
            Some(cg) if cg.disabled().is_none() => {
                cg.add_task(helper.pid).map_err(ContainerError::from)
            }
            _ => Ok(()),
        };
        if let Err(e) = joined {
            let _ = namespaces::pidfd_signal(&helper.pidfd, libc::SIGKILL);
            let _ = wait_child(helper.pid);
            return Err(e);
        }
        let pid = parent.proceed().and_then(|()| parent.wait_exec_pid());
        let _ = wait_child(helper.pid);
        let pid = pid?;
        if let Some(fd) = opts.pid_notify {
            // SAFETY: the caller keeps `fd` open for the duration of the call.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let _ = nix::unistd::write(fd, &pid.to_ne_bytes());
        }
        if let Err(e) = parent.wait_exec_outcome() {
            // The process exits right after reporting its failed execve; reaped here, it does
            // not linger as a zombie in the container's pid namespace (whose init could then
            // not finish exiting on `delete`).
            let _ = wait_child(pid);
            return Err(e.into());
        }
        if let Some(f) = &opts.pid_file {
            let abs = if f.is_absolute() {
                f.clone()
            } else {
                std::env::current_dir()
                    .map_err(|source| ContainerError::Io {
                        what: "cwd".into(),
                        source,
                    })?
                    .join(f)
            };
            state::write_atomic(&abs, pid.to_string().as_bytes())?;
        }
        if opts.detach {
            return Ok(0);
        }
        wait_child(pid)
    }
}

/// What the helper needs, prepared in the runtime before the fork.
struct HelperArgs<'a> {
    landlock: Option<&'a super::landlock::LandlockRules>,
    join: CloneFlags,
    process: &'a Process,
    prepared: &'a Prepared,
    console: Option<&'a OwnedFd>,
    setgroups_allowed: bool,
    preserve_fds: u32,
    gate: Option<std::os::fd::RawFd>,
    /// The process must become traceable by an unprivileged gate monitor before its execve.
    traceable: bool,
}

/// Whether this process may ptrace any process of the host's user namespace, non-dumpable
/// ones included (CAP_SYS_PTRACE in the effective set).
fn may_trace_anything() -> bool {
    caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_PTRACE,
    )
    .unwrap_or(false)
}

fn exit_now(code: i32) -> ! {
    // SAFETY: _exit in a forked child skips the runtime's atexit handlers and stdio buffers.
    unsafe { libc::_exit(code) }
}

/// The helper: joins the container and forks the process. Never returns.
fn run_helper(chan: &Channel, pidfd: &OwnedFd, args: &HelperArgs<'_>) -> ! {
    // SAFETY: prctl with integer arguments. Non-dumpable before entering the container: its
    // processes must not open this (host) binary through /proc/<pid>/exe.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
    }
    if let Err(e) = chan.wait_proceed() {
        chan.fail(&e.to_string());
        exit_now(1);
    }
    if let Err(e) = nix::sched::setns(pidfd, args.join) {
        chan.fail(&format!("join the container's namespaces: {e}"));
        exit_now(1);
    }
    match namespaces::clone3(CloneFlags::empty()) {
        Err(e) => {
            chan.fail(&e.to_string());
            exit_now(1);
        }
        Ok(Some(proc_child)) => {
            let _ = chan.exec_pid(proc_child.pid);
            exit_now(0);
        }
        Ok(None) => {}
    }
    let err = start_process(args);
    chan.fail(&err);
    exit_now(127)
}

fn start_process(args: &HelperArgs<'_>) -> String {
    let p = args.process;
    // The helper's death must not kill the process once it runs; the runtime watches it.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) };
    if let Err(e) = args.prepared.apply_rlimits() {
        return e.to_string();
    }
    if p.terminal().unwrap_or(false) {
        if let Some(sock) = args.console {
            let size = p
                .console_size()
                .as_ref()
                .map(|b| (b.height() as u16, b.width() as u16));
            if let Err(e) = console::setup(sock.as_raw_fd(), size, (p.user().uid(), p.user().gid()))
            {
                return e.to_string();
            }
        }
    }
    if let Err(e) = confine(args) {
        return e;
    }
    match process::finish_and_exec(
        p,
        args.prepared,
        args.setgroups_allowed,
        args.preserve_fds,
        args.gate,
        args.traceable,
    ) {
        Err(e) => e.to_string(),
        Ok(never) => match never {},
    }
}

/// Landlock for the process. When it is to become traceable, Landlock is what keeps the
/// container's processes (all in init's domain, enforced by the same kernel from the same
/// rules) from reaching it while it still is the host binary: a kernel that enforces none
/// refuses the session instead.
fn confine(args: &HelperArgs<'_>) -> Result<(), String> {
    let Some(rules) = args.landlock else {
        return Ok(());
    };
    let status = super::landlock::restrict(rules).map_err(|e| e.to_string())?;
    if args.traceable && status.enforcement == super::landlock::Enforcement::None {
        return Err("this kernel enforces no Landlock, which a process traced by an unprivileged exec gate needs (see `lasso doctor`); run as root".into());
    }
    Ok(())
}
