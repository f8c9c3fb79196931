//! Layers: each layer blob unpacked once (overlay form) into `layers/sha256/<diff-id>/`, kept
//! only when its uncompressed stream hashes to the diff ID; and flat unpacking of whole images.

use super::{Result, Store, StoreError};
use crate::image::digest::{Digest, Hasher};
use crate::image::progress::Progress;
use crate::image::unpack::{self, UnpackError};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

impl Store {
    /// Unpacks one layer blob into `layers/` unless it is already there. The unpacked stream must
    /// hash to `diff_id` (from the config), or nothing is kept.
    pub(super) fn ensure_layer(
        &self,
        manifest: &Digest,
        blob: &Digest,
        diff_id: &Digest,
        progress: &Progress,
    ) -> Result<()> {
        let dest = self.layer_path(diff_id);
        if dest.is_dir() {
            return Ok(());
        }
        let wrap = |source| StoreError::Unpack {
            manifest: manifest.clone(),
            layer: blob.clone(),
            source,
        };
        let path = self.blob_path(blob);
        let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingBlob(blob.clone()),
            _ => self.io(&path, e),
        })?;
        let size = file.metadata().map(|m| m.len()).ok();
        let work = self.temp_dir("unpack")?;
        let target = work.path().join("layer");
        std::fs::create_dir(&target).map_err(|e| self.io(&target, e))?;
        // The layer is a lower dir of sandboxes whose mounter is the agent's ID: it must be
        // able to walk in (a `./` entry in the layer may still set its own mode).
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| self.io(&target, e))?;
        let mut bar = progress.start(&format!("unpack {}", &blob.hex()[..12]), size);
        let compressed = Hasher::new();
        let plain = Hasher::new();
        {
            let counted = bar.reader(compressed.reader(file));
            let mut stream =
                plain.reader(unpack::decompress(counted).map_err(|e| wrap(UnpackError::Read(e)))?);
            let mut u = unpack::Unpacker::new(
                &target,
                unpack::Options::for_current_user(unpack::Mode::Overlay),
            )
            .map_err(wrap)?;
            u.apply_tar(&mut stream).map_err(wrap)?;
            // Tar readers stop at the end marker; hash the padding after it too.
            io::copy(&mut stream, &mut io::sink()).map_err(|e| wrap(UnpackError::Read(e)))?;
        }
        let (got_blob, _) = compressed.finish();
        if &got_blob != blob {
            return Err(StoreError::DigestMismatch {
                expected: blob.clone(),
                actual: got_blob,
                size: size.unwrap_or(0),
            });
        }
        let (got_diff, n) = plain.finish();
        if &got_diff != diff_id {
            return Err(StoreError::DigestMismatch {
                expected: diff_id.clone(),
                actual: got_diff,
                size: n,
            });
        }
        match std::fs::rename(&target, &dest) {
            Ok(()) => {}
            // Another lasso unpacked the same layer meanwhile; theirs is as good as ours.
            Err(_) if dest.is_dir() => {}
            Err(e) => return Err(self.io(&dest, e)),
        }
        bar.finish();
        Ok(())
    }

    /// Applies all layers of an image onto `target` as one plain directory tree.
    pub fn unpack_flat(
        &self,
        name: &str,
        target: &Path,
        opts: unpack::Options,
        progress: &Progress,
    ) -> Result<unpack::Report> {
        let d = self.inspect(name)?;
        let mut u = unpack::Unpacker::new(target, opts).map_err(|source| StoreError::Unpack {
            manifest: d.manifest.clone(),
            layer: d.manifest.clone(),
            source,
        })?;
        for l in &d.layers {
            let path = self.blob_path(&l.digest);
            let f = std::fs::File::open(&path).map_err(|e| self.io(&path, e))?;
            let mut bar =
                progress.start(&format!("unpack {}", &l.digest.hex()[..12]), Some(l.size));
            u.apply(bar.reader(f))
                .map_err(|source| StoreError::Unpack {
                    manifest: d.manifest.clone(),
                    layer: l.digest.clone(),
                    source,
                })?;
            bar.finish();
        }
        Ok(u.report().clone())
    }
}
