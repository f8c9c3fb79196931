//! Garbage collection: partial work in `tmp/`, and blobs and layers no name reaches.

use super::{PruneReport, Result, Store};
use crate::image::spec::{ImageConfig, Manifest};
use std::collections::BTreeSet;
use std::io;
use std::path::Path;

impl Store {
    /// Deletes partial downloads and unpacks, and every blob and layer no named image uses.
    pub fn prune(&self) -> Result<PruneReport> {
        let mut report = PruneReport::default();
        let lock_path = self.root.join("lock");
        let lock = std::fs::File::create(&lock_path).map_err(|e| self.io(&lock_path, e))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| self.io(&lock_path, e.into()))?;
        let tmp = self.root.join("tmp");
        for e in std::fs::read_dir(&tmp).map_err(|e| self.io(&tmp, e))? {
            let p = e.map_err(|e| self.io(&tmp, e))?.path();
            remove_any(&p).map_err(|e| self.io(&p, e))?;
            report.partial += 1;
        }
        let mut blobs = BTreeSet::new();
        let mut layers = BTreeSet::new();
        for rec in self.read_names()?.images.values() {
            blobs.insert(rec.hex().to_string());
            // An image whose manifest is unreadable keeps nothing else alive; it is broken.
            if let Ok(m) = self.read_json::<Manifest>("manifest", rec) {
                if let Some(c) = &m.config {
                    blobs.insert(c.digest.hex().to_string());
                    if let Ok(cfg) = self.read_json::<ImageConfig>("config", &c.digest) {
                        layers.extend(cfg.rootfs.diff_ids.iter().map(|d| d.hex().to_string()));
                    }
                }
                blobs.extend(m.layers.iter().map(|l| l.digest.hex().to_string()));
            }
        }
        for (dir, keep, count) in [
            ("blobs/sha256", &blobs, &mut report.blobs),
            ("layers/sha256", &layers, &mut report.layers),
        ] {
            let d = self.root.join(dir);
            for e in std::fs::read_dir(&d).map_err(|e| self.io(&d, e))? {
                let e = e.map_err(|e| self.io(&d, e))?;
                if !keep.contains(e.file_name().to_string_lossy().as_ref()) {
                    remove_any(&e.path()).map_err(|err| self.io(&e.path(), err))?;
                    *count += 1;
                }
            }
        }
        Ok(report)
    }
}

/// Deletes a store entry. Store entries hold no mounts (the engine mounts overlays elsewhere),
/// and `remove_dir_all` does not follow symlinks; read-only directories from layers are opened
/// up first so that an unprivileged owner can delete them.
fn remove_any(p: &Path) -> io::Result<()> {
    let m = std::fs::symlink_metadata(p)?;
    if !m.is_dir() {
        return std::fs::remove_file(p);
    }
    if !rustix::process::geteuid().is_root() {
        make_writable(p)?;
    }
    std::fs::remove_dir_all(p)
}

fn make_writable(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            make_writable(&e.path())?;
        }
    }
    Ok(())
}
