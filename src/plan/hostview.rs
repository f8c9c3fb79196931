//! The image-less "host view" root: which host directories appear read-only, which /etc secrets
//! are masked, what the minimal /dev and fresh /proc look like, and the small skeleton directory
//! that becomes the sandbox's (read-only) root. The lists are data in `rootfs/`, embedded here.

use super::error::PlanError;
use crate::engine::skeleton::Skeleton;
use oci_spec::runtime::{Mount, MountBuilder};
use std::path::{Path, PathBuf};

const SYSTEM_DIRS: &str = include_str!("../../rootfs/system-dirs.txt");
const ETC_HIDDEN: &str = include_str!("../../rootfs/etc-hidden.txt");
const PROC_MASKED: &str = include_str!("../../rootfs/proc-masked.txt");
const PROC_READONLY: &str = include_str!("../../rootfs/proc-readonly.txt");
const SENSITIVE: &str = include_str!("../../rootfs/sensitive-sources.txt");
const PASSWD: &str = include_str!("../../rootfs/passwd");
const GROUP: &str = include_str!("../../rootfs/group");

/// Directories every skeleton holds as (empty) mount points.
const SKELETON_DIRS: &[&str] = &[
    "dev",
    "proc",
    "sys",
    "tmp",
    "run",
    "home/agent",
    "workspace",
    "etc",
    "var",
    "mnt",
    // Links to the agent binary; first on PATH.
    ".lasso/bin",
];

fn lines(text: &'static str) -> impl Iterator<Item = &'static str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Host directories of the host view, as listed (present or not).
pub fn system_dirs() -> impl Iterator<Item = &'static str> {
    lines(SYSTEM_DIRS)
}

/// Container paths masked over /proc and /sys.
pub fn proc_masked() -> impl Iterator<Item = &'static str> {
    lines(PROC_MASKED)
}

/// Container paths made read-only.
pub fn proc_readonly() -> impl Iterator<Item = &'static str> {
    lines(PROC_READONLY)
}

/// The sensitive host paths, `~` expanded against `home`.
pub fn sensitive_sources(home: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    lines(SENSITIVE).map(move |l| match l.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None => PathBuf::from(l),
    })
}

/// The /etc entries to mask. Literal entries are always listed (a runtime skips absent ones);
/// an entry with `*` in its last component is expanded against the host's /etc right now, since
/// masks name exact paths.
pub fn etc_hidden(host_root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    // Several patterns share a directory (`/etc/ssh`): each is listed once per call.
    let mut listed: Vec<(&str, Option<Vec<String>>)> = Vec::new();
    for entry in lines(ETC_HIDDEN) {
        let Some((dir, pattern)) = entry.rsplit_once('/') else {
            continue;
        };
        if !pattern.contains('*') {
            out.push(entry.to_string());
            continue;
        }
        let names = match listed.iter().position(|(d, _)| *d == dir) {
            Some(i) => &listed[i].1,
            None => {
                let host_dir = host_root.join(dir.trim_start_matches('/'));
                let names = std::fs::read_dir(&host_dir).ok().map(|read| {
                    read.filter_map(|e| e.ok())
                        .filter_map(|e| e.file_name().into_string().ok())
                        .collect()
                });
                listed.push((dir, names));
                &listed[listed.len() - 1].1
            }
        };
        let Some(names) = names else {
            continue;
        };
        let mut found: Vec<String> = names
            .iter()
            .filter(|name| glob_match(pattern, name))
            .map(|name| format!("{dir}/{name}"))
            .collect();
        found.sort();
        out.extend(found);
    }
    out
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.starts_with(head)
                && (head.len()..=name.len())
                    .any(|i| name.is_char_boundary(i) && glob_match(tail, &name[i..]))
        }
    }
}

/// How one host system directory appears: bound read-only, mirrored as a symlink (merged /usr),
/// or absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemEntry {
    Bind(PathBuf),
    Symlink { path: PathBuf, target: PathBuf },
}

/// Looks at the host (under `host_root`, `/` outside tests) for each system directory.
pub fn system_entries(host_root: &Path) -> Vec<SystemEntry> {
    system_dirs()
        .filter_map(|d| {
            let host = host_root.join(d.trim_start_matches('/'));
            let meta = std::fs::symlink_metadata(&host).ok()?;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&host).ok()?;
                Some(SystemEntry::Symlink {
                    path: PathBuf::from(d),
                    target,
                })
            } else if meta.is_dir() {
                Some(SystemEntry::Bind(PathBuf::from(d)))
            } else {
                None
            }
        })
        .collect()
}

pub(crate) fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .expect("a mount with a destination always builds")
}

/// A read-only recursive bind of a host path at `dest`. `nosuid`: a setuid binary in the host
/// view gains nothing inside, `nodev`: no host device node works through it.
pub(crate) fn ro_bind(source: &Path, dest: &Path) -> Mount {
    mount(
        &dest.to_string_lossy(),
        "bind",
        &source.to_string_lossy(),
        &["rbind", "ro", "nosuid", "nodev"],
    )
}

pub(crate) fn rw_bind(source: &Path, dest: &Path) -> Mount {
    mount(
        &dest.to_string_lossy(),
        "bind",
        &source.to_string_lossy(),
        &["rbind", "rw", "nosuid", "nodev"],
    )
}

/// The device nodes of the minimal /dev. They are the OCI runtime spec's default devices, which
/// every runtime creates in the /dev tmpfs without being asked (mknod, or a bind of the host's
/// node inside a user namespace), with /dev/ptmx linked to the private devpts instance. Listing
/// them as mounts as well makes runtimes trip over their own defaults (runc opens /dev/tty to
/// create it and gets ENXIO), so the plan states only the tmpfs, devpts and shm mounts.
pub const DEV_NODES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

/// /dev, /dev/pts, /dev/shm, /proc and /sys.
pub fn kernel_mounts(shm_bytes: u64) -> Vec<Mount> {
    let mut m = vec![mount(
        "/dev",
        "tmpfs",
        "tmpfs",
        &["nosuid", "noexec", "strictatime", "mode=755", "size=65536k"],
    )];
    m.push(mount(
        "/dev/pts",
        "devpts",
        "devpts",
        &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
        ],
    ));
    m.push(mount(
        "/dev/shm",
        "tmpfs",
        "shm",
        &[
            "nosuid",
            "noexec",
            "nodev",
            "mode=1777",
            &format!("size={shm_bytes}"),
        ],
    ));
    m.push(mount(
        "/proc",
        "proc",
        "proc",
        &["nosuid", "noexec", "nodev"],
    ));
    m.push(mount(
        "/sys",
        "sysfs",
        "sysfs",
        &["nosuid", "noexec", "nodev", "ro"],
    ));
    m
}

/// The agent's login shell: bash when the host has it.
fn shell(host_root: &Path) -> &'static str {
    if host_root.join("bin/bash").exists() || host_root.join("usr/bin/bash").exists() {
        "/bin/bash"
    } else {
        "/bin/sh"
    }
}

/// Creates the skeleton root in `dir` (which may exist and must be empty or a previous skeleton):
/// empty mount points, the host's merged-/usr symlinks mirrored, `/etc/passwd` and `/etc/group`
/// with the `agent` user, and `/etc/hostname`. The sources of the account binds live here too.
pub fn materialise_skeleton(dir: &Path) -> Result<(), PlanError> {
    materialise_skeleton_from(dir, Path::new("/"))
}

/// As `materialise_skeleton`, mirroring the host found under `host_root`.
pub fn materialise_skeleton_from(dir: &Path, host_root: &Path) -> Result<(), PlanError> {
    std::fs::create_dir_all(dir).map_err(|source| PlanError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    skeleton_from(host_root)
        .write_to_path(dir)
        .map_err(|e| PlanError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })
}

/// The skeleton root as data (see `engine::skeleton`), mirroring the host under `host_root`:
/// what `materialise_skeleton_from` writes, and what init builds in the sandbox's own tmpfs.
pub fn skeleton_from(host_root: &Path) -> Skeleton {
    skeleton_of(&system_entries(host_root), host_root)
}

/// `skeleton_from` with the system entries already looked up (`PlannedSandbox::system`).
pub fn skeleton_of(system: &[SystemEntry], host_root: &Path) -> Skeleton {
    let mut s = Skeleton::default();
    for d in SKELETON_DIRS {
        s.dir(d, 0o755);
    }
    s.dir("tmp", 0o1777);
    for entry in system {
        match entry {
            SystemEntry::Bind(p) => s.dir(&rel(p), 0o755),
            SystemEntry::Symlink { path, target } => {
                // A link already listed (a host dir reached twice) keeps its first form.
                if s.get(&rel(path)).is_none() {
                    s.symlink(&rel(path), &target.to_string_lossy());
                }
            }
        }
    }
    // /var holds only the links programs expect; the host's /var (docker.sock under /var/run,
    // other users' mail and spool) stays out.
    s.symlink("var/tmp", "/tmp");
    s.symlink("var/run", "/run");
    let shell = shell(host_root);
    s.file("etc/passwd", 0o644, &PASSWD.replace("{shell}", shell));
    s.file("etc/group", 0o644, GROUP);
    s.file("etc/hostname", 0o644, "lasso\n");
    s
}

/// A container path relative to the root.
fn rel(p: &Path) -> String {
    p.strip_prefix("/")
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_ssh_host_keys_only() {
        assert!(glob_match("ssh_host_*key", "ssh_host_ed25519_key"));
        assert!(glob_match("ssh_host_*key.pub", "ssh_host_rsa_key.pub"));
        assert!(!glob_match("ssh_host_*key", "ssh_host_rsa_key.pub"));
        assert!(!glob_match("ssh_host_*key", "ssh_config"));
    }

    #[test]
    fn ssh_host_keys_found_on_the_host_are_masked() {
        let root = tempfile::tempdir().unwrap();
        let ssh = root.path().join("etc/ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        for f in [
            "ssh_host_ed25519_key",
            "ssh_host_ed25519_key.pub",
            "sshd_config",
        ] {
            std::fs::write(ssh.join(f), "").unwrap();
        }
        let hidden = etc_hidden(root.path());
        assert!(hidden.contains(&"/etc/ssh/ssh_host_ed25519_key".to_string()));
        assert!(hidden.contains(&"/etc/ssh/ssh_host_ed25519_key.pub".to_string()));
        assert!(!hidden.iter().any(|h| h.ends_with("sshd_config")));
        assert!(hidden.contains(&"/etc/shadow".to_string()));
    }
}
