//! Moving a container's init into its cgroup without the kernel's global migration lock where
//! the kernel allows it.
//!
//! Writing a PID to `cgroup.procs` takes `cgroup_threadgroup_rwsem` for writing, and the first
//! writer after a quiet spell waits a whole RCU grace period for it (`rcu_sync_enter`, 5-15 ms
//! on a busy host). A v1 hierarchy also has `tasks`, which moves one thread; a thread that
//! writes `0` (itself) there skips that lock altogether (`cgroup_procs_write_start`: only a
//! PID or a whole thread group needs it). Init is a single thread until it execs, so it can
//! place itself at its first instruction: the runtime opens each v1 `tasks` file before
//! clone3 (the write permission is checked at open, and a v1 move checks the opener's
//! credentials, so init's user namespace does not matter) and init writes `0` into each.
//! cgroup2 has no per-thread file outside threaded subtrees: there init is cloned straight
//! into its directory (`CLONE_INTO_CGROUP`, which takes the lock only for reading), and where
//! the kernel refuses that, the runtime writes init's PID as before.
//!
//! Owns only the descriptors it opens; it never writes into a cgroup the container did not
//! create.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use super::{fs, Cgroup, CgroupError};

/// How init joins each of its cgroup directories.
#[derive(Debug, Default)]
pub struct Placement {
    /// Open `tasks` files of the v1 directories: init writes `0` into each.
    by_init: Vec<OwnedFd>,
    /// The cgroup2 directory, open, for `CLONE_INTO_CGROUP`.
    into: Option<(OwnedFd, PathBuf)>,
    /// Directories the runtime writes init's PID into (a `tasks` file or a cgroup2 directory
    /// that could not be opened, or cgroup2 when the clone could not start in it).
    by_runtime: Vec<PathBuf>,
}

impl Cgroup {
    /// Prepares init's placement: opens the `tasks` file of every v1 directory (before
    /// clone3, so init inherits them) and lists the rest for the runtime. Empty when disabled.
    pub fn placement(&self) -> Result<Placement, CgroupError> {
        let mut p = Placement::default();
        let unified = self.unified_dir();
        for dir in self.dirs() {
            if Some(dir) == unified {
                match open_dir(dir) {
                    Ok(fd) => p.into = Some((fd, dir.to_path_buf())),
                    Err(_) => p.by_runtime.push(dir.to_path_buf()),
                }
                continue;
            }
            let tasks = dir.join("tasks");
            match open_write(&tasks) {
                Ok(fd) => p.by_init.push(fd),
                // Not ours to open (a delegated hierarchy may expose only cgroup.procs): the
                // runtime moves init there as before.
                Err(_) => p.by_runtime.push(dir.to_path_buf()),
            }
        }
        Ok(p)
    }
}

impl Placement {
    /// The descriptors init writes `0` into (`place_self`), for `InitArgs`.
    pub fn init_fds(&self) -> Vec<RawFd> {
        self.by_init.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// The cgroup2 directory init is to be cloned into, if any (`namespaces::clone3_into`).
    pub fn clone_into(&self) -> Option<RawFd> {
        self.into.as_ref().map(|(fd, _)| fd.as_raw_fd())
    }

    /// The clone could not start in the cgroup2 directory (a kernel before 5.7, or a
    /// delegation that allows only `cgroup.procs`): the runtime writes it instead.
    pub fn clone_into_refused(&mut self) {
        if let Some((_, dir)) = self.into.take() {
            self.by_runtime.push(dir);
        }
    }

    /// The runtime's side once init is cloned: its copies of init's descriptors go.
    pub fn release_init_fds(&mut self) {
        self.by_init.clear();
        self.into = None;
    }

    /// The directories left for the runtime to write (`add_task`): none where the kernel lets
    /// init join every hierarchy without the global lock.
    pub fn runtime_dirs(&self) -> &[PathBuf] {
        &self.by_runtime
    }

    /// Writes init's PID into the directories init cannot join itself.
    pub fn add_task(&self, pid: i32) -> Result<(), CgroupError> {
        for dir in &self.by_runtime {
            fs::write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }
}

/// Init's side: moves the calling thread (init, single-threaded) into each v1 cgroup whose
/// `tasks` file `fds` holds open, then closes them. Called first thing after clone3.
pub fn place_self(fds: &[RawFd]) -> Result<(), String> {
    for &fd in fds {
        // SAFETY: `fd` is a descriptor the runtime opened for this and init inherited through
        // clone3; nothing else in init owns or closes it.
        let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        f.write_all(b"0").map_err(|e| {
            let path = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap_or_default();
            format!("cannot join cgroup {}: {e}", path.display())
        })?;
    }
    Ok(())
}

/// std opens every file with O_CLOEXEC: init's copies never reach the container's program.
fn open_write(path: &Path) -> std::io::Result<OwnedFd> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map(OwnedFd::from)
}

fn open_dir(path: &Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_PATH)
        .open(path)
        .map(OwnedFd::from)
}
