//! Egress rules of a `run.lasso.profile` container: the profile's nftables ruleset written into
//! the network namespace the container actually has (the one its client passed as
//! `linux.namespaces[network].path`, or the one the engine made for init) by `create`, before
//! `start` can let the process run; the DNS resolver (listening on the container's loopback) and
//! the drop reader, run by the container's gate monitor; and a read-only resolv.conf naming that
//! resolver, bound over whatever the client mounted at /etc/resolv.conf.
//!
//! Connectivity is the client's (its bridge, veth or pasta): lasso only filters, so there is no
//! pasta here. Mode `none` gets the drop-all table (loopback only) and no resolver. Owns the
//! order of those steps for a container and the removal of its table when the container ends;
//! the rules, resolver and drop reader themselves are `crate::net`'s. It never acts on a
//! namespace other than the container's: a container that shares its caller's network
//! namespace is refused, and `Netns` refuses the caller's own namespace again.

use crate::audit::Writer;
use crate::net::drops::DropWatcher;
use crate::net::resolver::{Resolver, ResolverConfig};
use crate::net::{rules, tools, EgressMode, NetError, Netns, ValidEgress};
use crate::policy::ResolvedProfile;
use crate::sandbox::network::{audit_sink, resolv_conf, LOG_GROUP, RESOLVER};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The upstream resolvers: the host's, as lasso-runc sees them (the resolver forwards from the
/// monitor, which lives in the caller's namespace).
const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error("annotation run.lasso.profile: profile {profile} has network rules, but the container shares the network namespace of lasso-runc's caller (linux.namespaces has no `network` entry; e.g. `--network host`); lasso filters only a container's own namespace: give the container a network namespace of its own, or use a client network mode other than host")]
    SharedNetns { profile: String },
    #[error("annotation run.lasso.profile: profile {profile}: {source}")]
    Policy {
        profile: String,
        #[source]
        source: NetError,
    },
    #[error("egress rules of container {id}: {source}")]
    Net {
        id: String,
        #[source]
        source: NetError,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// What a container's network will be, decided before anything is created.
#[derive(Debug, Clone)]
pub struct EgressPlan {
    pub policy: ValidEgress,
    /// `None` in mode `none`: no resolver.
    resolver: Option<ResolverConfig>,
}

impl EgressPlan {
    pub fn mode(&self) -> EgressMode {
        self.policy.mode
    }
}

/// The container's egress plan: the profile's `[network]` (registry hosts learned as lasso's
/// own sandboxes learn them) validated, nft and the host's resolvers found. Refuses a container
/// without a network namespace of its own.
pub fn plan(spec: &Spec, profile: &ResolvedProfile) -> Result<EgressPlan, EgressError> {
    let own_netns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
    if !own_netns {
        return Err(EgressError::SharedNetns {
            profile: profile.name.clone(),
        });
    }
    let policy_err = |source| EgressError::Policy {
        profile: profile.name.clone(),
        source,
    };
    let hosts: Vec<(String, Vec<String>)> = profile
        .network
        .registries
        .iter()
        .map(|eco| (eco.clone(), crate::net::registries::discover(eco)))
        .collect();
    let policy = crate::policy::net::egress_policy(&profile.network, &hosts)
        .validate()
        .map_err(policy_err)?;
    tools::find("nft")
        .ok_or(NetError::ToolMissing {
            tool: "nft",
            hint: "install the Debian package `nftables` (apt-get install -y nftables); lasso-runc writes a profile container's egress rules with it",
        })
        .map_err(policy_err)?;
    let resolver = match policy.mode {
        EgressMode::None => None,
        _ => Some(
            ResolverConfig::from_resolv_conf(RESOLVER, Path::new(HOST_RESOLV_CONF))
                .map_err(policy_err)?,
        ),
    };
    Ok(EgressPlan { policy, resolver })
}

/// Writes `dir/resolv.conf` (lasso's resolver only) and returns the read-only bind that puts it
/// over the container's /etc/resolv.conf; `None` in mode `none` (nothing to resolve with).
/// Appended after the client's own mounts, so it covers the client's resolv.conf.
pub fn resolv_conf_mount(
    plan: &EgressPlan,
    dir: &Path,
) -> Result<Option<oci_spec::runtime::Mount>, EgressError> {
    if plan.mode() == EgressMode::None {
        return Ok(None);
    }
    let io = |what: String| move |source| EgressError::Io { what, source };
    std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    let file = dir.join("resolv.conf");
    std::fs::write(&file, resolv_conf()).map_err(io(format!("write {}", file.display())))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))
        .map_err(io(format!("chmod {}", file.display())))?;
    let mount = oci_spec::runtime::MountBuilder::default()
        .destination(HOST_RESOLV_CONF)
        .typ("bind")
        .source(file)
        .options(
            ["rbind", "ro", "nosuid", "nodev", "noexec"]
                .map(String::from)
                .to_vec(),
        )
        .build()
        .map_err(|e| EgressError::Io {
            what: "resolv.conf mount".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
    Ok(Some(mount))
}

/// Where lasso-runc keeps a container's resolv.conf: beside the state store, not in the
/// client's bundle (which it never rewrites).
pub fn files_dir(root: &Path, id: &str) -> PathBuf {
    root.join(".lasso-net").join(id)
}

/// The container's network namespace with its ruleset in place. Made by `create` while init
/// waits for `start`; handed to the gate monitor, which runs the rest (`ContainerNet::serve`).
pub struct Filtered {
    pub plan: EgressPlan,
    pub netns: Netns,
    pub id: String,
    /// The namespace file the client passed, when it passed one: it outlives the container.
    pub client: Option<ClientNetns>,
}

/// A network namespace the client made and keeps (`linux.namespaces[network].path`), with its
/// identity, so `delete` can remove lasso's table from it if the monitor could not, and never
/// from another namespace that was mounted at the same path since.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientNetns {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
}

impl ClientNetns {
    fn of(spec: &Spec, netns: &Netns) -> Option<ClientNetns> {
        let path = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())?
            .iter()
            .find(|n| n.typ() == LinuxNamespaceType::Network)?
            .path()
            .clone()?;
        use std::os::unix::fs::MetadataExt;
        let fd = netns.raw_fds().0;
        let meta = std::fs::metadata(format!("/proc/self/fd/{fd}")).ok()?;
        Some(ClientNetns {
            path,
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// After the container is gone: removes lasso's table if the namespace at `path` is still
    /// the one the container had.
    pub fn remove_rules(&self) {
        use std::os::unix::fs::MetadataExt;
        let Ok(netns) = Netns::open(&self.path) else {
            return;
        };
        let fd = netns.raw_fds().0;
        match std::fs::metadata(format!("/proc/self/fd/{fd}")) {
            Ok(m) if m.dev() == self.dev && m.ino() == self.ino => remove_if_unused(&netns),
            _ => {}
        }
    }
}

/// Opens the network namespace of the container's init (the client's one when it passed a
/// path: init has joined it) and writes the profile's ruleset there, with loopback up for the
/// resolver. Runs before `create` returns, so before `start` can let the process run.
pub fn filter(
    plan: &EgressPlan,
    spec: &Spec,
    id: &str,
    init: i32,
) -> Result<Filtered, EgressError> {
    let net = |source| EgressError::Net {
        id: id.to_string(),
        source,
    };
    let netns = Netns::of_process(init as u32).map_err(net)?;
    netns.loopback_up().map_err(net)?;
    rules::apply(
        &netns,
        &plan.policy,
        &rules::RulesConfig {
            resolver: RESOLVER,
            log_group: LOG_GROUP,
        },
    )
    .map_err(net)?;
    Ok(Filtered {
        plan: plan.clone(),
        client: ClientNetns::of(spec, &netns),
        netns,
        id: id.to_string(),
    })
}

impl Filtered {
    /// The descriptors a forked monitor must keep open.
    pub fn fds(&self) -> Vec<RawFd> {
        let (n, u) = self.netns.raw_fds();
        std::iter::once(n).chain(u).collect()
    }

    /// In the monitor: starts the drop reader and (unless mode `none`) the resolver, both
    /// writing refusals into `log`.
    pub fn serve(self, log: Arc<Writer>) -> Result<ContainerNet, EgressError> {
        let net = |source| EgressError::Net {
            id: self.id.clone(),
            source,
        };
        let audit = audit_sink(log);
        let drops = DropWatcher::start(&self.netns, LOG_GROUP, audit.clone()).map_err(net)?;
        let resolver = match self.plan.resolver.clone() {
            Some(cfg) => Some(
                Resolver::start(
                    cfg,
                    self.plan.policy.clone(),
                    self.netns.try_clone().map_err(net)?,
                    audit,
                )
                .map_err(net)?,
            ),
            None => None,
        };
        Ok(ContainerNet {
            resolver,
            drops: Some(drops),
            netns: self.netns,
        })
    }

    /// A second handle on the namespace, to remove the ruleset again if the monitor fails to
    /// start (no rules left behind in a namespace its client keeps).
    pub fn handle(&self) -> Result<Netns, EgressError> {
        self.netns.try_clone().map_err(|source| EgressError::Net {
            id: self.id.clone(),
            source,
        })
    }
}

/// The running resolver and drop reader of one container.
pub struct ContainerNet {
    // Field order is drop order: readers first.
    resolver: Option<Resolver>,
    drops: Option<DropWatcher>,
    netns: Netns,
}

impl ContainerNet {
    /// When the container has ended: stops the resolver and the drop reader (which lets go of
    /// the audit log, so the monitor can seal it) and removes lasso's table from the namespace,
    /// which may be the client's and outlive the container (Podman's `/run/netns/...`).
    pub fn finish(mut self) {
        self.resolver.take();
        self.drops.take();
        remove_if_unused(&self.netns);
    }
}

/// Removes lasso's table unless a process still lives in the namespace: a pod's namespace is
/// shared (its infra container, other containers that may run under the same rules), and a
/// table left there fails closed, while removing it under a running profile container would
/// leave that one unfiltered.
fn remove_if_unused(netns: &Netns) {
    use std::os::unix::fs::MetadataExt;
    let fd = netns.raw_fds().0;
    let Ok(me) = std::fs::metadata(format!("/proc/self/fd/{fd}")) else {
        return;
    };
    let used = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .any(|e| {
            std::fs::metadata(e.path().join("ns/net"))
                .is_ok_and(|m| m.dev() == me.dev() && m.ino() == me.ino())
        });
    if !used {
        remove_table(netns);
    }
}

/// Removes lasso's table from `netns` (absent is fine).
pub fn remove_table(netns: &Netns) {
    let nft = tools::find("nft").unwrap_or_else(|| "nft".into());
    let _ = netns
        .command(&nft.to_string_lossy())
        .args(["delete", "table", "inet", rules::TABLE])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Dirs;

    fn spec(ns: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "linux": {"namespaces": ns}
        }))
        .unwrap()
    }

    #[test]
    fn container_sharing_its_callers_network_is_refused() {
        let p = crate::policy::load("standard", &Dirs::current()).unwrap();
        let e = plan(&spec(serde_json::json!([{"type": "pid"}])), &p).unwrap_err();
        assert!(matches!(e, EgressError::SharedNetns { .. }), "{e}");
        assert!(e.to_string().contains("linux.namespaces"), "{e}");
    }

    #[test]
    fn offline_profile_gets_no_resolver_and_no_resolv_conf() {
        let p = crate::policy::load("offline", &Dirs::current()).unwrap();
        let s = spec(serde_json::json!([{"type": "pid"}, {"type": "network"}]));
        let plan = plan(&s, &p).unwrap();
        assert_eq!(plan.mode(), EgressMode::None);
        assert!(plan.resolver.is_none());
        let dir = tempfile::tempdir().unwrap();
        assert!(resolv_conf_mount(&plan, dir.path()).unwrap().is_none());
    }
}
