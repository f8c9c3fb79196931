//! The opt-in policy of `lasso-runc`: a container whose annotations carry
//! `run.lasso.profile=NAME` (a built-in or user profile name, or a profile file's path) is run
//! with that profile's hardening on top of its own OCI config, and `run.lasso.audit=DIR` says
//! where its audit log goes. This module reads those annotations, loads the profile and derives
//! the Spec the engine runs: lasso's seccomp baseline stacked on the container's own filter,
//! Landlock rules from the container's mounts, every capability dropped and no_new_privs.
//! The exec gate itself is `gate_monitor`'s.
//!
//! Owns only this translation. It never rewrites the client's bundle (the engine takes the
//! derived Spec through `CreateOptions::spec`) and never touches the kernel.

use crate::engine::confine;
use crate::engine::landlock::LandlockRules;
use crate::paths::Dirs;
use crate::policy::{self, ResolvedProfile};
use oci_spec::runtime::{LinuxCapabilities, Spec};
use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

/// The annotation that opts a container in.
pub const PROFILE_ANNOTATION: &str = "run.lasso.profile";
/// The annotation naming the audit log's directory.
pub const AUDIT_ANNOTATION: &str = "run.lasso.audit";

/// Set by lasso-runc on the Spec it runs (never read from the client): the digest of the
/// profile the container was created with.
pub const DIGEST_ANNOTATION: &str = "run.lasso.profile.digest";

/// File systems that are never made writable by Landlock, even when mounted read-write: the
/// kernel's control files (sysctls, cgroup knobs, per-process attributes) are not an agent's
/// working space.
const KERNEL_FS: [&str; 4] = ["proc", "sysfs", "cgroup", "cgroup2"];

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("annotation {PROFILE_ANNOTATION}={name:?}: {source}; the profiles here are: {available} (or give a profile file's absolute path)")]
    Unknown {
        name: String,
        available: String,
        #[source]
        source: Box<policy::ProfileError>,
    },
    #[error("annotation {PROFILE_ANNOTATION}={name:?}: {source}")]
    Invalid {
        name: String,
        #[source]
        source: Box<policy::ProfileError>,
    },
    #[error("annotation {AUDIT_ANNOTATION}={0:?}: give an absolute directory path without `..`")]
    AuditPath(String),
    #[error("profile {source_name} changed since the container was created (digest {now} now, {then} then): exec sessions would be decided by other rules than the container's; recreate the container to use the new rules")]
    Changed {
        source_name: String,
        now: String,
        then: String,
    },
    #[error("annotation {PROFILE_ANNOTATION}={annotation:?} conflicts with the runtime's --lasso-profile {runtime:?} (from the runtime's registration, e.g. daemon.json `runtimeArgs` or containerd's runtime options): remove the annotation, or use a runtime registered without --lasso-profile")]
    Conflict { annotation: String, runtime: String },
    #[error("annotation {PROFILE_ANNOTATION}: the container's process cannot start without a pid namespace of its own here (add a pid namespace to linux.namespaces): the exec gate traces the container's init")]
    NoPidNamespace,
}

/// What a container opted into.
#[derive(Debug)]
pub struct Opted {
    /// The annotation's value (name or path), as given.
    pub source: String,
    pub profile: ResolvedProfile,
    /// The audit log's directory.
    pub audit_dir: PathBuf,
}

/// The directories lasso-runc uses for keys and user profiles: lasso's own (`/etc/lasso` for
/// root), or `LASSO_CONFIG_DIR` as `lasso audit` honours it, so that a test or a user can keep
/// the key ring elsewhere.
pub fn dirs() -> Dirs {
    let mut d = Dirs::current();
    if let Some(c) = std::env::var_os("LASSO_CONFIG_DIR").filter(|c| !c.is_empty()) {
        d.config = PathBuf::from(c);
    }
    d
}

/// Default audit directory: beside lasso's own logs, one directory per container
/// (`/var/log/lasso/runc/<id>/` for root).
fn default_audit_dir(dirs: &Dirs, id: &str) -> PathBuf {
    let base = dirs
        .audit_logs
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dirs.state.clone());
    base.join("runc").join(id)
}

fn names(dirs: &Dirs) -> String {
    let mut n: Vec<String> = policy::BUILTINS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    n.extend(policy::user_profile_names(dirs));
    n.join(", ")
}

/// The profile a container runs under: the runtime's `--lasso-profile` (set by whoever
/// registered the runtime, e.g. Docker's daemon.json `runtimeArgs`, for every container it
/// creates) or the container's `run.lasso.profile` annotation. Both may be given only when they
/// name the same profile: the runtime entry is the operator's floor, and an annotation written
/// by whoever starts the container must not swap it for a weaker one.
fn chosen(
    ann_value: Option<&String>,
    runtime: Option<&str>,
) -> Result<Option<String>, ProfileError> {
    match (ann_value, runtime) {
        (Some(a), Some(r)) if a != r => Err(ProfileError::Conflict {
            annotation: a.clone(),
            runtime: r.to_string(),
        }),
        (Some(a), _) => Ok(Some(a.clone())),
        (None, Some(r)) => Ok(Some(r.to_string())),
        (None, None) => Ok(None),
    }
}

/// What the runtime's registration says for every container it creates (global flags, from
/// e.g. Docker's daemon.json `runtimeArgs`).
#[derive(Debug, Clone, Default)]
pub struct RuntimePolicy {
    /// `--lasso-profile`.
    pub profile: Option<String>,
    /// `--lasso-audit`: the audit directory of containers without `run.lasso.audit`.
    pub audit: Option<PathBuf>,
}

/// Reads the annotations of `spec` and the runtime's own policy (`runtime`); `Ok(None)` when
/// the container did not opt in and the runtime sets no profile.
pub fn opted(
    spec: &Spec,
    id: &str,
    dirs: &Dirs,
    runtime: &RuntimePolicy,
) -> Result<Option<Opted>, ProfileError> {
    let ann = spec.annotations().clone().unwrap_or_default();
    let Some(source) = chosen(ann.get(PROFILE_ANNOTATION), runtime.profile.as_deref())? else {
        return Ok(None);
    };
    let profile = policy::load(&source, dirs).map_err(|e| match e {
        policy::ProfileError::NotFound { .. } => ProfileError::Unknown {
            name: source.clone(),
            available: names(dirs),
            source: Box::new(e),
        },
        e => ProfileError::Invalid {
            name: source.clone(),
            source: Box::new(e),
        },
    })?;
    let audit_dir = match ann.get(AUDIT_ANNOTATION) {
        Some(p) => {
            let path = PathBuf::from(p);
            if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
                return Err(ProfileError::AuditPath(p.clone()));
            }
            path
        }
        None => match &runtime.audit {
            Some(dir) => dir.clone(),
            None => default_audit_dir(dirs, id),
        },
    };
    let has_pid_ns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter().any(|n| {
                n.typ() == oci_spec::runtime::LinuxNamespaceType::Pid && n.path().is_none()
            })
        });
    if !has_pid_ns {
        return Err(ProfileError::NoPidNamespace);
    }
    Ok(Some(Opted {
        source,
        profile,
        audit_dir,
    }))
}

/// For `exec` into a created container: the profile it runs under (from the Spec lasso-runc
/// saved at `create`), loaded again and checked against the digest recorded then. `Ok(None)`
/// for a container without the annotation.
pub fn of_created(
    spec: &Spec,
    id: &str,
    dirs: &Dirs,
    runtime: &RuntimePolicy,
) -> Result<Option<Opted>, ProfileError> {
    let Some(opted) = opted(spec, id, dirs, runtime)? else {
        return Ok(None);
    };
    let then = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(DIGEST_ANNOTATION).cloned())
        .unwrap_or_default();
    let now = opted.profile.digest();
    if now != then {
        return Err(ProfileError::Changed {
            source_name: opted.source.clone(),
            now,
            then,
        });
    }
    Ok(Some(opted))
}

/// The Landlock rules for a container: everything readable and executable (which programs
/// may run is the exec gate's decision, not Landlock's); writable are the container's
/// read-write mounts except kernel file systems, plus, when the root is writable, every
/// top-level entry of the root except `/proc` and `/sys`. So even a read-write root keeps the
/// kernel's control files out of reach, and a read-only root confines writes to the volumes
/// and tmpfs mounts the client gave the container. `rootfs` is the root on the host, used to
/// list its top-level entries (each must exist when init enforces the rules).
pub fn landlock_rules(spec: &Spec, rootfs: &Path) -> LandlockRules {
    let mut rw: Vec<PathBuf> = Vec::new();
    for m in spec.mounts().iter().flatten() {
        let ty = m.typ().as_deref().unwrap_or("");
        let ro = m
            .options()
            .iter()
            .flatten()
            .any(|o| o == "ro" || o == "rro");
        if ro || KERNEL_FS.contains(&ty) {
            continue;
        }
        let dest = m.destination();
        if dest == Path::new("/proc") || dest.starts_with("/sys") || dest.starts_with("/proc/") {
            continue;
        }
        rw.push(dest.clone());
    }
    let root_rw = spec
        .root()
        .as_ref()
        .is_none_or(|r| r.readonly() != Some(true));
    if root_rw {
        let mut top: Vec<PathBuf> = std::fs::read_dir(rootfs)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n != "proc" && n != "sys")
            .map(|n| Path::new("/").join(n))
            .collect();
        top.sort();
        rw.extend(top);
    }
    let mut seen = HashSet::new();
    rw.retain(|p| seen.insert(p.clone()));
    LandlockRules {
        read: vec![PathBuf::from("/")],
        read_write: rw,
        execute: vec![PathBuf::from("/")],
    }
}

/// The Spec the engine runs for an opted-in container: `spec` plus the profile's hardening.
pub fn harden(spec: &Spec, rootfs: &Path, opted: &Opted) -> Spec {
    let mut out = spec.clone();
    let rules = landlock_rules(spec, rootfs);
    let mut ann = out.annotations().clone().unwrap_or_default();
    ann.insert(
        confine::LANDLOCK_ANNOTATION.into(),
        confine::encode_landlock(&rules),
    );
    ann.insert(confine::SECCOMP_ANNOTATION.into(), "baseline".into());
    // The rules `exec` sessions must be decided with: a profile file edited after `create`
    // would otherwise give them other rules than the container's own log names.
    ann.insert(DIGEST_ANNOTATION.into(), opted.profile.digest());
    // Recorded for `exec` sessions, also when the profile came from the runtime's flag.
    ann.insert(PROFILE_ANNOTATION.into(), opted.source.clone());
    ann.insert(
        AUDIT_ANNOTATION.into(),
        opted.audit_dir.display().to_string(),
    );
    out.set_annotations(Some(ann));
    if let Some(mut p) = out.process().clone() {
        // lasso's sandboxes hold no capability at all; a profile container gets the same: a
        // capability is a way around the seccomp and Landlock rules above (CAP_SYS_ADMIN
        // mounts, CAP_DAC_OVERRIDE, CAP_SYS_PTRACE on the gate's tracees).
        p.set_capabilities(Some(no_capabilities()));
        p.set_no_new_privileges(Some(true));
        out.set_process(Some(p));
    }
    out
}

/// Every set empty.
fn no_capabilities() -> LinuxCapabilities {
    let none = oci_spec::runtime::Capabilities::new();
    let mut c = LinuxCapabilities::default();
    c.set_bounding(Some(none.clone()));
    c.set_effective(Some(none.clone()));
    c.set_inheritable(Some(none.clone()));
    c.set_permitted(Some(none.clone()));
    c.set_ambient(Some(none));
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(ann: &[(&str, &str)]) -> Spec {
        let mut s = Spec::default();
        s.set_annotations(Some(
            ann.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ));
        s
    }

    #[test]
    fn container_without_the_annotation_is_left_alone() {
        let d = Dirs::current();
        assert!(opted(&spec_with(&[]), "c", &d, &RuntimePolicy::default())
            .unwrap()
            .is_none());
    }

    #[test]
    fn unknown_profile_names_the_annotation_and_lists_profiles() {
        let d = Dirs::current();
        let e = opted(
            &spec_with(&[(PROFILE_ANNOTATION, "standrd")]),
            "c",
            &d,
            &RuntimePolicy::default(),
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("run.lasso.profile=\"standrd\""), "{msg}");
        assert!(msg.contains("standard, open"), "{msg}");
    }

    fn standard_runtime() -> RuntimePolicy {
        RuntimePolicy {
            profile: Some("standard".into()),
            audit: None,
        }
    }

    #[test]
    fn runtime_profile_applies_without_an_annotation() {
        let d = Dirs::current();
        let mut s = spec_with(&[]);
        s.set_linux(Some(
            serde_json::from_value(serde_json::json!({"namespaces": [{"type": "pid"}]})).unwrap(),
        ));
        let o = opted(&s, "c", &d, &standard_runtime()).unwrap().unwrap();
        assert_eq!(o.source, "standard");
    }

    #[test]
    fn annotation_cannot_swap_the_runtimes_profile() {
        let d = Dirs::current();
        let s = spec_with(&[(PROFILE_ANNOTATION, "open")]);
        let e = opted(&s, "c", &d, &standard_runtime()).unwrap_err();
        assert!(matches!(e, ProfileError::Conflict { .. }), "{e}");
        assert!(e.to_string().contains("--lasso-profile"), "{e}");
    }

    #[test]
    fn relative_audit_dir_is_refused() {
        let d = Dirs::current();
        let s = spec_with(&[
            (PROFILE_ANNOTATION, "standard"),
            (AUDIT_ANNOTATION, "logs/x"),
        ]);
        assert!(matches!(
            opted(&s, "c", &d, &RuntimePolicy::default()),
            Err(ProfileError::AuditPath(_))
        ));
        let s = spec_with(&[
            (PROFILE_ANNOTATION, "standard"),
            (AUDIT_ANNOTATION, "/a/../b"),
        ]);
        assert!(matches!(
            opted(&s, "c", &d, &RuntimePolicy::default()),
            Err(ProfileError::AuditPath(_))
        ));
    }

    #[test]
    fn default_audit_dir_is_per_container() {
        assert_eq!(
            default_audit_dir(&Dirs::system(), "abc"),
            PathBuf::from("/var/log/lasso/runc/abc")
        );
    }

    #[test]
    fn read_only_root_makes_only_rw_mounts_writable() {
        let s: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs", "readonly": true},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["rw"]},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
                {"destination": "/data", "type": "bind", "source": "/x", "options": ["rbind", "rw"]},
                {"destination": "/etc/resolv.conf", "type": "bind", "source": "/y", "options": ["rbind", "ro"]}
            ]
        }))
        .unwrap();
        let r = landlock_rules(&s, Path::new("/nonexistent"));
        assert_eq!(
            r.read_write,
            vec![PathBuf::from("/dev"), PathBuf::from("/data")]
        );
        assert_eq!(r.read, vec![PathBuf::from("/")]);
    }

    fn opted_standard() -> Opted {
        Opted {
            source: "standard".into(),
            profile: policy::load("standard", &Dirs::current()).unwrap(),
            audit_dir: PathBuf::from("/var/log/lasso/runc/c"),
        }
    }

    #[test]
    fn hardened_spec_drops_every_capability_and_sets_no_new_privs() {
        let s: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {
                "args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                "capabilities": {"bounding": ["CAP_SYS_ADMIN"], "effective": ["CAP_SYS_ADMIN"],
                                 "permitted": ["CAP_SYS_ADMIN"], "ambient": ["CAP_SYS_ADMIN"]}
            }
        }))
        .unwrap();
        let h = harden(&s, Path::new("/nonexistent"), &opted_standard());
        let caps = h
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .clone()
            .unwrap();
        for set in [
            caps.bounding(),
            caps.effective(),
            caps.permitted(),
            caps.inheritable(),
            caps.ambient(),
        ] {
            assert_eq!(set.as_ref().map(|s| s.len()), Some(0));
        }
        assert_eq!(
            h.process().as_ref().unwrap().no_new_privileges(),
            Some(true)
        );
        assert!(confine::wants_baseline(&h));
        let ann = h.annotations().clone().unwrap();
        assert_eq!(
            ann.get(DIGEST_ANNOTATION),
            Some(&opted_standard().profile.digest())
        );
        assert!(confine::landlock_rules(&h).unwrap().is_some());
    }

    #[test]
    fn writable_root_keeps_proc_and_sys_and_new_top_level_entries_unwritable() {
        let root = tempfile::tempdir().unwrap();
        for d in ["bin", "tmp", "proc", "sys", "etc"] {
            std::fs::create_dir(root.path().join(d)).unwrap();
        }
        let s: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs", "readonly": false}
        }))
        .unwrap();
        let r = landlock_rules(&s, root.path());
        let want: Vec<PathBuf> = ["/bin", "/etc", "/tmp"].iter().map(PathBuf::from).collect();
        assert_eq!(r.read_write, want);
        assert!(!r.read_write.contains(&PathBuf::from("/")));
    }

    #[test]
    fn edited_profile_is_refused_for_exec_sessions() {
        let mut s = spec_with(&[
            (PROFILE_ANNOTATION, "standard"),
            (DIGEST_ANNOTATION, "0000"),
        ]);
        s.set_linux(Some(
            serde_json::from_value(serde_json::json!({"namespaces": [{"type": "pid"}]})).unwrap(),
        ));
        let e = of_created(&s, "c", &Dirs::current(), &RuntimePolicy::default()).unwrap_err();
        assert!(matches!(e, ProfileError::Changed { .. }), "{e}");
    }
}
