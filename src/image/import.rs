//! `lasso image import`: OCI layout directories, oci-archives, docker-archives (`docker save`)
//! and plain rootfs tarballs into the store. Archives are hostile input like layers: they are
//! unpacked with the same confined unpacker into the store's `tmp/`, and every file an index or
//! `manifest.json` names is opened with openat2 inside that directory.

use crate::image::progress::Progress;
use crate::image::spec::{self, Descriptor, ImageConfig, Manifest, Platform, RootFs};
use crate::image::store::{ImageRecord, Store, StoreError, MAX_JSON};
use crate::image::unpack::{self, UnpackError};
use serde::Deserialize;
use std::io::{self, Read};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} is not an OCI layout, oci-archive, docker-archive or rootfs tarball: {source}"
    )]
    NotAnImage {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {file} names {name:?}, which cannot be opened inside the archive: {source}")]
    Missing {
        path: String,
        file: &'static str,
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {file} is not valid: {source}")]
    BadJson {
        path: String,
        file: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} holds no image for {want}; it has only: {have}. Import or build one for this platform")]
    WrongPlatform {
        path: String,
        want: Platform,
        have: String,
    },
    #[error("{path} holds {count} images; --name can name only one (leave it out to keep the archive's names)")]
    NameForMany { path: String, count: usize },
    #[error("unpacking the archive {path}: {source}")]
    Unpack {
        path: String,
        #[source]
        source: UnpackError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T, E = ImportError> = std::result::Result<T, E>;

/// What a path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SourceKind {
    OciLayout,
    OciArchive,
    DockerArchive,
    DockerArchiveDir,
    Rootfs,
}

pub struct ImportOptions {
    /// The name to give the image instead of the one the archive carries.
    pub name: Option<String>,
    pub platform: Platform,
}

/// Tells an OCI layout dir, an oci-archive, a docker-archive and a rootfs tarball apart by what
/// they contain, not by their file names.
pub fn detect(path: &Path) -> Result<SourceKind> {
    let shown = path.display().to_string();
    let io_err = |source| ImportError::Io {
        path: shown.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io_err)?;
    if meta.is_dir() {
        if path.join("oci-layout").is_file() {
            return Ok(SourceKind::OciLayout);
        }
        if path.join("manifest.json").is_file() {
            return Ok(SourceKind::DockerArchiveDir);
        }
        return Err(ImportError::NotAnImage {
            path: shown,
            source: io::Error::other("a directory without oci-layout or manifest.json"),
        });
    }
    let not = |source| ImportError::NotAnImage {
        path: shown.clone(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io_err)?;
    let mut archive = tar::Archive::new(unpack::decompress(f).map_err(not)?);
    let (mut oci, mut docker, mut any) = (false, false, false);
    for e in archive.entries().map_err(not)? {
        let e = e.map_err(not)?;
        any = true;
        let p = e.path_bytes();
        let name = p.strip_prefix(b"./").unwrap_or(&p);
        oci |= name == b"oci-layout";
        docker |= name == b"manifest.json";
    }
    if !any {
        return Err(not(io::Error::other("an empty archive")));
    }
    Ok(if oci {
        SourceKind::OciArchive
    } else if docker {
        SourceKind::DockerArchive
    } else {
        SourceKind::Rootfs
    })
}

/// Imports whatever `path` holds and returns the names it now has in the store.
pub fn import(
    store: &Store,
    path: &Path,
    opts: &ImportOptions,
    progress: &Progress,
) -> Result<Vec<ImageRecord>> {
    let base = default_base(path);
    match detect(path)? {
        SourceKind::OciLayout => import_oci_dir(store, path, path, &base, opts, progress),
        SourceKind::DockerArchiveDir => import_docker_dir(store, path, path, &base, opts, progress),
        SourceKind::Rootfs => import_rootfs(store, path, &base, opts, progress),
        kind => {
            let work = store.temp_dir("import")?;
            let o = unpack::Options {
                devices: false,
                chown: false,
                ..unpack::Options::for_current_user(unpack::Mode::Flatten)
            };
            let f = std::fs::File::open(path).map_err(|source| ImportError::Io {
                path: path.display().to_string(),
                source,
            })?;
            unpack::unpack_layer(f, work.path(), o).map_err(|source| ImportError::Unpack {
                path: path.display().to_string(),
                source,
            })?;
            if kind == SourceKind::OciArchive {
                import_oci_dir(store, work.path(), path, &base, opts, progress)
            } else {
                import_docker_dir(store, work.path(), path, &base, opts, progress)
            }
        }
    }
}

fn read_json_in<T: serde::de::DeserializeOwned>(
    dir: &Path,
    rel: &str,
    shown: &Path,
    file: &'static str,
) -> Result<T> {
    let f = unpack::open_file_in_root(dir, rel).map_err(|source| ImportError::Missing {
        path: shown.display().to_string(),
        file,
        name: rel.to_string(),
        source,
    })?;
    let mut data = Vec::new();
    f.take(MAX_JSON)
        .read_to_end(&mut data)
        .map_err(|source| ImportError::Io {
            path: shown.display().to_string(),
            source,
        })?;
    serde_json::from_slice(&data).map_err(|source| ImportError::BadJson {
        path: shown.display().to_string(),
        file: rel.to_string(),
        source,
    })
}

/// Copies one blob of an OCI layout into the store, verifying digest and size.
fn copy_blob(
    store: &Store,
    dir: &Path,
    shown: &Path,
    d: &Descriptor,
    progress: &Progress,
) -> Result<()> {
    if store.has_blob(&d.digest) {
        return Ok(());
    }
    let rel = format!("blobs/sha256/{}", d.digest.hex());
    let f = unpack::open_file_in_root(dir, &rel).map_err(|source| ImportError::Missing {
        path: shown.display().to_string(),
        file: "index.json",
        name: rel.clone(),
        source,
    })?;
    store.put_blob(&d.digest, Some(d.size), f, progress)?;
    Ok(())
}

fn import_oci_dir(
    store: &Store,
    dir: &Path,
    shown: &Path,
    base: &str,
    opts: &ImportOptions,
    progress: &Progress,
) -> Result<Vec<ImageRecord>> {
    let index: Manifest = read_json_in(dir, "index.json", shown, "index.json")?;
    let mut chosen: Vec<(Option<String>, Descriptor)> = Vec::new();
    let mut seen_platforms = Vec::new();
    for top in &index.manifests {
        let ref_name = top.annotations.get(spec::REF_NAME).cloned();
        let candidates = if spec::is_index_type(&top.media_type) {
            copy_blob(store, dir, shown, top, progress)?;
            let inner: Manifest = store.read_json("index", &top.digest)?;
            inner.manifests
        } else {
            vec![top.clone()]
        };
        match spec::select_platform(&candidates, &opts.platform) {
            Ok(d) => chosen.push((ref_name, d.clone())),
            Err(p) => seen_platforms.extend(p),
        }
    }
    if chosen.is_empty() {
        return Err(ImportError::WrongPlatform {
            path: shown.display().to_string(),
            want: opts.platform.clone(),
            have: if seen_platforms.is_empty() {
                "nothing".into()
            } else {
                seen_platforms.join(", ")
            },
        });
    }
    let distinct: std::collections::BTreeSet<_> =
        chosen.iter().map(|(_, d)| d.digest.clone()).collect();
    if opts.name.is_some() && distinct.len() > 1 {
        return Err(ImportError::NameForMany {
            path: shown.display().to_string(),
            count: distinct.len(),
        });
    }
    let mut out = Vec::new();
    for (ref_name, d) in chosen {
        copy_blob(store, dir, shown, &d, progress)?;
        let m: Manifest = store.read_json("manifest", &d.digest)?;
        if let Some(c) = &m.config {
            copy_blob(store, dir, shown, c, progress)?;
        }
        for l in &m.layers {
            copy_blob(store, dir, shown, l, progress)?;
        }
        let name = match (&opts.name, ref_name) {
            (Some(n), _) => n.clone(),
            (None, Some(r)) if r.contains('/') || r.contains(':') => r,
            (None, Some(tag)) => format!("{base}:{tag}"),
            (None, None) => format!("{base}:latest"),
        };
        store.commit_image(std::slice::from_ref(&name), &d.digest, progress)?;
        out.push(ImageRecord {
            name,
            manifest: d.digest,
        });
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn import_docker_dir(
    store: &Store,
    dir: &Path,
    shown: &Path,
    base: &str,
    opts: &ImportOptions,
    progress: &Progress,
) -> Result<Vec<ImageRecord>> {
    let entries: Vec<DockerEntry> = read_json_in(dir, "manifest.json", shown, "manifest.json")?;
    if opts.name.is_some() && entries.len() > 1 {
        return Err(ImportError::NameForMany {
            path: shown.display().to_string(),
            count: entries.len(),
        });
    }
    let open = |rel: &str| {
        unpack::open_file_in_root(dir, rel).map_err(|source| ImportError::Missing {
            path: shown.display().to_string(),
            file: "manifest.json",
            name: rel.to_string(),
            source,
        })
    };
    let mut out = Vec::new();
    for e in entries {
        let (config_digest, config_size) =
            store.put_blob_computed(open(&e.config)?, &Progress::Silent)?;
        let config: ImageConfig = store.read_json("config", &config_digest)?;
        if !config.architecture.is_empty() && config.architecture != opts.platform.architecture {
            return Err(ImportError::WrongPlatform {
                path: shown.display().to_string(),
                want: opts.platform.clone(),
                have: format!("{}/{}", config.os, config.architecture),
            });
        }
        let mut layers = Vec::new();
        for l in &e.layers {
            let mut head = [0u8; 4];
            let n = open(l)?.read(&mut head).unwrap_or(0);
            let (digest, size) = store.put_blob_computed(open(l)?, progress)?;
            layers.push(Descriptor {
                media_type: layer_media_type(&head[..n]).into(),
                digest,
                size,
                platform: None,
                annotations: Default::default(),
            });
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(spec::OCI_MANIFEST.into()),
            config: Some(Descriptor {
                media_type: spec::OCI_CONFIG.into(),
                digest: config_digest,
                size: config_size,
                platform: None,
                annotations: Default::default(),
            }),
            layers,
            manifests: vec![],
            annotations: Default::default(),
        };
        let digest =
            store.put_bytes(&serde_json::to_vec(&manifest).expect("manifest serializes"))?;
        let names = match (&opts.name, e.repo_tags) {
            (Some(n), _) => vec![n.clone()],
            (None, Some(tags)) if !tags.is_empty() => tags,
            _ => vec![format!("{base}:latest")],
        };
        store.commit_image(&names, &digest, progress)?;
        out.extend(names.into_iter().map(|name| ImageRecord {
            name,
            manifest: digest.clone(),
        }));
    }
    Ok(out)
}

fn import_rootfs(
    store: &Store,
    path: &Path,
    base: &str,
    opts: &ImportOptions,
    progress: &Progress,
) -> Result<Vec<ImageRecord>> {
    let shown = path.display().to_string();
    let io_err = |source| ImportError::Io {
        path: shown.clone(),
        source,
    };
    let mut head = [0u8; 4];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(io_err)?;
    let (digest, size) =
        store.put_blob_computed(std::fs::File::open(path).map_err(io_err)?, progress)?;
    // The diff ID is the digest of the uncompressed stream, which the config must name.
    let hasher = crate::image::digest::Hasher::new();
    let blob = std::fs::File::open(store.blob_path(&digest)).map_err(io_err)?;
    io::copy(
        &mut hasher.reader(unpack::decompress(blob).map_err(io_err)?),
        &mut io::sink(),
    )
    .map_err(io_err)?;
    let (diff_id, _) = hasher.finish();
    let config = ImageConfig {
        architecture: opts.platform.architecture.clone(),
        os: opts.platform.os.clone(),
        created: None,
        config: Some(serde_json::json!({})),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id],
        },
    };
    let config_bytes = serde_json::to_vec(&config).expect("config serializes");
    let config_digest = store.put_bytes(&config_bytes)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(spec::OCI_MANIFEST.into()),
        config: Some(Descriptor {
            media_type: spec::OCI_CONFIG.into(),
            digest: config_digest,
            size: config_bytes.len() as u64,
            platform: None,
            annotations: Default::default(),
        }),
        layers: vec![Descriptor {
            media_type: layer_media_type(&head[..n]).into(),
            digest,
            size,
            platform: None,
            annotations: Default::default(),
        }],
        manifests: vec![],
        annotations: Default::default(),
    };
    let m = store.put_bytes(&serde_json::to_vec(&manifest).expect("manifest serializes"))?;
    let name = opts
        .name
        .clone()
        .unwrap_or_else(|| format!("{base}:latest"));
    store.commit_image(std::slice::from_ref(&name), &m, progress)?;
    Ok(vec![ImageRecord { name, manifest: m }])
}

fn layer_media_type(head: &[u8]) -> &'static str {
    if head.starts_with(&[0x1f, 0x8b]) {
        spec::OCI_LAYER_GZIP
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    } else {
        spec::OCI_LAYER_TAR
    }
}

/// A store name from a file name: `busybox.tar.gz` -> `busybox`.
fn default_base(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_else(|| "image".into());
    let stem = name
        .trim_end_matches(".gz")
        .trim_end_matches(".zst")
        .trim_end_matches(".tgz")
        .trim_end_matches(".tar");
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.is_empty() {
        "image".into()
    } else {
        clean
    }
}
