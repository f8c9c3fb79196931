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

use crate::image::digest::Digest;
use crate::image::progress::Progress;
use crate::image::spec::{ImageConfig, Manifest};
use crate::image::unpack::UnpackError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
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

mod blobs;
mod gc;
mod layers;

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
