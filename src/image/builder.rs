//! Which image builder `lasso prebuild` hands `Dockerfile.images` to: buildah, then podman, then
//! docker, the first found on `PATH`. Building itself belongs to prebuild, not here.

use std::path::{Path, PathBuf};

/// What to tell a user who has none of them.
pub const INSTALL_HINT: &str =
    "install buildah (preferred, daemonless), podman or docker, e.g. `apt-get install buildah`";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuilderKind {
    Buildah,
    Podman,
    Docker,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Builder {
    pub kind: BuilderKind,
    pub path: PathBuf,
}

impl Builder {
    pub fn name(&self) -> &'static str {
        match self.kind {
            BuilderKind::Buildah => "buildah",
            BuilderKind::Podman => "podman",
            BuilderKind::Docker => "docker",
        }
    }
}

/// The first builder on `$PATH`, in the order buildah, podman, docker.
pub fn detect() -> Option<Builder> {
    detect_in(&std::env::var_os("PATH").unwrap_or_default())
}

/// [`detect`] over an explicit search path (tests pass their own).
pub fn detect_in(path: &std::ffi::OsStr) -> Option<Builder> {
    [
        (BuilderKind::Buildah, "buildah"),
        (BuilderKind::Podman, "podman"),
        (BuilderKind::Docker, "docker"),
    ]
    .into_iter()
    .find_map(|(kind, name)| {
        std::env::split_paths(path)
            .map(|d| d.join(name))
            .find(|p| is_executable(p))
            .map(|path| Builder { kind, path })
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn buildah_wins_over_podman_and_docker_and_none_is_none() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(detect_in(d.path().as_os_str()), None);
        for n in ["docker", "podman", "buildah"] {
            let p = d.path().join(n);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            let found = detect_in(d.path().as_os_str()).unwrap();
            assert_eq!(found.name(), n);
        }
    }
}
