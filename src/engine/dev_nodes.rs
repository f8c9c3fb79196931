//! The device nodes of a container's /dev and its standard links, made inside the root being
//! built: the OCI default devices and `linux.devices`, each made with mknod, or in a user
//! namespace (where mknod is refused) bound from the host's node onto an empty file made in
//! the root. Every path is resolved inside the root (`in_root`); nothing is followed out of it.
//! Which devices a container gets is `devices`' business; this only makes them.

use super::in_root::{fd_path, open_in_root};
use super::rootfs::{PreparedRoot, RootfsError};
use nix::fcntl::AtFlags;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, Mode, SFlag};
use nix::unistd::{fchownat, Gid, Uid};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Spec};
use rustix::fs::{Mode as RMode, OFlags};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

fn sys<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(nix::Error) -> RootfsError + 'a {
    move |source| RootfsError::Sys {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Makes the default devices, the Spec's `linux.devices` and the /dev links.
pub fn make(spec: &Spec, root: &PreparedRoot, in_userns: bool) -> Result<(), RootfsError> {
    let mut parents = ParentCache::default();
    for d in super::devices::default_devices() {
        create_device(root, &d, in_userns, &mut parents)?;
    }
    let extra = spec.linux().as_ref().and_then(|l| l.devices().clone());
    for d in extra.iter().flatten() {
        create_device(root, d, in_userns, &mut parents)?;
    }
    let dev = parents.open(root, Path::new("/dev"))?;
    dev_links(dev)
}

/// The directory devices were last made in, opened once inside the root (every default
/// device lives in /dev: one lookup of it instead of one per device).
#[derive(Default)]
struct ParentCache {
    last: Option<(PathBuf, OwnedFd)>,
}

impl ParentCache {
    fn open(&mut self, root: &PreparedRoot, parent: &Path) -> Result<BorrowedFd<'_>, RootfsError> {
        if self.last.as_ref().is_none_or(|(p, _)| p != parent) {
            let fd = open_in_root(root.fd.as_fd(), parent, true)?;
            self.last = Some((parent.to_path_buf(), fd));
        }
        Ok(self.last.as_ref().expect("just set").1.as_fd())
    }
}

/// Makes a device node; in a user namespace mknod is not allowed, so the host's node is bound
/// onto an empty file instead.
fn create_device(
    root: &PreparedRoot,
    d: &LinuxDevice,
    in_userns: bool,
    parents: &mut ParentCache,
) -> Result<(), RootfsError> {
    let path = d.path();
    let parent = path.parent().unwrap_or(Path::new("/"));
    let pfd = parents.open(root, parent)?;
    let name = path.file_name().unwrap_or_default();
    if in_userns {
        // Usually the name is free (a fresh /dev tmpfs): the empty file is made under the
        // parent resolved inside the root, never through a link (O_NOFOLLOW, O_EXCL), and
        // the node is bound onto exactly that file. Anything else (a file or link already
        // there) takes the lookup inside the root, as before.
        let made = rustix::fs::openat(
            pfd,
            name,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            RMode::from_raw_mode(0o644),
        );
        let f = match made {
            Ok(f) => f,
            Err(_) => open_in_root(root.fd.as_fd(), path, false)?,
        };
        mount(
            Some(path.as_path()),
            &fd_path(f.as_fd()),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys("bind device", path))?;
        return Ok(());
    }
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => return Ok(()),
    };
    let mode = Mode::from_bits_truncate(d.file_mode().unwrap_or(0o666));
    let _ = nix::unistd::unlinkat(pfd, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
    nix::sys::stat::mknodat(
        pfd,
        name,
        kind,
        mode,
        makedev(d.major() as u64, d.minor() as u64),
    )
    .map_err(sys("mknod", path))?;
    // mknod honours the umask: set the mode the spec asked for.
    nix::sys::stat::fchmodat(
        pfd,
        name,
        mode,
        nix::sys::stat::FchmodatFlags::NoFollowSymlink,
    )
    .map_err(sys("chmod device", path))?;
    fchownat(
        pfd,
        name,
        d.uid().map(Uid::from_raw),
        d.gid().map(Gid::from_raw),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(sys("chown device", path))?;
    Ok(())
}

/// The /dev links, made in `dev` (an O_PATH descriptor of /dev resolved inside the root; the
/// *at calls take it as their directory).
fn dev_links(dev: BorrowedFd<'_>) -> Result<(), RootfsError> {
    for (target, name) in [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ] {
        if name == "ptmx" {
            let _ = nix::unistd::unlinkat(dev, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
        match nix::unistd::symlinkat(target, dev, name) {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(sys("symlink", Path::new(name))(e)),
        }
    }
    Ok(())
}
