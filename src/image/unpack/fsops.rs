//! The system-call seam of unpacking: every path a layer names is resolved by the kernel with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` against a directory fd of the target, and
//! every final component is created or removed relative to its parent's fd without following it.
//! Nothing here decides what a layer may do; `unpack` does. Nothing here builds a host path by
//! joining strings, so a symlink planted by a layer can never steer a write outside the target.

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::io;

/// Why `RESOLVE_IN_ROOT` and not `RESOLVE_BENEATH`: image layers legitimately hold absolute
/// symlinks (`/etc/alternatives/x -> /usr/bin/x`) that mean "inside the image". IN_ROOT resolves
/// them, and `..`, against the target as `/`, exactly as the container will see them later;
/// BENEATH would reject them. Both are enforced by the kernel, so neither lets a name escape.
/// Magic links (`/proc/self/fd/N`) are refused outright: they are the classic way out of a root.
const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Opens `path` (already split and cleaned, relative to the root) as an `O_PATH` directory fd,
/// resolved inside `root`. An empty path is the root itself.
pub fn open_dir_in_root(root: BorrowedFd<'_>, path: &[u8]) -> io::Result<OwnedFd> {
    let path = if path.is_empty() { &b"."[..] } else { path };
    Ok(rustix::fs::openat2(
        root,
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    )?)
}

/// Opens a directory inside `root` for reading and metadata changes, refusing a symlink as the
/// final component (a later entry of the same layer may have replaced it with one).
pub fn open_dir_rw_in_root(root: BorrowedFd<'_>, path: &[u8]) -> io::Result<OwnedFd> {
    let path = if path.is_empty() { &b"."[..] } else { path };
    Ok(rustix::fs::openat2(
        root,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    )?)
}

/// Makes sure every directory of `comps` exists inside `root`, creating missing ones with 0755,
/// and returns an `O_PATH` fd of the last one. Each component is resolved by the kernel inside the
/// root, so a symlinked component leads where it would inside the image, never out of it.
pub fn ensure_dir(root: BorrowedFd<'_>, comps: &[&[u8]]) -> io::Result<OwnedFd> {
    ensure_dir_hops(root, comps, 0)
}

/// The kernel's own bound on symlink hops in one lookup (`MAXSYMLINKS`).
const MAX_HOPS: usize = 40;

fn ensure_dir_hops(root: BorrowedFd<'_>, comps: &[&[u8]], hops: usize) -> io::Result<OwnedFd> {
    if hops > MAX_HOPS {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    let full = comps.join(&b'/');
    match open_dir_in_root(root, &full) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        other => return other,
    }
    let mut fd = open_dir_in_root(root, b"")?;
    for i in 0..comps.len() {
        let prefix = comps[..=i].join(&b'/');
        match open_dir_in_root(root, &prefix) {
            Ok(next) => fd = next,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                match rustix::fs::mkdirat(&fd, comps[i], Mode::from_raw_mode(0o755)) {
                    Ok(()) => {}
                    // A dangling symlink reads as ENOENT above. Like `mkdir -p` inside the
                    // image, create where it points, as seen from the image's root; the
                    // directories are made by this same confined walk, and the reopen below is
                    // again the kernel's resolution inside the root.
                    Err(Errno::EXIST) => {
                        let link = rustix::fs::readlinkat(&fd, comps[i], Vec::new())?;
                        let link = link.as_bytes();
                        let mut joined: Vec<u8> = if link.starts_with(b"/") {
                            Vec::new()
                        } else {
                            comps[..i].join(&b'/')
                        };
                        joined.push(b'/');
                        joined.extend_from_slice(link);
                        let target = super::clean(&joined);
                        ensure_dir_hops(root, &target, hops + 1)?;
                    }
                    Err(e) => return Err(e.into()),
                }
                fd = open_dir_in_root(root, &prefix)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(fd)
}

/// The type of `name` in `dir` without following it, or `None` when nothing is there.
pub fn kind_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<(FileType, u64)>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some((FileType::from_raw_mode(st.st_mode), st.st_dev))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes `name` in `dir` and, for a directory, everything below it. It never follows a symlink
/// (each level is opened `O_NOFOLLOW` relative to its parent fd) and never crosses into another
/// file system (`dev` is the target's), so it cannot delete through a mount or a planted link.
pub fn remove_tree(dir: BorrowedFd<'_>, name: &[u8], dev: u64, privileged: bool) -> io::Result<()> {
    let Some((kind, this_dev)) = kind_at(dir, name)? else {
        return Ok(());
    };
    if kind != FileType::Directory {
        return Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?);
    }
    if this_dev != dev {
        return Err(io::Error::other(
            "refusing to delete a directory on another file system (a mount point)",
        ));
    }
    if !privileged {
        // An earlier layer may have made the directory 0555; its owner may still open it up.
        rustix::fs::chmodat(dir, name, Mode::from_raw_mode(0o700), AtFlags::empty())?;
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(&sub)? {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    for n in names {
        remove_tree(sub.as_fd(), &n, dev, privileged)?;
    }
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

/// The names directly inside the directory `dir` (an `O_PATH` fd is reopened for reading).
pub fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let fd = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd)? {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    Ok(names)
}

/// Creates a regular file exclusively (`O_EXCL|O_NOFOLLOW`: never opens something already there).
pub fn create_file(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?)
}

/// Opens a regular file named by untrusted text (`rel`) inside `dir`, resolved by the kernel with
/// `dir` as `/`: an archive's `manifest.json` cannot make lasso read a host file through a
/// symlink or `..` it planted.
pub fn open_file_in_root(dir: &std::path::Path, rel: &str) -> io::Result<std::fs::File> {
    let root = rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let fd = rustix::fs::openat2(
        &root,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
        RESOLVE,
    )?;
    let file = std::fs::File::from(fd);
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(file)
}
