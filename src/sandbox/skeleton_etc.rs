//! The bind sources of the host view's account files (`/etc/passwd`, `/etc/group`,
//! `/etc/hostname`). The host view binds the host's `/etc` over the skeleton's `etc`, then binds
//! lasso's own account files over three of its files, so those sources cannot be the skeleton's
//! `etc/*` (by then they resolve to the host's own files). They are placed in the skeleton
//! itself, under the mount point of a tmpfs the Spec mounts *after* the binds (the sandbox's
//! `/run`): init writes them into its own root tmpfs from the Spec, the binds take them, and the
//! later tmpfs hides them. Nothing of them is written on the host: three files fewer to create
//! and remove in the runtime directory per sandbox (each an inode allocation, and on an ext4
//! `/run` mounted `discard` a possible synchronous discard at removal).
//!
//! Owns only that placement. It must not decide what the account files hold (`plan` does) nor
//! how init builds the skeleton (`engine::skeleton`).

use super::{io_err, SandboxError};
use crate::engine::skeleton::{Entry, Skeleton};
use oci_spec::runtime::{Mount, Spec};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The prefix of a hidden source's name in the covering tmpfs's mount point.
const HIDDEN_PREFIX: &str = ".lasso-etc-";

/// Points every mount of `spec` whose source is a skeleton `/etc` file (under `skel_etc`, the
/// planned root's `etc`) at a copy of that file: in the skeleton under a later tmpfs's mount
/// point when the Spec has one (`root` is where init mounts the skeleton), else written flat
/// into the sandbox's directory `dir` as before.
pub fn place(
    spec: &mut Spec,
    skel: &mut Skeleton,
    skel_etc: &Path,
    root: &Path,
    dir: &Path,
) -> Result<(), SandboxError> {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    let etc_binds: Vec<(usize, PathBuf)> = mounts
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let rel = m.source().as_ref()?.strip_prefix(skel_etc).ok()?;
            Some((i, rel.to_path_buf()))
        })
        .collect();
    let Some(last) = etc_binds.last().map(|(i, _)| *i) else {
        return Ok(());
    };
    let cover = covering_dir(&mounts[last + 1..], skel);
    for (i, rel) in etc_binds {
        let m = &mut mounts[i];
        let key = Path::new("etc").join(&rel);
        let Some(Entry::File { contents, .. }) = skel.get(&key.to_string_lossy()) else {
            return Err(SandboxError::Protocol(format!(
                "the mount of {} binds {}, which the skeleton does not hold as a file",
                m.destination().display(),
                skel_etc.join(&rel).display()
            )));
        };
        let contents = contents.clone();
        let flat = rel.to_string_lossy().replace('/', "-");
        let source = match &cover {
            Some(cover) => {
                let hidden = format!("{cover}/{HIDDEN_PREFIX}{flat}");
                skel.file(&hidden, 0o644, &contents);
                root.join(hidden)
            }
            None => {
                // Files only: on this kind of host a directory costs a synchronous discard
                // when it is removed.
                let to = dir.join(format!("etc-{flat}"));
                std::fs::write(&to, &contents)
                    .map_err(io_err(format!("write {}", to.display())))?;
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o644))
                    .map_err(io_err(format!("chmod {}", to.display())))?;
                to
            }
        };
        m.set_source(Some(source));
    }
    spec.set_mounts(Some(mounts));
    Ok(())
}

/// The skeleton path (relative) of the first mount in `later` that mounts a fresh filesystem
/// (not a bind) on a directory of the skeleton reached through no link of it: what is written
/// there before that mount is hidden by it once mounted.
fn covering_dir(later: &[Mount], skel: &Skeleton) -> Option<String> {
    later.iter().find_map(|m| {
        let bind = m.typ().as_deref() == Some("bind")
            || m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind");
        if bind || m.typ().as_deref() != Some("tmpfs") {
            return None;
        }
        let rel = m
            .destination()
            .strip_prefix("/")
            .ok()?
            .to_string_lossy()
            .into_owned();
        let is_dir = matches!(skel.get(&rel), Some(Entry::Dir { .. }));
        (!rel.is_empty() && !rel.contains("..") && is_dir && skel.symlink_on(&rel).is_none())
            .then_some(rel)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::MountBuilder;

    fn mount(dest: &str, typ: &str, src: &str, opts: &[&str]) -> Mount {
        MountBuilder::default()
            .destination(dest)
            .typ(typ)
            .source(src)
            .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .build()
            .unwrap()
    }

    fn skeleton() -> Skeleton {
        let mut s = Skeleton::default();
        for d in ["etc", "run", "tmp"] {
            s.dir(d, 0o755);
        }
        s.symlink("lnk", "/run");
        s.file(
            "etc/passwd",
            0o644,
            "agent:x:1000:1000::/home/agent:/bin/sh\n",
        );
        s.file("etc/hostname", 0o644, "lasso-abc\n");
        s
    }

    fn spec(mounts: Vec<Mount>) -> Spec {
        let mut spec = Spec::default();
        spec.set_mounts(Some(mounts));
        spec
    }

    #[test]
    fn account_sources_live_under_the_tmpfs_mounted_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut skel = skeleton();
        let mut spec = spec(vec![
            mount("/run", "tmpfs", "tmpfs", &["nosuid"]),
            mount("/etc", "bind", "/etc", &["rbind", "ro"]),
            mount(
                "/etc/passwd",
                "bind",
                "/r/rootfs/etc/passwd",
                &["bind", "ro"],
            ),
            mount("/etc/hostname", "bind", "/r/rootfs/etc/hostname", &["bind"]),
            mount("/lnk", "tmpfs", "tmpfs", &[]),
            mount("/tmp", "tmpfs", "tmpfs", &[]),
        ]);
        let root = Path::new("/r/root");
        place(
            &mut spec,
            &mut skel,
            Path::new("/r/rootfs/etc"),
            root,
            dir.path(),
        )
        .unwrap();
        let mounts = spec.mounts().clone().unwrap();
        // The /run before the binds does not hide them, nor a mount through a link: /tmp does.
        assert_eq!(
            mounts[2].source().as_deref(),
            Some(Path::new("/r/root/tmp/.lasso-etc-passwd"))
        );
        assert_eq!(
            mounts[3].source().as_deref(),
            Some(Path::new("/r/root/tmp/.lasso-etc-hostname"))
        );
        match skel.get("tmp/.lasso-etc-hostname") {
            Some(Entry::File { contents, .. }) => assert_eq!(contents, "lasso-abc\n"),
            other => panic!("hidden hostname not in the skeleton: {other:?}"),
        }
        // Nothing written on the host.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn without_a_later_tmpfs_the_sources_are_written_beside_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut skel = skeleton();
        let mut spec = spec(vec![
            mount("/tmp", "tmpfs", "tmpfs", &[]),
            mount(
                "/etc/passwd",
                "bind",
                "/r/rootfs/etc/passwd",
                &["bind", "ro"],
            ),
        ]);
        place(
            &mut spec,
            &mut skel,
            Path::new("/r/rootfs/etc"),
            Path::new("/r/root"),
            dir.path(),
        )
        .unwrap();
        let to = dir.path().join("etc-passwd");
        assert_eq!(
            spec.mounts().as_ref().unwrap()[1].source().as_deref(),
            Some(to.as_path())
        );
        assert!(std::fs::read_to_string(&to).unwrap().starts_with("agent:"));
    }

    #[test]
    fn a_bind_of_an_etc_file_the_skeleton_lacks_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut skel = skeleton();
        let mut spec = spec(vec![
            mount("/etc/group", "bind", "/r/rootfs/etc/group", &["bind"]),
            mount("/tmp", "tmpfs", "tmpfs", &[]),
        ]);
        let err = place(
            &mut spec,
            &mut skel,
            Path::new("/r/rootfs/etc"),
            Path::new("/r/root"),
            dir.path(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("/etc/group"), "{err}");
    }
}
