//! Opening the file an exec names, as the target process would see it: inside its root, from its
//! cwd or execveat dirfd, through its own descriptors. Opens with O_PATH first and reads only
//! regular files. Decides nothing and identifies nothing (that is `identity`).

use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::identity::Viewpoint;

pub(crate) fn fd_path(f: &File) -> PathBuf {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())).unwrap_or_default()
}

/// Opens the file behind the target's descriptor `fd` (a memfd, or what `fexecve` got), with
/// `O_PATH` like every open here (see `open_in_view`).
pub(crate) fn open_magic(pid: i32, fd: i32) -> io::Result<File> {
    let p = rustix::fs::open(
        format!("/proc/{pid}/fd/{fd}"),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(File::from(p))
}

/// Opens `path` the way the target would: absolute paths inside the target's root (symlinks,
/// `..` and all, cannot climb out of it), relative ones from its cwd or the execveat dirfd.
/// Paths through the target's own descriptors (/dev/fd/N, /proc/self/fd/N) are taken from its
/// fd table, since /proc/self would mean the monitor here. The result is an `O_PATH` descriptor:
/// enough to stat it, name it and check its mount; `reopen_regular` makes it readable, which
/// costs a second open through /proc and is skipped when the content is already known.
pub(crate) fn open_in_view(vp: Viewpoint<'_>, dirfd: Option<i32>, path: &[u8]) -> io::Result<File> {
    if let Some(fd) = own_fd_path(path) {
        return open_magic(vp.pid, fd);
    }
    let pid = vp.pid;
    if let Some(rest) = own_proc_path(path) {
        // /proc/self here would be the monitor: the caller's own /proc entry is the same task
        // under its pid in the monitor's /proc (a sandbox with no /proc of its own makes the
        // kernel fail the exec, and the exec event is never reached).
        let mut full = format!("/proc/{pid}/").into_bytes();
        full.extend_from_slice(rest);
        let p = rustix::fs::open(
            Path::new(std::ffi::OsStr::from_bytes(&full)),
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        return Ok(File::from(p));
    }
    let o = OFlags::PATH | OFlags::CLOEXEC;
    let opened = if path.first() == Some(&b'/') {
        let own;
        let root = match vp.root {
            Some(fd) => fd,
            None => {
                own = rustix::fs::open(
                    format!("/proc/{pid}/root"),
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                std::os::fd::AsFd::as_fd(&own)
            }
        };
        match rustix::fs::openat2(root, path, o, Mode::empty(), ResolveFlags::IN_ROOT) {
            // IN_ROOT refuses magic links (e.g. a symlink into /proc/PID/fd); the kernel
            // follows them, so follow them from the target's /proc view.
            Err(rustix::io::Errno::LOOP) | Err(rustix::io::Errno::XDEV) => {
                let mut full = format!("/proc/{pid}/root").into_bytes();
                full.extend_from_slice(path);
                rustix::fs::open(
                    Path::new(std::ffi::OsStr::from_bytes(&full)),
                    o,
                    Mode::empty(),
                )
            }
            r => r,
        }
    } else {
        let base = match dirfd {
            Some(fd) => format!("/proc/{pid}/fd/{fd}"),
            None => format!("/proc/{pid}/cwd"),
        };
        let base = rustix::fs::open(base, o | OFlags::DIRECTORY, Mode::empty())?;
        rustix::fs::openat(&base, path, o, Mode::empty())
    };
    Ok(File::from(opened?))
}

/// Turns an O_PATH descriptor into a readable one, but only for regular files: opening a device
/// or FIFO for reading can have effects (a tape rewinds, a FIFO blocks).
pub(crate) fn reopen_regular(p: std::os::fd::OwnedFd) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    let st = rustix::fs::fstat(&p)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(File::from(p));
    }
    let f = rustix::fs::open(
        format!("/proc/self/fd/{}", p.as_raw_fd()),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )?;
    Ok(File::from(f))
}

/// The rest of `/proc/self/REST` or `/proc/thread-self/REST`, unless it climbs with `..`: from
/// the monitor, `/proc/PID/root/..` would leave the caller's root, which the kernel's own walk
/// inside the sandbox never does (such a path is resolved from the caller's root instead).
fn own_proc_path(path: &[u8]) -> Option<&[u8]> {
    let rest = path
        .strip_prefix(b"/proc/self/")
        .or_else(|| path.strip_prefix(b"/proc/thread-self/"))?;
    (!rest.split(|&b| b == b'/').any(|c| c == b"..")).then_some(rest)
}

fn own_fd_path(path: &[u8]) -> Option<i32> {
    let num = |s: &[u8]| std::str::from_utf8(s).ok()?.parse::<i32>().ok();
    match path {
        b"/dev/stdin" => return Some(0),
        b"/dev/stdout" => return Some(1),
        b"/dev/stderr" => return Some(2),
        _ => {}
    }
    for prefix in [
        &b"/dev/fd/"[..],
        b"/proc/self/fd/",
        b"/proc/thread-self/fd/",
    ] {
        if let Some(rest) = path.strip_prefix(prefix) {
            return num(rest);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_paths_name_the_targets_own_fds() {
        assert_eq!(own_fd_path(b"/proc/self/fd/7"), Some(7));
        assert_eq!(own_fd_path(b"/dev/fd/3"), Some(3));
        assert_eq!(own_fd_path(b"/usr/bin/rm"), None);
    }

    #[test]
    fn proc_self_paths_name_the_callers_entry_unless_they_climb() {
        assert_eq!(own_proc_path(b"/proc/self/exe"), Some(&b"exe"[..]));
        assert_eq!(
            own_proc_path(b"/proc/thread-self/cwd/x"),
            Some(&b"cwd/x"[..])
        );
        assert_eq!(own_proc_path(b"/proc/self/root/../etc/x"), None);
        assert_eq!(own_proc_path(b"/proc/1/exe"), None);
    }
}
