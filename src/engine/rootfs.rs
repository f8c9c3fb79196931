//! The container's root filesystem, built inside init's new mount namespace: the host's mounts
//! made slave/private first (so nothing propagates back to the host), the rootfs bound onto
//! itself, the spec's mounts, the default devices and /dev links (`dev_nodes`), then
//! pivot_root and the old root detached (`old_root`, while init goes on); afterwards masked
//! and read-only paths and a read-only root. Everything here runs in init only, after the
//! mount namespace was unshared.
//!
//! lasso's host-view root (annotation `run.lasso.rootfs=skeleton`) is not bound: init mounts a
//! private tmpfs on `root.path` and builds the skeleton described in the spec in it
//! (`engine::skeleton`). Nothing of it is written on the host, and no host directory of the
//! sandbox becomes a mount point.

use super::mounts::{self, MountContext, MountError};
use nix::mount::{mount, MsFlags};
use nix::unistd::{chdir, pivot_root};
use oci_spec::runtime::Spec;
use rustix::fs::{Mode as RMode, OFlags};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error("{what} {path}: {source}")]
    Sys {
        what: &'static str,
        path: PathBuf,
        source: nix::Error,
    },
    #[error("annotation run.lasso.rootfs.overlay {0}")]
    BadOverlay(String),
    #[error(transparent)]
    Skeleton(#[from] super::skeleton::SkeletonError),
    #[error("annotation run.lasso.rootfs=skeleton needs the skeleton's description in annotation run.lasso.rootfs.entries (set by lasso); remove run.lasso.rootfs to bind root.path as runc does")]
    SkeletonWithoutEntries,
    #[error("linux.rootfsPropagation {0:?} is not a propagation mode (use shared, slave, private, unbindable or their r- forms)")]
    BadPropagation(String),
}

fn sys<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(nix::Error) -> RootfsError + 'a {
    move |source| RootfsError::Sys {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The rootfs opened after it was bound onto itself.
pub struct PreparedRoot {
    pub path: PathBuf,
    pub fd: OwnedFd,
}

/// Cuts propagation to the host and makes the rootfs a mount point.
pub fn prepare(spec: &Spec, rootfs: &Path) -> Result<PreparedRoot, RootfsError> {
    let prop = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone());
    // Default rslave, as runc: host mounts still reach the container, nothing goes back.
    let flag = match prop.as_deref() {
        None | Some("") => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        Some(p) => {
            mounts::propagation_flag(p).ok_or_else(|| RootfsError::BadPropagation(p.into()))?
        }
    };
    // A shared root would leak the container's mounts to the host: the first step is recursive.
    let first = if flag.contains(MsFlags::MS_SHARED) {
        MsFlags::MS_SLAVE | MsFlags::MS_REC
    } else {
        flag | MsFlags::MS_REC
    };
    mount(None::<&str>, "/", None::<&str>, first, None::<&str>)
        .map_err(sys("make / slave", Path::new("/")))?;
    match overlay_options(spec)? {
        // An image root: the layers stacked read-only under a private upper dir, mounted here
        // in the container's own mount namespace so the host never sees it.
        Some(opts) => mount(
            Some("overlay"),
            rootfs,
            Some("overlay"),
            MsFlags::empty(),
            Some(opts.as_str()),
        )
        .map_err(sys("mount the image's overlay root on", rootfs))?,
        None if is_skeleton(spec) => build_skeleton(&skeleton_entries(spec)?, rootfs)?,
        None => mount(
            Some(rootfs),
            rootfs,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys("bind rootfs", rootfs))?,
    }
    let fd = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        RMode::empty(),
    )
    .map_err(|e| RootfsError::Sys {
        what: "open rootfs",
        path: rootfs.to_path_buf(),
        source: nix::Error::from_raw(e.raw_os_error()),
    })?;
    Ok(PreparedRoot {
        path: rootfs.to_path_buf(),
        fd,
    })
}

/// The annotation marking `root.path` as the mount point of a skeleton built in a tmpfs.
pub const SKELETON_ANNOTATION: &str = "run.lasso.rootfs";
pub const SKELETON_VALUE: &str = "skeleton";

/// Whether the spec's root is lasso's host-view skeleton (`run.lasso.rootfs=skeleton`).
pub fn is_skeleton(spec: &Spec) -> bool {
    spec.annotations()
        .as_ref()
        .and_then(|a| a.get(SKELETON_ANNOTATION))
        .is_some_and(|v| v == SKELETON_VALUE)
}

/// The skeleton described in the spec (`engine::skeleton`).
fn skeleton_entries(spec: &Spec) -> Result<super::skeleton::Skeleton, RootfsError> {
    let text = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(super::skeleton::ENTRIES_ANNOTATION))
        .ok_or(RootfsError::SkeletonWithoutEntries)?;
    Ok(super::skeleton::Skeleton::decode(text)?)
}

/// The size of the root tmpfs: a skeleton is empty mount points, links and a few small files.
const SKELETON_TMPFS: &str = "mode=755,size=4m";

/// Mounts a tmpfs over `rootfs` and builds the described skeleton in it: nothing of the root
/// exists on the host but the empty mount point.
fn build_skeleton(skel: &super::skeleton::Skeleton, rootfs: &Path) -> Result<(), RootfsError> {
    mount(
        Some("tmpfs"),
        rootfs,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(SKELETON_TMPFS),
    )
    .map_err(sys("tmpfs root", rootfs))?;
    skel.write_to_path_single_threaded(rootfs)?;
    Ok(())
}

/// Annotation asking for an overlay root: JSON `{"lower": [topmost first], "upper": DIR,
/// "work": DIR}`, all absolute host paths. lasso's image sandboxes set it; a plain OCI bundle
/// does not, and gets runc's bind of `root.path`.
pub const OVERLAY_ROOT_ANNOTATION: &str = "run.lasso.rootfs.overlay";

/// The overlay mount options for the annotation, if the spec has one. `userxattr`: the mount
/// happens inside the sandbox's user namespace, where only `user.overlay.*` xattrs are honoured
/// (the image store writes opaque markers in that form).
fn overlay_options(spec: &Spec) -> Result<Option<String>, RootfsError> {
    let Some(raw) = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(OVERLAY_ROOT_ANNOTATION))
    else {
        return Ok(None);
    };
    let bad = |why: &str| RootfsError::BadOverlay(format!("{raw:?}: {why}"));
    let v: serde_json::Value = serde_json::from_str(raw).map_err(|e| bad(&e.to_string()))?;
    let path = |p: &serde_json::Value| -> Result<String, RootfsError> {
        let s = p.as_str().ok_or_else(|| bad("paths must be strings"))?;
        // The option string separates with ',' and ':'; such names cannot be passed safely.
        if !s.starts_with('/') || s.contains([',', ':', '\\']) {
            return Err(bad(&format!(
                "{s:?} must be absolute without ',' ':' or '\\'"
            )));
        }
        Ok(s.to_string())
    };
    let lower = v["lower"]
        .as_array()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| bad("\"lower\" must list at least one directory"))?
        .iter()
        .map(path)
        .collect::<Result<Vec<_>, _>>()?;
    let opts = format!(
        "lowerdir={},upperdir={},workdir={},userxattr",
        lower.join(":"),
        path(&v["upper"])?,
        path(&v["work"])?
    );
    // mount(2) takes one page of options; longer ones would be cut by the kernel.
    if opts.len() >= 4000 {
        return Err(bad(
            "too many layers for one overlay mount (options past a page)",
        ));
    }
    Ok(Some(opts))
}

/// Applies the spec's mounts in order, then the devices and /dev links.
pub fn populate(spec: &Spec, root: &PreparedRoot, ctx: MountContext) -> Result<(), RootfsError> {
    for m in spec.mounts().iter().flatten() {
        mounts::apply(root.fd.as_fd(), m, ctx)?;
    }
    let dev_is_bound = spec.mounts().iter().flatten().any(|m| {
        m.destination() == Path::new("/dev")
            && m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind")
    });
    if !dev_is_bound {
        super::dev_nodes::make(spec, root, ctx.in_userns)?;
    }
    Ok(())
}

/// Makes the rootfs `/` and starts detaching the host's root from this mount namespace; the
/// caller must `finish` the detach before anything of the container runs (`old_root`).
pub fn pivot(root: &PreparedRoot) -> Result<super::old_root::Detach, RootfsError> {
    chdir(&root.path).map_err(sys("chdir", &root.path))?;
    // pivot_root(".", ".") stacks the old root on the new one without needing a directory
    // for it in the image; the old root is then unmounted from under us.
    pivot_root(".", ".").map_err(sys("pivot_root", &root.path))?;
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys("make old root slave", Path::new("/")))?;
    let detach =
        super::old_root::Detach::start().map_err(sys("detach old root", Path::new("/")))?;
    chdir("/").map_err(sys("chdir", Path::new("/")))?;
    Ok(detach)
}

/// Waits for the old root's detach started by `pivot`.
pub fn finish_pivot(detach: super::old_root::Detach) -> Result<(), RootfsError> {
    detach
        .finish()
        .map_err(sys("detach old root", Path::new("/")))
}

/// `--no-pivot`: move the rootfs over `/` and chroot, for hosts whose root cannot be pivoted
/// (e.g. an initramfs). The old root stays reachable to CAP_SYS_CHROOT holders, as in runc.
pub fn move_root(root: &PreparedRoot) -> Result<(), RootfsError> {
    chdir(&root.path).map_err(sys("chdir", &root.path))?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(sys("move rootfs", &root.path))?;
    nix::unistd::chroot(".").map_err(sys("chroot", &root.path))?;
    chdir("/").map_err(sys("chdir", Path::new("/")))?;
    Ok(())
}

/// After pivot: the spec's rootfsPropagation, read-only paths, masked paths, read-only root.
pub fn harden(spec: &Spec) -> Result<(), RootfsError> {
    let linux = spec.linux().as_ref();
    if let Some(p) = linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        if !p.is_empty() {
            let flag =
                mounts::propagation_flag(p).ok_or_else(|| RootfsError::BadPropagation(p.into()))?;
            mount(None::<&str>, "/", None::<&str>, flag, None::<&str>)
                .map_err(sys("rootfsPropagation", Path::new("/")))?;
        }
    }
    // Read-only paths first, then masks, as runc does: the same mount table either way.
    for p in linux
        .and_then(|l| l.readonly_paths().clone())
        .iter()
        .flatten()
    {
        readonly(Path::new(p))?;
    }
    for p in linux
        .and_then(|l| l.masked_paths().clone())
        .iter()
        .flatten()
    {
        mask(Path::new(p))?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        mounts::remount_bind(Path::new("/"), MsFlags::MS_RDONLY, "remount / read-only")?;
    }
    Ok(())
}

/// Hides a path: /dev/null over a file, an empty read-only tmpfs over a directory.
/// (Trying the bind first and reading its error was dropped: ENOENT cannot tell an absent
/// target from an absent /dev/null, e.g. after a masked /dev, and a mask must not silently
/// fail.)
fn mask(path: &Path) -> Result<(), RootfsError> {
    let md = match std::fs::metadata(path) {
        Ok(md) => md,
        Err(_) => return Ok(()),
    };
    if md.is_dir() {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(sys("mask", path))
    } else {
        mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys("mask", path))
    }
}

fn readonly(path: &Path) -> Result<(), RootfsError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys("bind read-only path", path))?;
    mounts::remount_bind(
        path,
        MsFlags::MS_RDONLY | MsFlags::MS_REC,
        "remount read-only",
    )?;
    Ok(())
}
