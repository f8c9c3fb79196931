//! From a plan input to a created sandbox: plan (nothing written if it fails), the sandbox's
//! directory `Dirs.runtime/<id>/` (the record and private copies; it is the bundle, whose Spec,
//! with the seccomp baseline, the Landlock annotation and, for the host view, the skeleton root
//! as data that init builds in its own tmpfs, is handed to the engine in memory and kept on disk
//! by the engine's state as its `config.json`), then the engine's create and start. Every
//! failure after the directory exists removes what was made.

use super::{io_err, tree, SandboxError};
use crate::engine::confine;
use crate::engine::container::{CreateOptions, Runtime};
use crate::engine::landlock::LandlockRules;
use crate::paths::Dirs;
use crate::plan::{self, PlanInput, PlannedSandbox};
use crate::policy::ResolvedProfile;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the caller decides beyond the plan input.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    pub dirs: Dirs,
    /// Refuse to start when the profile sets limits and no cgroup can enforce them (rootless
    /// without delegation). When false, the limits are dropped with a warning.
    pub require_limits: bool,
    /// The resolved profile whose command rules the exec gate applies, and what the record
    /// keeps to find it again (`lasso exec` reloads it and checks the digest).
    pub profile: Option<Arc<ResolvedProfile>>,
    /// `profile`'s digest when loading already gave it (a built-in's snapshot,
    /// `policy::load_digested`); `None` computes it. When set it must be `profile.digest()`.
    pub profile_digest: Option<String>,
    /// The name or path the profile was loaded from.
    pub profile_source: String,
}

/// A planned sandbox with its directory on disk, ready for the engine.
#[derive(Debug)]
pub struct Launch {
    pub planned: PlannedSandbox,
    /// `Dirs.runtime/<id>`.
    pub dir: PathBuf,
    pub runtime: Runtime,
    pub dirs: Dirs,
    pub warnings: Vec<String>,
    require_limits: bool,
    limits_asked: bool,
    pub profile: Option<Arc<ResolvedProfile>>,
    pub profile_source: String,
    /// `profile`'s digest, computed once: the record and the audit genesis both carry it, and
    /// it is a JSON serialisation and a SHA-256 of the whole profile.
    profile_digest: String,
    /// The sandbox's network, checked before anything was written (`network::plan`).
    pub egress: super::network::EgressPlan,
    /// The Spec `write` made, handed to the engine (whose state keeps it as `config.json`):
    /// the sandbox's directory holds no copy, one file fewer to create and remove per run.
    written_spec: std::sync::OnceLock<oci_spec::runtime::Spec>,
    /// That Spec as JSON, the digest the audit genesis records for a sandbox without a profile:
    /// made on first use (a sandbox with a profile records the profile's digest instead, and
    /// never needs it).
    spec_json: std::sync::OnceLock<Vec<u8>>,
}

/// Run by root for a workspace whose owner has no home directory, the planner would create
/// the agent's settings under a home that does not exist (`/nonexistent/.claude`): refuse.
fn refuse_missing_home(planned: &PlannedSandbox) -> Result<(), SandboxError> {
    let home = &planned.identity.host_home;
    if home.is_dir() {
        return Ok(());
    }
    let writes_there = planned.host_prep.iter().any(|p| match p {
        plan::HostPrep::CreateDir { path, .. } | plan::HostPrep::CreateFile { path, .. } => {
            path.starts_with(home)
        }
        _ => false,
    });
    if writes_there {
        return Err(SandboxError::Refused(format!(
            "agent {}: the workspace owner (uid {}) has no home directory ({}), where its settings would be created; run lasso as that user, or use --agent shell",
            planned.agent.name,
            planned.identity.host_uid,
            home.display()
        )));
    }
    Ok(())
}

fn id_str(input: &PlanInput) -> &str {
    input.id.as_ref().map_or("probe", |i| i.as_str())
}

/// Why no cgroup can be made for a sandbox here, if none can: rootless without a delegated
/// hierarchy. Root always gets one (or a hard error from the engine). The probe is a cgroup of
/// our own, removed at once.
fn cgroups_unavailable(id: &str) -> Option<String> {
    if nix::unistd::geteuid().is_root() {
        return None;
    }
    let probe = format!("{id}-probe");
    let path = plan::cgroups_path(&probe);
    let only: Vec<String> = plan::SANDBOX_CONTROLLERS
        .split(',')
        .map(str::to_owned)
        .collect();
    let joins = crate::engine::cgroups::Joins::Only(&only);
    match crate::engine::cgroups::Cgroup::create_joining(
        Some(Path::new(&path)),
        &probe,
        true,
        joins,
    ) {
        Ok(cg) => {
            let reason = cg.disabled().map(str::to_string);
            let _ = cg.destroy();
            reason
        }
        Err(e) => Some(e.to_string()),
    }
}

/// The engine's state root for lasso's sandboxes.
pub fn engine_root(dirs: &Dirs) -> PathBuf {
    dirs.runtime.join("engine")
}

/// The empty directory every host-view sandbox's init mounts its skeleton tmpfs on (in its own
/// mount namespace): `Dirs.runtime/root`. Never removed: removing a directory that is a mount
/// point in other namespaces would detach those sandboxes' roots. Its name is no sandbox id,
/// so the sweep of dead sandboxes (`control::remove_dead`) never touches it.
pub fn root_mount_point(dirs: &Dirs) -> PathBuf {
    dirs.runtime.join("root")
}

/// `Dirs.runtime/<id>`.
pub fn sandbox_dir(dirs: &Dirs, id: &str) -> PathBuf {
    dirs.runtime.join(id)
}

/// Creates `dir` (and parents) world-traversable: the sandbox's init runs as an ID that may not
/// own them (host root is unmapped in the sandbox's user namespace) and must walk to the root.
/// Most calls find the directory made by an earlier sandbox with the right mode already: one
/// stat then (looked at before any mkdir: an mkdir that finds the name takes the parent
/// directory's lock for writing, and every lasso command passes here), and no chmod (a chmod
/// dirties the inode even when the mode does not change).
fn make_dir(dir: &Path) -> Result<(), SandboxError> {
    let stat =
        |dir: &Path| std::fs::metadata(dir).map_err(io_err(format!("stat {}", dir.display())));
    // Whether an existing `dir` is done with (`Ok(true)`), needs its mode set, or is no
    // directory.
    let done = |meta: std::fs::Metadata| {
        if !meta.is_dir() {
            return Err(io_err(format!("create {}", dir.display()))(
                std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            ));
        }
        Ok(meta.permissions().mode() & 0o7777 == 0o755)
    };
    match std::fs::metadata(dir) {
        Ok(meta) => {
            if done(meta)? {
                return Ok(());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match std::fs::DirBuilder::new().mode(0o755).create(dir) {
                Ok(()) => {}
                // Made meanwhile by another lasso command (or a dangling link: the stat says).
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if done(stat(dir)?)? {
                        return Ok(());
                    }
                }
                // A missing parent, or the error to report.
                Err(_) => std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(dir)
                    .map_err(io_err(format!("create {}", dir.display())))?,
            }
        }
        Err(e) => return Err(io_err(format!("stat {}", dir.display()))(e)),
    }
    // The umask may have taken bits from a new directory; an old one may have another mode.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(io_err(format!("chmod {}", dir.display())))
}

impl Launch {
    /// Plans the sandbox and writes its directory. `input.id` and `input.sandbox_dir` are set
    /// here. Nothing is written when planning fails.
    pub fn prepare(mut input: PlanInput, opts: &LaunchOptions) -> Result<Launch, SandboxError> {
        let id = plan::SandboxId::generate()?;
        let dir = sandbox_dir(&opts.dirs, id.as_str());
        input.id = Some(id);
        input.sandbox_dir = dir.clone();
        let mut limits_asked = input.resources.memory_bytes.is_some()
            || input.resources.cpus.is_some()
            || input.resources.pids.is_some();
        let mut warnings = Vec::new();
        if limits_asked {
            if let Some(reason) = cgroups_unavailable(id_str(&input)) {
                if opts.require_limits {
                    return Err(SandboxError::Unenforceable(format!(
                        "memory/cpu/pids limits were asked for on the command line but no cgroup can enforce them here ({reason}); run as root, delegate a cgroup v2 subtree to this user, or drop --memory-mib/--cpus/--pids"
                    )));
                }
                // The engine refuses a Spec with limits it cannot apply: drop them from the
                // plan, and say so.
                input.resources.memory_bytes = None;
                input.resources.cpus = None;
                input.resources.pids = None;
                limits_asked = false;
                warnings.push(format!(
                    "the profile's resource limits are NOT enforced: {reason} (delegate a cgroup v2 subtree to this user to enforce them)"
                ));
            }
        }
        let egress = super::network::plan(opts.profile.as_deref(), input.network)?;
        warnings.extend(egress.warning.clone());
        warnings.extend(super::network::resolv_conf_warning(&egress));
        let planned = plan::plan(&input)?;
        crate::phases::mark("plan");
        refuse_missing_home(&planned)?;
        make_dir(&opts.dirs.runtime)?;
        // A new name (never an existing directory: ids are random and checked here), then
        // world-traversable whatever the umask (see `make_dir`).
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&dir)
            .map_err(io_err(format!("create {}", dir.display())))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .map_err(io_err(format!("chmod {}", dir.display())))?;
        warnings.extend(planned.warnings.iter().cloned());
        let launch = Launch {
            warnings,
            runtime: Runtime::new(engine_root(&opts.dirs)),
            dirs: opts.dirs.clone(),
            planned,
            dir,
            require_limits: opts.require_limits,
            limits_asked,
            profile_digest: match (&opts.profile, &opts.profile_digest) {
                (Some(p), Some(d)) => {
                    debug_assert_eq!(*d, p.digest(), "LaunchOptions::profile_digest is stale");
                    d.clone()
                }
                (Some(p), None) => p.digest(),
                (None, _) => String::new(),
            },
            profile: opts.profile.clone(),
            profile_source: opts.profile_source.clone(),
            egress,
            written_spec: std::sync::OnceLock::new(),
            spec_json: std::sync::OnceLock::new(),
        };
        if let Err(e) = launch
            .record()
            .save_first(&launch.dirs)
            .inspect(|()| crate::phases::mark("record-saved"))
            .and_then(|()| launch.write())
        {
            launch.cleanup();
            return Err(e);
        }
        Ok(launch)
    }

    /// The record of this sandbox with this process as its monitor (the detached monitor
    /// rewrites it with its own PID).
    pub fn record(&self) -> super::Record {
        let (pid, start) = super::record::me();
        let now = time::OffsetDateTime::now_utc();
        super::Record {
            id: self.id().to_string(),
            agent: self.planned.agent.name.to_string(),
            profile: self
                .planned
                .spec
                .annotations()
                .as_ref()
                .and_then(|a| a.get("run.lasso.profile").cloned())
                .unwrap_or_default(),
            dir: self
                .planned
                .spec
                .annotations()
                .as_ref()
                .and_then(|a| a.get("run.lasso.workspace").cloned())
                .unwrap_or_default()
                .into(),
            profile_source: self.profile_source.clone(),
            profile_digest: self.profile_digest.clone(),
            network: self.planned.network.as_str().to_string(),
            state: super::SandboxState::Starting,
            monitor_pid: pid,
            monitor_start: start,
            init_pid: 0,
            init_start: 0,
            created: now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            created_unix: now.unix_timestamp(),
        }
    }

    /// The Spec handed to the engine, as JSON (empty before `write`).
    pub fn spec_json(&self) -> &[u8] {
        self.spec_json.get_or_init(|| {
            // A Spec always encodes (plain data, string keys): no error to lose here.
            self.written_spec
                .get()
                .and_then(|spec| serde_json::to_vec(spec).ok())
                .unwrap_or_default()
        })
    }

    /// The SHA-256 (hex) of the sandbox's profile (`ResolvedProfile::digest`); empty without one.
    pub fn profile_digest(&self) -> &str {
        &self.profile_digest
    }

    pub fn id(&self) -> &str {
        self.planned.id.as_str()
    }

    /// The bundle is the sandbox's directory itself (its Spec is handed over, not written):
    /// one directory fewer to create and remove per sandbox.
    pub fn bundle(&self) -> PathBuf {
        self.dir.clone()
    }

    fn write(&self) -> Result<(), SandboxError> {
        let mut skeleton = if self.root_is_skeleton() {
            Some(plan::prepare_host_keeping_skeleton(&self.planned)?)
        } else {
            plan::prepare_host(&self.planned)?;
            None
        };
        let mut spec = self.engine_spec()?;
        match &mut skeleton {
            Some(skel) => {
                // Only an empty mount point of the root exists on the host, and every sandbox
                // shares it: init mounts its tmpfs there in its own mount namespace, so the
                // host's directory never holds anything (and is never a mount point on the
                // host). One directory fewer to create and remove per sandbox.
                let mount_point = root_mount_point(&self.dirs);
                make_dir(&mount_point)?;
                spec.root_mut()
                    .get_or_insert_with(Default::default)
                    .set_path(mount_point.clone());
                super::skeleton_etc::place(
                    &mut spec,
                    skel,
                    &self.planned.rootfs.join("etc"),
                    &mount_point,
                    &self.dir,
                )?;
                mark_skeleton(&mut spec, skel);
            }
            None => self.move_skeleton_etc(&mut spec)?,
        }
        if let Some(m) = super::network::resolv_conf_mount(&self.egress, &self.dir)? {
            spec.mounts_mut().get_or_insert_with(Vec::new).push(m);
        }
        let _ = self.written_spec.set(spec);
        Ok(())
    }

    /// Whether the root is the host view's skeleton (not an image's root).
    fn root_is_skeleton(&self) -> bool {
        self.planned
            .spec
            .root()
            .as_ref()
            .is_some_and(|r| r.path() == &self.planned.rootfs)
            && self.planned.image.is_none()
    }

    /// The skeleton's `/etc/{passwd,group,hostname}` are bind sources under `rootfs/etc`, but
    /// init mounts the host's `/etc` over `rootfs/etc` first, so those source paths would then
    /// resolve to the host's own files (host accounts visible inside). Copies outside the root
    /// are bound instead. (Belongs in the planner; done here until it moves there.)
    fn move_skeleton_etc(&self, spec: &mut oci_spec::runtime::Spec) -> Result<(), SandboxError> {
        let skel_etc = self.planned.rootfs.join("etc");
        let out = self.dir.join("etc");
        make_dir(&out)?;
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        for m in mounts.iter_mut() {
            let Some(src) = m.source().clone() else {
                continue;
            };
            let Ok(rel) = src.strip_prefix(&skel_etc) else {
                continue;
            };
            let to = out.join(rel);
            std::fs::copy(&src, &to).map_err(io_err(format!("copy {}", src.display())))?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o644))
                .map_err(io_err(format!("chmod {}", to.display())))?;
            m.set_source(Some(to));
        }
        spec.set_mounts(Some(mounts));
        Ok(())
    }

    /// The planned Spec plus what lasso enforces beside OCI: the built-in seccomp baseline and
    /// the Landlock rules (as an annotation init reads).
    fn engine_spec(&self) -> Result<oci_spec::runtime::Spec, SandboxError> {
        let mut spec = self.planned.spec.clone();
        // In place: taking the linux section and the annotations out to set them back copied
        // both once more.
        spec.linux_mut()
            .get_or_insert_with(Default::default)
            .set_seccomp(Some(crate::engine::seccomp::default_policy().clone()));
        let ll = &self.planned.landlock;
        let rules = LandlockRules {
            read: ll.read.clone(),
            read_write: ll.read_write.clone(),
            execute: ll.execute.clone(),
        };
        spec.annotations_mut()
            .get_or_insert_with(Default::default)
            .insert(
                confine::LANDLOCK_ANNOTATION.into(),
                confine::encode_landlock(&rules),
            );
        Ok(spec)
    }

    /// Creates the sandbox's init (blocked until `start`); returns its host PID. With
    /// `console_socket`, init sends the PTY master there.
    /// With `gate_socket`, init hands the exec gate's listener over it before its execve (see
    /// `gate_link::attach`).
    /// With `after_clone`, the engine releases a helper thread parked on it once init exists
    /// (see `engine::container::AfterClone`); it is released here too if `create` fails.
    pub fn create(
        &mut self,
        console_socket: Option<&Path>,
        gate_socket: Option<std::os::fd::RawFd>,
        after_clone: Option<crate::engine::container::AfterClone>,
    ) -> Result<i32, SandboxError> {
        let result = self.create_inner(console_socket, gate_socket, after_clone.clone());
        if let (Err(_), Some(helper)) = (&result, after_clone) {
            helper.release();
        }
        result
    }

    fn create_inner(
        &mut self,
        console_socket: Option<&Path>,
        gate_socket: Option<std::os::fd::RawFd>,
        after_clone: Option<crate::engine::container::AfterClone>,
    ) -> Result<i32, SandboxError> {
        make_dir(&self.runtime.store.dir(""))?;
        let opts = CreateOptions {
            id: self.id().to_string(),
            bundle: self.bundle(),
            console_socket: console_socket.map(Path::to_path_buf),
            gate_socket,
            // This process is the sandbox's monitor (`lasso run`, or the monitor of `up`): a
            // sandbox whose monitor was killed has no gate, no log and no cleanup, so it dies
            // too, and the next lasso command removes what is left.
            die_with_parent: true,
            after_clone,
            ..CreateOptions::default()
        };
        // The Spec is borrowed, not copied (it stays here for the audit's digest).
        let c = match self.written_spec.get() {
            Some(spec) => self.runtime.create_with_spec(&opts, spec)?,
            None => self.runtime.create(&opts)?,
        };
        let pid = c.state.pid;
        if self.limits_asked {
            let reason = match &c.state.cgroup {
                Some(cg) => cg.disabled().map(str::to_string),
                None => Some("no cgroup".into()),
            };
            if let Some(reason) = reason {
                if self.require_limits {
                    return Err(SandboxError::Refused(format!(
                        "the profile sets memory/cpu/pids limits but no cgroup can enforce them here ({reason}); run as root, delegate a cgroup v2 subtree to this user, or remove the limits from the profile"
                    )));
                }
                self.warnings.push(format!(
                    "resource limits are NOT enforced: {reason} (delegate a cgroup v2 subtree to this user to enforce them)"
                ));
            }
        }
        Ok(pid)
    }

    pub fn start(&self) -> Result<(), SandboxError> {
        self.runtime.start(self.id())?;
        Ok(())
    }

    /// Removes the engine state (killing what is left, removing the cgroup) and the sandbox's
    /// directory. Safe to call on every path, more than once.
    pub fn cleanup(&self) {
        cleanup_sandbox(&self.runtime, self.id(), &self.dir);
    }

    /// The first half of `cleanup`: the engine's state and the sandbox's cgroups. Only once
    /// nothing of the sandbox runs any more (its init reaped).
    pub fn cleanup_engine(&self) {
        cleanup_engine(&self.runtime, self.id());
    }

    /// The second half of `cleanup`: the sandbox's directory, whose record is how the next
    /// lasso command finds leftovers, so it goes last. Only once nothing writes there any
    /// more (the exec gate's counts).
    pub fn cleanup_dir(&self) {
        cleanup_dir(self.id(), &self.dir);
    }
}

/// The host view's root is a skeleton: init builds it in a tmpfs (from the description put
/// here) instead of binding a host directory, so nothing of it is written on the host and no
/// host directory of the sandbox becomes a mount point (cheap cleanup). (Only for that
/// skeleton: an image root is bound as usual.)
fn mark_skeleton(spec: &mut oci_spec::runtime::Spec, skel: &crate::engine::skeleton::Skeleton) {
    let ann = spec.annotations_mut().get_or_insert_with(Default::default);
    ann.insert(
        crate::engine::rootfs::SKELETON_ANNOTATION.into(),
        crate::engine::rootfs::SKELETON_VALUE.into(),
    );
    ann.insert(
        crate::engine::skeleton::ENTRIES_ANNOTATION.into(),
        skel.encode(),
    );
}

/// Cleanup shared by `run`, the monitor and leftover removal.
pub fn cleanup_sandbox(runtime: &Runtime, id: &str, dir: &Path) {
    cleanup_engine(runtime, id);
    cleanup_dir(id, dir);
}

fn cleanup_engine(runtime: &Runtime, id: &str) {
    if runtime.store.dir(id).exists() {
        if let Err(e) = runtime.delete(id, true) {
            tracing::warn!("sandbox {id}: engine cleanup: {e}");
        }
    }
}

fn cleanup_dir(id: &str, dir: &Path) {
    if let Err(e) = tree::remove(dir) {
        tracing::warn!("sandbox {id}: {e}");
    }
}
