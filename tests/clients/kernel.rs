//! What the kernel says about a container process, read from /proc and the cgroup files, so
//! the scenarios check what is enforced rather than what a client reports.

use std::path::{Path, PathBuf};

/// The kernel's view of a container process: the cgroup files that say whether it is frozen
/// and what memory limit applies, on v1 (and hybrid) and on pure v2 hosts.
pub struct KernelView {
    pid: i32,
}

impl KernelView {
    pub fn of(pid: i32) -> Result<Self, String> {
        if pid <= 0 || !Path::new(&format!("/proc/{pid}")).exists() {
            return Err(format!("container process {pid} does not exist"));
        }
        Ok(Self { pid })
    }

    /// The directory of `controller` (v1) holding the process, or its unified cgroup.
    pub fn cgroup_dir(&self, controller: &str) -> Result<PathBuf, String> {
        let text = std::fs::read_to_string(format!("/proc/{}/cgroup", self.pid))
            .map_err(|e| format!("read /proc/{}/cgroup: {e}", self.pid))?;
        let mut unified = None;
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, ctrls, path) = (parts.next(), parts.next(), parts.next());
            let (Some(ctrls), Some(path)) = (ctrls, path) else {
                continue;
            };
            let dir = format!("/sys/fs/cgroup/{controller}");
            if ctrls.split(',').any(|c| c == controller) && Path::new(&dir).is_dir() {
                return Ok(PathBuf::from(dir).join(path.trim_start_matches('/')));
            }
            if ctrls.is_empty() {
                unified = Some(path.trim_start_matches('/').to_string());
            }
        }
        match unified {
            Some(p) if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() => {
                Ok(PathBuf::from("/sys/fs/cgroup").join(p))
            }
            _ => Err(format!(
                "process {} is in no {controller} cgroup: {text}",
                self.pid
            )),
        }
    }

    /// Whether the kernel has frozen the process's cgroup.
    pub fn frozen(&self) -> Result<bool, String> {
        let dir = self.cgroup_dir("freezer")?;
        let (file, frozen) = if dir.starts_with("/sys/fs/cgroup/freezer") {
            ("freezer.state", "FROZEN")
        } else {
            ("cgroup.freeze", "1")
        };
        let v = std::fs::read_to_string(dir.join(file))
            .map_err(|e| format!("read {}: {e}", dir.join(file).display()))?;
        Ok(v.trim() == frozen)
    }

    /// The memory limit the kernel applies, in bytes (None: unlimited).
    pub fn memory_limit(&self) -> Result<Option<u64>, String> {
        let dir = self.cgroup_dir("memory")?;
        let file = if dir.starts_with("/sys/fs/cgroup/memory") {
            "memory.limit_in_bytes"
        } else {
            "memory.max"
        };
        let v = std::fs::read_to_string(dir.join(file))
            .map_err(|e| format!("read {}: {e}", dir.join(file).display()))?;
        let v = v.trim();
        if v == "max" {
            return Ok(None);
        }
        let n: u64 = v.parse().map_err(|e| format!("{file} = {v:?}: {e}"))?;
        // v1 reports "unlimited" as a huge page-aligned number.
        Ok((n < 1 << 62).then_some(n))
    }
}

/// Whether a process still exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}
