//! Who the agent is on the host. Inside, the agent is always uid/gid 1000 `agent`; outside, that
//! single ID maps to the invoking user, or, when lasso runs as root, to the owner of the
//! workspace, so files the agent creates belong to the person whose project it is. The agent
//! never maps to host root: for a root-owned workspace under root the agent runs as an ID no
//! account uses (`ROOT_WORKSPACE_AGENT_ID`), and the workspace (with the agent's config in
//! root's home and the private copies) is bound through idmapped mounts that show the owner's
//! files as that ID and store the agent's new files as the owner's. Where the kernel or the
//! filesystem cannot idmap, such a workspace is refused with a chown hint.
//!
//! Container root (0) is mapped to nothing. The agent never needs a second identity inside, an
//! unmapped 0 makes every root-owned host file read as `nobody`, and a single-ID map is what an
//! unprivileged user may write without newuidmap (with `setgroups` denied).

use super::error::PlanError;
use oci_spec::runtime::{LinuxIdMapping, LinuxIdMappingBuilder, Mount};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The agent's uid and gid inside the sandbox.
pub const AGENT_ID: u32 = 1000;

/// The host uid and gid of the agent when root runs lasso on a root-owned workspace: unused by
/// any account (checked), far above the ranges distributions hand out, and not 0.
pub const ROOT_WORKSPACE_AGENT_ID: u32 = 1_000_001_000;

/// The host identity behind container uid/gid 1000.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub host_uid: u32,
    pub host_gid: u32,
    /// Whose home the agent's config mounts come from.
    pub host_home: PathBuf,
    /// Set when the agent reaches its files through idmapped mounts: the on-disk owner
    /// (uid, gid) shown to the agent as `host_uid`/`host_gid`.
    pub idmapped_owner: Option<(u32, u32)>,
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
        Identity::resolve_with(invoking_uid, invoking_gid, home, workspace, |p| {
            // The one kernel call of planning: a detached, throwaway clone of the workspace.
            crate::engine::idmap::probe(p).map_err(|e| format!("idmapped mount: {e}"))
        })
    }

    /// `resolve`, with `can_idmap` saying whether a directory can be bound idmapped here.
    pub fn resolve_with(
        invoking_uid: u32,
        invoking_gid: u32,
        home: &Path,
        workspace: &Path,
        can_idmap: impl Fn(&Path) -> Result<(), String>,
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
                idmapped_owner: None,
            });
        }
        let meta =
            std::fs::metadata(workspace).map_err(|source| PlanError::WorkspaceUnreadable {
                path: workspace.to_path_buf(),
                source,
            })?;
        if meta.uid() == 0 || meta.gid() == 0 {
            return root_owned(workspace, (meta.uid(), meta.gid()), can_idmap);
        }
        // Run by root for someone else's project: the agent's config comes from the owner's
        // home, since root's own files would be unreadable to the mapped identity anyway.
        let owner_home =
            super::passwd::home_of(meta.uid()).unwrap_or_else(|| PathBuf::from("/nonexistent"));
        Ok(Identity {
            host_uid: meta.uid(),
            host_gid: meta.gid(),
            host_home: owner_home,
            idmapped_owner: None,
        })
    }

    /// Who owns on disk what the agent creates in the host directories it gets (its config
    /// under `host_home`, the private copies): the workspace's owner when idmapped.
    pub fn file_owner(&self) -> (u32, u32) {
        self.idmapped_owner
            .unwrap_or((self.host_uid, self.host_gid))
    }

    /// When the agent reaches its files through idmapped mounts, marks every bind whose
    /// source lies under one of `roots` (the workspace, the agent's config home, the private
    /// copies) `idmap`, with the owner shown as the agent's host ID. Only the top mount of a
    /// bind is mapped: a mount below it keeps its own owners (shown as nobody when unmapped).
    pub fn idmap_binds(&self, mounts: &mut [Mount], roots: &[&Path]) {
        let Some((uid, gid)) = self.idmapped_owner else {
            return;
        };
        for m in mounts.iter_mut() {
            let is_bind = m.typ().as_deref() == Some("bind");
            let under = m
                .source()
                .as_ref()
                .is_some_and(|s| roots.iter().any(|r| s.starts_with(r)));
            if !is_bind || !under {
                continue;
            }
            let mut opts = m.options().clone().unwrap_or_default();
            if !opts.iter().any(|o| o == "idmap" || o == "ridmap") {
                opts.push("idmap".into());
            }
            m.set_options(Some(opts));
            m.set_uid_mappings(Some(vec![mapping(uid, self.host_uid)]));
            m.set_gid_mappings(Some(vec![mapping(gid, self.host_gid)]));
        }
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

/// Root-owned workspace under root: the agent runs as `ROOT_WORKSPACE_AGENT_ID`, its config
/// comes from root's home, and both reach it idmapped, if this host can idmap the workspace.
fn root_owned(
    workspace: &Path,
    owner: (u32, u32),
    can_idmap: impl Fn(&Path) -> Result<(), String>,
) -> Result<Identity, PlanError> {
    if let Err(reason) = can_idmap(workspace) {
        return Err(if reason.is_empty() {
            PlanError::RootOwnedWorkspace {
                path: workspace.to_path_buf(),
                kind: if owner.0 == 0 { "uid" } else { "gid" },
            }
        } else {
            PlanError::RootOwnedWorkspaceNoIdmap {
                path: workspace.to_path_buf(),
                reason,
            }
        });
    }
    let id = ROOT_WORKSPACE_AGENT_ID;
    let taken = nix::unistd::User::from_uid(id.into())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| {
            nix::unistd::Group::from_gid(id.into())
                .ok()
                .flatten()
                .map(|g| g.name)
        });
    if let Some(name) = taken {
        return Err(PlanError::AgentIdTaken {
            path: workspace.to_path_buf(),
            id,
            name,
        });
    }
    let root_home = super::passwd::home_of(0).unwrap_or_else(|| PathBuf::from("/root"));
    Ok(Identity {
        host_uid: id,
        host_gid: id,
        host_home: root_home,
        idmapped_owner: Some(owner),
    })
}

/// An idmapped mount's mapping: files owned by `on_disk` appear as `shown`.
fn mapping(on_disk: u32, shown: u32) -> LinuxIdMapping {
    LinuxIdMappingBuilder::default()
        .container_id(on_disk)
        .host_id(shown)
        .size(1u32)
        .build()
        .expect("an ID mapping always builds")
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
    fn root_owned_workspace_without_idmap_is_refused_with_a_chown_hint() {
        let ws = tempfile::tempdir().unwrap();
        if nix::unistd::getuid().is_root() {
            let no = |_: &Path| Err("mount_setattr: EINVAL".to_string());
            let err = Identity::resolve_with(0, 0, Path::new("/root"), ws.path(), no).unwrap_err();
            assert!(err.to_string().contains("chown"), "{err}");
            assert!(err.to_string().contains("EINVAL"), "{err}");
        }
    }

    #[test]
    fn root_owned_workspace_maps_the_agent_to_an_unprivileged_id_through_idmap() {
        let ws = tempfile::tempdir().unwrap();
        if nix::unistd::getuid().is_root() {
            let yes = |_: &Path| Ok(());
            let id = Identity::resolve_with(0, 0, Path::new("/root"), ws.path(), yes).unwrap();
            assert_ne!(id.host_uid, 0);
            assert_ne!(id.host_gid, 0);
            assert_eq!(id.idmapped_owner, Some((0, 0)));
            assert_eq!(id.file_owner(), (0, 0));
            let mut mounts = vec![
                crate::plan::hostview::rw_bind(ws.path(), Path::new("/workspace")),
                crate::plan::hostview::ro_bind(Path::new("/usr"), Path::new("/usr")),
            ];
            id.idmap_binds(&mut mounts, &[ws.path()]);
            assert!(mounts[0]
                .options()
                .as_ref()
                .unwrap()
                .contains(&"idmap".into()));
            let m = &mounts[0].uid_mappings().as_ref().unwrap()[0];
            assert_eq!(
                (m.container_id(), m.host_id(), m.size()),
                (0, id.host_uid, 1)
            );
            assert!(
                mounts[1].uid_mappings().is_none(),
                "system dirs stay unmapped"
            );
        }
    }
}
