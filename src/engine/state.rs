//! The state store of `lasso-runc`: one directory per container under `--root`, holding the
//! persisted `state.json`, the `exec.fifo` that init blocks on until `start`, and a lock file.
//! Writes are atomic (write a temporary file, then exchange or rename it) and liveness is decided from the
//! process start time recorded at create, never from a bare PID that the kernel may have reused.
//! It owns these files only; it never signals or mounts anything.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container with id {0} already exists: choose another id or delete it first")]
    Exists(String),
    #[error(
        "invalid container id {0:?}: use letters, digits, '_', '-', '.' (not starting with '.')"
    )]
    BadId(String),
    #[error("state of container {id} at {path} is unreadable: {message}")]
    Corrupt {
        id: String,
        path: PathBuf,
        message: String,
    },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// What is persisted about a container between invocations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Persisted {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// Host PID of init.
    pub pid: i32,
    /// Start time of init in clock ticks since boot (field 22 of /proc/PID/stat): with the PID
    /// it names one process for good.
    pub pid_start: u64,
    /// RFC 3339 creation time.
    pub created: String,
    pub annotations: HashMap<String, String>,
    pub rootless: bool,
    /// The container's cgroup, reopened by later commands exactly as created.
    #[serde(default)]
    pub cgroup: Option<super::cgroups::Cgroup>,
    /// Host uid of the owner (for `list`).
    pub owner: u32,
    /// Whether the Spec has poststart or poststop hooks: `start` and `delete` read the saved
    /// Spec back only then. `None` (a state written before this field): read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_hooks: Option<bool>,
}

impl Persisted {
    /// Whether `start` and `delete` must read the saved Spec for its hooks.
    pub fn may_have_post_hooks(&self) -> bool {
        self.post_hooks != Some(false)
    }
}

/// Whether `spec` has poststart or poststop hooks.
pub fn has_post_hooks(spec: &oci_spec::runtime::Spec) -> bool {
    spec.hooks().as_ref().is_some_and(|h| {
        h.poststart().as_ref().is_some_and(|l| !l.is_empty())
            || h.poststop().as_ref().is_some_and(|l| !l.is_empty())
    })
}

/// Status of a container as the OCI spec names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// The root directory of all containers (`--root`).
#[derive(Debug, Clone)]
pub struct StateStore {
    pub root: PathBuf,
}

/// A held per-container lock; released on drop (the kernel drops the flock with the fd).
#[derive(Debug)]
pub struct Lock(#[allow(dead_code)] nix::fcntl::Flock<File>);

/// Container ids become directory names: nothing that could climb out of the root.
pub fn check_id(id: &str) -> Result<(), StateError> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'));
    if ok {
        Ok(())
    } else {
        Err(StateError::BadId(id.to_string()))
    }
}

impl StateStore {
    pub fn new(root: PathBuf) -> StateStore {
        StateStore { root }
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub fn fifo(&self, id: &str) -> PathBuf {
        self.dir(id).join("exec.fifo")
    }

    /// Makes the container's directory; fails if the id is taken. The directory is private
    /// (0700) because the fifo inside starts the container.
    pub fn claim(&self, id: &str) -> Result<Lock, StateError> {
        check_id(id)?;
        let dir = self.dir(id);
        // The root usually exists: it is made (with its parents) only when the first mkdir
        // says it is missing, which spares every create a mkdir and a stat of the root.
        let mut made = fs::DirBuilder::new().mode(0o700).create(&dir);
        if matches!(&made, Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.root)
                .map_err(io("create state root", &self.root))?;
            made = fs::DirBuilder::new().mode(0o700).create(&dir);
        }
        match made {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StateError::Exists(id.to_string()))
            }
            Err(e) => return Err(io("create state dir", &dir)(e)),
        }
        self.lock(id)
    }

    /// Takes the container's exclusive lock, waiting for another command that holds it.
    pub fn lock(&self, id: &str) -> Result<Lock, StateError> {
        check_id(id)?;
        let path = self.dir(id).join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    StateError::NotFound(id.to_string())
                } else {
                    io("open lock", &path)(e)
                }
            })?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map(Lock)
            .map_err(|(_, e)| io("lock", &path)(e.into()))
    }

    pub fn load(&self, id: &str) -> Result<Persisted, StateError> {
        check_id(id)?;
        let path = self.dir(id).join("state.json");
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::NotFound(id.to_string()))
            }
            Err(e) => return Err(io("read", &path)(e)),
        };
        serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
            id: id.to_string(),
            path,
            message: e.to_string(),
        })
    }

    pub fn save(&self, state: &Persisted) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(state).expect("state serialises");
        write_atomic(&self.dir(&state.id).join("state.json"), &bytes)
    }

    /// Writes `state` beside its final name, invisible to every reader (`ids` and `load` look
    /// for `state.json` only): `create` stages it while init builds its root and only renames
    /// it into place once init is ready, so the container still appears only once it is
    /// created. The container's removal (`remove`) takes a staged file with the directory.
    pub fn stage(&self, state: &Persisted) -> Result<Staged, StateError> {
        let bytes = serde_json::to_vec(state).expect("state serialises");
        let path = self.dir(&state.id).join("state.json");
        let tmp = self
            .dir(&state.id)
            .join(format!(".state.json.staged{}", std::process::id()));
        write_new(&tmp, &bytes)?;
        Ok(Staged { tmp, path })
    }

    /// Keeps the spec the container was created from (later commands must not see edits made
    /// to the bundle afterwards).
    pub fn save_spec(&self, id: &str, spec: &oci_spec::runtime::Spec) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(spec).expect("spec serialises");
        write_atomic(&self.dir(id).join("config.json"), &bytes)
    }

    pub fn load_spec(&self, id: &str) -> Result<oci_spec::runtime::Spec, StateError> {
        let path = self.dir(id).join("config.json");
        let text = std::fs::read(&path).map_err(io("read", &path))?;
        serde_json::from_slice(&text).map_err(|e| StateError::Corrupt {
            id: id.to_string(),
            path,
            message: e.to_string(),
        })
    }

    /// Removes the container's directory. It only ever holds regular files and a fifo (never a
    /// mount), so a plain removal is safe.
    pub fn remove(&self, id: &str) -> Result<(), StateError> {
        let dir = self.dir(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove state dir", &dir)(e)),
        }
    }

    /// Ids of all containers under the root, sorted.
    pub fn ids(&self) -> Result<Vec<String>, StateError> {
        let mut ids = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(io("list", &self.root)(e)),
        };
        for entry in entries.flatten() {
            if entry.path().join("state.json").exists() {
                ids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }
}

/// A state file written by `StateStore::stage`, not yet in place.
#[derive(Debug)]
pub struct Staged {
    tmp: PathBuf,
    path: PathBuf,
}

impl Staged {
    /// Puts the staged state in place. A container's first state has nothing to replace, so
    /// this is one plain rename (no exchange: no older file whose blocks could be freed).
    pub fn commit(self) -> Result<(), StateError> {
        fs::rename(&self.tmp, &self.path).map_err(io("rename into place", &self.path))
    }
}

/// This process's temporary sibling of `path` (hidden, named after it and the PID).
fn temp_sibling(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(
        ".{}.tmp{}",
        name.unwrap_or_default(),
        std::process::id()
    ))
}

/// Writes `bytes` to a temporary sibling of `path` and renames it over `path`, so a reader sees
/// the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let tmp = temp_sibling(path);
    write_new(&tmp, bytes)?;
    replace(&tmp, path)
}

/// `write_atomic` for a file that does not exist yet (the first write in a directory just
/// made): one plain rename, without first trying the exchange that fails on a missing file.
/// Were the file there after all, the rename still replaces it whole (readers see one file or
/// the other); only the exchange's saving of an ext4 discard is lost.
pub fn write_atomic_first(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let tmp = temp_sibling(path);
    write_new(&tmp, bytes)?;
    fs::rename(&tmp, path).map_err(io("rename into place", path))
}

/// Writes `bytes` into the temporary file `tmp` (created or truncated, mode 0644). No fsync:
/// readers need atomicity (the rename that follows), not durability; the state lives on a
/// tmpfs in the usual --root, and an fsync costs milliseconds on every create.
fn write_new(tmp: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC)
        .open(tmp)
        .map_err(io("create", tmp))?;
    f.write_all(bytes).map_err(io("write", tmp))
}

/// Puts `tmp` in place of `path`. When `path` exists the two are exchanged and the old
/// content, now at `tmp`, is unlinked: ext4 (`auto_da_alloc`) allocates a file's blocks at once
/// when a plain rename replaces another file, and on a host whose `/run` is ext4 mounted with
/// `discard`, freeing those fresh blocks again (the sandbox's removal, a later save) costs a
/// synchronous discard of 0.1-4 ms. An exchange leaves the new file's blocks delayed, so a
/// short-lived state file never reaches the disk. Readers see the old file or the new one
/// either way.
fn replace(tmp: &Path, path: &Path) -> Result<(), StateError> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, tmp, CWD, path, RenameFlags::EXCHANGE) {
        Ok(()) => match fs::remove_file(tmp) {
            // `path` was a directory, which a plain rename refuses: put it back and say so.
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
                let _ = renameat_with(CWD, tmp, CWD, path, RenameFlags::EXCHANGE);
                let _ = fs::remove_file(tmp);
                Err(io("rename into place", path)(e))
            }
            // Any other failure to unlink only leaves a stray temporary file.
            _ => Ok(()),
        },
        // ENOENT: first write of `path`; EINVAL: a filesystem without exchange.
        Err(_) => fs::rename(tmp, path).map_err(io("rename into place", path)),
    }
}

/// Start time of a process in clock ticks since boot, or None if it is gone or a zombie (a
/// zombie has exited: for the OCI status it is stopped).
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = super::procfs::read_small(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); starttime is field 22.
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Whether the process recorded at create still runs (same PID *and* same start time).
pub fn is_alive(pid: i32, start: u64) -> bool {
    pid > 0 && process_start_time(pid) == Some(start)
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
