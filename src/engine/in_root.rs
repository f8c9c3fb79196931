//! Opening a path inside the container's future root without ever leaving it: every lookup
//! is `openat2(RESOLVE_IN_ROOT)` from the root's descriptor, so `..` and absolute symlinks in
//! the image stay inside the rootfs (CVE-2021-30465 class), and what is missing on the way is
//! made there (directories 0755, a last file 0644), never through a link. Mount targets are
//! then named by `/proc/self/fd/N` of the descriptor, which is exactly the inode resolved.
//! It runs only in init, on the rootfs it was handed, and mounts nothing itself.

use super::mounts::MountError;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// `/proc/self/fd/N` for an O_PATH descriptor: mounting on it mounts on exactly the inode that
/// was resolved inside the root, whatever the path looks like now.
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Opens (creating what is missing) `dest` inside `root`, never leaving it: every component is
/// resolved with RESOLVE_IN_ROOT, so `..` and absolute symlinks stay inside the rootfs.
pub fn open_in_root(root: BorrowedFd<'_>, dest: &Path, dir: bool) -> Result<OwnedFd, MountError> {
    open_in_root_depth(root, dest, &|| dir, 0)
}

/// `open_in_root` where whether a missing destination is made as a directory is asked only
/// when something must be made (`dir` may cost a stat of a bind source).
pub fn open_in_root_lazy(
    root: BorrowedFd<'_>,
    dest: &Path,
    dir: &dyn Fn() -> bool,
) -> Result<OwnedFd, MountError> {
    open_in_root_depth(root, dest, dir, 0)
}

/// Makes the last component of `comps` under its parent when the parent resolves (inside the
/// root) and the name is free: a mount point in a fresh tmpfs (`/dev/pts`, `/dev/shm`) costs
/// one lookup of the parent instead of one per component. `None` for anything else (a missing
/// parent, a name that exists, such as a dangling link): the caller takes the full walk, which
/// handles those, so the outcome is the walk's.
fn make_last(
    root: BorrowedFd<'_>,
    comps: &[&std::ffi::OsStr],
    dir: bool,
    resolve: ResolveFlags,
) -> Option<OwnedFd> {
    let (last, parents) = comps.split_last()?;
    let parent: PathBuf = if parents.is_empty() {
        PathBuf::from(".")
    } else {
        parents.iter().collect()
    };
    let parent = rustix::fs::openat2(
        root,
        &parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        resolve,
    )
    .ok()?;
    if dir {
        rustix::fs::mkdirat(&parent, *last, Mode::from_raw_mode(0o755)).ok()?;
    } else {
        // Same flags as the walk's: never through a link, never over an existing name.
        rustix::fs::openat(
            &parent,
            *last,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o644),
        )
        .ok()?;
    }
    rustix::fs::openat2(
        &parent,
        *last,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        resolve,
    )
    .ok()
}

fn open_in_root_depth(
    root: BorrowedFd<'_>,
    dest: &Path,
    dir: &dyn Fn() -> bool,
    depth: u32,
) -> Result<OwnedFd, MountError> {
    let err = |source| MountError::Resolve {
        dest: dest.to_path_buf(),
        source,
    };
    let comps: Vec<&std::ffi::OsStr> = dest
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect();
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    // Most destinations exist already (the skeleton or the image made them): one lookup of
    // the whole path, inside the root as every step below is. Anything else (a missing
    // component, a dangling link) takes the walk, which creates what is missing.
    if !comps.is_empty() {
        let whole: PathBuf = comps.iter().collect();
        if let Ok(fd) = rustix::fs::openat2(
            root,
            &whole,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            resolve,
        ) {
            return Ok(fd);
        }
        if let Some(fd) = make_last(root, &comps, dir(), resolve) {
            return Ok(fd);
        }
    }
    let dir = dir();
    let mut rel = PathBuf::from(".");
    for (i, comp) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        let parent = rustix::fs::openat2(
            root,
            &rel,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            resolve,
        )
        .map_err(err)?;
        rel.push(comp);
        let exists = rustix::fs::openat2(
            root,
            &rel,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            resolve,
        );
        match exists {
            Ok(fd) if last => return Ok(fd),
            Ok(_) => continue,
            Err(rustix::io::Errno::NOENT) => {
                if last && !dir {
                    let f = rustix::fs::openat(
                        &parent,
                        *comp,
                        OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::WRONLY
                            | OFlags::CLOEXEC
                            | OFlags::NOFOLLOW,
                        Mode::from_raw_mode(0o644),
                    );
                    match f {
                        Ok(_) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(err(e)),
                    }
                } else {
                    match rustix::fs::mkdirat(&parent, *comp, Mode::from_raw_mode(0o755)) {
                        Ok(()) => {}
                        // A dangling symlink: create what it names, still inside the root.
                        Err(rustix::io::Errno::EXIST) if depth < 40 => {
                            let target =
                                rustix::fs::readlinkat(&parent, *comp, Vec::new()).map_err(err)?;
                            let target =
                                PathBuf::from(std::ffi::OsStr::from_bytes(target.as_bytes()));
                            let base = rel.parent().unwrap_or(Path::new("."));
                            let mut next = if target.is_absolute() {
                                target
                            } else {
                                base.join(target)
                            };
                            for rest in &comps[i + 1..] {
                                next.push(rest);
                            }
                            return open_in_root_depth(root, &next, &|| dir, depth + 1);
                        }
                        Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(err(e)),
                    }
                }
                if last {
                    return rustix::fs::openat2(
                        root,
                        &rel,
                        OFlags::PATH | OFlags::CLOEXEC,
                        Mode::empty(),
                        resolve,
                    )
                    .map_err(err);
                }
            }
            Err(e) => return Err(err(e)),
        }
    }
    // The destination is the root itself.
    rustix::fs::openat2(
        root,
        ".",
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        resolve,
    )
    .map_err(err)
}
