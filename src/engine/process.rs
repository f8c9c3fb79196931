//! The last steps before a container process becomes the user's program, shared by init and by
//! `exec`: credentials (groups, gid, uid), umask, working directory resolved inside the new root,
//! no_new_privs, capabilities, seccomp (last), every descriptor beyond stdio and the preserved
//! ones marked close-on-exec (CVE-2024-21626 class), then execve with a PATH lookup done in the
//! container's environment, not the host's.

use super::capabilities::CapsError;
use super::prepared::Prepared;
use super::seccomp::SeccompError;
use nix::unistd::Gid;
use oci_spec::runtime::Process;
use std::convert::Infallible;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
    #[error("process.args[0] {0:?}: executable file not found in the container's $PATH")]
    NotFound(String),
    #[error("process.cwd {path}: {source}")]
    Cwd { path: PathBuf, source: nix::Error },
    #[error(transparent)]
    Caps(#[from] CapsError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error("{0}")]
    Other(String),
}

fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> ProcessError {
    let what = what.into();
    move |source| ProcessError::Sys { what, source }
}

/// Switches to the process's user and groups. In a user namespace where setgroups is denied
/// (rootless), the supplementary groups are left alone unless the spec asks for some.
pub fn set_user(process: &Process, setgroups_allowed: bool) -> Result<(), ProcessError> {
    let user = process.user();
    let extra: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    if setgroups_allowed {
        set_groups(&extra).map_err(sys("setgroups (process.user.additionalGids)"))?;
    } else if !extra.is_empty() {
        return Err(ProcessError::Other(
            "process.user.additionalGids needs setgroups, which a rootless user namespace denies: remove them".into(),
        ));
    }
    set_gid(user.gid()).map_err(sys(format!("setgid {} (process.user.gid)", user.gid())))?;
    set_uid(user.uid()).map_err(sys(format!("setuid {} (process.user.uid)", user.uid())))?;
    if let Some(mask) = user.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    Ok(())
}

// Credentials are changed with the raw system calls, which change the calling thread only.
// Every caller is a single-threaded process cloned from the runtime (init, an exec'd process),
// so the thread's credentials are the process's. glibc's wrappers would broadcast the change
// to each thread in glibc's list, and a process cloned with clone3 still carries the
// runtime's list: every change signalled threads that do not exist there (an ESRCH tgkill,
// a getpid and a futex wake per call, for nothing).

/// setresgid(gid, gid, gid) for the calling (only) thread.
pub fn set_gid(gid: u32) -> Result<(), nix::Error> {
    // SAFETY: setresgid takes three integer IDs.
    let rc = unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) };
    nix::Error::result(rc).map(drop)
}

/// setresuid(uid, uid, uid) for the calling (only) thread.
pub fn set_uid(uid: u32) -> Result<(), nix::Error> {
    // SAFETY: setresuid takes three integer IDs.
    let rc = unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) };
    nix::Error::result(rc).map(drop)
}

/// setgroups(2) for the calling (only) thread.
fn set_groups(groups: &[Gid]) -> Result<(), nix::Error> {
    let raw: Vec<libc::gid_t> = groups.iter().map(|g| g.as_raw()).collect();
    // SAFETY: the kernel reads `raw.len()` gids from a valid, initialised buffer.
    let rc = unsafe { libc::syscall(libc::SYS_setgroups, raw.len(), raw.as_ptr()) };
    nix::Error::result(rc).map(drop)
}

/// Changes into process.cwd, resolved in the container's root (we are past pivot_root, so no
/// host directory is reachable by path; a descriptor is not used).
pub fn enter_cwd(process: &Process) -> Result<(), ProcessError> {
    let cwd = process.cwd();
    nix::unistd::chdir(cwd.as_path()).map_err(|source| ProcessError::Cwd {
        path: cwd.clone(),
        source,
    })
}

/// Sets no_new_privs when the spec asks: setuid binaries and file capabilities stop granting
/// anything, and an unprivileged process may install seccomp filters.
pub fn no_new_privs(process: &Process) -> Result<(), ProcessError> {
    if process.no_new_privileges().unwrap_or(false) {
        nix::sys::prctl::set_no_new_privs().map_err(sys("prctl(PR_SET_NO_NEW_PRIVS)"))?;
    }
    Ok(())
}

/// Marks every descriptor from 3 + `preserve` upward close-on-exec, so execve drops whatever
/// the runtime held (state dir, sockets, the host's cwd): nothing of the host survives into
/// the container's program.
pub fn cloexec_from(first: u32) -> Result<(), ProcessError> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on descriptors.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc < 0 {
        return Err(sys("close_range")(nix::Error::last()));
    }
    Ok(())
}

fn env_value<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// Resolves args[0] against the container's PATH (or a default one).
pub fn find_program(arg0: &str, env: &[String]) -> Result<PathBuf, ProcessError> {
    if arg0.contains('/') {
        return Ok(PathBuf::from(arg0));
    }
    let path = env_value(env, "PATH")
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(arg0);
        if nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK).is_ok()
            && candidate.is_file()
        {
            return Ok(candidate);
        }
    }
    Err(ProcessError::NotFound(arg0.to_string()))
}

fn cstrings<I: IntoIterator<Item = S>, S: AsRef<[u8]>>(
    items: I,
) -> Result<Vec<CString>, ProcessError> {
    items
        .into_iter()
        .map(|s| {
            CString::new(s.as_ref()).map_err(|_| {
                ProcessError::Other("argument or environment entry holds a NUL byte".into())
            })
        })
        .collect()
}

/// execve of the process; returns only on failure.
pub fn exec(process: &Process) -> Result<Infallible, ProcessError> {
    let args = process.args().clone().unwrap_or_default();
    let env = process.env().clone().unwrap_or_default();
    let program = find_program(&args[0], &env)?;
    let prog = CString::new(program.as_os_str().as_bytes())
        .map_err(|_| ProcessError::Other("program path holds a NUL byte".into()))?;
    let argv = cstrings(&args)?;
    let envp = cstrings(&env)?;
    crate::phases::mark("init-execve");
    nix::unistd::execve(&prog, &argv, &envp).map_err(sys(format!("exec {}", program.display())))
}

/// The hardening tail both init and exec run, in the order of ARCHITECTURE.md: user and
/// groups (keeping the permitted capabilities across setuid), cwd, capabilities, no_new_privs,
/// seccomp, close-on-exec sweep, execve. Without no_new_privs the kernel only accepts a
/// seccomp filter from a holder of CAP_SYS_ADMIN, so then it goes in first, as runc does (the
/// policy must allow the few calls made after it).
///
/// With `gate`, the exec gate's notification filter goes in right after no_new_privs (which
/// lets an unprivileged process install it) and before the baseline, whose denial of ptrace,
/// seccomp and the rest then covers everything the program does; the listener is handed to the
/// monitor over `gate`, and this process waits until the monitor traces it, so that its own
/// execve below is the first exec the gate decides.
///
/// With `traceable`, the process becomes dumpable as the very last step before its execve
/// (see `traceable_by_an_unprivileged_gate`).
pub fn finish_and_exec(
    process: &Process,
    prepared: &Prepared,
    setgroups_allowed: bool,
    preserve_fds: u32,
    gate: Option<std::os::fd::RawFd>,
    traceable: bool,
) -> Result<Infallible, ProcessError> {
    tail(
        process,
        prepared,
        setgroups_allowed,
        preserve_fds,
        gate,
        None,
        traceable,
    )
}

/// `finish_and_exec`, and with `runtime_pidfd` the process dies with the runtime that holds
/// it as its child (see `die_with_parent`).
pub fn finish_and_exec_with(
    process: &Process,
    prepared: &Prepared,
    setgroups_allowed: bool,
    preserve_fds: u32,
    gate: Option<std::os::fd::RawFd>,
    runtime_pidfd: Option<std::os::fd::RawFd>,
) -> Result<Infallible, ProcessError> {
    tail(
        process,
        prepared,
        setgroups_allowed,
        preserve_fds,
        gate,
        runtime_pidfd,
        false,
    )
}

fn tail(
    process: &Process,
    prepared: &Prepared,
    setgroups_allowed: bool,
    preserve_fds: u32,
    gate: Option<std::os::fd::RawFd>,
    runtime_pidfd: Option<std::os::fd::RawFd>,
    traceable: bool,
) -> Result<Infallible, ProcessError> {
    let nnp = process.no_new_privileges().unwrap_or(false);
    if !nnp {
        prepared.apply_seccomp()?;
    }
    prepared.before_setuid()?;
    set_user(process, setgroups_allowed)?;
    if let Some(fd) = runtime_pidfd {
        die_with_parent(fd)?;
    }
    enter_cwd(process)?;
    prepared.apply_caps()?;
    no_new_privs(process)?;
    if let Some(sock) = gate {
        hand_over_gate(sock)?;
        crate::phases::mark("init-handed-over");
    }
    if nnp {
        prepared.apply_seccomp()?;
    }
    crate::phases::mark("init-seccomp");
    cloexec_from(3 + preserve_fds)?;
    if traceable {
        traceable_by_an_unprivileged_gate()?;
    }
    exec(process)
}

/// An `exec`'d process inherits the non-dumpable flag its helper set before entering the
/// container, and its memory still belongs to the host's user namespace: an unprivileged gate
/// monitor (no CAP_SYS_PTRACE there) could not seize it at its first exec notification, and
/// the gate would refuse that exec. So, last of all, it becomes dumpable: every restriction is
/// in force by now (ids, capabilities, no_new_privs, Landlock, both seccomp filters, the
/// listener handed over and closed, every other descriptor close-on-exec), and the caller
/// (`exec`) made sure the container is confined by Landlock. Landlock lets a process in a
/// domain ptrace, open /proc/PID/{exe,mem,fd/N} of, or pidfd_getfd from, only processes in
/// the same domain or one nested in it (landlock(7), "Ptrace restrictions"); every process of
/// the container descends from init and lives in init's domain or below, while this one was
/// forked from the host runtime and got a domain of its own, beside init's, not under it. So
/// none of them can reach it in the microseconds before its execve replaces the host binary.
/// Its monitor, outside any domain and the owner of the container's user namespace, can.
fn traceable_by_an_unprivileged_gate() -> Result<(), ProcessError> {
    nix::sys::prctl::set_dumpable(true).map_err(sys("prctl(PR_SET_DUMPABLE)"))
}

/// Arms SIGKILL for the moment the parent (the runtime, which cloned this process) dies, then
/// checks through `runtime_pidfd` that it has not died already: the signal only covers deaths
/// after it is armed. Must come after the last change of uid/gid (which clears the setting);
/// dropping capabilities, Landlock, seccomp and the unprivileged execve keep it. When this
/// process is a pid namespace's init, its death takes every process of the namespace along.
pub fn die_with_parent(runtime_pidfd: std::os::fd::RawFd) -> Result<(), ProcessError> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } < 0 {
        return Err(sys("prctl(PR_SET_PDEATHSIG)")(nix::Error::last()));
    }
    let mut pfd = libc::pollfd {
        fd: runtime_pidfd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one pollfd for a descriptor inherited from the runtime, without waiting.
    let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
    if rc != 0 {
        return Err(ProcessError::Other(
            "the runtime exited before the container started (it was to die with it)".into(),
        ));
    }
    Ok(())
}

/// The status a process exits with when its setup or execve failed, as a shell reports it:
/// 126 when the program may not be executed (the exec gate refused it: EACCES), else 127.
pub fn failed_exec_status(e: &ProcessError) -> i32 {
    match e {
        ProcessError::Sys {
            source: nix::Error::EACCES,
            ..
        } => 126,
        _ => 127,
    }
}

fn hand_over_gate(sock: std::os::fd::RawFd) -> Result<(), ProcessError> {
    let gate_err = |e: crate::gate::GateError| ProcessError::Other(e.to_string());
    let listener = crate::gate::install_in_child().map_err(gate_err)?;
    // SAFETY: the caller keeps `sock` open until this process execs (it is closed on exec).
    let sock = unsafe { std::os::fd::BorrowedFd::borrow_raw(sock) };
    crate::gate::send_listener(sock, listener).map_err(gate_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_is_found_in_the_containers_path_not_the_hosts() {
        let env = vec!["PATH=/nonexistent-dir".to_string()];
        assert!(matches!(
            find_program("sh", &env),
            Err(ProcessError::NotFound(_))
        ));
        let env = vec!["PATH=/bin".to_string()];
        assert_eq!(find_program("sh", &env).unwrap(), PathBuf::from("/bin/sh"));
    }
}
