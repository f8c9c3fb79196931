//! Reading an OCI bundle: `config.json` parsed into `oci_spec` types with errors that name the
//! field (JSON path, line and column), plus the checks runc makes before it forks anything: a
//! rootfs that exists and does not escape the bundle through a symlink, a runnable process,
//! absolute mount destinations, no duplicate namespaces. It owns no kernel state.

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(
        "bundle {0} does not exist: pass an existing directory with --bundle (or run from it)"
    )]
    Missing(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: field `{field}` (line {line}, column {column}): {message}")]
    Field {
        file: PathBuf,
        field: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: field `{field}`: {message}")]
    Invalid {
        file: PathBuf,
        field: String,
        message: String,
    },
}

/// A bundle whose config parsed and whose rootfs was resolved on the host.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Absolute, canonical bundle directory.
    pub dir: PathBuf,
    pub spec: Spec,
    /// Absolute, canonical rootfs directory.
    pub rootfs: PathBuf,
}

impl Bundle {
    /// Loads `dir/config.json` and checks what must hold before a container can be created.
    pub fn load(dir: &Path) -> Result<Bundle, BundleError> {
        let dir = fs::canonicalize(dir).map_err(|_| BundleError::Missing(dir.to_path_buf()))?;
        let file = dir.join("config.json");
        let text = fs::read_to_string(&file).map_err(|source| BundleError::Read {
            path: file.clone(),
            source,
        })?;
        let spec = parse_spec(&text, &file)?;
        let rootfs = resolve_rootfs(&dir, &spec, &file)?;
        validate(&spec, &file)?;
        Ok(Bundle { dir, spec, rootfs })
    }

    /// A bundle directory whose Spec the caller already holds (it wrote or parsed
    /// `config.json` itself): the same checks as `load`, without reading the file back.
    /// Errors name `dir/config.json`, where the Spec is kept.
    pub fn with_spec(dir: &Path, spec: Spec) -> Result<Bundle, BundleError> {
        let Checked { dir, rootfs } = check(dir, &spec)?;
        Ok(Bundle { dir, spec, rootfs })
    }
}

/// A bundle directory and its rootfs, both absolute and canonical, once a Spec the caller
/// keeps passed `check`.
#[derive(Debug, Clone)]
pub struct Checked {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
}

/// The checks of `Bundle::with_spec` on a Spec the caller keeps (no copy of it is made: a
/// Spec with the seccomp baseline and the skeleton's annotations is hundreds of
/// allocations). Errors name `dir/config.json`, as `with_spec`'s.
pub fn check(dir: &Path, spec: &Spec) -> Result<Checked, BundleError> {
    let dir = fs::canonicalize(dir).map_err(|_| BundleError::Missing(dir.to_path_buf()))?;
    let file = dir.join("config.json");
    let rootfs = resolve_rootfs(&dir, spec, &file)?;
    validate(spec, &file)?;
    Ok(Checked { dir, rootfs })
}

/// Parses a config.json text, naming the JSON path of the first field that does not fit the
/// OCI schema (e.g. `process.user.uid`).
pub fn parse_spec(text: &str, file: &Path) -> Result<Spec, BundleError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        BundleError::Field {
            file: file.to_path_buf(),
            field: if field == "." {
                "(document)".into()
            } else {
                field
            },
            line: inner.line(),
            column: inner.column(),
            message: strip_position(&inner.to_string()),
        }
    })
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn invalid(file: &Path, field: &str, message: impl Into<String>) -> BundleError {
    BundleError::Invalid {
        file: file.to_path_buf(),
        field: field.into(),
        message: message.into(),
    }
}

/// A relative `root.path` must stay inside the bundle even through symlinks: a rootfs that links
/// to `/` would hand the host's root to the container. An absolute path is the caller's choice
/// (podman keeps the rootfs outside the bundle).
fn resolve_rootfs(dir: &Path, spec: &Spec, file: &Path) -> Result<PathBuf, BundleError> {
    let root = spec.root().as_ref().ok_or_else(|| {
        invalid(
            file,
            "root",
            "missing: set root.path to the rootfs directory",
        )
    })?;
    let given = root.path();
    let joined = if given.is_absolute() {
        given.clone()
    } else {
        dir.join(given)
    };
    let real = fs::canonicalize(&joined).map_err(|_| {
        invalid(
            file,
            "root.path",
            format!("rootfs {} does not exist", joined.display()),
        )
    })?;
    if !given.is_absolute() && !real.starts_with(dir) {
        return Err(invalid(
            file,
            "root.path",
            format!(
                "rootfs {} resolves to {}, outside the bundle {}: replace the symlink with a directory",
                joined.display(),
                real.display(),
                dir.display()
            ),
        ));
    }
    if !real.is_dir() {
        return Err(invalid(
            file,
            "root.path",
            format!("rootfs {} is not a directory", real.display()),
        ));
    }
    Ok(real)
}

fn validate(spec: &Spec, file: &Path) -> Result<(), BundleError> {
    let process = spec.process().as_ref().ok_or_else(|| {
        invalid(
            file,
            "process",
            "missing: the container needs a process to run",
        )
    })?;
    match process.args() {
        Some(args) if !args.is_empty() => {}
        _ => {
            return Err(invalid(
                file,
                "process.args",
                "empty: give the command to run",
            ))
        }
    }
    if !process.cwd().is_absolute() {
        return Err(invalid(
            file,
            "process.cwd",
            format!("{} is not absolute", process.cwd().display()),
        ));
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(invalid(
                file,
                &format!("mounts[{i}].destination"),
                format!("{} is not absolute", m.destination().display()),
            ));
        }
    }
    // Fields the engine does not apply yet are refused, never silently ignored.
    let unsupported = [
        ("process.ioPriority", process.io_priority().is_some()),
        ("process.scheduler", process.scheduler().is_some()),
        (
            "process.execCPUAffinity",
            process.exec_cpu_affinity().is_some(),
        ),
    ];
    let linux = spec.linux().as_ref();
    let unsupported_linux = [
        (
            "linux.timeOffsets",
            linux.is_some_and(|l| l.time_offsets().as_ref().is_some_and(|t| !t.is_empty())),
        ),
        (
            "linux.personality",
            linux.is_some_and(|l| l.personality().is_some()),
        ),
        (
            "linux.intelRdt",
            linux.is_some_and(|l| l.intel_rdt().is_some()),
        ),
    ];
    for (field, present) in unsupported.into_iter().chain(unsupported_linux) {
        if present {
            return Err(invalid(
                file,
                field,
                "not supported by lasso-runc yet: remove it from config.json",
            ));
        }
    }
    let mut seen = HashSet::new();
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for (i, ns) in namespaces.iter().enumerate() {
        if !seen.insert(ns.typ()) {
            return Err(invalid(
                file,
                &format!("linux.namespaces[{i}]"),
                format!("namespace {} is listed twice", ns.typ()),
            ));
        }
    }
    let has_new = |t: LinuxNamespaceType| namespaces.iter().any(|n| n.typ() == t);
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty())
        && !has_new(LinuxNamespaceType::Uts)
    {
        return Err(invalid(
            file,
            "hostname",
            "set without a uts namespace: add {\"type\": \"uts\"} to linux.namespaces",
        ));
    }
    let user_new = namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    if user_new {
        let linux = spec.linux().as_ref().expect("namespaces come from linux");
        if linux.uid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
            return Err(invalid(
                file,
                "linux.uidMappings",
                "a new user namespace needs uidMappings",
            ));
        }
        if linux.gid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
            return Err(invalid(
                file,
                "linux.gidMappings",
                "a new user namespace needs gidMappings",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_field_is_refused_by_name() {
        let text = r#"{"ociVersion":"1.0.2","process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}},
            "linux":{"timeOffsets":{"monotonic":{"secs":1,"nanosecs":0}}}}"#;
        let spec = parse_spec(text, Path::new("config.json")).unwrap();
        let err = validate(&spec, Path::new("config.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("linux.timeOffsets"), "{err}");
    }

    #[test]
    fn malformed_field_is_named_with_its_path() {
        let text = r#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":"zero","gid":0}}}"#;
        let err = parse_spec(text, Path::new("config.json")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("process.user.uid"), "{msg}");
    }

    #[test]
    fn a_spec_handed_over_is_checked_as_config_json_would_be() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        let text = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
            "process":{"cwd":"/","args":[],"user":{"uid":0,"gid":0}}}"#;
        let spec = parse_spec(text, Path::new("config.json")).unwrap();
        // No config.json exists: nothing is read back, and the Spec itself is checked.
        let err = Bundle::with_spec(dir.path(), spec).unwrap_err().to_string();
        assert!(err.contains("process.args"), "{err}");
        assert!(err.contains("config.json"), "{err}");
        let good = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
            "process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}}}"#;
        let spec = parse_spec(good, Path::new("config.json")).unwrap();
        let b = Bundle::with_spec(dir.path(), spec).unwrap();
        assert_eq!(b.rootfs, dir.path().canonicalize().unwrap().join("rootfs"));
    }

    #[test]
    fn a_borrowed_spec_gets_the_same_checks_as_one_handed_over() {
        let dir = tempfile::tempdir().unwrap();
        // A rootfs that links out of the bundle would hand the host's root to the container.
        std::os::unix::fs::symlink("/", dir.path().join("rootfs")).unwrap();
        let text = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
            "process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}}}"#;
        let spec = parse_spec(text, Path::new("config.json")).unwrap();
        let err = check(dir.path(), &spec).unwrap_err().to_string();
        assert!(
            err.contains("root.path") && err.contains("outside the bundle"),
            "{err}"
        );
        assert_eq!(
            err,
            Bundle::with_spec(dir.path(), spec.clone())
                .unwrap_err()
                .to_string()
        );
        std::fs::remove_file(dir.path().join("rootfs")).unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        let bad = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
            "process":{"cwd":"rel","args":["sh"],"user":{"uid":0,"gid":0}}}"#;
        let bad = parse_spec(bad, Path::new("config.json")).unwrap();
        let err = check(dir.path(), &bad).unwrap_err().to_string();
        assert!(err.contains("process.cwd"), "{err}");
        let checked = check(dir.path(), &spec).unwrap();
        let real = dir.path().canonicalize().unwrap();
        assert_eq!(checked.dir, real);
        assert_eq!(checked.rootfs, real.join("rootfs"));
    }
}
