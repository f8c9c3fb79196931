//! Whiteouts (`.wh.NAME`) and opaque directories (`.wh..wh..opq`) as the image spec defines them:
//! they hide what lower layers made, never what the same layer made. Flatten mode deletes;
//! overlay mode records them in overlayfs's own form.

use super::{fsops, meta, Mode, UnpackError, Unpacker};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::FileType;
use std::collections::HashSet;

impl Unpacker {
    pub(super) fn whiteout(
        &mut self,
        parent: &OwnedFd,
        parent_path: &[u8],
        hidden: &[u8],
        this_layer: &mut HashSet<Vec<u8>>,
        raw: &[u8],
    ) -> Result<(), UnpackError> {
        let child_path = |name: &[u8]| -> Vec<u8> {
            if parent_path.is_empty() {
                name.to_vec()
            } else {
                [parent_path, b"/", name].concat()
            }
        };
        if hidden == b".wh..opq" {
            match self.opts.mode {
                Mode::Flatten => {
                    let names = fsops::list_dir(parent.as_fd())
                        .map_err(|e| self.entry_err(raw, "listing an opaque directory", e))?;
                    for name in names {
                        if !this_layer.contains(&child_path(&name)) {
                            fsops::remove_tree(parent.as_fd(), &name, self.dev, self.privileged)
                                .map_err(|e| {
                                    self.entry_err(raw, "clearing an opaque directory", e)
                                })?;
                        }
                    }
                }
                Mode::Overlay => {
                    let dir = fsops::open_dir_rw_in_root(self.root.as_fd(), parent_path)
                        .map_err(|e| self.entry_err(raw, "opening an opaque directory", e))?;
                    // Sandboxes mount the layers with `userxattr` (their overlay lives in a
                    // user namespace, root's too), which reads only user.overlay.*; root also
                    // writes the trusted.* form for overlays mounted outside a user namespace.
                    for name in meta::overlay_xattrs(self.privileged, "opaque") {
                        rustix::fs::fsetxattr(&dir, name, b"y", rustix::fs::XattrFlags::empty())
                            .map_err(|e| {
                                self.entry_err(raw, "marking the directory opaque", e.into())
                            })?;
                    }
                }
            }
            return Ok(());
        }
        if hidden.starts_with(b".wh.") || hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Ok(()); // aufs bookkeeping (.wh..wh.plnk and friends) or a nameless whiteout.
        }
        let target = child_path(hidden);
        if this_layer.contains(&target) {
            return Ok(());
        }
        fsops::remove_tree(parent.as_fd(), hidden, self.dev, self.privileged)
            .map_err(|e| self.entry_err(raw, "applying the whiteout", e))?;
        if self.opts.mode == Mode::Overlay {
            // A 0:0 character device is overlayfs's whiteout; since Linux 5.8 anyone may make one.
            rustix::fs::mknodat(
                parent,
                hidden,
                FileType::CharacterDevice,
                rustix::fs::Mode::empty(),
                rustix::fs::makedev(0, 0),
            )
            .map_err(|e| self.entry_err(raw, "creating the overlay whiteout", e.into()))?;
        }
        this_layer.insert(target);
        Ok(())
    }
}
