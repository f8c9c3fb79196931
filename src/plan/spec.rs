//! Assembles the OCI `Spec` from the checked parts: process (identity, env, no capabilities,
//! no_new_privs, rlimits), namespaces and ID maps, cgroup resources, masked/read-only paths,
//! hostname, root and the `run.lasso.*` annotations.

use super::error::PlanError;
use super::identity::{Identity, AGENT_ID};
use super::{PlanInput, SandboxId, SECCOMP_PROFILE_PATH};
use oci_spec::runtime::{
    Capabilities, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroup,
    LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount, PosixRlimitBuilder,
    PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use std::collections::HashMap;
use std::path::Path;

/// The sandbox's cgroup in each hierarchy it joins: `/lasso-<id>` at the hierarchy's root (as
/// runc's and crun's `/<id>`), with no shared parent, so a run makes and removes one directory
/// per hierarchy and a host with no sandbox holds no lasso cgroup.
pub fn cgroups_path(id: &str) -> String {
    format!("/lasso-{id}")
}

/// The controllers a lasso sandbox uses, so the only hierarchies it joins: memory, cpu and pids
/// carry the profile's limits, devices the device list, freezer lets `kill --all` stop forks
/// while it signals, and pids lists the processes. Not joined (the sandbox stays in the
/// caller's cgroup there): cpuset, blkio, cpuacct alone, perf_event, net_cls/net_prio, named
/// hierarchies, and a hybrid host's cgroup2 unless it holds one of these; none of them
/// enforces anything a lasso profile asks for.
pub const SANDBOX_CONTROLLERS: &str = "cpu,devices,freezer,memory,pids";

/// CFS period used to express `cpus` as a quota.
pub const CPU_PERIOD_US: u64 = 100_000;
/// Upper bound of RLIMIT_NOFILE given to the sandbox (the host's hard limit may be lower).
pub const NOFILE_MAX: u64 = 65_536;

pub struct SpecParts<'a> {
    pub id: &'a SandboxId,
    pub input: &'a PlanInput,
    pub identity: &'a Identity,
    pub rootfs: &'a Path,
    pub workspace: &'a Path,
    pub mounts: Vec<Mount>,
    pub masked: Vec<String>,
    pub readonly: Vec<String>,
    pub env: Vec<String>,
    pub args: Vec<String>,
}

fn err(e: impl std::fmt::Display) -> PlanError {
    PlanError::Spec(e.to_string())
}

pub fn assemble(p: SpecParts<'_>) -> Result<Spec, PlanError> {
    let none = Capabilities::new();
    // Every set empty: the agent holds no capability in any namespace, and none can come back
    // through exec (ambient/inheritable empty, no_new_privs set).
    let caps = LinuxCapabilitiesBuilder::default()
        .bounding(none.clone())
        .effective(none.clone())
        .inheritable(none.clone())
        .permitted(none.clone())
        .ambient(none)
        .build()
        .map_err(err)?;
    let nofile = p.input.host.nofile_hard.min(NOFILE_MAX);
    let rlimits = vec![
        PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .soft(nofile)
            .hard(nofile)
            .build()
            .map_err(err)?,
        // No core dumps: a dump of the agent would hold its API keys.
        PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitCore)
            .soft(0u64)
            .hard(0u64)
            .build()
            .map_err(err)?,
    ];
    let user = UserBuilder::default()
        .uid(AGENT_ID)
        .gid(AGENT_ID)
        .umask(0o022u32)
        .additional_gids(Vec::<u32>::new())
        .username("agent")
        .build()
        .map_err(err)?;
    let mut process = ProcessBuilder::default()
        .terminal(p.input.terminal)
        .user(user)
        .args(p.args)
        .env(p.env)
        .cwd("/workspace")
        .capabilities(caps)
        .rlimits(rlimits)
        .no_new_privileges(true)
        .build()
        .map_err(err)?;
    if let (true, Some((rows, cols))) = (p.input.terminal, p.input.console_size) {
        process.set_console_size(console_size(rows, cols));
    }

    let namespaces = [
        LinuxNamespaceType::User,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Network,
    ]
    .into_iter()
    .map(|t| LinuxNamespaceBuilder::default().typ(t).build().map_err(err))
    .collect::<Result<Vec<_>, _>>()?;

    let r = &p.input.resources;
    let mut resources = LinuxResourcesBuilder::default().devices(device_rules()?);
    if let Some(bytes) = r.memory_bytes {
        let limit = i64::try_from(bytes).map_err(err)?;
        // swap = limit: memory+swap may not exceed the memory limit, so no swapping past it.
        resources = resources.memory(
            LinuxMemoryBuilder::default()
                .limit(limit)
                .swap(limit)
                .build()
                .map_err(err)?,
        );
    }
    if let Some(cpus) = r.cpus {
        if !(cpus.is_finite() && cpus > 0.0) {
            return Err(PlanError::Spec(format!(
                "profile resources.cpu = {cpus}: must be a positive number of CPUs"
            )));
        }
        let quota = (cpus * CPU_PERIOD_US as f64).round() as i64;
        resources = resources.cpu(
            LinuxCpuBuilder::default()
                .quota(quota.max(1000))
                .period(CPU_PERIOD_US)
                .build()
                .map_err(err)?,
        );
    }
    if let Some(pids) = r.pids {
        resources = resources.pids(
            LinuxPidsBuilder::default()
                .limit(i64::try_from(pids).map_err(err)?)
                .build()
                .map_err(err)?,
        );
    }

    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .uid_mappings(p.identity.uid_mappings())
        .gid_mappings(p.identity.gid_mappings())
        .resources(resources.build().map_err(err)?)
        .cgroups_path(cgroups_path(p.id.as_str()))
        // Host mounts made later never propagate in, and ours never propagate out.
        .rootfs_propagation("rprivate")
        .masked_paths(p.masked)
        .readonly_paths(p.readonly)
        .build()
        .map_err(err)?;

    let annotations: HashMap<String, String> = [
        ("run.lasso.id", p.id.to_string()),
        ("run.lasso.agent", p.input.agent.name.to_string()),
        ("run.lasso.profile", p.input.profile_name.clone()),
        ("run.lasso.network", p.input.network.as_str().to_string()),
        ("run.lasso.workspace", p.workspace.display().to_string()),
        ("run.lasso.seccomp", SECCOMP_PROFILE_PATH.to_string()),
        (
            crate::engine::cgroups::CONTROLLERS_ANNOTATION,
            SANDBOX_CONTROLLERS.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();

    SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(p.rootfs)
                .readonly(true)
                .build()
                .map_err(err)?,
        )
        .hostname(p.id.hostname())
        .mounts(p.mounts)
        .process(process)
        .linux(linux)
        .annotations(annotations)
        .build()
        .map_err(err)
}

/// The device cgroup: deny everything, then allow the nodes of the minimal /dev. Only enforced
/// when lasso controls a cgroup (root, or a delegated one); the binds limit what exists anyway.
fn device_rules() -> Result<Vec<LinuxDeviceCgroup>, PlanError> {
    let rule = |allow: bool, typ, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(access);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().map_err(err)
    };
    let c = LinuxDeviceType::C;
    let mut rules = vec![rule(false, LinuxDeviceType::A, None, None, "rwm")?];
    for (major, minor) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2)] {
        rules.push(rule(true, c, Some(major), Some(minor), "rwm")?);
    }
    rules.push(rule(true, c, Some(136), None, "rwm")?);
    Ok(rules)
}

/// `process.consoleSize` for a terminal of `rows` x `cols`.
pub fn console_size(rows: u16, cols: u16) -> Option<oci_spec::runtime::Box> {
    oci_spec::runtime::BoxBuilder::default()
        .height(u64::from(rows))
        .width(u64::from(cols))
        .build()
        .ok()
}
