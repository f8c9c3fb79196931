//! Host detection: which cgroup hierarchies are mounted where (v1, v2 or hybrid), and where the
//! calling process sits in each, read once from `/proc/self/mountinfo` and `/proc/self/cgroup`.
//! It owns path resolution of an OCI `cgroupsPath`; it never creates or writes anything.

use std::borrow::Cow;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::CgroupError;

/// The v1 controllers lasso knows how to drive or at least to join. Named hierarchies such as
/// `name=systemd` are skipped: they carry no limits and belong to the host's init.
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "rdma",
    "misc",
];

/// How the host mounts its cgroups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    /// Only v1 controller hierarchies.
    V1,
    /// One cgroup2 hierarchy (most current distributions).
    V2,
    /// v1 controllers plus a cgroup2 mount holding whatever is not bound to v1.
    Hybrid,
}

/// One mounted hierarchy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hierarchy {
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// Which cgroup of the hierarchy the mount shows at `mountpoint` (not `/` under a cgroup
    /// namespace or for a bind mount of a subtree).
    pub mount_root: PathBuf,
    /// v1: the controllers bound to this hierarchy; v2: the root's `cgroup.controllers`.
    pub controllers: Vec<String>,
    /// The caller's own cgroup in this hierarchy, as `/proc/self/cgroup` names it.
    pub own: PathBuf,
}

impl Hierarchy {
    /// The directory of `cgroup` (a path inside the hierarchy, absolute) under this mount.
    fn dir_of(&self, cgroup: &Path) -> PathBuf {
        let inside = cgroup.strip_prefix(&self.mount_root).unwrap_or(cgroup);
        let rel = inside.strip_prefix("/").unwrap_or(inside);
        self.mountpoint.join(rel)
    }

    /// Where `cgroups_path` lives in this hierarchy (already validated).
    pub fn resolve(&self, cgroups_path: &Path) -> PathBuf {
        if cgroups_path.is_absolute() {
            self.dir_of(cgroups_path)
        } else {
            self.dir_of(&self.own).join(cgroups_path)
        }
    }
}

/// What `CgroupHost::detect` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupHost {
    pub mode: CgroupMode,
    /// v1 hierarchies, one per mount (a mount may bind several controllers, e.g. `cpu,cpuacct`).
    pub v1: Vec<Hierarchy>,
    /// The cgroup2 mount, if any.
    pub unified: Option<Hierarchy>,
}

impl CgroupHost {
    /// The host's cgroups, detected once per process: the answer cannot change under a running
    /// runtime in a way it could handle anyway.
    pub fn detect() -> Result<&'static CgroupHost, CgroupError> {
        static HOST: OnceLock<CgroupHost> = OnceLock::new();
        if let Some(h) = HOST.get() {
            return Ok(h);
        }
        let mountinfo = read("/proc/self/mountinfo")?;
        let own = read("/proc/self/cgroup")?;
        let host = Self::from_proc(&mountinfo, &own)?;
        Ok(HOST.get_or_init(|| host))
    }

    /// Builds the picture from the text of `/proc/self/mountinfo` and `/proc/self/cgroup`;
    /// separate from `detect` so a fake tree can stand in for the real one in tests.
    pub fn from_proc(mountinfo: &str, proc_cgroup: &str) -> Result<CgroupHost, CgroupError> {
        let mut v1: Vec<Hierarchy> = Vec::new();
        let mut unified = None;
        let lines: Vec<MountLine<'_>> =
            mountinfo.lines().filter_map(parse_mountinfo_line).collect();
        for (i, m) in lines.iter().enumerate() {
            // The type first: only a cgroup line needs the quadratic test for a later mount
            // over it (a host lists dozens of other mounts).
            if !matches!(m.fstype, "cgroup" | "cgroup2") || hidden_by_a_later_mount(&lines, i) {
                continue;
            }
            match m.fstype {
                "cgroup2" if unified.is_none() => {
                    let ctl = Path::new(&*m.mountpoint).join("cgroup.controllers");
                    let controllers = crate::engine::procfs::read_small(&ctl)
                        .map_err(|source| CgroupError::Read { path: ctl, source })?
                        .split_whitespace()
                        .map(str::to_owned)
                        .collect();
                    let own = own_path(proc_cgroup, |c| c.is_empty());
                    unified = Some(Hierarchy {
                        mountpoint: PathBuf::from(&*m.mountpoint),
                        mount_root: PathBuf::from(&*m.root),
                        controllers,
                        own,
                    });
                }
                "cgroup" => {
                    let controllers: Vec<String> = m
                        .super_opts
                        .split(',')
                        .filter(|o| V1_CONTROLLERS.contains(o))
                        .map(str::to_owned)
                        .collect();
                    let taken = |c: &String| v1.iter().any(|h| h.controllers.contains(c));
                    if controllers.is_empty() || controllers.iter().any(taken) {
                        continue;
                    }
                    let own = own_path(proc_cgroup, |list| {
                        list.split(',').any(|c| c == controllers[0])
                    });
                    v1.push(Hierarchy {
                        mountpoint: PathBuf::from(&*m.mountpoint),
                        mount_root: PathBuf::from(&*m.root),
                        controllers,
                        own,
                    });
                }
                _ => {}
            }
        }
        let mode = match (v1.is_empty(), &unified) {
            (false, Some(_)) => CgroupMode::Hybrid,
            (false, None) => CgroupMode::V1,
            (true, Some(_)) => CgroupMode::V2,
            (true, None) => return Err(CgroupError::NoHierarchy),
        };
        // In hybrid mode a controller bound to v1 cannot be used in v2: drop it from the v2 list
        // so that every resource has exactly one home.
        if let Some(u) = unified.as_mut() {
            u.controllers
                .retain(|c| !v1.iter().any(|h| h.controllers.contains(c)));
        }
        Ok(CgroupHost { mode, v1, unified })
    }
}

/// Rejects a `cgroupsPath` that could leave the hierarchy or name its root.
pub fn validate_path(p: &Path) -> Result<(), CgroupError> {
    let bad = |reason: &str| CgroupError::InvalidPath {
        path: p.to_path_buf(),
        reason: reason.to_owned(),
    };
    let s = p.to_string_lossy();
    if s.contains(':') && !p.is_absolute() {
        return Err(bad(
            "systemd-style \"slice:prefix:name\" paths are not supported; use a filesystem path such as /lasso/<id>",
        ));
    }
    let mut normal = 0;
    for c in p.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(_) => normal += 1,
            _ => {
                return Err(bad(
                    "\"..\" and \".\" are not allowed: the path must stay inside the hierarchy",
                ))
            }
        }
    }
    if normal == 0 {
        return Err(bad(
            "it names the root of the hierarchy; give a sub-path such as /lasso/<id>",
        ));
    }
    Ok(())
}

fn read(path: &str) -> Result<String, CgroupError> {
    crate::engine::procfs::read_small(path).map_err(|source| CgroupError::Read {
        path: path.into(),
        source,
    })
}

/// The caller's path in the hierarchy whose controller list matches `pick`.
fn own_path(proc_cgroup: &str, pick: impl Fn(&str) -> bool) -> PathBuf {
    proc_cgroup
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_id, list, path) = (f.next()?, f.next()?, f.next()?);
            pick(list).then(|| PathBuf::from(path))
        })
        .next()
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// Borrowed from the text unless a path needed unescaping: no allocation per line.
struct MountLine<'a> {
    root: Cow<'a, str>,
    mountpoint: Cow<'a, str>,
    fstype: &'a str,
    super_opts: &'a str,
}

/// Whether a mount listed after line `i` sits on its mountpoint or on a directory above it:
/// then the hierarchy cannot be reached by its path (e.g. a tmpfs over
/// /sys/fs/cgroup/unified, which is how a v1-only runtime is run on a hybrid host), and using
/// it would fail on files that are not there. Mounts are listed in the order they were made.
/// A later mount on `/` is left out of the test: the root of the reading process is listed
/// first whatever its age.
fn hidden_by_a_later_mount(lines: &[MountLine<'_>], i: usize) -> bool {
    let target = Path::new(&*lines[i].mountpoint);
    lines[i + 1..].iter().any(|l| {
        let above = Path::new(&*l.mountpoint);
        above != Path::new("/") && target.starts_with(above)
    })
}

/// One line of mountinfo (proc(5)): the optional fields end at a lone "-".
fn parse_mountinfo_line(line: &str) -> Option<MountLine<'_>> {
    let (head, tail) = line.split_once(" - ")?;
    let mut head = head.split(' ').skip(3);
    let mut tail = tail.split(' ');
    let fstype = tail.next()?;
    let _source = tail.next()?;
    let super_opts = tail.next().unwrap_or("");
    Some(MountLine {
        root: unescape(head.next()?),
        mountpoint: unescape(head.next()?),
        fstype,
        super_opts,
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
";

    #[test]
    fn a_hierarchy_under_a_later_mount_is_not_used() {
        // A tmpfs over the cgroup2 mount of a hybrid host (how crun 1.8 is run there): a v1
        // host, and no read of the hidden cgroup2 files (this text names none that exist).
        let shadowed = format!(
            "{HYBRID}41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
             90 41 0:90 / /sys/fs/cgroup/unified rw - tmpfs none rw\n"
        );
        let host = CgroupHost::from_proc(&shadowed, "1:cpu:/\n0::/\n").unwrap();
        assert_eq!(host.mode, CgroupMode::V1);
        assert!(host.unified.is_none());
        // A mount over the whole cgroup tree hides every hierarchy: nothing to use.
        let all = format!("{HYBRID}91 31 0:91 / /sys/fs/cgroup rw - tmpfs none rw\n");
        assert!(matches!(
            CgroupHost::from_proc(&all, "1:cpu:/\n"),
            Err(CgroupError::NoHierarchy)
        ));
        // A later mount beside it (not above it) hides nothing.
        let beside = format!("{HYBRID}92 31 0:92 / /sys/fs/cgroup/cpuset rw - tmpfs none rw\n");
        assert_eq!(
            CgroupHost::from_proc(&beside, "1:cpu:/\n")
                .unwrap()
                .v1
                .len(),
            2
        );
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
    }

    #[test]
    fn v1_only_host_is_v1_and_named_hierarchies_are_skipped() {
        let host = CgroupHost::from_proc(HYBRID, "4:memory:/outer\n1:cpu:/\n").unwrap();
        assert_eq!(host.mode, CgroupMode::V1);
        assert_eq!(host.v1.len(), 2);
        let mem = host
            .v1
            .iter()
            .find(|h| h.controllers == ["memory"])
            .unwrap();
        assert_eq!(mem.own, PathBuf::from("/outer"));
        assert_eq!(
            mem.resolve(Path::new("inner")),
            PathBuf::from("/sys/fs/cgroup/memory/outer/inner")
        );
        assert_eq!(
            mem.resolve(Path::new("/abs/x")),
            PathBuf::from("/sys/fs/cgroup/memory/abs/x")
        );
    }

    #[test]
    fn cgroups_path_cannot_climb_out_of_the_hierarchy() {
        assert!(validate_path(Path::new("/a/../../etc")).is_err());
        assert!(validate_path(Path::new("../x")).is_err());
        assert!(validate_path(Path::new("/")).is_err());
        assert!(validate_path(Path::new("system.slice:lasso:x")).is_err());
        assert!(validate_path(Path::new("/lasso/x")).is_ok());
        assert!(validate_path(Path::new("rel/x")).is_ok());
    }
}
