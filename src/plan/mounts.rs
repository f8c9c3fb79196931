//! User-requested mounts: the `--mount SRC:DST[:ro]` syntax, and the checks that keep a mount
//! from exposing host secrets (sensitive sources) or breaking the host view (reserved or
//! conflicting destinations). Pure path logic plus `canonicalize` of sources.

use super::error::MountError;
use super::hostview;
use std::fmt;
use std::path::{Component, Path, PathBuf};

/// One `--mount` request, as parsed; not yet checked against the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRequest {
    pub source: PathBuf,
    pub destination: PathBuf,
    pub read_only: bool,
}

impl fmt::Display for MountRequest {
    /// The `--mount` syntax again, so that `parse_mount(&m.to_string()) == Ok(m)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            self.source.display(),
            self.destination.display()
        )?;
        if self.read_only {
            write!(f, ":ro")?;
        }
        Ok(())
    }
}

/// Parses `SRC:DST`, `SRC:DST:ro` or `SRC:DST:rw`. Both paths must be absolute; the destination
/// must not contain `..` (it would escape the place the user named). Paths cannot contain `:`.
pub fn parse_mount(value: &str) -> Result<MountRequest, MountError> {
    let flag = "--mount".to_string();
    let syntax = || MountError::Syntax {
        flag: flag.clone(),
        value: value.to_string(),
    };
    let parts: Vec<&str> = value.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [s, d] => (*s, *d, None),
        [s, d, m] => (*s, *d, Some(*m)),
        _ => return Err(syntax()),
    };
    if src.is_empty() || dst.is_empty() {
        return Err(syntax());
    }
    for (which, p) in [("source", src), ("destination", dst)] {
        if !p.starts_with('/') {
            return Err(MountError::Relative {
                flag: flag.clone(),
                value: value.to_string(),
                which,
                path: p.to_string(),
            });
        }
    }
    if Path::new(dst)
        .components()
        .any(|c| c == Component::ParentDir)
    {
        return Err(MountError::DotDot {
            flag,
            value: value.to_string(),
            dest: dst.to_string(),
        });
    }
    let read_only = match mode {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(m) => {
            return Err(MountError::Mode {
                flag,
                value: value.to_string(),
                mode: m.to_string(),
            })
        }
    };
    Ok(MountRequest {
        source: normalize(Path::new(src)),
        destination: normalize(Path::new(dst)),
        read_only,
    })
}

/// Drops `.` components and duplicate or trailing slashes, keeping the path absolute.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Why `source` is sensitive, if it is: it is, lies inside, or contains a path of
/// `rootfs/sensitive-sources.txt`, or it is `/`, `/home` or one of `homes`. `homes` holds lasso's
/// own home and, under root, the home of the user the agent maps to: both hold keys.
pub fn sensitivity(source: &Path, homes: &[&Path]) -> Option<String> {
    if source == Path::new("/") {
        return Some("it is the host's root directory".into());
    }
    if source == Path::new("/home") {
        return Some("it holds every user's home directory".into());
    }
    for home in homes {
        if source == *home {
            return Some("it is a home directory, which holds ~/.ssh and credentials".into());
        }
        for s in hostview::sensitive_sources(home) {
            if source == s {
                return Some(format!(
                    "{} is on lasso's list of host secrets",
                    s.display()
                ));
            }
            if source.starts_with(&s) {
                return Some(format!("it lies inside {}", s.display()));
            }
            if s.starts_with(source) {
                return Some(format!("it contains {}", s.display()));
            }
        }
    }
    None
}

/// Checks a source both as written and with symlinks resolved (a link to `/` is still `/`), and
/// returns the resolved path, which is what gets mounted.
pub fn check_source(
    flag: &str,
    value: &str,
    source: &Path,
    homes: &[&Path],
    allow_sensitive: bool,
) -> Result<PathBuf, MountError> {
    let sensitive = |p: &Path| -> Result<(), MountError> {
        match sensitivity(p, homes) {
            Some(reason) if !allow_sensitive => Err(MountError::Sensitive {
                flag: flag.to_string(),
                value: value.to_string(),
                source_path: p.to_path_buf(),
                reason,
            }),
            _ => Ok(()),
        }
    };
    sensitive(source)?;
    let real = std::fs::canonicalize(source).map_err(|_| MountError::SourceMissing {
        flag: flag.to_string(),
        value: value.to_string(),
        source_path: source.to_path_buf(),
    })?;
    sensitive(&real)?;
    Ok(real)
}

/// Destinations a user mount may not take: the host view's own directories (mounting over
/// them would replace the read-only system or the masked /etc), and the kernel trees.
pub fn check_destination(flag: &str, value: &str, dest: &Path) -> Result<(), MountError> {
    let reserved = |reason| MountError::ReservedDestination {
        flag: flag.to_string(),
        value: value.to_string(),
        dest: dest.display().to_string(),
        reason,
    };
    if dest == Path::new("/") {
        return Err(reserved("the sandbox's root"));
    }
    let system: Vec<PathBuf> = hostview::system_dirs()
        .map(PathBuf::from)
        // /var/run and /var/tmp are symlinks in the skeleton; /.lasso holds its links.
        .chain(
            [
                "/proc",
                "/sys",
                "/dev",
                "/run/lasso",
                "/var/run",
                "/var/tmp",
                "/.lasso",
            ]
            .map(PathBuf::from),
        )
        .collect();
    for s in &system {
        if dest.starts_with(s) || s.starts_with(dest) {
            return Err(reserved(
                "a system directory of the host view (read-only by design)",
            ));
        }
    }
    for (own, reason) in [
        ("/workspace", "where the project is mounted"),
        ("/home/agent", "the agent's home"),
        ("/tmp", "the sandbox's private /tmp"),
        ("/home", "the parent of the agent's home"),
    ] {
        if dest == Path::new(own) {
            return Err(reserved(reason));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_accepts_the_three_forms() {
        let m = parse_mount("/data:/mnt/data").unwrap();
        assert_eq!(m.source, PathBuf::from("/data"));
        assert!(!m.read_only);
        assert!(parse_mount("/data:/mnt/data:ro").unwrap().read_only);
        assert!(!parse_mount("/data:/mnt/data:rw").unwrap().read_only);
    }

    #[test]
    fn relative_paths_are_refused_with_the_fix() {
        let e = parse_mount("data:/mnt").unwrap_err().to_string();
        assert!(
            e.contains("--mount \"data:/mnt\"") && e.contains("$PWD/data"),
            "{e}"
        );
        assert!(matches!(
            parse_mount("/data:mnt"),
            Err(MountError::Relative {
                which: "destination",
                ..
            })
        ));
    }

    #[test]
    fn dotdot_in_destination_is_refused() {
        assert!(matches!(
            parse_mount("/data:/mnt/../etc"),
            Err(MountError::DotDot { .. })
        ));
    }

    #[test]
    fn bad_mode_and_shapes_are_refused() {
        assert!(matches!(
            parse_mount("/a:/b:rx"),
            Err(MountError::Mode { .. })
        ));
        for bad in ["", "/a", "/a:", ":/b", "/a:/b:ro:x"] {
            assert!(parse_mount(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn home_and_root_and_their_secrets_are_sensitive() {
        let home: &[&Path] = &[Path::new("/root"), Path::new("/home/u")];
        assert!(sensitivity(Path::new("/"), home).is_some());
        assert!(sensitivity(Path::new("/home/u"), home).is_some());
        assert!(sensitivity(Path::new("/root/.ssh"), home).is_some());
        assert!(sensitivity(Path::new("/home/u/.ssh/id_ed25519"), home).is_some());
        assert!(sensitivity(Path::new("/etc"), home).is_some());
        assert!(sensitivity(Path::new("/etc/ssl/certs"), home).is_some());
        assert!(
            sensitivity(Path::new("/run"), home).is_some(),
            "contains docker.sock"
        );
        assert!(sensitivity(Path::new("/home/u/src/project"), home).is_none());
        assert!(sensitivity(Path::new("/srv/data"), home).is_none());
    }

    #[test]
    fn a_symlink_to_a_sensitive_source_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("innocent");
        std::os::unix::fs::symlink("/etc", &link).unwrap();
        let err = check_source("--mount", "x", &link, &[Path::new("/home/u")], false).unwrap_err();
        assert!(matches!(err, MountError::Sensitive { .. }), "{err}");
    }

    #[test]
    fn destinations_over_system_dirs_are_refused() {
        for d in [
            "/usr",
            "/usr/local/bin",
            "/etc/passwd",
            "/",
            "/proc/x",
            "/workspace",
        ] {
            assert!(
                check_destination("--mount", "v", Path::new(d)).is_err(),
                "{d}"
            );
        }
        for d in [
            "/mnt/data",
            "/workspace/data",
            "/home/agent/.cache",
            "/data",
        ] {
            assert!(
                check_destination("--mount", "v", Path::new(d)).is_ok(),
                "{d}"
            );
        }
    }

    fn path_strategy() -> impl Strategy<Value = PathBuf> {
        prop::collection::vec("[a-zA-Z0-9_.-]{1,8}", 1..5).prop_map(|parts| {
            let parts: Vec<String> = parts
                .into_iter()
                .map(|p| if p == "." || p == ".." { "x".into() } else { p })
                .collect();
            PathBuf::from(format!("/{}", parts.join("/")))
        })
    }

    proptest! {
        #[test]
        fn parse_mount_never_panics(s in ".*") {
            let _ = parse_mount(&s);
        }

        #[test]
        fn parse_mount_round_trips(src in path_strategy(), dst in path_strategy(), ro in any::<bool>()) {
            let m = MountRequest { source: src, destination: dst, read_only: ro };
            prop_assert_eq!(parse_mount(&m.to_string()), Ok(m));
        }

        #[test]
        fn parsed_destinations_never_climb_out(s in "(/[a-z.]{1,3}){1,5}:(/[a-z.]{1,3}){1,5}") {
            if let Ok(m) = parse_mount(&s) {
                prop_assert!(m.destination.is_absolute());
                prop_assert!(!m.destination.components().any(|c| c == Component::ParentDir));
            }
        }
    }
}
