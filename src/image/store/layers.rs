//! Layers: each layer blob unpacked once (overlay form) into `layers/sha256/<diff-id>/`, kept
//! only when its uncompressed stream hashes to the diff ID; and flat unpacking of whole images.

use super::{Result, Store, StoreError};
use crate::image::digest::{Digest, Hasher};
use crate::image::progress::Progress;
use crate::image::unpack::{self, UnpackError};
use std::io::{self, Read, Write};
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
        if self.layer_path(diff_id).is_dir() {
            return Ok(());
        }
        let path = self.blob_path(blob);
        let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingBlob(blob.clone()),
            _ => self.io(&path, e),
        })?;
        let size = file.metadata().map(|m| m.len()).ok();
        let layer = LayerIds {
            manifest,
            blob,
            size,
            diff_id,
        };
        self.unpack_stream(&layer, file, None, progress)
    }

    /// Downloads and unpacks a layer in one pass: every byte read from `reader` is written to
    /// the blob file and hashed while the decompressed stream is unpacked and hashed too. The
    /// blob and the layer become visible only when the blob's digest and size and the layer's
    /// diff ID all match; otherwise both are dropped.
    pub fn put_layer_streaming(
        &self,
        manifest: &Digest,
        blob: &Digest,
        size: Option<u64>,
        diff_id: &Digest,
        reader: impl Read,
        progress: &Progress,
    ) -> Result<()> {
        if self.layer_path(diff_id).is_dir() && self.has_blob(blob) {
            return Ok(());
        }
        let tmp_dir = self.root.join("tmp");
        let mut tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&tmp_dir)
            .map_err(|e| self.io(&tmp_dir, e))?;
        let layer = LayerIds {
            manifest,
            blob,
            size,
            diff_id,
        };
        self.unpack_stream(&layer, reader, Some(tmp.as_file_mut()), progress)?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| self.io(tmp.path(), e))?;
        let dest = self.blob_path(blob);
        tmp.persist(&dest).map_err(|e| self.io(&dest, e.error))?;
        Ok(())
    }

    /// Unpacks `src` (the compressed layer) into `layers/<diff-id>`, verifying both digests;
    /// with `copy`, the compressed bytes are also written there as they pass.
    fn unpack_stream(
        &self,
        l: &LayerIds<'_>,
        src: impl Read,
        copy: Option<&mut std::fs::File>,
        progress: &Progress,
    ) -> Result<()> {
        let dest = self.layer_path(l.diff_id);
        let wrap = |source| StoreError::Unpack {
            manifest: l.manifest.clone(),
            layer: l.blob.clone(),
            source,
        };
        let work = self.temp_dir("unpack")?;
        let target = work.path().join("layer");
        std::fs::create_dir(&target).map_err(|e| self.io(&target, e))?;
        // The layer is a lower dir of sandboxes whose mounter is the agent's ID: it must be
        // able to walk in (a `./` entry in the layer may still set its own mode).
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| self.io(&target, e))?;
        let mut bar = progress.start(&format!("layer {}", &l.blob.hex()[..12]), l.size);
        let compressed = Hasher::new();
        let plain = Hasher::new();
        let mut tee = Tee {
            inner: src,
            copy,
            hasher: compressed.clone(),
            limit: l.size,
            write_error: None,
        };
        let unpacked = (|| -> std::result::Result<(), UnpackError> {
            let counted = bar.reader(&mut tee);
            let mut stream = plain.reader(unpack::decompress(counted).map_err(UnpackError::Read)?);
            let mut u = unpack::Unpacker::new(
                &target,
                unpack::Options::for_current_user(unpack::Mode::Overlay),
            )?;
            u.apply_tar(&mut stream)?;
            // Tar readers stop at the end marker; hash the padding after it too.
            io::copy(&mut stream, &mut io::sink()).map_err(UnpackError::Read)?;
            Ok(())
        })();
        if unpacked.is_err() {
            // Read the rest (bounded by the descriptor's size) so that a corrupt download is
            // reported as one, not as whatever the decompressor tripped over first.
            tee.copy = None;
            let _ = io::copy(&mut tee, &mut io::sink());
            let (got, n) = compressed.finish();
            if &got != l.blob && l.size.is_none_or(|w| n <= w) {
                return Err(StoreError::DigestMismatch {
                    expected: l.blob.clone(),
                    actual: got,
                    size: n,
                });
            }
        }
        // A source past its descriptor's size or a blob write that failed explains an unpack
        // error better than the unpacker's view of a cut stream.
        let (got_blob, n) = compressed.finish();
        if let Some(want) = l.size.filter(|w| n > *w) {
            return Err(StoreError::SizeMismatch {
                digest: l.blob.clone(),
                expected: want,
                actual: n,
            });
        }
        if let Some(e) = tee.write_error.take() {
            return Err(self.io(&self.root.join("tmp"), e));
        }
        unpacked.map_err(wrap)?;
        if let Some(want) = l.size.filter(|w| n != *w) {
            return Err(StoreError::SizeMismatch {
                digest: l.blob.clone(),
                expected: want,
                actual: n,
            });
        }
        if &got_blob != l.blob {
            return Err(StoreError::DigestMismatch {
                expected: l.blob.clone(),
                actual: got_blob,
                size: n,
            });
        }
        let (got_diff, n) = plain.finish();
        if &got_diff != l.diff_id {
            return Err(StoreError::DigestMismatch {
                expected: l.diff_id.clone(),
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

/// Which layer an unpack is about, for verification and error messages.
struct LayerIds<'a> {
    manifest: &'a Digest,
    blob: &'a Digest,
    size: Option<u64>,
    diff_id: &'a Digest,
}

/// Passes reads through, hashing them and (optionally) writing them to a file. Reading past
/// `limit` stops the stream: a registry sending more than the descriptor promised is cut off
/// at once instead of filling the disk.
struct Tee<'f, R> {
    inner: R,
    copy: Option<&'f mut std::fs::File>,
    hasher: Hasher,
    limit: Option<u64>,
    write_error: Option<io::Error>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        if self.limit.is_some_and(|l| self.hasher.len() > l) {
            return Err(io::Error::other("more bytes than the descriptor's size"));
        }
        if let Some(f) = self.copy.as_mut() {
            if let Err(e) = f.write_all(&buf[..n]) {
                let msg = e.to_string();
                self.write_error = Some(e);
                return Err(io::Error::other(msg));
            }
        }
        Ok(n)
    }
}
