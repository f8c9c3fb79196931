//! Deleting a sandbox's directory without ever crossing into a mount: the walk stays on the
//! directory's own filesystem and refuses to go on when it meets another one, because
//! deleting through a bind mount would delete the host's files.

use super::SandboxError;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Removes `path` and everything under it, on its filesystem only. Missing is fine.
pub fn remove(path: &Path) -> Result<(), SandboxError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(super::io_err(format!("stat {}", path.display()))(e)),
    };
    walk(path, meta.dev())
}

fn walk(path: &Path, dev: u64) -> Result<(), SandboxError> {
    let meta = std::fs::symlink_metadata(path)
        .map_err(super::io_err(format!("stat {}", path.display())))?;
    if meta.dev() != dev {
        return Err(SandboxError::MountedTree {
            path: path.to_path_buf(),
        });
    }
    if meta.is_dir() {
        let list = match std::fs::read_dir(path) {
            // overlayfs leaves its `work/work` dir with mode 000 (an image root's private
            // layer); the owner may open it up again to delete it.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
                    .and_then(|()| std::fs::read_dir(path))
            }
            r => r,
        };
        for entry in list.map_err(super::io_err(format!("list {}", path.display())))? {
            let entry = entry.map_err(super::io_err(format!("list {}", path.display())))?;
            walk(&entry.path(), dev)?;
        }
        std::fs::remove_dir(path).map_err(super::io_err(format!("remove {}", path.display())))
    } else {
        std::fs::remove_file(path).map_err(super::io_err(format!("remove {}", path.display())))
    }
}
