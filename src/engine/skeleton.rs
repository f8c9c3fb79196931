//! A skeleton root described as data: the directories, links and small files of lasso's
//! host-view root, carried in the Spec (annotation `run.lasso.rootfs.entries`) and built by
//! init straight into the private tmpfs it mounts as the sandbox's root.
//!
//! Why not a directory tree on the host that init copies: on a host whose /run is a disk
//! (ext4 with online discard and no journal, as here), every directory created and removed
//! costs a synchronous discard of its block on removal, a few milliseconds each, and the
//! skeleton had about twenty of them per sandbox. Built from data, the host writes nothing.
//!
//! It owns the format and the writer. The writer never follows a symlink, not even one the
//! description itself made: each path is walked component by component with `O_NOFOLLOW`, so
//! a description (which a `lasso-runc` bundle may carry too) cannot write outside the root it
//! is given. It must not decide what a skeleton holds (`plan::hostview` does).

use rustix::fs::{AtFlags, Mode, OFlags};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path};

/// The annotation carrying the encoded entries, beside `run.lasso.rootfs=skeleton`.
pub const ENTRIES_ANNOTATION: &str = "run.lasso.rootfs.entries";

/// Upper bound of a skeleton's size, so a bad annotation cannot fill init's memory or tmpfs.
const MAX_ENTRIES: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum SkeletonError {
    #[error("annotation {ENTRIES_ANNOTATION}: {0}")]
    Decode(String),
    #[error("skeleton entry {path:?}: {why}")]
    BadPath { path: String, why: &'static str },
    #[error("skeleton entry {path:?}: {what}: {source}")]
    Sys {
        path: String,
        what: &'static str,
        source: rustix::io::Errno,
    },
}

/// One thing in the skeleton. Paths are relative to the root, without `..`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Entry {
    /// A directory (missing parents are made 0755); an existing one only gets the mode.
    Dir { path: String, mode: u32 },
    /// A symbolic link, replacing a file or link already at `path`.
    Symlink { path: String, target: String },
    /// A regular file with these contents, replacing a file or link already at `path`.
    File {
        path: String,
        mode: u32,
        contents: String,
    },
}

impl Entry {
    pub fn path(&self) -> &str {
        match self {
            Entry::Dir { path, .. } | Entry::Symlink { path, .. } | Entry::File { path, .. } => {
                path
            }
        }
    }
}

/// The entries in the order they are made (a later entry for a path wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skeleton {
    pub entries: Vec<Entry>,
}

impl Skeleton {
    pub fn dir(&mut self, path: &str, mode: u32) {
        self.entries.push(Entry::Dir {
            path: path.into(),
            mode,
        });
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        self.entries.push(Entry::Symlink {
            path: path.into(),
            target: target.into(),
        });
    }

    pub fn file(&mut self, path: &str, mode: u32, contents: &str) {
        self.entries.push(Entry::File {
            path: path.into(),
            mode,
            contents: contents.into(),
        });
    }

    /// The entry that will be at `path` once written (the last one naming it).
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.path() == path)
    }

    /// The first ancestor of `path` (or `path` itself) that will be a symlink, if any.
    pub fn symlink_on(&self, path: &str) -> Option<&str> {
        let mut prefix = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if let Some(Entry::Symlink { path, .. }) = self.get(&prefix) {
                return Some(path);
            }
        }
        None
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(&self.entries).expect("plain data encodes")
    }

    pub fn decode(text: &str) -> Result<Skeleton, SkeletonError> {
        let entries: Vec<Entry> =
            serde_json::from_str(text).map_err(|e| SkeletonError::Decode(e.to_string()))?;
        if entries.len() > MAX_ENTRIES {
            return Err(SkeletonError::Decode(format!(
                "{} entries, more than the {MAX_ENTRIES} a skeleton may have",
                entries.len()
            )));
        }
        for e in &entries {
            components(e.path())?;
        }
        Ok(Skeleton { entries })
    }

    /// Makes the entries under the directory `root`, never following a symlink.
    pub fn write_to(&self, root: BorrowedFd<'_>) -> Result<(), SkeletonError> {
        self.write_entries(root, false)
    }

    fn write_entries(&self, root: BorrowedFd<'_>, exact_modes: bool) -> Result<(), SkeletonError> {
        // Entries come grouped by directory (etc/..., run/...): the parent opened for one is
        // kept for the next with the same parents. Safe to keep: no entry can replace a
        // directory (a link or file only replaces a non-directory), so the descriptor still
        // names the directory that walk opened without following links.
        let mut last: Option<(Vec<&str>, Option<OwnedFd>)> = None;
        for e in &self.entries {
            let path = e.path();
            let parts = components(path)?;
            let (name, parents) = parts.split_last().expect("components is never empty");
            if last.as_ref().is_none_or(|(p, _)| p.as_slice() != parents) {
                let opened = open_parent(root, path, parents)?;
                last = Some((parents.to_vec(), opened));
            }
            let opened = last.as_ref().and_then(|(_, fd)| fd.as_ref());
            let parent = opened.map_or(root, |p| p.as_fd());
            write_entry(parent, name, e, exact_modes)?;
        }
        Ok(())
    }

    /// `write_to` a directory given by path (the host-side materialisation and tests).
    pub fn write_to_path(&self, root: &Path) -> Result<(), SkeletonError> {
        self.write_entries(open_root(root)?.as_fd(), false)
    }

    /// `write_to_path` for a single-threaded caller (init): the umask is cleared while the
    /// skeleton is built, so each new directory or file gets its mode from the mkdir or create
    /// itself and needs no chmod after (a umask is per process: with other threads it would
    /// change their files' modes too). The caller's umask is restored on every path.
    pub fn write_to_path_single_threaded(&self, root: &Path) -> Result<(), SkeletonError> {
        let fd = open_root(root)?;
        let old = rustix::process::umask(Mode::empty());
        let result = self.write_entries(fd.as_fd(), true);
        rustix::process::umask(old);
        result
    }
}

fn open_root(root: &Path) -> Result<OwnedFd, SkeletonError> {
    rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys(&root.to_string_lossy(), "open the root"))
}

fn sys(path: &str, what: &'static str) -> impl FnOnce(rustix::io::Errno) -> SkeletonError {
    let path = path.to_string();
    move |source| SkeletonError::Sys { path, what, source }
}

/// The normal components of a relative path; anything else is refused.
fn components(path: &str) -> Result<Vec<&str>, SkeletonError> {
    let bad = |why| SkeletonError::BadPath {
        path: path.into(),
        why,
    };
    if path.is_empty() {
        return Err(bad("empty path"));
    }
    let mut out = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(s) => out.push(s.to_str().ok_or_else(|| bad("not UTF-8"))?),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(bad("must be relative to the root"))
            }
            Component::ParentDir => return Err(bad("must not contain ..")),
        }
    }
    if out.is_empty() {
        return Err(bad("names the root itself"));
    }
    Ok(out)
}

/// Opens (making it 0755 if missing) each directory of `parts` below `root`, refusing links;
/// `None` when `parts` is empty (the parent is `root` itself).
fn open_parent(
    root: BorrowedFd<'_>,
    path: &str,
    parts: &[&str],
) -> Result<Option<OwnedFd>, SkeletonError> {
    let mut cur: Option<OwnedFd> = None;
    for part in parts {
        let at = cur.as_ref().map_or(root, |c| c.as_fd());
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let next = match rustix::fs::openat(at, *part, flags, Mode::empty()) {
            Err(rustix::io::Errno::NOENT) => {
                rustix::fs::mkdirat(at, *part, Mode::from_raw_mode(0o755))
                    .map_err(sys(path, "mkdir a parent"))?;
                rustix::fs::openat(at, *part, flags, Mode::empty())
            }
            r => r,
        }
        // A symlink or a file as a parent: ENOTDIR (O_NOFOLLOW with O_DIRECTORY).
        .map_err(sys(path, "open a parent without following links"))?;
        cur = Some(next);
    }
    Ok(cur)
}

/// Removes a non-directory at `name`, so a file or link can take its place.
fn clear(parent: BorrowedFd<'_>, name: &str, path: &str) -> Result<(), SkeletonError> {
    match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(sys(path, "replace")(e)),
    }
}

/// Makes `e`, named `name` in `parent`. `exact_modes`: the umask is 0, so a mode given to
/// mkdir or create is the file's mode.
fn write_entry(
    parent: BorrowedFd<'_>,
    name: &str,
    e: &Entry,
    exact_modes: bool,
) -> Result<(), SkeletonError> {
    let path = e.path();
    match e {
        Entry::Dir { mode, .. } => {
            let mode = Mode::from_raw_mode(mode & 0o7777);
            match rustix::fs::mkdirat(parent, name, mode) {
                // mkdir applies the permission bits but not always the sticky or set-id
                // ones; /tmp's 1777 must survive, so only plain modes skip the chmod.
                Ok(()) if exact_modes && mode.bits() & 0o7000 == 0 => return Ok(()),
                Ok(()) => {}
                Err(rustix::io::Errno::EXIST) => {
                    let st = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(sys(path, "stat"))?;
                    if rustix::fs::FileType::from_raw_mode(st.st_mode)
                        != rustix::fs::FileType::Directory
                    {
                        return Err(sys(path, "mkdir")(rustix::io::Errno::EXIST));
                    }
                }
                Err(err) => return Err(sys(path, "mkdir")(err)),
            }
            // mkdir honours the umask: /tmp's 1777 must survive. Through an O_NOFOLLOW handle,
            // so a link cannot redirect the chmod.
            let dir = rustix::fs::openat(
                parent,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(sys(path, "open"))?;
            rustix::fs::fchmod(&dir, mode).map_err(sys(path, "chmod"))?;
        }
        Entry::Symlink { target, .. } => {
            // Most names are new (a fresh tmpfs): replace only what is there.
            match rustix::fs::symlinkat(target.as_str(), parent, name) {
                Err(rustix::io::Errno::EXIST) => {
                    clear(parent, name, path)?;
                    rustix::fs::symlinkat(target.as_str(), parent, name)
                }
                r => r,
            }
            .map_err(sys(path, "symlink"))?;
        }
        Entry::File { mode, contents, .. } => {
            let mode = Mode::from_raw_mode(mode & 0o7777);
            let create = || {
                rustix::fs::openat(
                    parent,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    mode,
                )
            };
            // Most names are new (a fresh tmpfs): replace only what is there.
            let f = match create() {
                Err(rustix::io::Errno::EXIST) => {
                    clear(parent, name, path)?;
                    create()
                }
                r => r,
            }
            .map_err(sys(path, "create"))?;
            let mut rest = contents.as_bytes();
            while !rest.is_empty() {
                let n = rustix::io::write(&f, rest).map_err(sys(path, "write"))?;
                rest = &rest[n..];
            }
            if !exact_modes || mode.bits() & 0o7000 != 0 {
                rustix::fs::fchmod(&f, mode).map_err(sys(path, "chmod"))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_link_in_the_skeleton_cannot_carry_a_write_outside_it() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let mut s = Skeleton::default();
        s.symlink("escape", outside.path().to_str().unwrap());
        s.file("escape/planted", 0o644, "x");
        let err = s.write_to_path(root.path()).unwrap_err().to_string();
        assert!(err.contains("escape/planted"), "{err}");
        assert!(!outside.path().join("planted").exists());
    }

    #[test]
    fn absolute_and_parent_paths_are_refused_when_decoded() {
        for bad in ["/etc/passwd", "../x", "a/../../x", ""] {
            let text = format!(r#"[{{"kind":"file","path":"{bad}","mode":420,"contents":""}}]"#);
            assert!(Skeleton::decode(&text).is_err(), "{bad}");
        }
    }

    #[test]
    fn entries_round_trip_and_keep_modes_past_the_umask() {
        let root = tempfile::tempdir().unwrap();
        let mut s = Skeleton::default();
        s.dir("tmp", 0o1777);
        s.dir("home/agent", 0o755);
        s.symlink("bin", "usr/bin");
        s.file("etc/hostname", 0o644, "lasso\n");
        s.file("etc/hostname", 0o644, "second\n");
        let s = Skeleton::decode(&s.encode()).unwrap();
        s.write_to_path(root.path()).unwrap();
        s.write_to_path(root.path()).unwrap();
        let mode = |p: &str| {
            std::fs::symlink_metadata(root.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("tmp"), 0o1777);
        assert_eq!(
            std::fs::read_link(root.path().join("bin")).unwrap(),
            Path::new("usr/bin")
        );
        assert_eq!(
            std::fs::read_to_string(root.path().join("etc/hostname")).unwrap(),
            "second\n"
        );
        assert_eq!(s.symlink_on("bin/x"), Some("bin"));
        assert_eq!(s.symlink_on("home/agent/x"), None);
    }
}
