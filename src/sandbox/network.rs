//! A sandbox's network egress, wired by its monitor before the agent's first instruction (as
//! root between the engine's create and start; rootless after start, while init waits for the
//! exec gate's go-ahead; see `SandboxNet`): connect the namespace to the monitor's network with
//! pasta, write the nftables ruleset into it, start the DNS resolver the sandbox's
//! /etc/resolv.conf points at, and read the drop log. Refused names, rebinding refusals and
//! dropped packets become entries of the sandbox's audit log (`network_audit`).
//!
//! Owns the order of those steps and the window they run in, the resolver's address and the
//! sandbox's private resolv.conf. The rules, the resolver and pasta live in `crate::net`; the
//! policy comes from the profile through `policy::net::egress_policy`. Mode `none` gets loopback
//! only: no pasta, no resolver. It never touches the monitor's own network namespace.

use super::network_audit::NetAudit;
use super::SandboxError;
use crate::audit::Writer;
use crate::net::drops::DropWatcher;
use crate::net::pasta::{self, Pasta, PastaTarget};
use crate::net::resolver::{Resolver, ResolverConfig};
use crate::net::{rules, tools, EgressMode, EgressPolicy, NetError, Netns, ValidEgress};
use crate::policy::ResolvedProfile;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the resolver listens inside every sandbox: loopback of the sandbox's own namespace
/// (the address a stub resolver conventionally uses), so no route and no rule is needed to reach
/// it, and nothing outside the sandbox can.
pub const RESOLVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53)), 53);

/// pasta's PID file in the sandbox's directory. Its path, in pasta's command line, is how a
/// later lasso command finds the pasta of a sandbox whose monitor died
/// (`control::remove_leftovers`).
pub const PASTA_PIDFILE: &str = "pasta.pid";

/// NFLOG group of the drop rules. Groups are per network namespace, so one number serves all.
pub const LOG_GROUP: u16 = 1;

/// The upstream resolvers: the host's, as the monitor sees them.
const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

/// What a sandbox's network will be, decided (and checked) before anything starts.
#[derive(Debug, Clone)]
pub struct EgressPlan {
    pub policy: ValidEgress,
    /// Why the sandbox gets less network than its profile asks for, if it does.
    pub warning: Option<String>,
    /// `None` in mode `none`.
    tools: Option<Tools>,
}

#[derive(Debug, Clone)]
struct Tools {
    pasta: PathBuf,
    resolver: ResolverConfig,
}

impl EgressPlan {
    pub fn mode(&self) -> EgressMode {
        self.policy.mode
    }
}

/// The egress plan of a sandbox: the profile's network section (registry hosts learned from the
/// user's tool configuration) validated, and, when the sandbox gets a network, pasta, nft and
/// the host's resolvers found. Every error names the field or tool at fault and the fix.
pub fn plan(
    profile: Option<&ResolvedProfile>,
    mode: crate::plan::NetworkMode,
) -> Result<EgressPlan, NetError> {
    let mut egress = match profile {
        Some(p) => {
            let hosts: Vec<(String, Vec<String>)> = p
                .network
                .registries
                .iter()
                .map(|eco| (eco.clone(), crate::net::registries::discover(eco)))
                .collect();
            crate::policy::net::egress_policy(&p.network, &hosts)
        }
        None => EgressPolicy::default(),
    };
    // The plan's mode wins: it is what the planner wrote into the sandbox's annotations.
    egress.mode = match mode {
        crate::plan::NetworkMode::None => EgressMode::None,
        crate::plan::NetworkMode::Allowlist => EgressMode::Allowlist,
        crate::plan::NetworkMode::Full => EgressMode::Full,
    };
    let mut policy = egress.validate()?;
    let mut warning = None;
    let rootless = !rustix::process::geteuid().is_root();
    if policy.mode != EgressMode::None && rootless && profile.is_none() {
        // Rootless wiring happens while init waits for the exec gate's go-ahead (see
        // `SandboxNet::before_exec`); without a profile there is no gate and so no such wait.
        warning = Some(fail_closed(policy.mode, "a rootless sandbox without a profile has no exec gate to hold init until the rules are in place".into()));
        policy.mode = EgressMode::None;
    }
    if policy.mode == EgressMode::None {
        return Ok(EgressPlan {
            policy,
            warning,
            tools: None,
        });
    }
    let pasta = tools::find("pasta").ok_or_else(pasta::missing)?;
    tools::find("nft").ok_or(NetError::ToolMissing {
        tool: "nft",
        hint: "install the Debian package `nftables` (apt-get install -y nftables), or use a profile with network mode \"none\" (e.g. --profile offline)",
    })?;
    if rootless {
        if let Err(why) = tun_usable() {
            // A host shortcoming, not the user's input: fail closed, loudly (as unenforceable
            // profile limits are dropped with a warning).
            return Ok(EgressPlan {
                warning: Some(fail_closed(policy.mode, why.to_string())),
                policy: ValidEgress {
                    mode: EgressMode::None,
                    ..policy
                },
                tools: None,
            });
        }
    }
    let resolver = ResolverConfig::from_resolv_conf(RESOLVER, Path::new(HOST_RESOLV_CONF))?;
    Ok(EgressPlan {
        policy,
        warning,
        tools: Some(Tools { pasta, resolver }),
    })
}

fn fail_closed(mode: EgressMode, why: String) -> String {
    format!(
        "the profile asks for network mode \"{}\" but this sandbox gets no network at all: {why}",
        if mode == EgressMode::Full {
            "full"
        } else {
            "allowlist"
        }
    )
}

/// pasta opens /dev/net/tun inside the sandbox's user namespace, where only the DAC bits of the
/// host node count for a rootless monitor. Say so before anything starts rather than let pasta
/// fail with "Failed to open tun socket".
fn tun_usable() -> Result<(), NetError> {
    if rustix::process::geteuid().is_root() {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
    {
        Ok(_) => Ok(()),
        Err(e) => Err(NetError::ToolMissing {
            tool: "/dev/net/tun",
            hint: match e.kind() {
                std::io::ErrorKind::PermissionDenied => "it is not read-writable by this user (most distributions ship it mode 0666; `chmod 0666 /dev/net/tun` as root), or use a profile with network mode \"none\" (e.g. --profile offline)",
                _ => "the tun device is missing (`modprobe tun`), or use a profile with network mode \"none\" (e.g. --profile offline)",
            },
        }),
    }
}

/// A sink that writes refused names and dropped packets into `log` as this module's sandboxes
/// do, for a monitor outside `sandbox` (lasso-runc's gate monitor of a profile container).
pub fn audit_sink(log: Arc<Writer>) -> Arc<dyn crate::net::EgressAudit> {
    let audit = NetAudit::default();
    audit.set_writer(log);
    Arc::new(audit)
}

/// The sandbox's private resolv.conf: only lasso's resolver.
pub fn resolv_conf() -> String {
    format!(
        "# Written by lasso: the sandbox's own resolver, which answers allowlisted names only.\nnameserver {}\n",
        RESOLVER.ip()
    )
}

fn host_resolv_conf_is_file() -> bool {
    std::fs::symlink_metadata(HOST_RESOLV_CONF).is_ok_and(|m| m.is_file())
}

/// Why the sandbox keeps the host's /etc/resolv.conf, if it must: a bind needs an existing
/// destination, and a symlinked one (systemd-resolved) is left as the host has it.
pub fn resolv_conf_warning(plan: &EgressPlan) -> Option<String> {
    (plan.mode() != EgressMode::None && !host_resolv_conf_is_file()).then(|| {
        format!(
            "{HOST_RESOLV_CONF} is not a plain file on this host; the sandbox keeps it, so names resolve inside only if it points at {}",
            RESOLVER.ip()
        )
    })
}

/// Writes `dir/etc/resolv.conf` and returns the read-only bind that puts it over the
/// sandbox's /etc/resolv.conf, when the sandbox has a network and the host's file is a plain
/// one (see `resolv_conf_warning`).
pub fn resolv_conf_mount(
    plan: &EgressPlan,
    dir: &Path,
) -> Result<Option<oci_spec::runtime::Mount>, SandboxError> {
    if plan.mode() == EgressMode::None || !host_resolv_conf_is_file() {
        return Ok(None);
    }
    let host = Path::new(HOST_RESOLV_CONF);
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc).map_err(super::io_err(format!("create {}", etc.display())))?;
    let file = etc.join("resolv.conf");
    std::fs::write(&file, resolv_conf())
        .map_err(super::io_err(format!("write {}", file.display())))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))
        .map_err(super::io_err(format!("chmod {}", file.display())))?;
    // The options of the planner's other read-only binds.
    let mount = oci_spec::runtime::MountBuilder::default()
        .destination(host)
        .typ("bind")
        .source(file)
        .options(
            ["rbind", "ro", "nosuid", "nodev"]
                .map(String::from)
                .to_vec(),
        )
        .build()
        .map_err(|e| SandboxError::Protocol(format!("resolv.conf mount: {e}")))?;
    Ok(Some(mount))
}

/// The network of one sandbox, wired in one of two windows before the agent's first
/// instruction. Root: between create and start (`before_start`). Rootless: init is non-dumpable
/// until start, so an unprivileged monitor may neither open `/proc/<init>/ns/*` nor `setns`
/// through init's pidfd; after start init becomes dumpable for the exec gate and then waits,
/// before its execve, for the gate's go-ahead, which `gate_link::attach` gives. `before_exec`
/// wires the network in that wait, so it must run before the gate is attached.
/// Dropping it stops the resolver, the drop reader and pasta; `finish` also lets go of the audit
/// log so its owner can seal it.
pub struct SandboxNet {
    // Field order is drop order: readers first, pasta last.
    resolver: Option<Resolver>,
    drops: Option<DropWatcher>,
    pasta: Option<Pasta>,
    audit: Arc<NetAudit>,
    plan: EgressPlan,
    init: i32,
    /// The sandbox's directory, where pasta's PID file goes.
    dir: PathBuf,
    wired: bool,
}

impl SandboxNet {
    /// Nothing wired yet. `dir`: the sandbox's directory.
    pub fn new(plan: &EgressPlan, init: i32, dir: &Path) -> Self {
        SandboxNet {
            resolver: None,
            drops: None,
            pasta: None,
            audit: Arc::new(NetAudit::default()),
            plan: plan.clone(),
            init,
            dir: dir.to_path_buf(),
            wired: false,
        }
    }

    /// After create, before start: wires everything when this process may enter init's
    /// namespaces now (root).
    pub fn before_start(&mut self) -> Result<(), SandboxError> {
        if !rustix::process::geteuid().is_root() {
            return Ok(());
        }
        let pidfd = self.pidfd()?;
        let netns = Netns::of_pidfd(&pidfd, &self.label())?;
        self.wire(netns)
    }

    /// After start, before the exec gate is attached (rootless): waits until init may be
    /// entered, wires, and checks that init has not yet run the agent's program. `gated`: init
    /// holds the exec gate's socket and waits for its go-ahead.
    pub fn before_exec(&mut self, gated: bool) -> Result<(), SandboxError> {
        if self.wired {
            return Ok(());
        }
        if !gated {
            if self.plan.tools.is_none() {
                // Loopback only (init brought lo up), and no way in: nothing to wire.
                return Ok(());
            }
            return Err(SandboxError::Refused(
                "a rootless networked sandbox needs the exec gate to hold init until its network rules are in place; use a profile".into(),
            ));
        }
        let pidfd = self.pidfd()?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let netns = loop {
            match Netns::of_pidfd(&pidfd, &self.label()) {
                Ok(n) => break n,
                // Init failed before the gate's hand-over (its error reaches the user through
                // the gate's attach); no agent will run, so there is nothing to wire.
                Err(_) if exited(&pidfd) => return Ok(()),
                Err(e) => {
                    if std::time::Instant::now() > deadline {
                        return Err(e.into());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        };
        self.wire(netns)?;
        // The go-ahead has not been given, so init is still the monitor's own binary; if it is
        // not, the agent ran before its rules existed: refuse rather than run unconfined.
        let same = |a: &str, b: &str| match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => {
                use std::os::unix::fs::MetadataExt;
                x.dev() == y.dev() && x.ino() == y.ino()
            }
            _ => false,
        };
        if !same(&format!("/proc/{}/exe", self.init), "/proc/self/exe") {
            return Err(SandboxError::Refused(
                "the sandbox's program started before its network rules were in place; refusing"
                    .into(),
            ));
        }
        Ok(())
    }

    fn pidfd(&self) -> Result<std::os::fd::OwnedFd, SandboxError> {
        crate::engine::namespaces::pidfd_open(self.init)
            .map_err(super::sys_err("pidfd_open of the sandbox's init"))
    }

    fn label(&self) -> String {
        format!("network namespace of the sandbox's init ({})", self.init)
    }

    fn wire(&mut self, netns: Netns) -> Result<(), SandboxError> {
        self.wired = true;
        // lo is already up: init brings it up in the network namespace it creates
        // (`engine::loopback`), so no thread has to join the namespace for it here.
        let Some(tools) = self.plan.tools.clone() else {
            return Ok(());
        };
        let program = tools.pasta.to_string_lossy();
        self.pasta = pasta::connect_recorded(
            &program,
            self.plan.policy.mode,
            &netns,
            &PastaTarget::Held,
            &self.dir.join(PASTA_PIDFILE),
        )?;
        rules::apply(
            &netns,
            &self.plan.policy,
            &rules::RulesConfig {
                resolver: RESOLVER,
                log_group: LOG_GROUP,
            },
        )?;
        self.drops = Some(DropWatcher::start(&netns, LOG_GROUP, self.audit.clone())?);
        self.resolver = Some(Resolver::start(
            tools.resolver.clone(),
            self.plan.policy.clone(),
            netns.try_clone()?,
            self.audit.clone(),
        )?);
        Ok(())
    }

    /// Entries from here on go to `log`; those that came before wait for it.
    pub fn set_writer(&self, log: Arc<Writer>) {
        self.audit.set_writer(log);
    }

    /// Stop the resolver and the drop reader (after the last dropped packet was read) and pasta,
    /// and release the audit log.
    pub fn finish(mut self) {
        self.resolver.take();
        self.drops.take();
        self.pasta.take();
        self.audit.take_writer();
    }
}

/// Whether the process behind `pidfd` has exited, without reaping it (the gate or the caller
/// reaps init).
fn exited(pidfd: &std::os::fd::OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: waitid(2) on a pidfd we own, into a zeroed siginfo; WNOWAIT leaves the child
    // waitable for its reaper.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        r == 0 && info.si_pid() != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_resolv_conf_names_only_lassos_resolver() {
        let text = resolv_conf();
        let servers = crate::net::resolver::parse_resolv_conf(&text);
        assert_eq!(servers, vec![RESOLVER]);
    }

    #[test]
    fn offline_needs_no_tools() {
        let p = plan(None, crate::plan::NetworkMode::None).unwrap();
        assert_eq!(p.mode(), EgressMode::None);
        assert!(p.tools.is_none());
    }
}
