//! A cache of the SHA-256 digests of the host's blocked programs, so that the exec gate's copy
//! detection (`gate_link::PolicyDecider`: a renamed copy of `rm` is still `rm`) does not read
//! and hash every blocked binary at every sandbox start. That hashing was the largest single
//! cost of `lasso run -- /bin/true` (tens of milliseconds for ~50 programs).
//!
//! An entry is trusted only while the file is the same inode with the same size, mtime *and*
//! ctime. A write to the file changes its ctime, and so does setting its mtime back
//! (utimensat), so a changed program is always hashed again; only someone who can set the
//! clock could forge a match, and that is root on the host. The cache lives in the user's own
//! runtime directory (`Dirs.runtime`, mode 0700 for a user, root's for root), written
//! atomically; a cache that cannot be read is empty, one that cannot be written is skipped.
//!
//! Owns only that file. It decides nothing: the gate's decider uses what it returns.

use sha2::Digest;
use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const FILE: &str = "program-hashes.json";

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_ns: i64,
    ctime: i64,
    ctime_ns: i64,
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_ns: m.mtime_nsec(),
            ctime: m.ctime(),
            ctime_ns: m.ctime_nsec(),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Entry {
    stamp: Stamp,
    sha256: String,
}

/// The digests known so far, by path.
#[derive(Debug, Default)]
pub struct ProgramHashes {
    path: Option<PathBuf>,
    entries: HashMap<PathBuf, Entry>,
    dirty: bool,
}

impl ProgramHashes {
    /// No cache: every digest is computed.
    pub fn uncached() -> ProgramHashes {
        ProgramHashes::default()
    }

    /// The cache in `dir` (`Dirs.runtime`).
    pub fn open(dir: &Path) -> ProgramHashes {
        let path = dir.join(FILE);
        let entries = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        ProgramHashes {
            path: Some(path),
            entries,
            dirty: false,
        }
    }

    /// The SHA-256 of the file at `path`, whose metadata the caller read as `meta`. `None` when
    /// it cannot be read.
    pub fn digest(&mut self, path: &Path, meta: &std::fs::Metadata) -> Option<[u8; 32]> {
        let stamp = Stamp::of(meta);
        if let Some(e) = self.entries.get(path).filter(|e| e.stamp == stamp) {
            let mut out = [0u8; 32];
            if hex::decode_to_slice(&e.sha256, &mut out).is_ok() {
                return Some(out);
            }
        }
        let (digest, stable) = hash_file(path, stamp)?;
        // Changed while we read it: use the digest for this start, remember nothing.
        if stable {
            self.entries.insert(
                path.to_path_buf(),
                Entry {
                    stamp,
                    sha256: hex::encode(digest),
                },
            );
            self.dirty = true;
        }
        Some(digest)
    }

    /// Writes the cache back when something was added. Failure only costs the next start time.
    pub fn save(&self) {
        let Some(path) = &self.path else { return };
        if !self.dirty {
            return;
        }
        let Ok(text) = serde_json::to_vec(&self.entries) else {
            return;
        };
        if let Err(e) = write_private(path, &text) {
            tracing::debug!("program hash cache {}: {e}", path.display());
        }
    }
}

/// Hashes the file if it is still the version `stamp` names; also says whether it stayed
/// that version while being read.
fn hash_file(path: &Path, stamp: Stamp) -> Option<([u8; 32], bool)> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let before = Stamp::of(&f.metadata().ok()?);
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
    let after = Stamp::of(&f.metadata().ok()?);
    Some((hasher.finalize().into(), before == stamp && after == stamp))
}

/// Atomic write (temp file + rename) readable by the owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{FILE}.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        std::io::Write::write_all(&mut f, bytes)?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> [u8; 32] {
        sha2::Sha256::digest(bytes).into()
    }

    #[test]
    fn cached_digest_is_reused_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("rm");
        std::fs::write(&prog, b"first").unwrap();
        let meta = std::fs::metadata(&prog).unwrap();
        let mut c = ProgramHashes::open(dir.path());
        assert_eq!(c.digest(&prog, &meta), Some(sha(b"first")));
        c.save();
        let c2 = ProgramHashes::open(dir.path());
        assert_eq!(c2.entries.len(), 1);
        let mode = std::fs::metadata(dir.path().join(FILE)).unwrap().mode();
        assert_eq!(mode & 0o077, 0, "the cache is private to its owner");
    }

    #[test]
    fn a_rewritten_program_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("rm");
        std::fs::write(&prog, b"first").unwrap();
        let mut c = ProgramHashes::open(dir.path());
        c.digest(&prog, &std::fs::metadata(&prog).unwrap());
        c.save();
        // Same size, and the mtime set back: the ctime still moves on.
        let old = std::fs::metadata(&prog).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&prog, b"other").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&prog)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let mut c = ProgramHashes::open(dir.path());
        let meta = std::fs::metadata(&prog).unwrap();
        assert_eq!(c.digest(&prog, &meta), Some(sha(b"other")));
    }

    #[test]
    fn a_stale_entry_for_another_inode_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("rm");
        std::fs::write(&prog, b"first").unwrap();
        let mut c = ProgramHashes::open(dir.path());
        c.digest(&prog, &std::fs::metadata(&prog).unwrap());
        std::fs::remove_file(&prog).unwrap();
        std::fs::write(dir.path().join("x"), b"keep the inode busy").unwrap();
        std::fs::write(&prog, b"second").unwrap();
        let meta = std::fs::metadata(&prog).unwrap();
        assert_eq!(c.digest(&prog, &meta), Some(sha(b"second")));
    }
}
