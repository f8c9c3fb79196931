//! The sandbox record, `Dirs.runtime/<id>/record.json`: who runs (agent, profile, project
//! dir), its state, and the monitor's and init's PIDs *with their start times*, so that a
//! recycled PID is never mistaken for a live sandbox. Written atomically (write, then exchange or rename).

use super::{io_err, SandboxError};
use crate::engine::state::{is_alive, process_start_time, write_atomic, write_atomic_first};
use crate::paths::Dirs;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxState {
    Starting,
    Running,
    Stopping,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub id: String,
    pub agent: String,
    pub profile: String,
    /// The name or path the profile was loaded from (`lasso exec` reloads it).
    #[serde(default)]
    pub profile_source: String,
    /// `ResolvedProfile::digest()` of the profile the sandbox started with.
    #[serde(default)]
    pub profile_digest: String,
    /// The network mode: `none`, `allowlist` or `full` (empty in records written before the
    /// field existed).
    #[serde(default)]
    pub network: String,
    pub dir: PathBuf,
    pub state: SandboxState,
    pub monitor_pid: i32,
    pub monitor_start: u64,
    pub init_pid: i32,
    pub init_start: u64,
    /// RFC 3339.
    pub created: String,
    /// Seconds since the epoch (for uptime).
    pub created_unix: i64,
}

pub const FILE: &str = "record.json";

impl Record {
    pub fn path(dirs: &Dirs, id: &str) -> PathBuf {
        super::launch::sandbox_dir(dirs, id).join(FILE)
    }

    pub fn save(&self, dirs: &Dirs) -> Result<(), SandboxError> {
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| SandboxError::Protocol(format!("encode record: {e}")))?;
        write_atomic(&Record::path(dirs, &self.id), &text)
            .map_err(|e| SandboxError::Protocol(e.to_string()))
    }

    /// `save` for the record's first write, into the sandbox's new directory (nothing to
    /// replace there: one rename, see `write_atomic_first`).
    pub fn save_first(&self, dirs: &Dirs) -> Result<(), SandboxError> {
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| SandboxError::Protocol(format!("encode record: {e}")))?;
        write_atomic_first(&Record::path(dirs, &self.id), &text)
            .map_err(|e| SandboxError::Protocol(e.to_string()))
    }

    pub fn load(path: &Path) -> Result<Record, SandboxError> {
        let text = std::fs::read(path).map_err(io_err(format!("read {}", path.display())))?;
        serde_json::from_slice(&text)
            .map_err(|e| SandboxError::Protocol(format!("{}: {e}", path.display())))
    }

    /// Whether the monitor that wrote this record still runs.
    pub fn monitor_alive(&self) -> bool {
        is_alive(self.monitor_pid, self.monitor_start)
    }

    pub fn init_alive(&self) -> bool {
        self.init_pid > 0 && is_alive(self.init_pid, self.init_start)
    }

    pub fn uptime_secs(&self) -> i64 {
        (time::OffsetDateTime::now_utc().unix_timestamp() - self.created_unix).max(0)
    }
}

/// This process's PID and start time.
pub fn me() -> (i32, u64) {
    // Read once per process (a `/proc` read and parse each time otherwise; a run asks three
    // times). Keyed by PID: a forked child (`up`'s monitor) inherits the memo and must not
    // take its parent's answer.
    // Atomics, not a lock: a lock held by another thread at a fork would stay held forever
    // in the child. The start time is stored before the PID that vouches for it.
    use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
    static PID: AtomicI32 = AtomicI32::new(0);
    static START: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id() as i32;
    if PID.load(Ordering::Acquire) == pid {
        return (pid, START.load(Ordering::Relaxed));
    }
    let start = process_start_time(pid).unwrap_or(0);
    if start != 0 {
        START.store(start, Ordering::Relaxed);
        PID.store(pid, Ordering::Release);
    }
    (pid, start)
}
