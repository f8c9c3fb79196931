//! The host-side steps a plan needs before its sandbox starts: the skeleton root, its mount
//! points and links, the agent config files that must exist so they can be mounted read-only,
//! and private copies. Run by the caller (the engine's front end), never by `plan()`.

use super::error::PlanError;
use super::hostview::{materialise_skeleton, skeleton_of};
use super::{HostPrep, PlannedSandbox};
use crate::engine::skeleton::{Entry, Skeleton};
use std::os::unix::fs::{symlink, DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PlanError + '_ {
    move |source| PlanError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates the skeleton and performs `host_prep` in order. Idempotent.
pub fn prepare_host(planned: &PlannedSandbox) -> Result<(), PlanError> {
    materialise_skeleton(&planned.rootfs)?;
    for step in &planned.host_prep {
        apply(step, &planned.rootfs)?;
    }
    if let Some(image) = &planned.image {
        image.prepare()?;
    }
    Ok(())
}

/// As `prepare_host` for a host-view sandbox (no image), except that the skeleton root is
/// returned as data instead of written under `planned.rootfs`: init builds it in the sandbox's
/// own tmpfs (`engine::skeleton`), so the host gets no directory tree to create and remove.
/// The steps outside the skeleton (agent files, private copies) are performed as usual.
pub fn prepare_host_keeping_skeleton(planned: &PlannedSandbox) -> Result<Skeleton, PlanError> {
    let rootfs = &planned.rootfs;
    let mut skel = skeleton_of(&planned.system, Path::new("/"));
    for step in &planned.host_prep {
        match step {
            HostPrep::Symlink { path, target } => {
                let rel = in_skeleton(path, rootfs)?;
                skel.symlink(&rel, &target.to_string_lossy());
            }
            HostPrep::SkeletonFile { path, contents } => {
                let rel = in_skeleton(path, rootfs)?;
                skel.file(&rel, 0o644, contents);
            }
            HostPrep::MountPoint { path, is_dir } => {
                let rel = in_skeleton(path, rootfs)?;
                // As on disk: a mount point never passes through a mirrored host link.
                if let Some(link) = skel.symlink_on(&rel) {
                    return Err(PlanError::Io {
                        path: rootfs.join(link),
                        source: std::io::Error::other(
                            "a mount point would pass through a symlink of the skeleton",
                        ),
                    });
                }
                match (is_dir, skel.get(&rel)) {
                    (true, Some(Entry::Dir { .. })) | (false, Some(_)) => {}
                    (true, _) => skel.dir(&rel, 0o755),
                    (false, None) => skel.file(&rel, 0o644, ""),
                }
            }
            other => apply(other, rootfs)?,
        }
    }
    Ok(skel)
}

/// `path` relative to the skeleton root it must lie in.
fn in_skeleton(path: &Path, rootfs: &Path) -> Result<String, PlanError> {
    inside_skeleton(path, rootfs)?;
    Ok(path
        .strip_prefix(rootfs)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned())
}

fn chown(path: &Path, (uid, gid): (u32, u32)) -> Result<(), PlanError> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(io(path))
}

fn apply(step: &HostPrep, rootfs: &Path) -> Result<(), PlanError> {
    match step {
        HostPrep::CreateDir { path, owner } => {
            if std::fs::symlink_metadata(path).is_err() {
                create_parents(path, *owner)?;
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(path)
                    .map_err(io(path))?;
                chown(path, *owner)?;
            }
        }
        HostPrep::CreateFile {
            path,
            contents,
            owner,
        } => {
            if std::fs::symlink_metadata(path).is_err() {
                create_parents(path, *owner)?;
                // create_new: never write through a link someone placed meanwhile.
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(io(path))?;
                std::io::Write::write_all(&mut f, contents.as_bytes()).map_err(io(path))?;
                chown(path, *owner)?;
            }
        }
        HostPrep::CopyFile { from, to, owner } => {
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
                std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))
                    .map_err(io(parent))?;
            }
            let _ = std::fs::remove_file(to);
            std::fs::copy(from, to).map_err(io(to))?;
            std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600)).map_err(io(to))?;
            chown(to, *owner)?;
        }
        HostPrep::Symlink { path, target } => {
            inside_skeleton(path, rootfs)?;
            if let Some(parent) = path.parent() {
                create_dirs_no_follow(parent, rootfs)?;
            }
            let _ = std::fs::remove_file(path);
            symlink(target, path).map_err(io(path))?;
        }
        HostPrep::SkeletonFile { path, contents } => {
            inside_skeleton(path, rootfs)?;
            std::fs::write(path, contents).map_err(io(path))?;
        }
        HostPrep::MountPoint { path, is_dir } => {
            inside_skeleton(path, rootfs)?;
            if *is_dir {
                create_dirs_no_follow(path, rootfs)?;
            } else {
                if let Some(parent) = path.parent() {
                    create_dirs_no_follow(parent, rootfs)?;
                }
                if std::fs::symlink_metadata(path).is_err() {
                    std::fs::File::create(path).map_err(io(path))?;
                }
            }
        }
    }
    Ok(())
}

/// Creates the missing ancestors of an agent file in the user's home (`~/.local/share` for
/// OpenCode), each owned by the user rather than by root.
fn create_parents(path: &Path, owner: (u32, u32)) -> Result<(), PlanError> {
    let missing: Vec<&Path> = path
        .ancestors()
        .skip(1)
        .take_while(|a| std::fs::symlink_metadata(a).is_err())
        .collect();
    for dir in missing.into_iter().rev() {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        chown(dir, owner)?;
    }
    Ok(())
}

fn inside_skeleton(path: &Path, rootfs: &Path) -> Result<(), PlanError> {
    let ok = path.starts_with(rootfs) && !path.components().any(|c| c == Component::ParentDir);
    if ok {
        Ok(())
    } else {
        Err(PlanError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other("refusing to write outside the sandbox's skeleton root"),
        })
    }
}

/// `mkdir -p` that refuses to pass through a symlink: the skeleton mirrors host links such as
/// `/bin -> usr/bin` and `/var/run -> /run`, and following one would create the mount point on
/// the host itself.
fn create_dirs_no_follow(path: &Path, rootfs: &Path) -> Result<(), PlanError> {
    let rel = path.strip_prefix(rootfs).unwrap_or(Path::new(""));
    let mut cur = rootfs.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(PlanError::Io {
                    path: cur,
                    source: std::io::Error::other(
                        "a mount point would pass through a symlink of the skeleton",
                    ),
                })
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(PlanError::Io {
                    path: cur,
                    source: std::io::Error::other("not a directory"),
                })
            }
            Err(_) => std::fs::create_dir(&cur).map_err(io(&cur))?,
        }
    }
    Ok(())
}
