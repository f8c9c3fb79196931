//! The image store: verified blobs by digest, each layer unpacked once (overlay form, keyed by
//! its diff ID) and shared by every image and sandbox that uses it, and a names index.
//!
//! ```text
//! ROOT/blobs/sha256/<hex>          manifests, configs, layer archives (verified before rename)
//! ROOT/layers/sha256/<diff-id>/    one unpacked layer, whiteouts in overlayfs form
//! ROOT/images.json                 name -> manifest digest
//! ROOT/tmp/                        downloads and unpacks in progress; `prune` clears it
//! ```
//!
//! Nothing appears under `blobs/`, `layers/` or `images.json` half-written: everything is made in
//! `tmp/`, verified, then renamed into place. The store never mounts anything; the engine stacks
//! the directories [`Store::layer_dirs`] returns.

use crate::image::digest::{Digest, Hasher};
use crate::image::progress::Progress;
use crate::image::spec::{ImageConfig, Manifest};
use crate::image::unpack::{self, UnpackError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// JSON documents (manifests, configs, indexes) larger than this are refused: real ones are a
/// few KiB, and reading one into memory must not be a way to exhaust it.
pub const MAX_JSON: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("image store at {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("no space left on the device holding the image store ({path}); free space or run `lasso image prune`")]
    NoSpace { path: String },
    #[error("blob {expected} failed verification: got {actual} ({size} bytes); the source is corrupt or was tampered with")]
    DigestMismatch {
        expected: Digest,
        actual: Digest,
        size: u64,
    },
    #[error("blob {digest} has {actual} bytes but its descriptor says {expected}; the source is corrupt")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("blob {0} is not in the store")]
    MissingBlob(Digest),
    #[error("no image named {0:?} in the store; see `lasso image list`, or `lasso image pull`/`import` it")]
    UnknownImage(String),
    #[error("{what} {digest} is not valid JSON of the expected shape: {source}")]
    BadJson {
        what: &'static str,
        digest: Digest,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what} {digest} is larger than {MAX_JSON} bytes; refusing to read it")]
    TooLarge { what: &'static str, digest: Digest },
    #[error("image {manifest} lists {layers} layers but its config lists {diff_ids} diff IDs")]
    LayerCount {
        manifest: Digest,
        layers: usize,
        diff_ids: usize,
    },
    #[error("layer {layer} of image {manifest}: {source}")]
    Unpack {
        manifest: Digest,
        layer: Digest,
        #[source]
        source: UnpackError,
    },
    #[error("{0:?} is not a valid image name: use letters, digits and . _ - / : @ only")]
    BadName(String),
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One named image in the store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageRecord {
    pub name: String,
    pub manifest: Digest,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct NamesIndex {
    images: BTreeMap<String, Digest>,
}

/// Everything `inspect` knows about an image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageDetails {
    pub name: String,
    pub manifest: Digest,
    pub config_digest: Digest,
    pub config: ImageConfig,
    pub layers: Vec<LayerDetails>,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerDetails {
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
    pub media_type: String,
    pub path: PathBuf,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct PruneReport {
    pub partial: u64,
    pub blobs: u64,
    pub layers: u64,
}

pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Where the store lives for this user: `$XDG_DATA_HOME/lasso/images`, or
    /// `/var/lib/lasso/images` for root.
    pub fn default_root() -> PathBuf {
        crate::paths::Dirs::current().data.join("images")
    }

    /// Opens (creating if needed) a store at `root`.
    pub fn open(root: &Path) -> Result<Store> {
        let s = Store {
            root: root.to_path_buf(),
        };
        for d in ["blobs/sha256", "layers/sha256", "tmp"] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).map_err(|e| s.io(&p, e))?;
        }
        // Absolute, so that the layer paths handed to the engine do not depend on its cwd.
        let root = std::fs::canonicalize(root).map_err(|e| s.io(root, e))?;
        Ok(Store { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn io(&self, path: &Path, source: io::Error) -> StoreError {
        let path = path.display().to_string();
        match source.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => StoreError::NoSpace { path },
            _ => StoreError::Io { path, source },
        }
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    pub fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers/sha256").join(diff_id.hex())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// A fresh private directory under `tmp/` for one download or unpack.
    pub fn temp_dir(&self, what: &str) -> Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix(&format!("{what}-"))
            .tempdir_in(self.root.join("tmp"))
            .map_err(|e| self.io(&self.root.join("tmp"), e))
    }

    /// Streams a blob into the store, verifying digest (and size when known) before it becomes
    /// visible. Returns the bytes written.
    pub fn put_blob(
        &self,
        expected: &Digest,
        size: Option<u64>,
        reader: impl Read,
        progress: &Progress,
    ) -> Result<u64> {
        if self.has_blob(expected) {
            return Ok(std::fs::metadata(self.blob_path(expected)).map_or(0, |m| m.len()));
        }
        let tmp_dir = self.root.join("tmp");
        let mut tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&tmp_dir)
            .map_err(|e| self.io(&tmp_dir, e))?;
        let hasher = Hasher::new();
        let mut src = hasher.reader(reader);
        let mut bar = progress.start(expected.as_str(), size);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = src.read(&mut buf).map_err(|e| self.io(tmp.path(), e))?;
            if n == 0 {
                break;
            }
            tmp.write_all(&buf[..n])
                .map_err(|e| self.io(tmp.path(), e))?;
            bar.inc(n as u64);
            // A source that sends more than the descriptor promised is cut off right away.
            if let Some(want) = size {
                let got = hasher.len();
                if got > want {
                    return Err(StoreError::SizeMismatch {
                        digest: expected.clone(),
                        expected: want,
                        actual: got,
                    });
                }
            }
        }
        let (actual, got) = hasher.finish();
        if let Some(want) = size {
            if got != want {
                return Err(StoreError::SizeMismatch {
                    digest: expected.clone(),
                    expected: want,
                    actual: got,
                });
            }
        }
        if &actual != expected {
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
                size: got,
            });
        }
        tmp.as_file()
            .sync_all()
            .map_err(|e| self.io(tmp.path(), e))?;
        let dest = self.blob_path(expected);
        tmp.persist(&dest).map_err(|e| self.io(&dest, e.error))?;
        bar.finish();
        Ok(got)
    }

    /// Streams a blob whose digest is not known in advance (a docker-archive layer, a rootfs
    /// tarball) into the store under the digest it hashes to.
    pub fn put_blob_computed(
        &self,
        reader: impl Read,
        progress: &Progress,
    ) -> Result<(Digest, u64)> {
        let tmp_dir = self.root.join("tmp");
        let mut tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&tmp_dir)
            .map_err(|e| self.io(&tmp_dir, e))?;
        let hasher = Hasher::new();
        let mut bar = progress.start("import", None);
        let mut src = bar.reader(hasher.reader(reader));
        io::copy(&mut src, tmp.as_file_mut()).map_err(|e| self.io(tmp.path(), e))?;
        let (digest, size) = hasher.finish();
        tmp.as_file()
            .sync_all()
            .map_err(|e| self.io(tmp.path(), e))?;
        let dest = self.blob_path(&digest);
        tmp.persist(&dest).map_err(|e| self.io(&dest, e.error))?;
        bar.finish();
        Ok((digest, size))
    }

    /// Stores bytes that lasso made itself (a synthesized config or manifest).
    pub fn put_bytes(&self, data: &[u8]) -> Result<Digest> {
        let d = Digest::of(data);
        self.put_blob(&d, Some(data.len() as u64), data, &Progress::Silent)?;
        Ok(d)
    }

    /// Reads a small JSON blob, re-verifying its digest: a store file edited on disk is caught
    /// here rather than trusted.
    pub fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        d: &Digest,
    ) -> Result<T> {
        let path = self.blob_path(d);
        let f = std::fs::File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingBlob(d.clone()),
            _ => self.io(&path, e),
        })?;
        let mut data = Vec::new();
        f.take(MAX_JSON + 1)
            .read_to_end(&mut data)
            .map_err(|e| self.io(&path, e))?;
        if data.len() as u64 > MAX_JSON {
            return Err(StoreError::TooLarge {
                what,
                digest: d.clone(),
            });
        }
        let actual = Digest::of(&data);
        if &actual != d {
            return Err(StoreError::DigestMismatch {
                expected: d.clone(),
                actual,
                size: data.len() as u64,
            });
        }
        serde_json::from_slice(&data).map_err(|source| StoreError::BadJson {
            what,
            digest: d.clone(),
            source,
        })
    }

    /// Makes sure every layer of the manifest is unpacked, then records `names` for it. The
    /// names index changes only after all layers are in place.
    pub fn commit_image(
        &self,
        names: &[String],
        manifest: &Digest,
        progress: &Progress,
    ) -> Result<()> {
        for n in names {
            validate_name(n)?;
        }
        let m: Manifest = self.read_json("manifest", manifest)?;
        let config_desc = m.config.as_ref().ok_or_else(|| StoreError::LayerCount {
            manifest: manifest.clone(),
            layers: m.layers.len(),
            diff_ids: 0,
        })?;
        let config: ImageConfig = self.read_json("config", &config_desc.digest)?;
        if config.rootfs.diff_ids.len() != m.layers.len() {
            return Err(StoreError::LayerCount {
                manifest: manifest.clone(),
                layers: m.layers.len(),
                diff_ids: config.rootfs.diff_ids.len(),
            });
        }
        for (layer, diff_id) in m.layers.iter().zip(&config.rootfs.diff_ids) {
            self.ensure_layer(manifest, &layer.digest, diff_id, progress)?;
        }
        self.update_names(|idx| {
            for n in names {
                idx.images.insert(n.clone(), manifest.clone());
            }
        })
    }

    /// Unpacks one layer blob into `layers/` unless it is already there. The unpacked stream must
    /// hash to `diff_id` (from the config), or nothing is kept.
    fn ensure_layer(
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

    fn read_names(&self) -> Result<NamesIndex> {
        let p = self.root.join("images.json");
        match std::fs::read(&p) {
            Ok(data) => serde_json::from_slice(&data).map_err(|e| self.io(&p, io::Error::other(e))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(NamesIndex::default()),
            Err(e) => Err(self.io(&p, e)),
        }
    }

    /// Read-modify-write of the names index under an exclusive lock, replaced by rename.
    fn update_names(&self, f: impl FnOnce(&mut NamesIndex)) -> Result<()> {
        let lock_path = self.root.join("lock");
        let lock = std::fs::File::create(&lock_path).map_err(|e| self.io(&lock_path, e))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| self.io(&lock_path, e.into()))?;
        let mut idx = self.read_names()?;
        f(&mut idx);
        let p = self.root.join("images.json");
        let mut tmp = tempfile::Builder::new()
            .prefix("images-")
            .tempfile_in(self.root.join("tmp"))
            .map_err(|e| self.io(&p, e))?;
        serde_json::to_writer_pretty(&mut tmp, &idx)
            .map_err(|e| self.io(&p, io::Error::other(e)))?;
        tmp.as_file().sync_all().map_err(|e| self.io(&p, e))?;
        tmp.persist(&p).map_err(|e| self.io(&p, e.error))?;
        Ok(())
    }

    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        Ok(self
            .read_names()?
            .images
            .into_iter()
            .map(|(name, manifest)| ImageRecord { name, manifest })
            .collect())
    }

    /// Finds an image by name, by `name` without `:latest`, or by (a prefix of) its digest.
    pub fn resolve(&self, name: &str) -> Result<ImageRecord> {
        let idx = self.read_names()?;
        let latest = format!("{name}:latest");
        let found = idx
            .images
            .get_key_value(name)
            .or_else(|| idx.images.get_key_value(&latest))
            .map(|(n, d)| (n.clone(), d.clone()))
            .or_else(|| {
                let hex = name.trim_start_matches("sha256:");
                (hex.len() >= 12)
                    .then(|| idx.images.iter().find(|(_, d)| d.hex().starts_with(hex)))
                    .flatten()
                    .map(|(n, d)| (n.clone(), d.clone()))
            });
        found
            .map(|(name, manifest)| ImageRecord { name, manifest })
            .ok_or_else(|| StoreError::UnknownImage(name.to_string()))
    }

    pub fn inspect(&self, name: &str) -> Result<ImageDetails> {
        let rec = self.resolve(name)?;
        let m: Manifest = self.read_json("manifest", &rec.manifest)?;
        let cd = m
            .config
            .clone()
            .ok_or(StoreError::MissingBlob(rec.manifest.clone()))?;
        let config: ImageConfig = self.read_json("config", &cd.digest)?;
        let layers: Vec<LayerDetails> = m
            .layers
            .iter()
            .zip(&config.rootfs.diff_ids)
            .map(|(l, d)| LayerDetails {
                digest: l.digest.clone(),
                diff_id: d.clone(),
                size: l.size,
                media_type: l.media_type.clone(),
                path: self.layer_path(d),
            })
            .collect();
        Ok(ImageDetails {
            name: rec.name,
            manifest: rec.manifest,
            config_digest: cd.digest,
            size: layers.iter().map(|l| l.size).sum(),
            config,
            layers,
        })
    }

    /// The unpacked layer directories of an image, lowest first (overlayfs wants them reversed
    /// in `lowerdir=`, topmost first).
    pub fn layer_dirs(&self, name: &str) -> Result<Vec<PathBuf>> {
        Ok(self
            .inspect(name)?
            .layers
            .into_iter()
            .map(|l| l.path)
            .collect())
    }

    /// Removes a name. Blobs and layers stay until `prune`, since other names may share them.
    pub fn remove(&self, name: &str) -> Result<ImageRecord> {
        let rec = self.resolve(name)?;
        let key = rec.name.clone();
        self.update_names(|idx| {
            idx.images.remove(&key);
        })?;
        Ok(rec)
    }

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

fn validate_name(n: &str) -> Result<()> {
    let ok = !n.is_empty()
        && n.len() <= 255
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadName(n.to_string()))
    }
}
