//! Namespaces of a new container: which ones the spec asks to create (clone3 flags) or join
//! (opened by path, entered with setns), the clone3 call itself (fork-like, returning a pidfd),
//! and the uid/gid maps the runtime writes for init's new user namespace (directly for a single
//! ID, through newuidmap/newgidmap for ranges when unprivileged).

use nix::sched::CloneFlags;
use oci_spec::runtime::{Linux, LinuxIdMapping, LinuxNamespaceType};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("linux.namespaces: cannot open {typ} namespace {path}: {source}")]
    Open {
        typ: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("join {typ} namespace {path}: {source}")]
    Join {
        typ: String,
        path: PathBuf,
        source: nix::Error,
    },
    #[error("clone3: {0} (user namespaces disabled? check /proc/sys/user/max_user_namespaces)")]
    Clone(nix::Error),
    #[error(transparent)]
    Idmap(#[from] super::idmap::IdmapError),
    #[error("{file} grants user {user} no range holding host IDs {first}-{last} (linux.{field}): add one, e.g. `usermod --add-{flag} {first}-{last} {user}` (a line `{user}:{first}:{size}` in {file})")]
    SubIds {
        file: &'static str,
        user: String,
        field: &'static str,
        flag: &'static str,
        first: u32,
        last: u32,
        size: u32,
    },
    #[error("write {file} of pid {pid}: {message}")]
    Map {
        file: &'static str,
        pid: i32,
        message: String,
    },
}

pub fn clone_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// What the spec asks of namespaces.
#[derive(Debug)]
pub struct Plan {
    /// Namespaces created by clone3.
    pub new: CloneFlags,
    /// Namespaces joined by path (user first, then the others; pid is joined by the runtime
    /// before clone3, since setns(CLONE_NEWPID) only affects children).
    pub join: Vec<(CloneFlags, PathBuf, OwnedFd)>,
}

impl Plan {
    pub fn from_spec(linux: Option<&Linux>) -> Result<Plan, NamespaceError> {
        let mut plan = Plan {
            new: CloneFlags::empty(),
            join: Vec::new(),
        };
        let list = linux
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        for ns in &list {
            let flag = clone_flag(ns.typ());
            match ns.path() {
                None => plan.new |= flag,
                Some(path) => {
                    let f = File::open(path).map_err(|source| NamespaceError::Open {
                        typ: ns.typ().to_string(),
                        path: path.clone(),
                        source,
                    })?;
                    plan.join.push((flag, path.clone(), OwnedFd::from(f)));
                }
            }
        }
        // The user namespace owns the others: join it first.
        plan.join
            .sort_by_key(|(f, _, _)| !f.contains(CloneFlags::CLONE_NEWUSER));
        Ok(plan)
    }

    /// Which namespaces the container has of its own (created or joined), for sysctl checks.
    pub fn sysctl_namespaces(&self) -> super::sysctl::Namespaces {
        let has = |f: CloneFlags| self.new.contains(f) || self.join.iter().any(|(j, _, _)| *j == f);
        super::sysctl::Namespaces {
            net: has(CloneFlags::CLONE_NEWNET),
            ipc: has(CloneFlags::CLONE_NEWIPC),
            uts: has(CloneFlags::CLONE_NEWUTS),
        }
    }

    pub fn new_user(&self) -> bool {
        self.new.contains(CloneFlags::CLONE_NEWUSER)
    }

    /// Joins the pid namespace given by path (in the runtime, before clone3).
    pub fn join_pid(&self) -> Result<(), NamespaceError> {
        for (flag, path, fd) in &self.join {
            if *flag == CloneFlags::CLONE_NEWPID {
                nix::sched::setns(fd, *flag).map_err(|source| NamespaceError::Join {
                    typ: "pid".into(),
                    path: path.clone(),
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// Joins the other namespaces given by path (in the child).
    pub fn join_others(&self) -> Result<(), NamespaceError> {
        for (flag, path, fd) in &self.join {
            if *flag == CloneFlags::CLONE_NEWPID {
                continue;
            }
            nix::sched::setns(fd, *flag).map_err(|source| NamespaceError::Join {
                typ: format!("{flag:?}"),
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// A forked child: its host PID and a pidfd (signals through it cannot hit a recycled PID).
#[derive(Debug)]
pub struct Child {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Forks with `flags` (new namespaces) like fork(2): returns `None` in the child.
/// The caller must be single-threaded (the child gets a copy of only this thread).
pub fn clone3(flags: CloneFlags) -> Result<Option<Child>, NamespaceError> {
    clone3_into(flags, None)
}

/// `clone3`, the child starting in the cgroup2 directory `cgroup` (an open descriptor of it)
/// when given: `CLONE_INTO_CGROUP` takes the cgroup migration lock only for reading, where a
/// later write of the child's PID to `cgroup.procs` would wait an RCU grace period for it.
pub fn clone3_into(
    flags: CloneFlags,
    cgroup: Option<std::os::fd::RawFd>,
) -> Result<Option<Child>, NamespaceError> {
    /// linux/sched.h; not in every libc release.
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let mut pidfd: libc::c_int = -1;
    let into = cgroup.map_or(0, |_| CLONE_INTO_CGROUP);
    let args = CloneArgs {
        flags: flags.bits() as u64 | libc::CLONE_PIDFD as u64 | into,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.map_or(0, |fd| fd as u64),
        ..Default::default()
    };
    // SAFETY: clone3 without a stack behaves like fork: the child continues on a copy of this
    // stack. `args` is valid for the call and `pidfd` receives the descriptor in the parent.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match rc {
        -1 => Err(NamespaceError::Clone(nix::Error::last())),
        0 => Ok(None),
        pid => Ok(Some(Child {
            pid: pid as i32,
            // SAFETY: the kernel wrote a fresh descriptor that nothing else owns.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        })),
    }
}

/// Writes uid_map, setgroups and gid_map of `pid`'s new user namespace.
pub fn write_id_maps(
    pid: i32,
    uids: &[LinuxIdMapping],
    gids: &[LinuxIdMapping],
) -> Result<(), NamespaceError> {
    let euid = nix::unistd::geteuid().as_raw();
    let single =
        |m: &[LinuxIdMapping], own: u32| m.len() == 1 && m[0].size() == 1 && m[0].host_id() == own;
    let privileged = euid == 0;
    if privileged || single(uids, euid) {
        write_map(pid, "uid_map", uids)?;
    } else {
        check_subids(SubIdKind::Uid, euid, uids)?;
        helper_map(pid, "newuidmap", "uid_map", uids)?;
    }
    let egid = nix::unistd::getegid().as_raw();
    if privileged {
        write_map(pid, "gid_map", gids)?;
    } else if single(gids, egid) {
        // An unprivileged writer may map its own gid only after giving up setgroups, which
        // could otherwise drop a group that denies access (user_namespaces(7)).
        std::fs::write(format!("/proc/{pid}/setgroups"), "deny").map_err(|e| {
            NamespaceError::Map {
                file: "setgroups",
                pid,
                message: e.to_string(),
            }
        })?;
        write_map(pid, "gid_map", gids)?;
    } else {
        check_subids(SubIdKind::Gid, egid, gids)?;
        helper_map(pid, "newgidmap", "gid_map", gids)?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum SubIdKind {
    Uid,
    Gid,
}

/// Checks, before newuidmap/newgidmap run, that the caller's /etc/subuid or /etc/subgid ranges
/// hold every host ID the spec maps (its own ID aside, which the helpers always allow): the
/// helpers' own refusal does not say which entry is missing.
fn check_subids(kind: SubIdKind, own: u32, m: &[LinuxIdMapping]) -> Result<(), NamespaceError> {
    let (file, field, flag) = match kind {
        SubIdKind::Uid => ("/etc/subuid", "uidMappings", "subuids"),
        SubIdKind::Gid => ("/etc/subgid", "gidMappings", "subgids"),
    };
    let uid = nix::unistd::getuid();
    let user = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string());
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let ranges = subid_ranges(&text, &user, uid.as_raw());
    for e in m {
        if e.size() == 0 {
            continue;
        }
        if e.size() == 1 && e.host_id() == own {
            continue;
        }
        let first = e.host_id();
        let last = first.saturating_add(e.size() - 1);
        let covered = ranges
            .iter()
            .any(|&(start, count)| first >= start && (last as u64) < start as u64 + count as u64);
        if !covered {
            return Err(NamespaceError::SubIds {
                file,
                user,
                field,
                flag,
                first,
                last,
                size: e.size(),
            });
        }
    }
    Ok(())
}

/// The `(start, count)` ranges of `/etc/subuid`-format text granted to `user` (by name or by
/// numeric ID, as the shadow helpers accept both).
fn subid_ranges(text: &str, user: &str, uid: u32) -> Vec<(u32, u32)> {
    let uid = uid.to_string();
    text.lines()
        .filter_map(|l| {
            let mut parts = l.trim().split(':');
            let owner = parts.next()?;
            let start = parts.next()?.parse().ok()?;
            let count = parts.next()?.parse().ok()?;
            (owner == user || owner == uid).then_some((start, count))
        })
        .collect()
}

fn map_text(m: &[LinuxIdMapping]) -> String {
    m.iter()
        .map(|e| format!("{} {} {}\n", e.container_id(), e.host_id(), e.size()))
        .collect()
}

pub(crate) fn write_map(
    pid: i32,
    file: &'static str,
    m: &[LinuxIdMapping],
) -> Result<(), NamespaceError> {
    std::fs::write(format!("/proc/{pid}/{file}"), map_text(m)).map_err(|e| NamespaceError::Map {
        file,
        pid,
        message: format!("{e} (check linux.uidMappings/gidMappings)"),
    })
}

fn helper_map(
    pid: i32,
    helper: &str,
    file: &'static str,
    m: &[LinuxIdMapping],
) -> Result<(), NamespaceError> {
    let mut cmd = std::process::Command::new(helper);
    cmd.arg(pid.to_string());
    for e in m {
        cmd.args([
            e.container_id().to_string(),
            e.host_id().to_string(),
            e.size().to_string(),
        ]);
    }
    let out = cmd.output().map_err(|e| NamespaceError::Map {
        file,
        pid,
        message: format!("{helper}: {e} (install the uidmap package)"),
    })?;
    if !out.status.success() {
        return Err(NamespaceError::Map {
            file,
            pid,
            message: format!(
                "{helper} failed: {} (check /etc/subuid and /etc/subgid)",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// The inode of a process's pid namespace (to find every process of a container).
pub fn pid_ns_inode(pid: i32) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/pid"))
        .ok()
        .map(|m| m.ino())
}

/// Sends `sig` through a pidfd.
pub fn pidfd_signal(pidfd: &OwnedFd, sig: i32) -> Result<(), nix::Error> {
    // SAFETY: pidfd_send_signal with a pidfd we own and no siginfo.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        Err(nix::Error::last())
    } else {
        Ok(())
    }
}

/// Opens a pidfd for `pid`.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd, nix::Error> {
    // SAFETY: pidfd_open returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(nix::Error::last());
    }
    // SAFETY: a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits up to `timeout_ms` for the process behind `pidfd` to exit; true if it did.
pub fn pidfd_wait_exit(pidfd: &OwnedFd, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one valid pollfd.
    let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    rc > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subid_ranges_match_the_user_by_name_or_number_only() {
        let text = "alice:100000:65536\n# comment\n1001:200000:10\nbob:300000:65536\nbroken\n";
        assert_eq!(subid_ranges(text, "alice", 1000), vec![(100000, 65536)]);
        assert_eq!(subid_ranges(text, "carol", 1001), vec![(200000, 10)]);
        assert!(subid_ranges(text, "mallory", 7).is_empty());
    }
}
