//! Metadata of what the unpacker creates: owners, modes (setuid after chown), times, xattrs
//! (minus the overlayfs ones a layer must not forge), and sparse-aware file data.

use super::{fsops, DirMeta, Unpacker};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, Timespec, Timestamps};
use std::io::{self, Read};

impl Unpacker {
    pub(super) fn set_xattrs<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        fd: &OwnedFd,
    ) -> io::Result<()> {
        let Some(exts) = entry.pax_extensions()? else {
            return Ok(());
        };
        let mut skipped = 0;
        for ext in exts {
            let ext = ext?;
            let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") else {
                continue;
            };
            // overlay.* xattrs steer overlayfs (redirects, metacopy, opaque); the store stacks
            // layers with overlayfs, so a layer must never be able to forge them.
            if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
                skipped += 1;
                continue;
            }
            match rustix::fs::fsetxattr(
                fd,
                name,
                ext.value_bytes(),
                rustix::fs::XattrFlags::empty(),
            ) {
                Ok(()) => {}
                Err(
                    rustix::io::Errno::PERM | rustix::io::Errno::NOTSUP | rustix::io::Errno::ACCESS,
                ) => skipped += 1,
                Err(e) => return Err(e.into()),
            }
        }
        self.report.skipped_xattrs += skipped;
        Ok(())
    }

    pub(super) fn set_link_meta(
        &self,
        parent: &OwnedFd,
        leaf: &[u8],
        uid: u64,
        gid: u64,
        times: &Timestamps,
    ) -> io::Result<()> {
        if self.opts.chown {
            rustix::fs::chownat(
                parent,
                leaf,
                Some(uid_of(uid)),
                Some(gid_of(gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
        }
        rustix::fs::utimensat(parent, leaf, times, AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }

    pub(super) fn finish_dir(&self, d: &DirMeta) -> io::Result<()> {
        let fd = match fsops::open_dir_rw_in_root(self.root.as_fd(), &d.path) {
            Ok(fd) => fd,
            // Replaced later in the same layer by a non-directory: nothing to finish.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOTDIR | libc::ELOOP | libc::ENOENT)
                ) =>
            {
                return Ok(())
            }
            Err(e) => return Err(e),
        };
        if self.opts.chown {
            rustix::fs::fchown(&fd, Some(uid_of(d.uid)), Some(gid_of(d.gid)))?;
        }
        rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(d.mode))?;
        rustix::fs::futimens(&fd, &timestamps(d.mtime))?;
        Ok(())
    }
}

/// Copies a file's data, seeking over all-zero blocks so that sparse files stay sparse on disk.
pub(super) fn copy_sparse<R: Read>(src: &mut R, fd: &OwnedFd, size: u64) -> io::Result<u64> {
    let mut file = std::fs::File::from(fd.try_clone()?);
    let mut buf = vec![0u8; 128 * 1024];
    let mut total = 0u64;
    let mut pending_hole = false;
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        if chunk.iter().all(|b| *b == 0) {
            std::io::Seek::seek(&mut file, io::SeekFrom::Current(n as i64))?;
            pending_hole = true;
        } else {
            std::io::Write::write_all(&mut file, chunk)?;
            pending_hole = false;
        }
        total += n as u64;
        if total > size {
            return Err(io::Error::other(
                "entry holds more data than its header says",
            ));
        }
    }
    if total < size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "layer ends inside this file's data (truncated download?)",
        ));
    }
    if pending_hole {
        file.set_len(total)?;
    }
    Ok(total)
}

pub(super) fn timestamps(mtime: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime.min(i64::MAX as u64) as i64,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// The overlayfs xattr names to set for `what`: `user.overlay.*` (read by overlays mounted with
/// `userxattr`, as lasso's sandboxes are) and, when privileged, `trusted.overlay.*` as well.
pub(super) fn overlay_xattrs(privileged: bool, what: &str) -> Vec<String> {
    let mut names = vec![format!("user.overlay.{what}")];
    if privileged {
        names.push(format!("trusted.overlay.{what}"));
    }
    names
}

pub(super) fn uid_of(id: u64) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(id.min(u32::MAX as u64 - 1) as u32)
}

pub(super) fn gid_of(id: u64) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(id.min(u32::MAX as u64 - 1) as u32)
}
