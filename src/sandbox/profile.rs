//! From a resolved profile to the planner's input: the one place where the policy's typed
//! sections become mounts, limits and a network mode. The planner never sees a profile (it
//! takes a `PlanInput`), and the policy never sees the planner; this adapter is the seam.
//! Command rules are not translated here: the exec gate asks `policy::decide_argv` at run time.
//!
//! Owns only the mapping (and `~` expansion against the host's home). It must not load profile
//! files (the CLI does, with `policy::load`) nor touch the kernel.

use crate::plan::{NetworkMode, PlanInput, WorkspaceMode};
use crate::policy::{self, ResolvedProfile, WorkspaceAccess};
use std::path::{Path, PathBuf};

/// Host path of a profile's `read_only`/`writable` entry: `~/x` is under the host home.
fn host_path(entry: &str, home: &Path) -> PathBuf {
    match entry.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None if entry == "~" => home.to_path_buf(),
        None => PathBuf::from(entry),
    }
}

/// Writes what `profile` asks for into `input` (workspace access, read-only / writable / hidden
/// paths, resource limits, network mode, name). CLI options are applied afterwards by the caller,
/// so that a flag overrides the profile.
pub fn apply(profile: &ResolvedProfile, input: &mut PlanInput) {
    input.profile_name = profile.name.clone();
    input.workspace_mode = match profile.filesystem.workspace {
        WorkspaceAccess::Rw => WorkspaceMode::Rw,
        WorkspaceAccess::Ro => WorkspaceMode::Ro,
    };
    let home = input.host.home.clone();
    input.read_only_paths = profile
        .filesystem
        .read_only
        .iter()
        .map(|p| host_path(p, &home))
        .collect();
    input.writable_paths = profile
        .filesystem
        .writable
        .iter()
        .map(|p| host_path(p, &home))
        .collect();
    input.hidden_paths = profile.filesystem.hidden.clone();
    let r = &profile.resources;
    input.resources.memory_bytes = r.memory_bytes;
    input.resources.cpus = r.cpu_millis.map(|m| f64::from(m) / 1000.0);
    input.resources.pids = r.pids.map(u64::from);
    input.network = match profile.network.mode {
        policy::NetworkMode::None => NetworkMode::None,
        policy::NetworkMode::Allowlist => NetworkMode::Allowlist,
        policy::NetworkMode::Full => NetworkMode::Full,
    };
    // Allowlist profiles get the kernel's execute floor under the exec gate (plan::exec_floor).
    input.exec_allowlist = (profile.commands.mode == policy::CommandMode::Allowlist).then(|| {
        profile
            .commands
            .allowed
            .iter()
            .map(|r| r.name.clone())
            .collect()
    });
}

/// Whether the profile sets any cgroup-enforced limit.
pub fn sets_limits(profile: &ResolvedProfile) -> bool {
    let r = &profile.resources;
    r.memory_bytes.is_some() || r.cpu_millis.is_some() || r.pids.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Dirs;
    use crate::plan::HostContext;

    fn input() -> PlanInput {
        let mut host = HostContext::current();
        host.home = "/home/u".into();
        PlanInput::new(
            crate::agents::find("shell").unwrap(),
            "/tmp/w".into(),
            "/tmp/s".into(),
            host,
        )
    }

    fn builtin(name: &str) -> ResolvedProfile {
        policy::load(name, &Dirs::current()).unwrap()
    }

    #[test]
    fn evaluation_profile_makes_the_workspace_read_only() {
        let mut i = input();
        apply(&builtin("evaluation"), &mut i);
        assert_eq!(i.workspace_mode, WorkspaceMode::Ro);
        assert_eq!(i.profile_name, "evaluation");
        assert_eq!(i.network, NetworkMode::None);
    }

    #[test]
    fn standard_profile_hides_credentials_and_sets_limits() {
        let p = builtin("standard");
        let mut i = input();
        apply(&p, &mut i);
        assert!(i.hidden_paths.iter().any(|h| h == "~/.ssh"));
        assert_eq!(i.resources.memory_bytes, Some(8 << 30));
        assert_eq!(i.resources.cpus, Some(4.0));
        assert_eq!(i.resources.pids, Some(1024));
        assert!(sets_limits(&p));
    }

    #[test]
    fn tilde_paths_are_under_the_host_home() {
        assert_eq!(
            host_path("~/.cache/x", Path::new("/home/u")),
            PathBuf::from("/home/u/.cache/x")
        );
        assert_eq!(
            host_path("/opt/t", Path::new("/home/u")),
            PathBuf::from("/opt/t")
        );
    }
}
