//! Masked paths (`linux.maskedPaths`), made by init after pivot: /dev/null bound over a file,
//! an empty read-only tmpfs over a directory. Every masked directory shows the *same* empty
//! read-only tmpfs: the first one is mounted, the others are clones of that mount
//! (`open_tree(OPEN_TREE_CLONE)` + `move_mount`), which spares a new superblock per directory
//! (a tmpfs mount cost ~12 µs here, a bind ~5 µs; the host view masks 8 directories, and its
//! masks took 0.306 instead of 0.355 ms, median of 500 alternating runs).
//! What the container sees is the same: each mask is an empty directory whose mount and
//! superblock are read-only (`ro,relatime` in mountinfo, as runc's); only the device number is
//! shared between them. It owns the descriptor of that first tmpfs and nothing else; it mounts
//! only onto the masked paths it is given.

use super::rootfs::RootfsError;
use nix::mount::{mount, MsFlags};
use std::os::fd::OwnedFd;
use std::path::Path;

/// The masks of one container, made in order.
#[derive(Default)]
pub struct Masks {
    /// The root of the first masked directory's tmpfs (an `O_PATH` descriptor).
    empty: Option<OwnedFd>,
}

impl Masks {
    /// Hides `path` (a path missing in the container is left alone, as runc does).
    /// (Trying the bind first and reading its error was dropped: ENOENT cannot tell an absent
    /// target from an absent /dev/null, e.g. after a masked /dev, and a mask must not
    /// silently fail.)
    pub fn mask(&mut self, path: &Path) -> Result<(), RootfsError> {
        let md = match std::fs::metadata(path) {
            Ok(md) => md,
            Err(_) => return Ok(()),
        };
        if !md.is_dir() {
            return mount(
                Some("/dev/null"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(sys(path));
        }
        if let Some(empty) = &self.empty {
            // A clone that fails (an old kernel without open_tree) falls back to a tmpfs of
            // the directory's own: the mask is made either way.
            if clone_onto(empty, path).is_ok() {
                return Ok(());
            }
        }
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(sys(path))?;
        if self.empty.is_none() {
            // The path now leads to the new tmpfs's root.
            self.empty = rustix::fs::open(
                path,
                rustix::fs::OFlags::PATH
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .ok();
        }
        Ok(())
    }
}

/// Attaches a clone of the mount `empty` is the root of onto `path` (following a link at
/// `path`, as mount(2) does).
fn clone_onto(empty: &OwnedFd, path: &Path) -> rustix::io::Result<()> {
    use rustix::mount::{move_mount, open_tree, MoveMountFlags, OpenTreeFlags};
    let tree = open_tree(
        empty,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH,
    )?;
    move_mount(
        &tree,
        "",
        rustix::fs::CWD,
        path,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_SYMLINKS,
    )
}

fn sys(path: &Path) -> impl FnOnce(nix::Error) -> RootfsError + '_ {
    move |source| RootfsError::Sys {
        what: "mask",
        path: path.to_path_buf(),
        source,
    }
}
