//! Safe application of image layers (tar, gzip or zstd) onto a directory.
//!
//! A layer is hostile input: its names may climb out with `..` or `/`, its symlinks and hard
//! links may point anywhere, a later layer may swap a symlink for a directory, and its sizes may
//! claim terabytes. Every name is resolved by the kernel inside the target (`fsops`, openat2 with
//! `RESOLVE_IN_ROOT`), never by string checks, and totals are bounded by [`Limits`]. Two modes:
//! [`Mode::Flatten`] applies whiteouts by deleting from the target (a plain root file system);
//! [`Mode::Overlay`] keeps one layer on its own, turning whiteouts into overlayfs whiteouts so the
//! layers can be stacked read-only later. This module owns no store state and never touches a
//! path outside the target it was given.

mod fsops;
mod meta;
mod whiteout;

pub use fsops::open_file_in_root;

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, FileType};
use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// Bounds on what one unpack may create. A layer past any of them is rejected as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Total logical bytes of all regular files (sparse holes count: a 1 TiB sparse file is
    /// 1 TiB as far as the container's disk use is concerned).
    pub max_bytes: u64,
    /// Number of tar entries, of every kind.
    pub max_entries: u64,
    /// Path components of one name.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 << 30,
            max_entries: 2_000_000,
            max_depth: 256,
        }
    }
}

/// How whiteouts are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Apply every layer onto one directory; whiteouts delete what lower layers made.
    Flatten,
    /// Unpack one layer into an empty directory in overlayfs form: `.wh.NAME` becomes a 0:0
    /// character device and `.wh..wh..opq` an `overlay.opaque` xattr on its directory.
    Overlay,
}

/// What the unpacker may do beyond plain files.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub limits: Limits,
    pub mode: Mode,
    /// Create block and character devices (needs CAP_MKNOD; skipped and counted otherwise).
    pub devices: bool,
    /// Give entries the owner the layer names (needs CAP_CHOWN; files stay the caller's otherwise).
    pub chown: bool,
}

impl Options {
    /// Defaults for the running user: root may create devices and set owners; others may not.
    pub fn for_current_user(mode: Mode) -> Options {
        let root = rustix::process::geteuid().is_root();
        Options {
            limits: Limits::default(),
            mode,
            devices: root,
            chown: root,
        }
    }
}

/// What an unpack did, including what it left out because the running user may not do it.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub entries: u64,
    pub bytes: u64,
    pub skipped_devices: u64,
    pub skipped_xattrs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("cannot open the unpack target {path}: {source}")]
    Target {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the layer (truncated or not a tar/gzip/zstd stream): {0}")]
    Read(#[source] io::Error),
    #[error("layer entry {entry:?}: {action}: {source}")]
    Entry {
        entry: String,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("no space left on the device while writing layer entry {entry:?}; free space or move the image store (XDG_DATA_HOME)")]
    NoSpace { entry: String },
    #[error("layer entry {entry:?} would bring the unpacked size past the limit of {limit} bytes; the image is too large or hostile (raise the limit only if you trust it)")]
    TooLarge { entry: String, limit: u64 },
    #[error("layer has more than {limit} entries; the image is too large or hostile")]
    TooManyEntries { limit: u64 },
    #[error("layer entry {entry:?} is nested deeper than {limit} directories")]
    TooDeep { entry: String, limit: usize },
    #[error("layer entry {entry:?} is a hard link with no target name")]
    LinkWithoutTarget { entry: String },
}

/// Opens a layer stream, recognising gzip and zstd by their magic bytes (media types lie often
/// enough, and docker-archive layers carry none).
pub fn decompress<'a, R: Read + 'a>(reader: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut buf = BufReader::with_capacity(256 * 1024, reader);
    let head = buf.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(buf)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(buf)?))
    } else {
        Ok(Box::new(buf))
    }
}

/// Applies layers to one target directory, keeping the limits across all of them.
pub struct Unpacker {
    root: OwnedFd,
    dev: u64,
    opts: Options,
    privileged: bool,
    report: Report,
}

/// A directory whose mode, owner and time are set after its layer, so that a read-only mode
/// does not stop the unpacker (unprivileged) from filling it.
struct DirMeta {
    path: Vec<u8>,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
}

impl Unpacker {
    /// Opens `target` (an existing directory) as the root every layer name is resolved in.
    pub fn new(target: &Path, opts: Options) -> Result<Unpacker, UnpackError> {
        let err = |source| UnpackError::Target {
            path: target.display().to_string(),
            source,
        };
        let root = rustix::fs::open(
            target,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| err(e.into()))?;
        let dev = rustix::fs::fstat(&root).map_err(|e| err(e.into()))?.st_dev;
        Ok(Unpacker {
            root,
            dev,
            opts,
            privileged: rustix::process::geteuid().is_root(),
            report: Report::default(),
        })
    }

    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Applies one (possibly compressed) layer stream.
    pub fn apply<R: Read>(&mut self, layer: R) -> Result<(), UnpackError> {
        let reader = decompress(layer).map_err(UnpackError::Read)?;
        self.apply_tar(reader)
    }

    /// Applies one uncompressed tar stream.
    pub fn apply_tar<R: Read>(&mut self, tar_stream: R) -> Result<(), UnpackError> {
        let mut archive = tar::Archive::new(tar_stream);
        let mut this_layer: HashSet<Vec<u8>> = HashSet::new();
        let mut dirs: Vec<DirMeta> = Vec::new();
        for entry in archive.entries().map_err(UnpackError::Read)? {
            let mut entry = entry.map_err(UnpackError::Read)?;
            self.report.entries += 1;
            if self.report.entries > self.opts.limits.max_entries {
                return Err(UnpackError::TooManyEntries {
                    limit: self.opts.limits.max_entries,
                });
            }
            self.apply_entry(&mut entry, &mut this_layer, &mut dirs)?;
        }
        // Deepest first, so a parent's read-only mode is set after its children's metadata.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.path.iter().filter(|b| **b == b'/').count()));
        for d in dirs {
            self.finish_dir(&d)
                .map_err(|e| self.entry_err(&d.path, "setting directory metadata", e))?;
        }
        Ok(())
    }

    fn entry_err(&self, path: &[u8], action: &'static str, source: io::Error) -> UnpackError {
        let entry = String::from_utf8_lossy(path).into_owned();
        match source.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => UnpackError::NoSpace { entry },
            _ => UnpackError::Entry {
                entry,
                action,
                source,
            },
        }
    }

    fn apply_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        this_layer: &mut HashSet<Vec<u8>>,
        dirs: &mut Vec<DirMeta>,
    ) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let comps = clean(&raw);
        let shown = String::from_utf8_lossy(&raw).into_owned();
        if comps.len() > self.opts.limits.max_depth {
            return Err(UnpackError::TooDeep {
                entry: shown,
                limit: self.opts.limits.max_depth,
            });
        }
        let header = entry.header();
        let kind = header.entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            return Ok(());
        }
        let Some((leaf, parents)) = comps.split_last() else {
            return Ok(()); // "./" itself: the target's own metadata is the store's business.
        };
        let path = comps.join(&b'/');
        let parent_path = parents.join(&b'/');

        // Whiteouts (image-spec layer.md): they hide what *lower* layers made, never this layer's.
        if let Some(hidden) = leaf.strip_prefix(b".wh.") {
            let parent = fsops::ensure_dir(self.root.as_fd(), parents)
                .map_err(|e| self.entry_err(&raw, "resolving the parent directory", e))?;
            return self.whiteout(&parent, &parent_path, hidden, this_layer, &raw);
        }

        let parent = fsops::ensure_dir(self.root.as_fd(), parents)
            .map_err(|e| self.entry_err(&raw, "resolving the parent directory", e))?;
        let existing = fsops::kind_at(parent.as_fd(), leaf)
            .map_err(|e| self.entry_err(&raw, "inspecting the existing entry", e))?;
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let uid = header.uid().unwrap_or(0);
        let gid = header.gid().unwrap_or(0);
        let mtime = header.mtime().unwrap_or(0);
        this_layer.insert(path.clone());

        if kind == tar::EntryType::Directory {
            if existing.map(|(k, _)| k) != Some(FileType::Directory) {
                if existing.is_some() {
                    // A symlink (or file) replaced by a directory: the link goes, it is never
                    // followed, so `evil -> /etc` then `evil/passwd` lands inside the target.
                    fsops::remove_tree(parent.as_fd(), leaf, self.dev, self.privileged)
                        .map_err(|e| self.entry_err(&raw, "replacing the existing entry", e))?;
                }
                rustix::fs::mkdirat(&parent, *leaf, rustix::fs::Mode::from_raw_mode(0o700))
                    .map_err(|e| self.entry_err(&raw, "creating the directory", e.into()))?;
            }
            let dir = fsops::open_dir_rw_in_root(self.root.as_fd(), &path)
                .map_err(|e| self.entry_err(&raw, "opening the directory", e))?;
            self.set_xattrs(entry, &dir)
                .map_err(|e| self.entry_err(&raw, "setting xattrs", e))?;
            dirs.push(DirMeta {
                path,
                mode,
                uid,
                gid,
                mtime,
            });
            return Ok(());
        }

        if existing.is_some() {
            fsops::remove_tree(parent.as_fd(), leaf, self.dev, self.privileged)
                .map_err(|e| self.entry_err(&raw, "replacing the existing entry", e))?;
        }
        let times = meta::timestamps(mtime);
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let size = entry.size();
                if self.report.bytes.saturating_add(size) > self.opts.limits.max_bytes {
                    return Err(UnpackError::TooLarge {
                        entry: shown,
                        limit: self.opts.limits.max_bytes,
                    });
                }
                let fd = fsops::create_file(parent.as_fd(), leaf)
                    .map_err(|e| self.entry_err(&raw, "creating the file", e))?;
                let written = meta::copy_sparse(entry, &fd, size)
                    .map_err(|e| self.entry_err(&raw, "writing the file", e))?;
                self.report.bytes += written;
                if self.opts.chown {
                    rustix::fs::fchown(&fd, Some(meta::uid_of(uid)), Some(meta::gid_of(gid)))
                        .map_err(|e| self.entry_err(&raw, "setting the owner", e.into()))?;
                }
                // After chown: chown clears setuid/setgid, which the layer may ask for.
                rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(mode))
                    .map_err(|e| self.entry_err(&raw, "setting the mode", e.into()))?;
                self.set_xattrs(entry, &fd)
                    .map_err(|e| self.entry_err(&raw, "setting xattrs", e))?;
                rustix::fs::futimens(&fd, &times)
                    .map_err(|e| self.entry_err(&raw, "setting the time", e.into()))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                // The target text is stored as is: it is only ever followed later inside the
                // container's root, or here by openat2 confined to the target.
                rustix::fs::symlinkat(target.as_slice(), &parent, *leaf)
                    .map_err(|e| self.entry_err(&raw, "creating the symlink", e.into()))?;
                self.set_link_meta(&parent, leaf, uid, gid, &times)
                    .map_err(|e| self.entry_err(&raw, "setting symlink metadata", e))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .ok_or_else(|| UnpackError::LinkWithoutTarget {
                        entry: shown.clone(),
                    })?;
                let tcomps = clean(&target);
                let Some((tleaf, tparents)) = tcomps.split_last() else {
                    return Err(UnpackError::LinkWithoutTarget { entry: shown });
                };
                // The link's source is resolved inside the target like any other name, so a
                // hard link can only ever share an inode the image itself made.
                let tparent = fsops::open_dir_in_root(self.root.as_fd(), &tparents.join(&b'/'))
                    .map_err(|e| self.entry_err(&raw, "resolving the hard link source", e))?;
                rustix::fs::linkat(&tparent, *tleaf, &parent, *leaf, AtFlags::empty())
                    .map_err(|e| self.entry_err(&raw, "creating the hard link", e.into()))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                if ft != FileType::Fifo && !self.opts.devices {
                    self.report.skipped_devices += 1;
                    return Ok(());
                }
                let dev = rustix::fs::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                match rustix::fs::mknodat(
                    &parent,
                    *leaf,
                    ft,
                    rustix::fs::Mode::from_raw_mode(mode & 0o777),
                    dev,
                ) {
                    Ok(()) => {}
                    Err(rustix::io::Errno::PERM) if ft != FileType::Fifo => {
                        self.report.skipped_devices += 1;
                        return Ok(());
                    }
                    Err(e) => return Err(self.entry_err(&raw, "creating the node", e.into())),
                }
                self.set_link_meta(&parent, leaf, uid, gid, &times)
                    .map_err(|e| self.entry_err(&raw, "setting node metadata", e))?;
            }
            // Other kinds (GNU volume labels, multi-volume parts) have no file to make.
            _ => {}
        }
        Ok(())
    }
}

/// Unpacks one layer stream onto `target` with `opts`.
pub fn unpack_layer<R: Read>(
    layer: R,
    target: &Path,
    opts: Options,
) -> Result<Report, UnpackError> {
    let mut u = Unpacker::new(target, opts)?;
    u.apply(layer)?;
    Ok(u.report().clone())
}

/// Splits a tar name into components as the container will see it: `/` and `.` vanish and `..`
/// pops, never above the root. This is not the security boundary (openat2 is); it only gives
/// each entry the one name it has inside the image, so whiteouts and "made in this layer"
/// bookkeeping compare like with like.
fn clean(raw: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn names_clamp_at_the_root() {
        assert_eq!(clean(b"../../etc/passwd"), vec![&b"etc"[..], b"passwd"]);
        assert_eq!(clean(b"/abs/./x//y"), vec![&b"abs"[..], b"x", b"y"]);
        assert!(clean(b"./").is_empty());
        assert_eq!(clean(b"a/../../b"), vec![&b"b"[..]]);
    }
}
