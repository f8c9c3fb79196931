//! `plan()`: checks the input and assembles the Spec. The order of `mounts` is the order the
//! engine mounts in, so every mount lands on something that already exists: system dirs, then
//! the account files over /etc, /dev and /proc, the private tmpfs dirs, the workspace, the
//! agent's files under /home/agent, and last the profile's and the user's extra mounts.

use super::agent_mounts::{binary_mounts, config_mounts, AgentMounts, LINK_DIR};
use super::env::{compose, DEFAULT_PATH};
use super::error::{MountError, PlanError};
use super::hostview::{self, mount, ro_bind, rw_bind, SystemEntry};
use super::identity::{Identity, AGENT_ID};
use super::image_root::ImageRootPlan;
use super::mounts::{check_destination, check_source, normalize, sensitivity};
use super::spec::{assemble, SpecParts};
use super::{
    HostPrep, LandlockRules, PlanInput, PlannedSandbox, SandboxId, WorkspaceMode,
    DEFAULT_TMP_BYTES, SECCOMP_PROFILE_PATH, SHM_BYTES,
};
use oci_spec::runtime::Mount;
use std::path::{Path, PathBuf};

/// Plans a sandbox. Reads the host (paths, the agent's install, its config files); changes
/// nothing. Run `prepare_host` on the result before starting it.
pub fn plan(input: &PlanInput) -> Result<PlannedSandbox, PlanError> {
    let id = match &input.id {
        Some(id) => id.clone(),
        None => SandboxId::generate()?,
    };
    let home = &input.host.home;
    let workspace = check_workspace(&input.workspace, &[home], input.force_dir)?;
    let identity = Identity::resolve(input.host.uid, input.host.gid, home, &workspace)?;
    // NSS, when lasso runs as root for another user's workspace (a module load when the
    // owner is not in /etc/passwd).
    crate::phases::mark("plan-identity");
    // Under root the agent's home is another user's: its secrets count as much as lasso's own.
    let homes: &[&Path] = &[home, &identity.host_home];
    // The workspace was opened and resolved above; only the new home is left to compare with.
    if identity.host_home != *home {
        // (`home` passed above, so it cannot be the one to refuse now.)
        check_breadth(
            &workspace,
            &workspace,
            &[&identity.host_home],
            input.force_dir,
        )?;
    }
    let owner = identity.file_owner();
    let rootfs = input.sandbox_dir.join("rootfs");
    let mut warnings = Vec::new();
    let mut prep = vec![HostPrep::SkeletonFile {
        path: rootfs.join("etc/hostname"),
        contents: format!("{}\n", id.hostname()),
    }];
    let mut ll = LandlockRules::default();
    let mut image = input
        .image
        .as_ref()
        .map(|img| ImageRootPlan::new(img, &input.sandbox_dir, &id.hostname(), owner));
    let mut shown_dirs: Vec<PathBuf> = Vec::new();
    let mut agent_exec: Vec<PathBuf> = Vec::new();

    // The host view, or an image's root (see `image_root`).
    let mut mounts: Vec<Mount> = Vec::new();
    let system = match &image {
        Some(_) => vec![],
        None => hostview::system_entries(Path::new("/")),
    };
    for entry in &system {
        if let SystemEntry::Bind(dir) = entry {
            mounts.push(ro_bind(dir, dir));
            ll.read.push(dir.clone());
            shown_dirs.push(dir.clone());
            if dir != Path::new("/etc") {
                ll.execute.push(dir.clone());
            }
        }
    }
    match &image {
        Some(img) => mounts.extend(img.system_mounts(SHM_BYTES, &mut ll)),
        None => {
            for f in ["passwd", "group", "hostname"] {
                let dest = Path::new("/etc").join(f);
                mounts.push(ro_bind(&rootfs.join("etc").join(f), &dest));
            }
            mounts.extend(hostview::kernel_mounts(SHM_BYTES));
        }
    }
    ll.read.extend(["/dev", "/proc", "/sys"].map(PathBuf::from));
    ll.read_write.extend(
        hostview::DEV_NODES
            .iter()
            .chain(&["/dev/ptmx", "/dev/pts", "/dev/shm"])
            .map(PathBuf::from),
    );

    let tmp_bytes = input.resources.tmp_bytes.unwrap_or_else(|| {
        input
            .resources
            .memory_bytes
            .map(|m| (m / 2).min(DEFAULT_TMP_BYTES))
            .unwrap_or(DEFAULT_TMP_BYTES)
    });
    let size = format!("size={tmp_bytes}");
    mounts.push(mount(
        "/tmp",
        "tmpfs",
        "tmpfs",
        &["nosuid", "nodev", "mode=1777", &size],
    ));
    mounts.push(mount(
        "/run",
        "tmpfs",
        "tmpfs",
        &["nosuid", "nodev", "mode=755", "size=16m"],
    ));
    let agent_ids = format!("uid={AGENT_ID},gid={AGENT_ID}");
    let home_opts = [
        "nosuid",
        "nodev",
        "mode=700",
        size.as_str(),
        agent_ids.as_str(),
    ];
    mounts.push(mount("/home/agent", "tmpfs", "tmpfs", &home_opts));
    ll.read_write
        .extend(["/tmp", "/home/agent"].map(PathBuf::from));
    ll.read.push(PathBuf::from("/run"));
    // Agents build and run project code; which programs may run is the exec gate's decision.
    ll.execute
        .extend(["/workspace", "/tmp", "/home/agent"].map(PathBuf::from));
    if image.is_none() {
        ll.read.push(PathBuf::from(LINK_DIR));
        ll.execute.push(PathBuf::from(LINK_DIR));
    }

    let ws = Path::new("/workspace");
    mounts.push(match input.workspace_mode {
        WorkspaceMode::Rw => rw_bind(&workspace, ws),
        WorkspaceMode::Ro => ro_bind(&workspace, ws),
    });
    match input.workspace_mode {
        WorkspaceMode::Rw => ll.read_write.push(ws.to_path_buf()),
        WorkspaceMode::Ro => ll.read.push(ws.to_path_buf()),
    }

    // The agent.
    let private = input.sandbox_dir.join("private");
    let cfg = config_mounts(input.agent, &identity.host_home, &private, owner);
    // An image brings its own agent: the host's install (built for the host's libraries) is
    // not bound in.
    let installed = match image {
        Some(_) => None,
        None => input.agent.installed_in(&input.host.path),
    };
    let bin = match &installed {
        Some(found) => Some(binary_mounts(
            input.agent,
            found,
            &input.host.path,
            homes,
            &rootfs,
        )?),
        None if input.command.is_none() && image.is_none() => {
            return Err(PlanError::AgentNotInstalled {
                agent: input.agent.name.to_string(),
                binaries: input.agent.binaries.join(", "),
            })
        }
        None => None,
    };
    for part in std::iter::once(cfg).chain(bin) {
        let AgentMounts {
            mounts: m,
            prep: p,
            warnings: w,
            writable,
            readable,
            executable,
        } = part;
        mounts.extend(m);
        prep.extend(p);
        warnings.extend(w);
        ll.read_write.extend(writable);
        ll.read.extend(readable);
        agent_exec.extend(executable.iter().cloned());
        ll.execute.extend(executable);
    }

    // Extra mounts: the profile's paths, the user's --mount, the SSH agent socket.
    let mut extra: Vec<(String, String, PathBuf, PathBuf, bool)> = Vec::new();
    for (paths, ro, what) in [
        (&input.read_only_paths, true, "profile read-only path"),
        (&input.writable_paths, false, "profile writable path"),
    ] {
        for p in paths {
            let value = p.display().to_string();
            let src = check_source(what, &value, p, homes, input.allow_sensitive)?;
            let dest = match p.strip_prefix(home) {
                Ok(rel) if home != Path::new("/") => Path::new("/home/agent").join(rel),
                _ => normalize(p),
            };
            if ro && hostview::system_dirs().any(|d| dest.starts_with(d)) {
                continue; // already visible read-only through the host view
            }
            extra.push((what.to_string(), value, src, dest, ro));
        }
    }
    for m in &input.mounts {
        let value = m.to_string();
        let src = check_source("--mount", &value, &m.source, homes, input.allow_sensitive)?;
        extra.push((
            "--mount".into(),
            value,
            src,
            m.destination.clone(),
            m.read_only,
        ));
    }
    for (i, (flag, value, src, dest, ro)) in extra.iter().enumerate() {
        check_destination(flag, value, dest)?;
        if let Some(other) = mounts
            .iter()
            .find(|o| o.destination() == dest)
            .map(|o| describe(o, &extra[..i]))
        {
            return Err(MountError::Conflict {
                flag: flag.clone(),
                value: value.clone(),
                dest: dest.display().to_string(),
                other,
            }
            .into());
        }
        mounts.push(if *ro {
            ro_bind(src, dest)
        } else {
            rw_bind(src, dest)
        });
        ll.read.push(dest.clone());
        if !ro {
            ll.read_write.push(dest.clone());
        }
    }
    let mut extra_env = Vec::new();
    if input.ssh_agent {
        let sock = input
            .host
            .env
            .get("SSH_AUTH_SOCK")
            .cloned()
            .unwrap_or_default();
        let real = std::fs::canonicalize(&sock)
            .map_err(|_| PlanError::NoSshAgent { path: sock.clone() })?;
        let dest = PathBuf::from("/run/lasso/ssh-agent.sock");
        mounts.push(rw_bind(&real, &dest));
        ll.read_write.push(dest.clone());
        extra_env.push(format!("SSH_AUTH_SOCK={}", dest.display()));
    }

    // Mount points that land directly on the skeleton must exist in it beforehand: the root is
    // read-only once the sandbox runs.
    // (An image root gets them in its private layer instead, as `image_root` decides.)
    let skeleton_mounts: &[Mount] = match image.as_mut() {
        Some(img) => {
            img.add_mount_points(&mounts);
            &[]
        }
        None => &mounts,
    };
    for (i, m) in skeleton_mounts.iter().enumerate() {
        let dest = m.destination();
        let covered = mounts[..i]
            .iter()
            .any(|o| dest != o.destination() && dest.starts_with(o.destination()));
        let in_skeleton = Path::new("/etc") != dest && !dest.starts_with("/etc");
        if !covered && in_skeleton {
            let is_dir = m
                .source()
                .as_ref()
                .map(|s| !s.starts_with("/") || s.is_dir())
                .unwrap_or(true);
            prep.push(HostPrep::MountPoint {
                path: rootfs.join(dest.strip_prefix("/").unwrap_or(dest)),
                is_dir,
            });
        }
    }

    let mut masked: Vec<String> = hostview::proc_masked().map(String::from).collect();
    // The host's /etc secrets are not in an image's /etc.
    if image.is_none() {
        masked.extend(hostview::etc_hidden(Path::new("/")));
    }
    masked.extend(input.hidden_paths.iter().map(|h| hidden_path(h)));
    let readonly: Vec<String> = hostview::proc_readonly().map(String::from).collect();

    let shell = if image.is_none() && Path::new("/bin/bash").exists() {
        "/bin/bash"
    } else {
        "/bin/sh"
    };
    let mut env = compose(
        input.agent,
        &input.env,
        &input.host.env,
        &match image.as_ref().and_then(|i| i.image.path.clone()) {
            Some(path) => path,
            None if image.is_some() => DEFAULT_PATH.to_string(),
            None => format!("{LINK_DIR}:{DEFAULT_PATH}"),
        },
        shell,
        &id.hostname(),
    )?;
    env.extend(extra_env);
    let args = match &input.command {
        Some(cmd) => cmd.clone(),
        None => {
            let name = installed
                .as_ref()
                .and_then(|i| i.on_path.file_name())
                .and_then(|n| n.to_str())
                .unwrap_or(input.agent.binaries[0]);
            std::iter::once(name.to_string())
                .chain(input.agent.default_args.iter().map(|a| a.to_string()))
                .collect()
        }
    };

    identity.idmap_binds(&mut mounts, &[&workspace, &identity.host_home, &private]);
    // An image root: the floor is found in the image's own layers and PATH, in place of the
    // whole root that `image_root` made executable (see `exec_floor::allowed_in_image`).
    if let (Some(names), Some(img)) = (&input.exec_allowlist, &image) {
        let path = img.image.path.as_deref().unwrap_or(DEFAULT_PATH);
        let dirs: Vec<&Path> = path.split(':').map(Path::new).collect();
        let mut names = names.clone();
        names.extend(input.agent.binaries.iter().map(|b| b.to_string()));
        ll.execute = super::exec_floor::allowed_in_image(&names, &dirs, &img.image.layers);
        ll.execute.extend(agent_exec.iter().cloned());
    }
    if let (Some(names), None) = (&input.exec_allowlist, &image) {
        // The kernel's floor under the gate: only the allowed programs (and the agent itself)
        // may be executed at all; a copy under another path is refused with EACCES.
        let dirs: Vec<&Path> = DEFAULT_PATH.split(':').map(Path::new).collect();
        ll.execute = super::exec_floor::allowed_executables(names, &dirs, &shown_dirs);
        ll.execute.push(PathBuf::from(LINK_DIR));
        ll.execute.extend(agent_exec);
    }
    dedup(&mut ll.read);
    dedup(&mut ll.read_write);
    dedup(&mut ll.execute);
    let mut spec = assemble(SpecParts {
        id: &id,
        input,
        identity: &identity,
        rootfs: &rootfs,
        workspace: &workspace,
        mounts,
        masked,
        readonly,
        env,
        args,
    })?;
    if let Some(img) = &image {
        image_spec(&mut spec, img)?;
    }
    Ok(PlannedSandbox {
        id,
        spec,
        agent: input.agent,
        identity,
        network: input.network,
        landlock: ll,
        seccomp_profile_path: SECCOMP_PROFILE_PATH,
        rootfs,
        host_prep: prep,
        warnings,
        image,
        system,
    })
}

/// An image root is writable (its private layer) and mounted by the engine as an overlay.
fn image_spec(spec: &mut oci_spec::runtime::Spec, img: &ImageRootPlan) -> Result<(), PlanError> {
    let mut root = spec.root().clone().unwrap_or_default();
    root.set_readonly(Some(false));
    spec.set_root(Some(root));
    let mut ann = spec.annotations().clone().unwrap_or_default();
    ann.insert(
        crate::engine::rootfs::OVERLAY_ROOT_ANNOTATION.into(),
        img.annotation(),
    );
    ann.insert("run.lasso.image".into(), img.image.name.clone());
    ann.insert(
        "run.lasso.image.manifest".into(),
        img.image.manifest.clone(),
    );
    spec.set_annotations(Some(ann));
    Ok(())
}

fn dedup(v: &mut Vec<PathBuf>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|p| seen.insert(p.clone()));
}

/// Names the owner of an existing destination for a conflict message.
fn describe(existing: &Mount, extra: &[(String, String, PathBuf, PathBuf, bool)]) -> String {
    let dest = existing.destination();
    if let Some((flag, value, ..)) = extra.iter().find(|e| &e.3 == dest) {
        return format!("{flag} {value:?}");
    }
    if dest.starts_with("/home/agent") {
        return "the agent's config mount".into();
    }
    "the host view".into()
}

/// `relative` -> under /workspace; `~/x` -> /home/agent/x; absolute as given.
fn hidden_path(h: &str) -> String {
    let p = if let Some(rest) = h.strip_prefix("~/") {
        Path::new("/home/agent").join(rest)
    } else if h.starts_with('/') {
        PathBuf::from(h)
    } else {
        Path::new("/workspace").join(h)
    };
    normalize(&p).display().to_string()
}

/// The workspace must be an existing, readable directory, and not the whole host or the home.
fn check_workspace(dir: &Path, homes: &[&Path], force: bool) -> Result<PathBuf, PlanError> {
    let meta = std::fs::metadata(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => PlanError::WorkspaceMissing {
            path: dir.to_path_buf(),
        },
        _ => PlanError::WorkspaceUnreadable {
            path: dir.to_path_buf(),
            source: e,
        },
    })?;
    if !meta.is_dir() {
        return Err(PlanError::WorkspaceNotDir {
            path: dir.to_path_buf(),
        });
    }
    std::fs::read_dir(dir).map_err(|source| PlanError::WorkspaceUnreadable {
        path: dir.to_path_buf(),
        source,
    })?;
    let real = std::fs::canonicalize(dir).map_err(|source| PlanError::WorkspaceUnreadable {
        path: dir.to_path_buf(),
        source,
    })?;
    check_breadth(dir, &real, homes, force)?;
    Ok(real)
}

/// Refuses `real` (the resolved `dir`) when it is `/`, a home in `homes` or another directory
/// too broad to hand to an agent, unless `force`.
fn check_breadth(dir: &Path, real: &Path, homes: &[&Path], force: bool) -> Result<(), PlanError> {
    let real_homes: Vec<PathBuf> = homes
        .iter()
        .map(|h| std::fs::canonicalize(h).unwrap_or_else(|_| h.to_path_buf()))
        .collect();
    let real_homes: Vec<&Path> = real_homes.iter().map(PathBuf::as_path).collect();
    if !force {
        if let Some(what) = sensitivity(real, &real_homes) {
            return Err(PlanError::WorkspaceTooBroad {
                path: dir.to_path_buf(),
                what,
            });
        }
    }
    Ok(())
}
