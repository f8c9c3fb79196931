//! Real probes of the host: each one makes the system call or reads the kernel file that lasso
//! itself will depend on, and never changes the host. Probes that need a namespace run in a
//! forked child that exits right after.

use std::ffi::CString;
use std::path::{Path, PathBuf};

/// Outcome of an attempt made in a child process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildResult {
    Ok,
    /// Failed at `step` with `errno`.
    Failed {
        step: UsernsStep,
        errno: i32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsernsStep {
    DropPrivileges,
    Unshare,
    WriteSetgroups,
    WriteUidMap,
    WriteGidMap,
    MakePrivate,
    MountTmpfs,
    Fork,
}

impl UsernsStep {
    pub fn describe(self) -> &'static str {
        match self {
            UsernsStep::DropPrivileges => "dropping to nobody for the probe",
            UsernsStep::Unshare => "unshare(CLONE_NEWUSER|CLONE_NEWNS)",
            UsernsStep::WriteSetgroups => "writing /proc/self/setgroups",
            UsernsStep::WriteUidMap => "writing /proc/self/uid_map",
            UsernsStep::WriteGidMap => "writing /proc/self/gid_map",
            UsernsStep::MakePrivate => "making / private in the new mount namespace",
            UsernsStep::MountTmpfs => "mounting a tmpfs inside the new namespaces",
            UsernsStep::Fork => "fork",
        }
    }

    fn code(self) -> i32 {
        self as i32 + 1
    }

    fn from_code(c: i32) -> Option<UsernsStep> {
        use UsernsStep::*;
        [
            DropPrivileges,
            Unshare,
            WriteSetgroups,
            WriteUidMap,
            WriteGidMap,
            MakePrivate,
            MountTmpfs,
            Fork,
        ]
        .into_iter()
        .find(|s| s.code() == c)
    }
}

/// Tries, in a child, everything a rootless sandbox needs from user namespaces: create a user and
/// a mount namespace, map one ID, and mount a tmpfs. With `as_uid`, the child first drops to that
/// uid/gid (used by root to test what an unprivileged user may do).
pub fn probe_userns(as_uid: Option<u32>) -> ChildResult {
    // Everything the child needs is prepared here: after fork, the child only makes system calls
    // (another thread may hold the allocator's lock).
    let uid = as_uid.unwrap_or_else(|| nix::unistd::geteuid().as_raw());
    let gid = as_uid.unwrap_or_else(|| nix::unistd::getegid().as_raw());
    let uid_map = format!("0 {uid} 1");
    let gid_map = format!("0 {gid} 1");
    let c = |s: &str| CString::new(s).expect("no NUL in a literal");
    let (setgroups, uid_map_path, gid_map_path) = (
        c("/proc/self/setgroups"),
        c("/proc/self/uid_map"),
        c("/proc/self/gid_map"),
    );
    let (root, tmp, tmpfs) = (c("/"), c("/tmp"), c("tmpfs"));

    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two fds into the live array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return ChildResult::Failed {
            step: UsernsStep::Fork,
            errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        };
    }
    let (rd, wr) = (fds[0], fds[1]);
    // SAFETY: fork has no preconditions; the child below calls only async-signal-safe system
    // calls on memory prepared before the fork, and always ends with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        // SAFETY: closing the two fds we just created.
        unsafe {
            libc::close(rd);
            libc::close(wr);
        }
        return ChildResult::Failed {
            step: UsernsStep::Fork,
            errno,
        };
    }
    if pid == 0 {
        // SAFETY: only system calls on pointers to live, NUL-terminated buffers; a failure
        // reports [step, errno] on the pipe and exits 1.
        unsafe {
            let fail = |step: UsernsStep| -> ! {
                let report = [step.code(), *libc::__errno_location()];
                libc::write(wr, report.as_ptr().cast(), std::mem::size_of_val(&report));
                libc::_exit(1)
            };
            let write_file = |path: &CString, data: &[u8], step| {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, data.as_ptr().cast(), data.len()) < 0 {
                    fail(step);
                }
                libc::close(fd);
            };
            if as_uid.is_some() {
                let none: [libc::gid_t; 0] = [];
                if libc::setgroups(0, none.as_ptr()) != 0
                    || libc::setresgid(gid, gid, gid) != 0
                    || libc::setresuid(uid, uid, uid) != 0
                {
                    fail(UsernsStep::DropPrivileges);
                }
                // Changing credentials clears the dumpable flag, which makes /proc/self owned
                // by root; a real unprivileged user never has that problem.
                libc::prctl(libc::PR_SET_DUMPABLE, 1);
            }
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
                fail(UsernsStep::Unshare);
            }
            write_file(&setgroups, b"deny", UsernsStep::WriteSetgroups);
            write_file(&uid_map_path, uid_map.as_bytes(), UsernsStep::WriteUidMap);
            write_file(&gid_map_path, gid_map.as_bytes(), UsernsStep::WriteGidMap);
            // Private first, so that nothing mounted here can propagate to the host.
            let private = libc::MS_REC | libc::MS_PRIVATE;
            let null = std::ptr::null();
            if libc::mount(null, root.as_ptr(), null, private, null.cast()) != 0 {
                fail(UsernsStep::MakePrivate);
            }
            if libc::mount(tmpfs.as_ptr(), tmp.as_ptr(), tmpfs.as_ptr(), 0, null.cast()) != 0 {
                fail(UsernsStep::MountTmpfs);
            }
            libc::_exit(0);
        }
    }
    let mut report = [0i32; 2];
    let mut status = 0;
    // SAFETY: our own fds and child; the read fills at most the live `report` array.
    let got = unsafe {
        libc::close(wr);
        let n = libc::read(
            rd,
            report.as_mut_ptr().cast(),
            std::mem::size_of_val(&report),
        );
        libc::close(rd);
        libc::waitpid(pid, &mut status, 0);
        n
    };
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        return ChildResult::Ok;
    }
    let step = if got == std::mem::size_of_val(&report) as isize {
        UsernsStep::from_code(report[0]).unwrap_or(UsernsStep::Fork)
    } else {
        UsernsStep::Fork
    };
    ChildResult::Failed {
        step,
        errno: report[1],
    }
}

/// Reads a sysctl as an integer, if the kernel has it.
pub fn sysctl(path: &str) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The Landlock ABI version, or the errno that says why there is none
/// (ENOSYS: not built in; EOPNOTSUPP: built in but not enabled at boot).
pub fn landlock_abi() -> Result<i64, i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: the version query takes a NULL attribute pointer and size 0, and only returns an int.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r)
    }
}

/// Whether seccomp filtering is available, and whether the USER_NOTIF action is.
pub fn seccomp() -> (bool, Result<(), i32>) {
    // SAFETY: PR_GET_SECCOMP takes no pointer arguments.
    let filter = unsafe { libc::prctl(libc::PR_GET_SECCOMP) } >= 0;
    let action: u32 = libc::SECCOMP_RET_USER_NOTIF;
    // SAFETY: SECCOMP_GET_ACTION_AVAIL reads one u32 from the pointer we pass, which is live.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0,
            &action as *const u32,
        )
    };
    let notif = if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    };
    (filter, notif)
}

/// The cgroup layout of the host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CgroupLayout {
    V2,
    Hybrid,
    V1,
    None,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Cgroups {
    pub layout: CgroupLayout,
    /// Controllers lasso can use for limits (memory, cpu, pids), where they live.
    pub controllers: Vec<(String, PathBuf)>,
    /// This process's own cgroup directory for each of those controllers, and whether it is
    /// writable by us (delegated).
    pub own: Vec<(String, PathBuf, bool)>,
}

fn fs_type(p: &Path) -> Option<nix::sys::statfs::FsType> {
    nix::sys::statfs::statfs(p)
        .ok()
        .map(|s| s.filesystem_type())
}

pub fn cgroups(root: &Path) -> Cgroups {
    use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC, TMPFS_MAGIC};
    let top = fs_type(root);
    let unified = root.join("unified");
    let layout = match top {
        Some(t) if t == CGROUP2_SUPER_MAGIC => CgroupLayout::V2,
        Some(t) if t == TMPFS_MAGIC => {
            if fs_type(&unified) == Some(CGROUP2_SUPER_MAGIC) {
                CgroupLayout::Hybrid
            } else {
                CgroupLayout::V1
            }
        }
        _ => CgroupLayout::None,
    };
    let own_paths = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    // Lines are "ID:CONTROLLERS:PATH"; v2 is "0::PATH".
    let own_of = |controller: &str| -> Option<String> {
        own_paths.lines().find_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
            let hit = if controller.is_empty() {
                ctrls.is_empty()
            } else {
                ctrls.split(',').any(|c| c == controller)
            };
            hit.then(|| path.trim_start_matches('/').to_string())
        })
    };
    let writable = |p: &Path| nix::unistd::access(p, nix::unistd::AccessFlags::W_OK).is_ok();
    let mut controllers = Vec::new();
    let mut own = Vec::new();
    match layout {
        CgroupLayout::V2 => {
            let avail =
                std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
            for c in ["memory", "cpu", "pids"] {
                if avail.split_whitespace().any(|a| a == c) {
                    controllers.push((c.to_string(), root.to_path_buf()));
                }
            }
            if let Some(rel) = own_of("") {
                let dir = root.join(rel);
                let w = writable(&dir) && writable(&dir.join("cgroup.procs"));
                own.push(("unified".to_string(), dir, w));
            }
        }
        CgroupLayout::Hybrid | CgroupLayout::V1 => {
            for c in ["memory", "cpu", "pids"] {
                let dir = root.join(c);
                if fs_type(&dir) == Some(CGROUP_SUPER_MAGIC) {
                    controllers.push((c.to_string(), dir.clone()));
                    if let Some(rel) = own_of(c) {
                        let d = dir.join(rel);
                        let w = writable(&d) && writable(&d.join("cgroup.procs"));
                        own.push((c.to_string(), d, w));
                    }
                }
            }
        }
        CgroupLayout::None => {}
    }
    Cgroups {
        layout,
        controllers,
        own,
    }
}

/// A tool on PATH, and whether it is setuid root (newuidmap needs that or file capabilities).
pub fn tool(name: &str) -> Option<(PathBuf, bool)> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let path = crate::agents::which_in(name, &std::env::var_os("PATH").unwrap_or_default())
        .or_else(|| {
            ["/usr/sbin", "/sbin", "/usr/bin"]
                .iter()
                .map(|d| Path::new(d).join(name))
                .find(|p| p.exists())
        })?;
    let meta = std::fs::metadata(&path).ok()?;
    let setuid_root = meta.permissions().mode() & 0o4000 != 0 && meta.uid() == 0;
    Some((path, setuid_root))
}

/// Entries for `user` (name or uid) in a subordinate-ID file such as /etc/subuid.
pub fn subid_entries(file: &Path, name: &str, id: u32) -> Vec<String> {
    let id = id.to_string();
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            let owner = l.split(':').next().unwrap_or("");
            owner == name || owner == id
        })
        .map(str::to_string)
        .collect()
}
