//! Who the agent is on the host. Inside, the agent is always uid/gid 1000 `agent`; outside, that
//! single ID maps to the invoking user, or, when lasso runs as root, to the owner of the
//! workspace, so files the agent creates belong to the person whose project it is. The agent
//! never maps to host root: a root-owned workspace under root is refused.
//!
//! Container root (0) is mapped to nothing. The agent never needs a second identity inside, an
//! unmapped 0 makes every root-owned host file read as `nobody`, and a single-ID map is what an
//! unprivileged user may write without newuidmap (with `setgroups` denied).

use super::error::PlanError;
use oci_spec::runtime::{LinuxIdMapping, LinuxIdMappingBuilder};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The agent's uid and gid inside the sandbox.
pub const AGENT_ID: u32 = 1000;

/// The host identity behind container uid/gid 1000.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub host_uid: u32,
    pub host_gid: u32,
    /// Whose home the agent's config mounts come from.
    pub host_home: PathBuf,
}

impl Identity {
    /// Chooses the host identity. `invoking_*` is lasso's own real uid/gid, `home` its HOME,
    /// `workspace` the (existing) project directory.
    pub fn resolve(
        invoking_uid: u32,
        invoking_gid: u32,
        home: &Path,
        workspace: &Path,
    ) -> Result<Identity, PlanError> {
        if invoking_uid != 0 {
            if invoking_gid == 0 {
                return Err(PlanError::RootIdentity {
                    uid: invoking_uid,
                    gid: invoking_gid,
                });
            }
            return Ok(Identity {
                host_uid: invoking_uid,
                host_gid: invoking_gid,
                host_home: home.to_path_buf(),
            });
        }
        let meta =
            std::fs::metadata(workspace).map_err(|source| PlanError::WorkspaceUnreadable {
                path: workspace.to_path_buf(),
                source,
            })?;
        for (id, kind) in [(meta.uid(), "uid"), (meta.gid(), "gid")] {
            if id == 0 {
                return Err(PlanError::RootOwnedWorkspace {
                    path: workspace.to_path_buf(),
                    kind,
                });
            }
        }
        // Run by root for someone else's project: the agent's config comes from the owner's
        // home, since root's own files would be unreadable to the mapped identity anyway.
        let owner_home = nix::unistd::User::from_uid(meta.uid().into())
            .ok()
            .flatten()
            .map(|u| u.dir)
            .unwrap_or_else(|| PathBuf::from("/nonexistent"));
        Ok(Identity {
            host_uid: meta.uid(),
            host_gid: meta.gid(),
            host_home: owner_home,
        })
    }

    /// `linux.uidMappings`: exactly one ID, 1000 -> host uid.
    pub fn uid_mappings(&self) -> Vec<LinuxIdMapping> {
        vec![single(self.host_uid)]
    }

    /// `linux.gidMappings`: exactly one ID, 1000 -> host gid.
    pub fn gid_mappings(&self) -> Vec<LinuxIdMapping> {
        vec![single(self.host_gid)]
    }
}

fn single(host: u32) -> LinuxIdMapping {
    LinuxIdMappingBuilder::default()
        .container_id(AGENT_ID)
        .host_id(host)
        .size(1u32)
        .build()
        .expect("an ID mapping always builds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unprivileged_user_maps_to_itself() {
        let ws = tempfile::tempdir().unwrap();
        let id = Identity::resolve(1234, 1234, Path::new("/home/u"), ws.path()).unwrap();
        assert_eq!((id.host_uid, id.host_gid), (1234, 1234));
        assert_eq!(id.host_home, PathBuf::from("/home/u"));
    }

    #[test]
    fn root_maps_to_the_workspace_owner() {
        let ws = tempfile::tempdir().unwrap();
        if nix::unistd::getuid().is_root() {
            nix::unistd::chown(ws.path(), Some(4321.into()), Some(4322.into())).unwrap();
            let id = Identity::resolve(0, 0, Path::new("/root"), ws.path()).unwrap();
            assert_eq!((id.host_uid, id.host_gid), (4321, 4322));
        }
    }

    #[test]
    fn root_owned_workspace_under_root_is_refused() {
        let ws = tempfile::tempdir().unwrap();
        if nix::unistd::getuid().is_root() {
            let err = Identity::resolve(0, 0, Path::new("/root"), ws.path()).unwrap_err();
            assert!(err.to_string().contains("chown"), "{err}");
        }
    }
}
