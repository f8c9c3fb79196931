//! `lasso doctor [--json]`: what this host supports, found by real probes (system calls, kernel
//! files), and what lasso will do with each finding. Exit 0 when lasso can run here, 1 when a
//! required feature is missing. `report()` is the library entry the dashboard can call.

pub mod probes;

use super::{exit, CliError, CliResult};
use probes::{CgroupLayout, ChildResult};
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Present and usable.
    Ok,
    /// Absent or limited; lasso runs with less.
    Warn,
    /// Absent, and lasso cannot run without it.
    Missing,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    /// Whether lasso refuses to run without it.
    pub required: bool,
    /// What the probe found.
    pub found: String,
    /// What lasso does given that.
    pub lasso_will: String,
    /// The setting or package to change, when something is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub can_run: bool,
    pub uid: u32,
    pub checks: Vec<Check>,
}

fn check(name: &'static str, required: bool, ok: bool, found: String, will: String) -> Check {
    Check {
        name,
        status: match (ok, required) {
            (true, _) => Status::Ok,
            (false, true) => Status::Missing,
            (false, false) => Status::Warn,
        },
        required,
        found,
        lasso_will: will,
        fix: None,
    }
}

fn errno_name(e: i32) -> String {
    std::io::Error::from_raw_os_error(e).to_string()
}

/// Why user namespaces are refused, from the sysctls that control them.
fn userns_fix(for_root: bool) -> String {
    let mut fixes = Vec::new();
    if probes::sysctl("/proc/sys/user/max_user_namespaces") == Some(0) {
        fixes.push("sysctl -w user.max_user_namespaces=15000".to_string());
    }
    if !for_root {
        if probes::sysctl("/proc/sys/kernel/unprivileged_userns_clone") == Some(0) {
            fixes.push("sysctl -w kernel.unprivileged_userns_clone=1".to_string());
        }
        if probes::sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == Some(1) {
            fixes.push(
                "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (or give lasso an AppArmor \
                 profile with the `userns,` rule)"
                    .to_string(),
            );
        }
    }
    if fixes.is_empty() {
        "no sysctl forbids it; a seccomp filter or a container around this host may (run lasso outside it, \
         or allow unshare/mount there)"
            .to_string()
    } else {
        fixes.join("; ")
    }
}

fn userns_check(name: &'static str, required: bool, as_uid: Option<u32>, will: &str) -> Check {
    let result = probes::probe_userns(as_uid);
    let (ok, found) = match result {
        ChildResult::Ok => (
            true,
            "created user+mount namespaces, mapped one ID, mounted a tmpfs".to_string(),
        ),
        ChildResult::Failed { step, errno } => (
            false,
            format!("{} failed: {}", step.describe(), errno_name(errno)),
        ),
    };
    let mut c = check(name, required, ok, found, will.to_string());
    if !ok {
        c.fix = Some(userns_fix(
            as_uid.is_none() && nix::unistd::geteuid().is_root(),
        ));
        c.lasso_will = "refuse to start sandboxes for this user, naming the setting above".into();
    }
    c
}

/// Runs every probe.
pub fn report() -> Report {
    let uid = nix::unistd::geteuid().as_raw();
    let root = uid == 0;
    let mut checks = vec![userns_check(
        "user namespaces",
        true,
        None,
        "give every sandbox its own user namespace with a single-ID mapping",
    )];
    if root {
        // What an unprivileged user (a CI runner) would get on this host.
        checks.push(userns_check(
            "unprivileged user namespaces",
            false,
            Some(65534),
            "run rootless for unprivileged users",
        ));
    }

    let mut ll = match probes::landlock_abi() {
        Ok(abi) => check(
            "landlock",
            false,
            true,
            format!("ABI {abi}"),
            "confine file access to what is mounted, writes to the writable set".into(),
        ),
        Err(e) => check(
            "landlock",
            false,
            false,
            format!("not available ({})", errno_name(e)),
            "run without Landlock; mounts and DAC remain the file boundary".into(),
        ),
    };
    if ll.status != Status::Ok {
        ll.fix = Some(
            "enable Landlock: add landlock to the lsm= kernel boot parameter (kernel 5.13 or newer)"
                .into(),
        );
    }
    checks.push(ll);

    let (filter, notif) = probes::seccomp();
    let mut sc = check(
        "seccomp",
        true,
        filter,
        if filter {
            "filter mode available"
        } else {
            "not available"
        }
        .into(),
        "load the seccomp policy (seccomp/default.json) last, before exec".into(),
    );
    if !filter {
        sc.fix = Some("use a kernel built with CONFIG_SECCOMP_FILTER".into());
    }
    checks.push(sc);
    let mut sn = check(
        "seccomp user notification",
        true,
        notif.is_ok(),
        match notif {
            Ok(()) => "SECCOMP_RET_USER_NOTIF available".into(),
            Err(e) => format!("not available ({})", errno_name(e)),
        },
        "gate every exec through the monitor".into(),
    );
    if notif.is_err() {
        sn.fix = Some("use kernel 5.0 or newer".into());
    }
    checks.push(sn);

    checks.push(cgroup_check(root));

    // Rootless pasta opens /dev/net/tun inside the sandbox's user namespace, where only the
    // node's mode counts: without it a networked profile fails closed (no network at all).
    let who = if uid == 0
        || std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .is_ok()
    {
        String::new()
    } else {
        " (not for this user: /dev/net/tun is not read-writable, so its sandboxes get no network at all; `chmod 0666 /dev/net/tun` as root)".to_string()
    };
    for (name, pkg, will) in [
        (
            "pasta",
            "passt",
            format!("connect network = allowlist|full sandboxes to the host's network{who}"),
        ),
        (
            "nft",
            "nftables",
            format!("enforce network allowlists in each sandbox's namespace (default drop, DNS-learned allow sets){who}"),
        ),
    ] {
        let found = probes::tool(name);
        let mut c = check(
            name,
            false,
            found.is_some(),
            found
                .as_ref()
                .map(|(p, _)| p.display().to_string())
                .unwrap_or_else(|| "not found".into()),
            will,
        );
        if found.is_none() {
            c.lasso_will = "run network = none sandboxes only; refuse other network modes".into();
            c.fix = Some(format!("apt-get install -y {pkg}"));
        }
        checks.push(c);
    }

    checks.push(subid_check(uid));
    Report {
        can_run: !checks.iter().any(|c| c.status == Status::Missing),
        uid,
        checks,
    }
}

fn cgroup_check(root: bool) -> Check {
    let cg = probes::cgroups(std::path::Path::new("/sys/fs/cgroup"));
    let layout = match cg.layout {
        CgroupLayout::V2 => "v2",
        CgroupLayout::Hybrid => "hybrid (v1 controllers + cgroup2 at /sys/fs/cgroup/unified)",
        CgroupLayout::V1 => "v1",
        CgroupLayout::None => "not mounted",
    };
    let ctrls: Vec<&str> = cg.controllers.iter().map(|(c, _)| c.as_str()).collect();
    let delegated = !cg.own.is_empty() && cg.own.iter().all(|(_, _, w)| *w);
    let found = format!(
        "{layout}; limit controllers: {}; own cgroup {}",
        if ctrls.is_empty() {
            "none".into()
        } else {
            ctrls.join(", ")
        },
        if delegated {
            "writable"
        } else {
            "not writable"
        }
    );
    let usable = cg.layout != CgroupLayout::None && !ctrls.is_empty() && (root || delegated);
    let mut c = check(
        "cgroups",
        false,
        usable,
        found,
        format!(
            "create a cgroup per sandbox (/lasso-<id> in {}) and apply the profile's memory, cpu and pids limits",
            match cg.layout {
                CgroupLayout::V2 => "cgroup v2",
                _ => "the v1 hierarchies of cpu, devices, freezer, memory and pids",
            }
        ),
    );
    if !usable {
        c.lasso_will =
            "run without resource limits, with a warning; refuse profiles that demand limits"
                .into();
        c.fix = Some(if cg.layout == CgroupLayout::V2 {
            "run lasso in a delegated cgroup, e.g. systemd-run --user --scope -p Delegate=yes lasso ...".into()
        } else {
            "run lasso as root, or boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1) and delegate a cgroup"
                .into()
        });
    }
    c
}

fn subid_check(uid: u32) -> Check {
    let name = nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default();
    let newuidmap = probes::tool("newuidmap");
    let newgidmap = probes::tool("newgidmap");
    let subuid = probes::subid_entries(std::path::Path::new("/etc/subuid"), &name, uid);
    let subgid = probes::subid_entries(std::path::Path::new("/etc/subgid"), &name, uid);
    let tools = match (&newuidmap, &newgidmap) {
        (Some((u, su)), Some((g, sg))) => format!(
            "{} ({}), {} ({})",
            u.display(),
            if *su { "setuid" } else { "not setuid" },
            g.display(),
            if *sg { "setuid" } else { "not setuid" }
        ),
        _ => "newuidmap/newgidmap not found".into(),
    };
    let found = format!(
        "{tools}; /etc/subuid: {}; /etc/subgid: {}",
        if subuid.is_empty() {
            "no entry".into()
        } else {
            subuid.join(" ")
        },
        if subgid.is_empty() {
            "no entry".into()
        } else {
            subgid.join(" ")
        },
    );
    check(
        "subordinate IDs",
        false,
        true,
        found,
        "map the agent's single ID (1000 -> you) and leave container root unmapped; no \
         subordinate range is needed"
            .into(),
    )
}

pub fn run(args: DoctorArgs) -> CliResult {
    let r = report();
    if args.json {
        let text = serde_json::to_string_pretty(&r)
            .map_err(|e| CliError::failure(format!("cannot encode JSON: {e}")))?;
        println!("{text}");
    } else {
        for c in &r.checks {
            let mark = match c.status {
                Status::Ok => "ok     ",
                Status::Warn => "warn   ",
                Status::Missing => "MISSING",
            };
            println!("{mark} {}: {}", c.name, c.found);
            println!("        lasso will: {}", c.lasso_will);
            if let Some(fix) = &c.fix {
                println!("        fix: {fix}");
            }
        }
        println!(
            "\n{}",
            if r.can_run {
                "lasso can run on this host."
            } else {
                "lasso cannot run on this host: a required feature is missing (see MISSING above)."
            }
        );
    }
    Ok(if r.can_run { exit::OK } else { exit::NEGATIVE })
}
