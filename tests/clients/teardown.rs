//! The parts of teardown that deal with files: reading mount points back from mountinfo,
//! deleting the temp dir without crossing into another file system, and the footprint check
//! that fails a test when something the Lab made is still there.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::lab::hierarchies;

/// mountinfo escapes space, tab, newline and backslash as octal.
pub(super) fn unescape_mount_path(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let n = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(n);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsString::from(
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&out),
    ))
}

/// Deletes `dir` without crossing into another file system: a mount that survived the unmount
/// pass is left in place (and reported) rather than emptied.
pub(super) fn remove_one_fs(dir: &Path) -> Vec<String> {
    let Ok(top) = std::fs::symlink_metadata(dir) else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    fn walk(path: &Path, dev: u64, kept: &mut Vec<String>) -> bool {
        let Ok(md) = std::fs::symlink_metadata(path) else {
            return true;
        };
        if md.dev() != dev {
            kept.push(format!(
                "{} (another file system, still mounted)",
                path.display()
            ));
            return false;
        }
        if md.is_dir() {
            let mut empty = true;
            if let Ok(rd) = std::fs::read_dir(path) {
                for e in rd.flatten() {
                    empty &= walk(&e.path(), dev, kept);
                }
            }
            empty && std::fs::remove_dir(path).is_ok()
        } else {
            std::fs::remove_file(path).is_ok()
        }
    }
    walk(dir, top.dev(), &mut kept);
    kept
}

/// The Lab's footprint, checked after teardown: a test fails when cleanup breaks.
pub struct Leftovers {
    pub(super) dir: PathBuf,
    pub(super) cgroup: String,
    pub(super) mount_points: Vec<PathBuf>,
}

impl Leftovers {
    pub fn check(&self) -> Result<(), String> {
        let mut left = Vec::new();
        if self.dir.exists() {
            left.push(format!("temp dir {}", self.dir.display()));
        }
        for h in hierarchies() {
            if h.join(&self.cgroup).exists() {
                left.push(format!("cgroup {}", h.join(&self.cgroup).display()));
            }
        }
        let dir = self.dir.display().to_string();
        for l in std::fs::read_to_string("/proc/thread-self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&dir))
        {
            left.push(format!("mount {l}"));
        }
        for p in self.mount_points.iter().filter(|p| p.exists()) {
            left.push(format!("host directory {}", p.display()));
        }
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("teardown left behind: {}", left.join("; ")))
        }
    }
}
