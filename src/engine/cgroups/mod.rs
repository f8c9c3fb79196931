//! Cgroups for one container on a v1, v2 or hybrid host: creating its directories, moving tasks
//! in, applying `linux.resources` (also for `update`), freezing, signalling, listing and removing.
//!
//! It owns only the directories it creates (recorded in `Cgroup`, which persists in the
//! container's state file so later commands reopen exactly the same ones). It must never write
//! into a cgroup it did not create, except to enable a v2 controller in an ancestor's
//! `cgroup.subtree_control` when a limit of that controller is requested, which the v2 design
//! requires.

mod apply;
mod detect;
mod error;
mod fs;
mod placement;
mod tasks;
mod v1;
mod v2;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use detect::{validate_path, CgroupHost, CgroupMode, Hierarchy};
pub use error::CgroupError;
pub use placement::{place_self, Placement};

/// The annotation naming the controllers a container uses (comma-separated, e.g.
/// `cpu,devices,freezer,memory,pids`): it then joins only the hierarchies holding one of them.
/// Set by lasso's planner; a Spec without it joins every hierarchy, as runc does.
pub const CONTROLLERS_ANNOTATION: &str = "run.lasso.cgroup.controllers";

/// Which of the host's hierarchies a container joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Joins<'a> {
    /// Every mounted hierarchy (runc's behaviour).
    All,
    /// Only v1 hierarchies bound to one of these controllers, and cgroup2 when it is the only
    /// hierarchy or holds one of them. Each hierarchy joined costs a mkdir, a `cgroup.procs`
    /// write and an rmdir per container; one that enforces nothing the container asks for
    /// (cpuset, blkio, cpuacct alone, a hybrid host's cgroup2 holding only hugetlb) buys it
    /// nothing.
    Only(&'a [String]),
}

impl Joins<'_> {
    fn wants(&self, controllers: &[String]) -> bool {
        match self {
            Joins::All => true,
            Joins::Only(only) => controllers.iter().any(|c| only.contains(c)),
        }
    }
}

/// The controllers listed in a Spec's `run.lasso.cgroup.controllers` annotation, if it has one.
pub fn controllers_from_annotations(
    annotations: Option<&std::collections::HashMap<String, String>>,
) -> Result<Option<Vec<String>>, CgroupError> {
    let Some(value) = annotations.and_then(|a| a.get(CONTROLLERS_ANNOTATION)) else {
        return Ok(None);
    };
    let names: Vec<String> = value.split(',').map(|c| c.trim().to_owned()).collect();
    let valid =
        |c: &String| !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if names.is_empty() || !names.iter().all(valid) {
        return Err(CgroupError::InvalidAnnotation {
            annotation: CONTROLLERS_ANNOTATION,
            value: value.clone(),
            why: "expected controller names separated by commas, such as memory,pids; remove the annotation to join every hierarchy".into(),
        });
    }
    Ok(Some(names))
}

/// The v2 directory of a container and the controllers the host offers there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Unified {
    /// The cgroup2 mount point: enabling a controller walks from here down to `dir`.
    mountpoint: PathBuf,
    dir: PathBuf,
    /// Controllers that live in v2 on this host (in hybrid mode, those not bound to v1).
    controllers: Vec<String>,
}

/// A container's cgroup across all hierarchies of the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    mode: CgroupMode,
    /// The `cgroupsPath` as resolved (for messages and `state`).
    path: PathBuf,
    /// v1 controller -> the container's directory in that controller's hierarchy.
    v1: BTreeMap<String, PathBuf>,
    unified: Option<Unified>,
    /// Directories this cgroup created, parents first; `destroy` removes them in reverse.
    created: Vec<PathBuf>,
    /// Why the cgroup is not in use (rootless without a writable hierarchy), if it is not.
    disabled: Option<String>,
}

const WAIT: Duration = Duration::from_secs(5);

/// The parent of lasso's default cgroups (`/lasso/<id>`), shared by every lasso container.
const DEFAULT_PARENT: &str = "/lasso";

impl Cgroup {
    /// Creates (or joins, if it exists) the container's cgroup. `cgroups_path`: absolute = under
    /// each hierarchy root; relative = under the caller's own cgroup; `None` = `/lasso/<id>`.
    /// Rootless, a hierarchy that cannot be written yields a disabled `Cgroup` instead of an error.
    pub fn create(
        cgroups_path: Option<&Path>,
        container_id: &str,
        rootless: bool,
    ) -> Result<Cgroup, CgroupError> {
        Self::create_joining(cgroups_path, container_id, rootless, Joins::All)
    }

    /// `create`, joining only the hierarchies `joins` names.
    pub fn create_joining(
        cgroups_path: Option<&Path>,
        container_id: &str,
        rootless: bool,
        joins: Joins<'_>,
    ) -> Result<Cgroup, CgroupError> {
        let host = match CgroupHost::detect() {
            Ok(h) => h,
            Err(e) if rootless => return Ok(Self::disabled_with(e.to_string())),
            Err(e) => return Err(e),
        };
        crate::phases::mark("cgroup-detected");
        Self::create_on_joining(host, cgroups_path, container_id, rootless, joins)
    }

    /// `create` against an explicit host picture (a fake tree in tests, or a host view that
    /// ignores some hierarchies).
    pub fn create_on(
        host: &CgroupHost,
        cgroups_path: Option<&Path>,
        container_id: &str,
        rootless: bool,
    ) -> Result<Cgroup, CgroupError> {
        Self::create_on_joining(host, cgroups_path, container_id, rootless, Joins::All)
    }

    /// `create_on`, joining only the hierarchies `joins` names.
    pub fn create_on_joining(
        host: &CgroupHost,
        cgroups_path: Option<&Path>,
        container_id: &str,
        rootless: bool,
        joins: Joins<'_>,
    ) -> Result<Cgroup, CgroupError> {
        let default = PathBuf::from(DEFAULT_PARENT).join(container_id);
        let path = cgroups_path.map(Path::to_path_buf).unwrap_or(default);
        validate_path(&path)?;
        let mut cg = Cgroup {
            mode: host.mode,
            path: path.clone(),
            v1: BTreeMap::new(),
            unified: None,
            created: Vec::new(),
            disabled: None,
        };
        let result = cg.make_dirs(host, &path, joins);
        if result.is_ok() && path.parent() == Some(Path::new(DEFAULT_PARENT)) {
            cg.share_default_parents();
        }
        match result {
            Ok(()) => Ok(cg),
            Err(CgroupError::Create { source, .. }) if rootless && is_permission(&source) => {
                let reason = format!("no write access to the cgroup hierarchy: {source}");
                let _ = cg.destroy();
                Ok(Self::disabled_with(reason))
            }
            Err(e) => {
                let _ = cg.destroy();
                Err(e)
            }
        }
    }

    /// The default parent (`/lasso` in each hierarchy, whether the path was given as
    /// `/lasso/<id>` or left to the default) belongs to every lasso container, not to
    /// the one that happened to make it: each `destroy` tries to remove it (an rmdir that fails
    /// while a sibling still lives there), so the last container out leaves no empty parent.
    fn share_default_parents(&mut self) {
        let parents: Vec<PathBuf> = self
            .dirs()
            .iter()
            .filter_map(|d| d.parent().map(Path::to_path_buf))
            .collect();
        for p in parents {
            if !self.created.contains(&p) {
                // Parents first: `destroy` walks the list in reverse.
                self.created.insert(0, p);
            }
        }
    }

    fn disabled_with(reason: String) -> Cgroup {
        Cgroup {
            mode: CgroupMode::V2,
            path: PathBuf::new(),
            v1: BTreeMap::new(),
            unified: None,
            created: Vec::new(),
            disabled: Some(reason),
        }
    }

    fn make_dirs(
        &mut self,
        host: &CgroupHost,
        path: &Path,
        joins: Joins<'_>,
    ) -> Result<(), CgroupError> {
        for h in host.v1.iter().filter(|h| joins.wants(&h.controllers)) {
            let dir = h.resolve(path);
            fs::mkdir_all(&dir, &mut self.created)?;
            if h.controllers.iter().any(|c| c == "cpuset") {
                // A new v1 cpuset has empty cpus/mems and refuses tasks (ENOSPC) until filled in.
                v1::inherit_cpuset(&h.mountpoint, &dir)?;
            }
            for c in &h.controllers {
                self.v1.insert(c.clone(), dir.clone());
            }
        }
        // On a pure v2 host cgroup2 is the container's only hierarchy: always joined.
        let unified = host
            .unified
            .as_ref()
            .filter(|u| host.mode == CgroupMode::V2 || joins.wants(&u.controllers));
        if let Some(u) = unified {
            let dir = u.resolve(path);
            fs::mkdir_all(&dir, &mut self.created)?;
            self.unified = Some(Unified {
                mountpoint: u.mountpoint.clone(),
                dir,
                controllers: u.controllers.clone(),
            });
        }
        Ok(())
    }

    /// Why this cgroup is not in use, if it is not (rootless without delegation).
    pub fn disabled(&self) -> Option<&str> {
        self.disabled.as_deref()
    }

    pub fn mode(&self) -> CgroupMode {
        self.mode
    }

    /// The resolved `cgroupsPath` inside each hierarchy.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every distinct directory of this container (one per hierarchy mount).
    pub fn dirs(&self) -> Vec<&Path> {
        let mut d: Vec<&Path> = self.v1.values().map(PathBuf::as_path).collect();
        d.extend(self.unified.as_ref().map(|u| u.dir.as_path()));
        d.sort();
        d.dedup();
        d
    }

    /// The container's directory in the hierarchy of v1 controller `name`, if bound in v1.
    pub fn v1_dir(&self, name: &str) -> Option<&Path> {
        self.v1.get(name).map(PathBuf::as_path)
    }

    /// The container's cgroup2 directory, if the host has a cgroup2 mount.
    pub fn unified_dir(&self) -> Option<&Path> {
        self.unified.as_ref().map(|u| u.dir.as_path())
    }

    /// Applies `linux.resources`; also the body of `update`.
    pub fn apply(&self, res: &oci_spec::runtime::LinuxResources) -> Result<(), CgroupError> {
        if let Some(reason) = &self.disabled {
            if apply::requests_anything(res) {
                return Err(CgroupError::Disabled {
                    reason: reason.clone(),
                });
            }
            return Ok(());
        }
        apply::apply(self, res)
    }

    /// Moves process `pid` (all its threads) into every hierarchy of this cgroup.
    pub fn add_task(&self, pid: i32) -> Result<(), CgroupError> {
        for dir in self.dirs() {
            fs::write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }
}

fn is_permission(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EACCES | libc::EPERM | libc::EROFS)
    )
}
