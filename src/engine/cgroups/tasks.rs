//! The container's tasks: listing (recursively, nested cgroups included), freezing, signalling,
//! OOM counts, and removing the cgroup once they are gone.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::{fs, Cgroup, CgroupError, WAIT};

impl Cgroup {
    /// The directory whose `cgroup.procs` lists the container's processes most reliably.
    fn tracking_dir(&self) -> Option<&Path> {
        self.v1_dir("pids")
            .or(self.unified_dir())
            .or_else(|| self.v1.values().next().map(PathBuf::as_path))
    }

    /// The processes in the cgroup and in any cgroup nested below it (the container may make
    /// its own); empty when disabled.
    pub fn pids(&self) -> Vec<i32> {
        let Some(dir) = self.tracking_dir() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        collect_pids(dir, &mut out);
        out
    }

    /// Freezes every task; returns once the kernel reports the cgroup frozen.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        self.set_frozen(true)
    }

    /// Thaws a frozen cgroup.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        self.set_frozen(false)
    }

    fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        if let Some(dir) = self.v1_dir("freezer") {
            let want = if frozen { "FROZEN" } else { "THAWED" };
            fs::write(&dir.join("freezer.state"), want)?;
            return wait_for(dir, want, || {
                Ok(fs::read(&dir.join("freezer.state"))?.trim() == want)
            });
        }
        if let Some(dir) = self.unified_dir() {
            fs::write(&dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
            let want = if frozen { "frozen 1" } else { "frozen 0" };
            return wait_for(dir, want_name(frozen), || {
                Ok(fs::read(&dir.join("cgroup.events"))?
                    .lines()
                    .any(|l| l == want))
            });
        }
        Err(CgroupError::Unsupported {
            field: "freezer".into(),
            why: self
                .disabled
                .clone()
                .unwrap_or_else(|| "the host has neither a v1 freezer nor cgroup2".into()),
        })
    }

    /// Whether the kernel reports the cgroup frozen.
    pub fn is_frozen(&self) -> bool {
        if let Some(dir) = self.v1_dir("freezer") {
            return fs::read(&dir.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN");
        }
        if let Some(dir) = self.unified_dir() {
            return fs::read(&dir.join("cgroup.events"))
                .is_ok_and(|s| s.lines().any(|l| l == "frozen 1"));
        }
        false
    }

    /// Sends `sig` to every process of the cgroup (`kill --all`). SIGKILL uses `cgroup.kill`
    /// where the kernel has it (no race with forking tasks); otherwise the cgroup is frozen
    /// while signalling so no task can fork a child that escapes the walk.
    pub fn kill_all(&self, sig: Signal) -> Result<(), CgroupError> {
        if let Some(dir) = self.unified_dir() {
            let kill = dir.join("cgroup.kill");
            if sig == Signal::SIGKILL && kill.exists() {
                return fs::write(&kill, "1");
            }
        }
        let can_freeze = self.v1_dir("freezer").is_some() || self.unified_dir().is_some();
        let was_frozen = self.is_frozen();
        if can_freeze && !was_frozen {
            if let Err(e) = self.freeze() {
                // Never leave the container half-frozen because signalling failed.
                let _ = self.thaw();
                return Err(e);
            }
        }
        let path = self
            .tracking_dir()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut result = Ok(());
        for pid in self.pids() {
            match nix::sys::signal::kill(Pid::from_raw(pid), sig) {
                Ok(()) | Err(nix::Error::ESRCH) => {}
                Err(source) => {
                    result = Err(CgroupError::Signal {
                        path: path.clone(),
                        pid,
                        signal: sig,
                        source,
                    })
                }
            }
        }
        if can_freeze && !was_frozen {
            self.thaw()?;
        }
        result
    }

    /// Processes of the cgroup killed by the OOM killer so far (0 where unreadable).
    pub fn oom_kills(&self) -> u64 {
        let file = if let Some(dir) = self.v1_dir("memory") {
            dir.join("memory.oom_control")
        } else if let Some(dir) = self.unified_dir() {
            dir.join("memory.events")
        } else {
            return 0;
        };
        fs::read(&file)
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|v| v.trim().parse().ok())
                })
            })
            .unwrap_or(0)
    }

    /// Removes every directory this cgroup created, deepest first. The container's own
    /// directories are retried while exiting tasks leave (EBUSY); a created parent that still
    /// holds another container's cgroup is left in place.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        let leaves = self.dirs();
        let mut first_err = None;
        for dir in self.created.iter().rev() {
            let is_leaf = leaves.contains(&dir.as_path());
            let deadline = Instant::now() + if is_leaf { WAIT } else { Duration::ZERO };
            let mut pause = Duration::from_millis(1);
            // The first rmdir is tried as is: listing a v1 cgroup directory (dozens of control
            // files) for nested cgroups costs more than the rmdir, and a container rarely
            // made any.
            let mut first = true;
            loop {
                if is_leaf && !first {
                    // Cgroups the container made below its own go first, deepest first; their
                    // tasks may still be exiting, so this is retried with the leaf.
                    remove_nested(dir);
                }
                let was_first = std::mem::replace(&mut first, false);
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY)
                            || e.raw_os_error() == Some(libc::ENOTEMPTY) =>
                    {
                        if !is_leaf {
                            break;
                        }
                        if was_first {
                            // Nested cgroups (or tasks still exiting): clear and retry at once.
                            continue;
                        }
                        if Instant::now() >= deadline {
                            first_err.get_or_insert(CgroupError::Remove {
                                path: dir.clone(),
                                source: e,
                            });
                            break;
                        }
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(Duration::from_millis(50));
                    }
                    Err(e) => {
                        first_err.get_or_insert(CgroupError::Remove {
                            path: dir.clone(),
                            source: e,
                        });
                        break;
                    }
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

fn want_name(frozen: bool) -> &'static str {
    if frozen {
        "frozen"
    } else {
        "thawed"
    }
}

/// Polls `done` until true or `WAIT` passes: freezing completes asynchronously in the kernel.
fn wait_for(
    dir: &Path,
    state: &'static str,
    done: impl Fn() -> Result<bool, CgroupError>,
) -> Result<(), CgroupError> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(100);
    while !done()? {
        if start.elapsed() >= WAIT {
            return Err(CgroupError::Timeout {
                path: dir.to_path_buf(),
                state,
                waited: WAIT,
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
    Ok(())
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) {
    if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    for sub in subdirs(dir) {
        collect_pids(&sub, out);
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// rmdir every cgroup below `dir`, deepest first (cgroupfs directories hold only control
/// files, which go away with the directory). Failures surface as the leaf's EBUSY.
fn remove_nested(dir: &Path) {
    for sub in subdirs(dir) {
        remove_nested(&sub);
        let _ = std::fs::remove_dir(&sub);
    }
}
