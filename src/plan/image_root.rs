//! Image roots: a sandbox whose `/` is an OCI image from lasso's store instead of the host view.
//! The image's unpacked layers are stacked read-only with overlayfs under a private upper dir in
//! the sandbox's own directory (`<sandbox>/image/{upper,work}`), mounted by the engine inside the
//! sandbox's mount namespace (the `run.lasso.rootfs.overlay` annotation); everything else — the
//! /workspace bind, private /tmp and /home/agent, fresh /proc, minimal /dev, masks, Landlock,
//! seccomp and the exec gate — is planned exactly as for the host view.
//!
//! This file owns the choice of mounts that differ from the host view, the upper dir's
//! preparation (mount points, lasso's own passwd/group/hostname beside it) and the lookup of the
//! image in the store. It never writes to the store: the layers are shared by every sandbox and
//! stay untouched (overlayfs copies up into the private upper dir).
//!
//! The image's `Env`, `WorkingDir` and `User` are informative only: the agent still runs as uid
//! 1000 `agent` in /workspace. Only the image's `PATH` is used, since programs are looked up in
//! the image's own layout.

use super::error::PlanError;
use super::hostview::{kernel_mounts, ro_bind};
use super::LandlockRules;
use crate::image::store::{Store, StoreError};
use oci_spec::runtime::Mount;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

const PASSWD: &str = include_str!("../../rootfs/passwd");
const GROUP: &str = include_str!("../../rootfs/group");

#[derive(Debug, thiserror::Error)]
pub enum ImageRootError {
    #[error("image {name:?} is not in lasso's image store ({store}); get it with `lasso image pull {name}`, `lasso image import FILE --name {name}`, or build the agent images with `lasso prebuild`")]
    Unknown { name: String, store: String },
    #[error("image {name:?}: layer {layer} is missing from the store (a partial prune?); pull or import the image again")]
    MissingLayer { name: String, layer: PathBuf },
    #[error("image {name:?} has no layers; nothing to use as a root")]
    Empty { name: String },
    #[error("image store: {0}")]
    Store(#[from] StoreError),
}

/// An image found in the store, ready to be planned as a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRoot {
    /// The name it was found under.
    pub name: String,
    /// Its manifest digest (recorded in the sandbox's annotations).
    pub manifest: String,
    /// Unpacked layer directories, lowest first.
    pub layers: Vec<PathBuf>,
    /// The image's `PATH`, if its config sets one.
    pub path: Option<String>,
    /// The image's `Env`, `WorkingDir` and `User`, kept for display only.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

/// Finds `name` in the store at `store_root` and checks that every layer is unpacked.
pub fn resolve(store_root: &Path, name: &str) -> Result<ImageRoot, ImageRootError> {
    // A lookup never creates the store.
    if !store_root.join("images.json").is_file() {
        return Err(ImageRootError::Unknown {
            name: name.to_string(),
            store: store_root.display().to_string(),
        });
    }
    let store = Store::open(store_root)?;
    let d = match store.inspect(name) {
        Ok(d) => d,
        Err(StoreError::UnknownImage(_)) => {
            return Err(ImageRootError::Unknown {
                name: name.to_string(),
                store: store_root.display().to_string(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    if d.layers.is_empty() {
        return Err(ImageRootError::Empty { name: d.name });
    }
    for l in &d.layers {
        if !l.path.is_dir() {
            return Err(ImageRootError::MissingLayer {
                name: d.name.clone(),
                layer: l.path.clone(),
            });
        }
    }
    let cfg = d.config.config.clone().unwrap_or_default();
    let env: Vec<String> = cfg["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH=").map(str::to_string));
    let text = |k: &str| {
        cfg[k]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Ok(ImageRoot {
        manifest: d.manifest.to_string(),
        layers: d.layers.into_iter().map(|l| l.path).collect(),
        path,
        working_dir: text("WorkingDir"),
        user: text("User"),
        env,
        name: d.name,
    })
}

/// What `prepare_host` makes for an image root, and what the engine mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRootPlan {
    pub image: ImageRoot,
    /// `<sandbox>/image`: everything below is private to this sandbox and removed with it.
    pub dir: PathBuf,
    /// The overlay's writable layer, every entry owned by the agent's host ID (overlayfs in a
    /// user namespace needs its upper entries owned by a mapped ID). The agent may therefore
    /// create files at `/` and in the mount points' parents; they never reach the store.
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Sources of the read-only binds over /etc/passwd, /etc/group, /etc/hostname.
    pub etc: PathBuf,
    /// Mount points to create in the upper dir (container paths, is_dir), so that mounts land
    /// on lasso's own entries even where the image has none, or a symlink there.
    pub mount_points: Vec<(PathBuf, bool)>,
    pub hostname: String,
    pub owner: (u32, u32),
}

impl ImageRootPlan {
    pub fn new(image: &ImageRoot, sandbox_dir: &Path, hostname: &str, owner: (u32, u32)) -> Self {
        let dir = sandbox_dir.join("image");
        ImageRootPlan {
            image: image.clone(),
            upper: dir.join("upper"),
            work: dir.join("work"),
            etc: dir.join("etc"),
            dir,
            mount_points: vec![],
            hostname: hostname.to_string(),
            owner,
        }
    }

    /// The value of the engine's overlay annotation: lower dirs topmost first.
    pub fn annotation(&self) -> String {
        let lower: Vec<String> = self
            .image
            .layers
            .iter()
            .rev()
            .map(|p| p.display().to_string())
            .collect();
        serde_json::json!({
            "lower": lower,
            "upper": self.upper,
            "work": self.work,
        })
        .to_string()
    }

    /// The mounts that replace the host view: lasso's account files over the image's, and the
    /// kernel file systems. Landlock may read, write and execute under `/`: the root is the
    /// image (no host file is there), writes land in the private layer, and every host path
    /// mounted below keeps its own read-only flag, which the kernel enforces regardless.
    pub fn system_mounts(&self, shm_bytes: u64, ll: &mut LandlockRules) -> Vec<Mount> {
        let mut mounts: Vec<Mount> = ["passwd", "group", "hostname"]
            .iter()
            .map(|f| ro_bind(&self.etc.join(f), &Path::new("/etc").join(f)))
            .collect();
        mounts.extend(kernel_mounts(shm_bytes));
        ll.read.push("/".into());
        ll.execute.push("/".into());
        ll.read_write.push("/".into());
        mounts
    }

    /// Records a mount point in the upper dir for every mount that does not land inside an
    /// earlier one.
    pub fn add_mount_points(&mut self, mounts: &[Mount]) {
        for (i, m) in mounts.iter().enumerate() {
            let dest = m.destination();
            let covered = mounts[..i]
                .iter()
                .any(|o| dest != o.destination() && dest.starts_with(o.destination()));
            if covered || dest == Path::new("/") {
                continue;
            }
            let is_dir = m
                .source()
                .as_ref()
                .map(|s| !s.starts_with("/") || s.is_dir())
                .unwrap_or(true);
            self.mount_points.push((dest.clone(), is_dir));
        }
    }

    /// Creates the sandbox's private part of the root. Idempotent; touches only `self.dir`.
    pub fn prepare(&self) -> Result<(), PlanError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PlanError::Io { path, source }
        };
        for (d, mode) in [(&self.dir, 0o755), (&self.etc, 0o755)] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(d)
                .map_err(io(d))?;
        }
        // The overlay's mounter is the agent's ID inside the sandbox's user namespace: it must
        // own the upper and work dirs; the upper's root is the root directory the agent sees.
        for d in [&self.upper, &self.work] {
            if std::fs::symlink_metadata(d).is_err() {
                std::fs::DirBuilder::new()
                    .mode(0o755)
                    .create(d)
                    .map_err(io(d))?;
            }
            std::os::unix::fs::lchown(d, Some(self.owner.0), Some(self.owner.1)).map_err(io(d))?;
        }
        let shell = "/bin/sh";
        for (name, text) in [
            ("passwd", PASSWD.replace("{shell}", shell)),
            ("group", GROUP.to_string()),
            ("hostname", format!("{}\n", self.hostname)),
        ] {
            let p = self.etc.join(name);
            std::fs::write(&p, text).map_err(io(&p))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).map_err(io(&p))?;
        }
        // Mount points are made in the fresh upper dir, where nothing is a symlink: an entry in
        // the upper layer hides whatever the image has at that name (a hostile image's
        // `/workspace -> /etc` included), so every mount lands on lasso's own directory.
        for (dest, is_dir) in &self.mount_points {
            let rel = dest.strip_prefix("/").unwrap_or(dest);
            if rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(PlanError::Io {
                    path: dest.clone(),
                    source: std::io::Error::other("mount point is not a plain absolute path"),
                });
            }
            // Owned by the agent's host ID like the upper dir itself: overlayfs in a user
            // namespace refuses lookups through upper entries of an unmapped owner (EACCES).
            let mut cur = self.upper.clone();
            let n = rel.components().count();
            for (i, c) in rel.components().enumerate() {
                cur.push(c);
                let last = i + 1 == n;
                if std::fs::symlink_metadata(&cur).is_ok() {
                    continue;
                }
                if last && !*is_dir {
                    std::fs::File::create(&cur).map_err(io(&cur))?;
                } else {
                    std::fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&cur)
                        .map_err(io(&cur))?;
                }
                std::os::unix::fs::lchown(&cur, Some(self.owner.0), Some(self.owner.1))
                    .map_err(io(&cur))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(layers: &[&str]) -> ImageRootPlan {
        let img = ImageRoot {
            name: "t:1".into(),
            manifest: "sha256:00".into(),
            layers: layers.iter().map(PathBuf::from).collect(),
            path: None,
            env: vec![],
            working_dir: None,
            user: None,
        };
        ImageRootPlan::new(&img, Path::new("/run/lasso/abc"), "lasso-abc", (1, 1))
    }

    #[test]
    fn overlay_stacks_the_top_layer_first_and_keeps_the_private_layer_in_the_sandbox_dir() {
        let p = plan_of(&["/s/layers/bottom", "/s/layers/top"]);
        let v: serde_json::Value = serde_json::from_str(&p.annotation()).unwrap();
        assert_eq!(
            v["lower"],
            serde_json::json!(["/s/layers/top", "/s/layers/bottom"])
        );
        assert_eq!(v["upper"], "/run/lasso/abc/image/upper");
        assert_eq!(v["work"], "/run/lasso/abc/image/work");
    }

    #[test]
    fn every_mount_gets_a_point_in_the_upper_dir_unless_an_earlier_mount_covers_it() {
        let mut p = plan_of(&["/l"]);
        let mut ll = LandlockRules::default();
        let mut mounts = p.system_mounts(1 << 20, &mut ll);
        mounts.push(super::super::hostview::rw_bind(
            Path::new("/tmp"),
            Path::new("/workspace"),
        ));
        p.add_mount_points(&mounts);
        let points: Vec<&Path> = p.mount_points.iter().map(|(d, _)| d.as_path()).collect();
        assert!(points.contains(&Path::new("/etc/passwd")));
        assert!(points.contains(&Path::new("/dev")));
        assert!(points.contains(&Path::new("/workspace")));
        // /dev/pts lands inside the /dev tmpfs, not in the image.
        assert!(!points.contains(&Path::new("/dev/pts")));
        let passwd = p
            .mount_points
            .iter()
            .find(|(d, _)| d == Path::new("/etc/passwd"));
        assert_eq!(passwd.map(|(_, dir)| *dir), Some(false));
        let ws = p
            .mount_points
            .iter()
            .find(|(d, _)| d == Path::new("/workspace"));
        assert_eq!(ws.map(|(_, dir)| *dir), Some(true));
    }
}
