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
//! It also remembers which names in the program directories the profile blocks (the scan asks
//! the policy about ~2,000 names at every start). That list is trusted only while every
//! directory is the same inode with the same mtime and ctime (adding, removing or renaming an
//! entry changes both; ctime cannot be set back) and the profile is byte-for-byte the same
//! (its SHA-256). Beside the names it keeps what the decider learned of them (identities,
//! digests, which act by `argv[0]`), trusted only while those directories and that profile still
//! match *and* every file and symbolic link it was learned from still has its stamp
//! (`program_witness`), so a program rewritten in place or a re-pointed `/etc/alternatives`
//! link is learned again.
//!
//! Owns only that file. It decides nothing: the gate's decider uses what it returns.

use sha2::Digest;
use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Versioned: an older lasso reads its own file (v1 a map of digests only, v2 without the
/// learned result), so two builds used on one machine do not rewrite each other's cache.
pub const FILE: &str = "program-hashes.v3.json";

/// What identifies one version of a file. Stored as a plain array: the cache holds a few
/// hundred of them and is parsed at every start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "StampArray", into = "StampArray")]
pub(super) struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_ns: i64,
    ctime: i64,
    ctime_ns: i64,
}

impl Stamp {
    pub(super) fn of(m: &std::fs::Metadata) -> Stamp {
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

/// `Stamp` as stored: dev, ino, size, mtime, mtime_ns, ctime, ctime_ns.
type StampArray = (u64, u64, u64, i64, i64, i64, i64);

impl From<StampArray> for Stamp {
    fn from(a: StampArray) -> Stamp {
        let (dev, ino, size, mtime, mtime_ns, ctime, ctime_ns) = a;
        Stamp {
            dev,
            ino,
            size,
            mtime,
            mtime_ns,
            ctime,
            ctime_ns,
        }
    }
}

impl From<Stamp> for StampArray {
    fn from(s: Stamp) -> StampArray {
        (
            s.dev, s.ino, s.size, s.mtime, s.mtime_ns, s.ctime, s.ctime_ns,
        )
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Entry {
    stamp: Stamp,
    sha256: String,
}

/// The blocked names found by one scan, and what they were found under.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Scan {
    /// SHA-256 of the profile the names were asked of.
    profile: String,
    /// Each program directory scanned, in order, with its stamp (`None`: it could not be read).
    dirs: Vec<(PathBuf, Option<Stamp>)>,
    /// The blocked entries, in directory order.
    blocked: Vec<PathBuf>,
    /// What the decider learned of them, with what it was learned from.
    #[serde(default)]
    learned: Option<Learned>,
}

/// What the gate's decider learned of the blocked programs (`gate_decider::PolicyDecider`):
/// device and inode and digest of each, and which files act by the name they are called by.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Learned {
    pub by_id: Vec<(u64, u64, String)>,
    /// Hex digests.
    pub by_hash: Vec<(String, String)>,
    pub by_argv0_id: Vec<(u64, u64)>,
    pub by_argv0_hash: Vec<String>,
    /// Every blocked path, recorded before it was learned from.
    pub witnesses: super::program_witness::Witnesses,
}

/// The file's contents.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Stored {
    #[serde(default)]
    entries: HashMap<PathBuf, Entry>,
    #[serde(default)]
    scan: Option<Scan>,
}

/// The digests known so far, by path.
#[derive(Debug, Default)]
pub struct ProgramHashes {
    path: Option<PathBuf>,
    entries: HashMap<PathBuf, Entry>,
    scan: Option<Scan>,
    /// The last `blocked_programs` answered with `scan`'s names, for the directories and
    /// profile it was asked about: only then may `scan`'s learned result stand for them.
    current: bool,
    dirty: bool,
}

/// The stamp of each directory, as the scan cache keys it.
fn dir_stamps(dirs: &[&str]) -> Vec<(PathBuf, Option<Stamp>)> {
    dirs.iter()
        .map(|d| {
            let stamp = std::fs::metadata(d).ok().map(|m| Stamp::of(&m));
            (PathBuf::from(d), stamp)
        })
        .collect()
}

impl ProgramHashes {
    /// No cache: every digest is computed.
    pub fn uncached() -> ProgramHashes {
        ProgramHashes::default()
    }

    /// The cache in `dir` (`Dirs.runtime`).
    pub fn open(dir: &Path) -> ProgramHashes {
        let path = dir.join(FILE);
        let stored: Stored = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        ProgramHashes {
            path: Some(path),
            entries: stored.entries,
            scan: stored.scan,
            current: false,
            dirty: false,
        }
    }

    /// The blocked entries of `dirs` for the profile whose SHA-256 is `profile`: from the cache
    /// when no directory changed since the scan that found them, else from `scan` (which is
    /// given each directory and returns its blocked entries), remembered for the next start.
    /// `profile` `None`: always scanned, nothing remembered.
    pub fn blocked_programs(
        &mut self,
        profile: Option<[u8; 32]>,
        dirs: &[&str],
        mut scan: impl FnMut(&Path) -> Vec<PathBuf>,
    ) -> Vec<PathBuf> {
        let profile = profile.map(hex::encode);
        let before = dir_stamps(dirs);
        self.current = false;
        if let (Some(s), Some(p)) = (&self.scan, &profile) {
            if s.profile == *p && s.dirs == before {
                self.current = true;
                return s.blocked.clone();
            }
        }
        let mut blocked = Vec::new();
        for (dir, stamp) in &before {
            if stamp.is_some() {
                blocked.extend(scan(dir));
            }
        }
        // A directory that changed while it was read: use this scan, remember nothing.
        let Some(profile) = profile else {
            return blocked;
        };
        if dir_stamps(dirs) == before {
            self.scan = Some(Scan {
                profile,
                dirs: before,
                blocked: blocked.clone(),
                learned: None,
            });
            self.current = true;
            self.dirty = true;
        }
        blocked
    }

    /// What was learned of the names the last `blocked_programs` returned, when it came from
    /// the same scan and every file and link it was learned from is unchanged.
    pub fn learned(&self) -> Option<&Learned> {
        if !self.current {
            return None;
        }
        let learned = self.scan.as_ref()?.learned.as_ref()?;
        learned.witnesses.still_hold().then_some(learned)
    }

    /// Remembers what was learned of the names the last `blocked_programs` returned, if they
    /// are remembered and nothing they were learned from changed meanwhile: the directories
    /// (the hard-link rule reads them) and the witnesses, recorded before the learning began.
    pub fn remember_learned(&mut self, learned: Learned) {
        let Some(scan) = self.scan.as_mut().filter(|_| self.current) else {
            return;
        };
        let dirs: Vec<&str> = scan.dirs.iter().filter_map(|(d, _)| d.to_str()).collect();
        if dir_stamps(&dirs) != scan.dirs || !learned.witnesses.still_hold() {
            return;
        }
        if scan.learned.as_ref() != Some(&learned) {
            scan.learned = Some(learned);
            self.dirty = true;
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
        let stored = Stored {
            entries: self.entries.clone(),
            scan: self.scan.clone(),
        };
        let Ok(text) = serde_json::to_vec(&stored) else {
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

    fn scan_count(dir: &Path, c: &mut ProgramHashes, profile: u8, calls: &mut u32) -> Vec<PathBuf> {
        let d = dir.to_str().unwrap();
        c.blocked_programs(Some([profile; 32]), &[d], |p| {
            *calls += 1;
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("rm"))
                .map(|e| e.path())
                .collect();
            v.sort();
            v
        })
    }

    #[test]
    fn a_program_added_after_the_scan_is_found_blocked() {
        let cache = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        std::fs::write(bin.path().join("rm"), b"x").unwrap();
        let mut calls = 0;
        let mut c = ProgramHashes::open(cache.path());
        assert_eq!(scan_count(bin.path(), &mut c, 1, &mut calls).len(), 1);
        c.save();
        // Unchanged directory and profile: the names come from the cache.
        let mut c = ProgramHashes::open(cache.path());
        assert_eq!(scan_count(bin.path(), &mut c, 1, &mut calls).len(), 1);
        assert_eq!(calls, 1, "an unchanged directory is not scanned again");
        // A new blocked program appears: the directory's ctime moves, the cache is not trusted,
        // even with the directory's mtime set back.
        let old = std::fs::metadata(bin.path()).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(bin.path().join("rmdir"), b"y").unwrap();
        std::fs::File::open(bin.path())
            .unwrap()
            .set_modified(old)
            .unwrap();
        let found = scan_count(bin.path(), &mut c, 1, &mut calls);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(calls, 2);
    }

    #[test]
    fn another_profile_scans_again() {
        let cache = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        std::fs::write(bin.path().join("rm"), b"x").unwrap();
        let mut calls = 0;
        let mut c = ProgramHashes::open(cache.path());
        scan_count(bin.path(), &mut c, 1, &mut calls);
        scan_count(bin.path(), &mut c, 2, &mut calls);
        assert_eq!(calls, 2, "the cached names belong to another profile");
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
