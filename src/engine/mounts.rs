//! One OCI mount entry applied inside the container's future root: the runc option vocabulary
//! turned into mount(2) flags, propagation changes and recursive attributes (mount_setattr), and
//! destinations resolved *inside* the rootfs (`in_root`) so that a symlink in
//! the image cannot redirect a mount onto the host (CVE-2021-30465 class). It runs only in
//! init's private mount namespace and touches nothing outside the rootfs it was handed.

pub use super::in_root::{fd_path, open_in_root, open_in_root_lazy};
pub use super::mount_options::propagation_flag;
use super::mount_options::{
    Options, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
};
use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mount {what} on {dest}: {source}")]
    Sys {
        what: String,
        dest: PathBuf,
        source: nix::Error,
    },
    #[error("mount destination {dest}: {source}")]
    Resolve {
        dest: PathBuf,
        source: rustix::io::Errno,
    },
    #[error(transparent)]
    Idmap(#[from] super::idmap::IdmapError),
    #[error("mount on {dest}: option {option:?} is not supported yet")]
    Unsupported { dest: PathBuf, option: String },
}

fn sys(what: &str, dest: &Path) -> impl FnOnce(nix::Error) -> MountError {
    let what = what.to_string();
    let dest = dest.to_path_buf();
    move |source| MountError::Sys { what, dest, source }
}

/// Flags a remount must keep: in a user namespace the kernel locks nosuid/nodev/noexec/atime
/// of mounts inherited from a more privileged namespace, and a remount that drops them fails.
fn locked_flags(target: &Path) -> MsFlags {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let Ok(st) = statvfs(target) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut m = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            m |= ms;
        }
    }
    m
}

/// Remounts a bind mount with `flags` (ro, nosuid, ...), keeping locked flags.
pub fn remount_bind(target: &Path, flags: MsFlags, what: &str) -> Result<(), MountError> {
    let flags = flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT | locked_flags(target);
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>).map_err(sys(what, target))
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Sets and clears MOUNT_ATTR_* bits of the mount whose root `fd` is, and with `recursive`
/// of every mount below it too.
fn mount_setattr(
    fd: BorrowedFd<'_>,
    set: u64,
    clr: u64,
    recursive: bool,
    dest: &Path,
) -> Result<(), MountError> {
    let flags = if recursive {
        libc::AT_EMPTY_PATH | libc::AT_RECURSIVE
    } else {
        libc::AT_EMPTY_PATH
    };
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads `size` bytes from a valid, initialised MountAttr; the path is
    // an empty C string used with AT_EMPTY_PATH on a descriptor we own.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(MountError::Sys {
            what: "recursive attributes".into(),
            dest: dest.to_path_buf(),
            source: nix::Error::last(),
        });
    }
    Ok(())
}

/// Host facts a mount entry depends on.
#[derive(Debug, Clone, Copy)]
pub struct MountContext {
    /// Init runs in a new user namespace: devices are bound, not made, and sysfs may fall back
    /// to a bind of the host's /sys.
    pub in_userns: bool,
    /// The host's cgroups are pure v2 (else v1 or hybrid).
    pub cgroup2_only: bool,
}

/// Applies one OCI mount inside the rootfs opened as `root`.
pub fn apply(root: BorrowedFd<'_>, m: &Mount, ctx: MountContext) -> Result<(), MountError> {
    let dest = m.destination();
    let opts = Options::parse(m.options().as_deref().unwrap_or_default());
    if let Some(opt) = opts.unsupported.first() {
        return Err(MountError::Unsupported {
            dest: dest.clone(),
            option: opt.clone(),
        });
    }
    let typ = m.typ().as_deref().unwrap_or("");
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
    let is_bind = opts.is_bind() || typ == "bind";
    // Whether a missing destination is made as a directory: asked only when it is missing
    // (most destinations exist in the skeleton or the image), so most binds skip the stat.
    let dir = || {
        !is_bind
            || std::fs::metadata(&source)
                .map(|md| md.is_dir())
                .unwrap_or(true)
    };
    let target_fd = open_in_root_lazy(root, dest, &dir)?;
    let target = fd_path(target_fd.as_fd());
    let data = opts.data.join(",");
    let data = (!data.is_empty()).then_some(data.as_str());

    if is_bind {
        if super::idmap::requested(m).is_some() {
            // Cloned and idmapped on the host by the runtime; only attached here.
            let tree = super::idmap::take(dest)?;
            super::idmap::attach(tree, target_fd.as_fd(), dest)?;
        } else {
            let rec = opts.flags & MsFlags::MS_REC;
            mount(
                Some(&source),
                &target,
                None::<&str>,
                MsFlags::MS_BIND | rec,
                None::<&str>,
            )
            .map_err(sys(&format!("bind {}", source.display()), dest))?;
        }
        let extra = opts.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if extra.is_empty() && !needs_finish(&opts) {
            return Ok(());
        }
        // A fresh descriptor: the old one still names the directory under the new mount.
        let mounted = open_in_root_lazy(root, dest, &dir)?;
        let target = fd_path(mounted.as_fd());
        if !extra.is_empty() {
            match bind_attrs(extra) {
                Some((set, clr)) => mount_setattr(mounted.as_fd(), set, clr, false, dest)?,
                None => remount_bind(&target, extra, "remount")?,
            }
        }
        finish(&mounted, &target, &opts, dest)?;
        return Ok(());
    }

    match typ {
        "cgroup" | "cgroup2" => return mount_cgroup(root, &target, &opts, dest, ctx),
        _ => {}
    }
    let result = mount(
        Some(&source),
        &target,
        Some(typ),
        opts.flags - MsFlags::MS_REC,
        data,
    );
    match result {
        Ok(()) => {}
        // A user namespace that does not own the network namespace may not mount sysfs: show
        // the host's /sys read-only instead, as runc does.
        Err(nix::Error::EPERM) if typ == "sysfs" && ctx.in_userns => {
            mount(
                Some("/sys"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(sys("bind /sys", dest))?;
            let mounted = open_in_root(root, dest, true)?;
            remount_bind(
                &fd_path(mounted.as_fd()),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                "remount /sys",
            )?;
        }
        Err(e) => return Err(sys(typ, dest)(e)),
    }
    if !needs_finish(&opts) {
        return Ok(());
    }
    let mounted = open_in_root(root, dest, true)?;
    finish(&mounted, &fd_path(mounted.as_fd()), &opts, dest)
}

/// Whether `finish` has anything to do (propagation changes or recursive attributes).
fn needs_finish(opts: &Options) -> bool {
    !opts.propagation.is_empty() || opts.attr_set != 0 || opts.attr_clr != 0
}

/// The flags a bind's remount would set (`ro`, `nosuid`, `nodev`, `noexec`) as mount
/// attributes of the new mount alone, or `None` when it asks for more (then the remount is
/// made as before). Same result as `remount_bind`: read-only exactly when asked (cleared
/// otherwise, which the kernel refuses for a locked read-only mount either way), and
/// nosuid/nodev/noexec added, never removed (the remount kept those the mount had, its
/// "locked" flags). Attributes change only what they name, so the remount's statfs of the
/// target for the flags to keep is not needed, nor the remount's second path lookup.
fn bind_attrs(extra: MsFlags) -> Option<(u64, u64)> {
    let mut set = 0;
    for (ms, attr) in [
        (MsFlags::MS_RDONLY, MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
    ] {
        if extra.contains(ms) {
            set |= attr;
        }
    }
    let known = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if !(extra - known).is_empty() {
        return None;
    }
    let clr = if extra.contains(MsFlags::MS_RDONLY) {
        0
    } else {
        MOUNT_ATTR_RDONLY
    };
    Some((set, clr))
}

fn finish(fd: &OwnedFd, target: &Path, opts: &Options, dest: &Path) -> Result<(), MountError> {
    for p in &opts.propagation {
        mount(None::<&str>, target, None::<&str>, *p, None::<&str>)
            .map_err(sys("propagation", dest))?;
    }
    if opts.attr_set != 0 || opts.attr_clr != 0 {
        mount_setattr(fd.as_fd(), opts.attr_set, opts.attr_clr, true, dest)?;
    }
    Ok(())
}

/// A cgroup mount: cgroup2 where the host is pure v2; on v1 and hybrid hosts the host's
/// hierarchy is bound (read-only when asked), because v1 hierarchies cannot be mounted from a
/// user namespace and a new cgroup namespace alone does not scope a v1 bind.
fn mount_cgroup(
    root: BorrowedFd<'_>,
    target: &Path,
    opts: &Options,
    dest: &Path,
    ctx: MountContext,
) -> Result<(), MountError> {
    let flags = opts.flags - MsFlags::MS_REC;
    if ctx.cgroup2_only {
        mount(
            Some("cgroup2"),
            target,
            Some("cgroup2"),
            flags,
            None::<&str>,
        )
        .map_err(sys("cgroup2", dest))?;
    } else {
        mount(
            Some("/sys/fs/cgroup"),
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys("bind /sys/fs/cgroup", dest))?;
        let mounted = open_in_root(root, dest, true)?;
        let p = fd_path(mounted.as_fd());
        if flags.contains(MsFlags::MS_RDONLY) {
            mount_setattr(mounted.as_fd(), MOUNT_ATTR_RDONLY, 0, true, dest)?;
        }
        return finish(&mounted, &p, opts, dest);
    }
    let mounted = open_in_root(root, dest, true)?;
    finish(&mounted, &fd_path(mounted.as_fd()), opts, dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_flags_become_attributes_and_rw_clears_read_only() {
        let (set, clr) = bind_attrs(MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV)
            .expect("plain flags");
        assert_eq!(
            set,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV
        );
        assert_eq!(clr, 0);
        // `rw`: read-only is cleared, as the remount did; nosuid/nodev are never cleared.
        let (set, clr) = bind_attrs(MsFlags::MS_NOSUID).unwrap();
        assert_eq!((set, clr), (MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY));
        // Anything attributes cannot say keeps the remount.
        assert!(bind_attrs(MsFlags::MS_RDONLY | MsFlags::MS_SYNCHRONOUS).is_none());
        assert!(bind_attrs(MsFlags::MS_NOATIME).is_none());
    }
}
