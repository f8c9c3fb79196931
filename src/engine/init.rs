//! Init, the container's first process, from the moment clone3 returns in the child until
//! execve: wait for the runtime (ID maps written, cgroup joined), join namespaces given by
//! path, build the rootfs, let the runtime run its hooks, run createContainer hooks, pivot_root,
//! sysctls, masked and read-only paths, hostname, rlimits, the console, report ready, block on
//! the exec fifo until `start`, run startContainer hooks, then the shared hardening tail of
//! `process` (user, capabilities, no_new_privs, seccomp, execve).
//! It runs as a fork of lasso-runc: it is made non-dumpable at once so that no container
//! process can open the host binary through /proc/<pid>/exe (CVE-2019-5736 class).

use super::console;
use super::container::oci_state;
use super::hooks::{self, HookKind};
use super::mounts::MountContext;
use super::namespaces::Plan;
use super::prepared::Prepared;
use super::process;
use super::rootfs;
use super::sync::Channel;
use super::sysctl;
use nix::sched::CloneFlags;
use oci_spec::runtime::{ContainerState, Spec};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Everything init inherits from the runtime across clone3.
pub struct InitArgs<'a> {
    pub id: &'a str,
    pub bundle: &'a Path,
    pub spec: &'a Spec,
    pub rootfs: PathBuf,
    pub chan: Channel,
    /// O_PATH descriptor of the exec fifo, reopened for writing through /proc/self/fd.
    pub fifo: OwnedFd,
    pub console: Option<OwnedFd>,
    pub plan: &'a Plan,
    /// Capabilities, seccomp program and rlimits, checked and compiled by the runtime.
    pub prepared: &'a Prepared,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    pub cgroup2_only: bool,
    /// Whether the runtime will run prestart/createRuntime hooks (init must pause for them).
    pub runtime_hooks: bool,
    /// setgroups(2) is allowed in init's user namespace (false for a rootless single mapping).
    pub setgroups_allowed: bool,
    /// The exec gate's hand-over socket (see `CreateOptions::gate_socket`).
    pub gate: Option<std::os::fd::RawFd>,
    /// The runtime is unprivileged: its monitor can trace init only while init is dumpable.
    pub rootless: bool,
    /// A pidfd of the runtime when init must die with it (`CreateOptions::die_with_parent`).
    pub runtime_pidfd: Option<std::os::fd::RawFd>,
    /// Init starts in its cgroup2 directory and joins its v1 cgroups itself (`cgroup_self`,
    /// `cgroups::placement`); what is left to the runtime (a cgroup2 directory the clone could
    /// not start in) and the cgroup limits are written while init builds its rootfs, and init
    /// waits for that (`Message::Placed`) before its first step that can fork (a hook) or else
    /// before it reports ready (so before anything of the container runs). Without hooks, init
    /// joins its v1 cgroups right after ready, before `start` (`joins_after_ready`). Only for
    /// lasso's own host-view sandboxes: a runc bundle keeps runc's order (limits written
    /// before the clone, init placed before it goes on), e.g. for its device cgroup rules.
    pub place_late: bool,
    /// Open v1 `tasks` files init writes `0` into, first thing, to join its cgroups
    /// (`cgroups::place_self`).
    pub cgroup_self: &'a [std::os::fd::RawFd],
}

/// Runs init; never returns. Setup failures go to the runtime over the channel; failures after
/// `start` (when the runtime is gone) go to the container's stderr.
pub fn run(args: InitArgs<'_>) -> ! {
    let host_pid = match setup(&args) {
        Ok(pid) => pid,
        Err(e) => {
            args.chan.fail(&e);
            // SAFETY: _exit skips atexit handlers and stdio flushes owned by the runtime.
            unsafe { libc::_exit(1) };
        }
    };
    let process = args
        .spec
        .process()
        .as_ref()
        .expect("validated by Bundle::load");
    // While `start` is awaited (the runtime saves the state meanwhile), the Landlock ruleset
    // is built: its paths opened in the container's root, which is final by now. Nothing is
    // enforced before the fifo is written (the fifo lies outside every rule). With
    // startContainer hooks (they run in the container after `start` and could still change
    // mounts) it is built after them, as before; a failure is reported after `start` either
    // way, where it was.
    let early_landlock = if has_start_container_hooks(args.spec) {
        None
    } else {
        Some(super::confine::prepare(args.spec))
    };
    if joins_after_ready(&args) {
        // The runtime no longer listens on the channel: the reason goes to stderr, and
        // `start` finds init gone.
        if let Err(e) = super::cgroups::place_self(args.cgroup_self) {
            let _ = writeln!(std::io::stderr(), "lasso init: {e}");
            // SAFETY: as above.
            unsafe { libc::_exit(1) };
        }
        crate::phases::mark("init-placed");
    }
    let mut code = 127;
    crate::phases::mark("init-setup-done");
    let err = match wait_for_start(&args)
        .and_then(|()| start_container_hooks(&args, host_pid))
        .map(|()| crate::phases::mark("init-go"))
        .and_then(|()| early_landlock.unwrap_or_else(|| super::confine::prepare(args.spec)))
        .and_then(super::confine::enforce_prepared)
        .map(|()| dumpable_for_an_unprivileged_gate(&args))
    {
        Err(e) => e,
        Ok(()) => match process::finish_and_exec_with(
            process,
            args.prepared,
            args.setgroups_allowed,
            args.preserve_fds,
            args.gate,
            args.runtime_pidfd,
        ) {
            Err(e) => {
                code = process::failed_exec_status(&e);
                e.to_string()
            }
            Ok(never) => match never {},
        },
    };
    let _ = writeln!(std::io::stderr(), "lasso init: {err}");
    // SAFETY: as above.
    unsafe { libc::_exit(code) }
}

/// Sets init up until it is ready; returns init's PID on the host (for the hooks' state).
fn setup(args: &InitArgs<'_>) -> Result<i32, String> {
    crate::phases::mark("init-start");
    // Before anything else, unless init may join once it reported ready (see
    // `joins_after_ready`): whatever init does from here is limited by its cgroups.
    if !joins_after_ready(args) {
        super::cgroups::place_self(args.cgroup_self)?;
        crate::phases::mark("init-placed");
    }
    // If the runtime dies during setup, init must not linger half-built.
    arm_parent_death_signal();
    // Not dumpable: /proc/<init>/exe and /mem stay closed to the container until execve
    // replaces the host binary (execve resets the flag for the new program). A non-dumpable
    // process's /proc files belong to root, so an unprivileged runtime could no longer write
    // its uid_map: then the flag is set once the maps are written, still before anything of
    // the container can run.
    if !args.plan.new_user() {
        set_not_dumpable();
    }
    let spec = args.spec;
    let e = |x: &dyn std::fmt::Display| x.to_string();
    // The host's /proc is still ours here: /proc/self names init in the host's pid namespace.
    // Only the container's own hooks are handed init's PID (the runtime knows it already).
    let host_pid: i32 = if has_container_hooks(spec) {
        std::fs::read_link("/proc/self")
            .ok()
            .and_then(|p| p.to_str()?.parse().ok())
            .unwrap_or(0)
    } else {
        0
    };
    args.chan.wait_proceed().map_err(|x| e(&x))?;
    crate::phases::mark("init-proceeding");
    if args.plan.new_user() {
        set_not_dumpable();
        // The runtime's host uid may be unmapped here (root with a 0->100000 map): become the
        // namespace's root explicitly. A lasso sandbox maps no root: init becomes the mapped
        // agent ID instead, keeping the namespace's capabilities (see `confine`).
        let (uid, gid) = super::confine::init_ids(spec);
        process::set_gid(gid).map_err(|x| format!("setgid {gid} in user namespace: {x}"))?;
        process::set_uid(uid).map_err(|x| format!("setuid {uid} in user namespace: {x}"))?;
        // A change of credentials clears the parent-death signal (prctl(2)): arm it again.
        arm_parent_death_signal();
    }
    args.plan.join_others().map_err(|x| e(&x))?;
    if args.plan.new.contains(CloneFlags::CLONE_NEWNET) {
        super::loopback::up()?;
    }
    crate::phases::mark("init-lo");
    let ctx = MountContext {
        in_userns: args.plan.new_user()
            || args
                .plan
                .join
                .iter()
                .any(|(f, _, _)| *f == CloneFlags::CLONE_NEWUSER),
        cgroup2_only: args.cgroup2_only,
    };
    // Relative bind sources are relative to the bundle, as with runc (which runs in it).
    nix::unistd::chdir(args.bundle).map_err(|x| format!("chdir to the bundle: {x}"))?;
    let root = rootfs::prepare(spec, &args.rootfs).map_err(|x| e(&x))?;
    crate::phases::mark("init-root-prepared");
    rootfs::populate(spec, &root, ctx).map_err(|x| e(&x))?;
    crate::phases::mark("init-populated");
    let hooks = spec.hooks().clone().unwrap_or_default();
    let create_hooks = hooks
        .create_container()
        .as_deref()
        .filter(|l| !l.is_empty());
    // A hook forks: init must be in its cgroup before the first one. Without hooks, nothing
    // until `ready` forks or runs container code, so the placement may take until then.
    let hooks_ahead = args.runtime_hooks || create_hooks.is_some();
    if args.place_late && hooks_ahead {
        args.chan.wait_placed().map_err(|x| e(&x))?;
    }
    if args.runtime_hooks {
        args.chan.request_runtime_hooks().map_err(|x| e(&x))?;
    }
    // createContainer hooks run in the container's namespaces before pivot_root, so their
    // paths still resolve in the runtime's filesystem (as runc does).
    if let Some(list) = create_hooks {
        let st = oci_state(
            args.id,
            ContainerState::Creating,
            host_pid,
            args.bundle,
            spec,
        );
        hooks::run(HookKind::CreateContainer, list, &st).map_err(|x| e(&x))?;
    }
    // The old root's detach finishes while the new root is hardened (see `old_root`).
    let detach = if args.no_pivot {
        rootfs::move_root(&root).map_err(|x| e(&x))?;
        None
    } else {
        Some(rootfs::pivot(&root).map_err(|x| e(&x))?)
    };
    drop(root);
    crate::phases::mark("init-pivoted");
    // Before the read-only paths: /proc/sys becomes read-only there.
    if let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        sysctl::apply(sysctl).map_err(|x| e(&x))?;
    }
    rootfs::harden(spec).map_err(|x| e(&x))?;
    crate::phases::mark("init-harden-rootfs");
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).map_err(|x| format!("hostname {h:?}: {x}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        set_domainname(d).map_err(|x| format!("domainname {d:?}: {x}"))?;
    }
    let process = spec.process().as_ref().expect("validated by Bundle::load");
    args.prepared.apply_rlimits().map_err(|x| e(&x))?;
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(|x| {
            format!("process.oomScoreAdj {adj}: {x} (lowering it needs CAP_SYS_RESOURCE)")
        })?;
    }
    if process.terminal().unwrap_or(false) {
        let sock = args
            .console
            .as_ref()
            .ok_or("process.terminal is true but no console socket was given")?;
        let size = process
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16));
        console::setup(
            sock.as_raw_fd(),
            size,
            (process.user().uid(), process.user().gid()),
        )
        .map_err(|x| e(&x))?;
    }
    // From here the runtime may exit (runc's create returns): init must survive it, unless
    // it was asked to die with the runtime (then `process` arms the signal again after the
    // last change of credentials).
    if args.runtime_pidfd.is_none() {
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) };
    }
    crate::phases::mark("init-hardened");
    if let Some(d) = detach {
        rootfs::finish_pivot(d).map_err(|x| e(&x))?;
    }
    crate::phases::mark("init-old-root-gone");
    if args.place_late && !hooks_ahead {
        args.chan.wait_placed().map_err(|x| e(&x))?;
    }
    args.chan.ready().map_err(|x| e(&x))?;
    Ok(host_pid)
}

/// Whether init joins its v1 cgroups once it reported ready, right before it waits for
/// `start`, instead of first thing: for lasso's own sandboxes (`place_late`) without hooks,
/// where nothing of init forks or runs container code before `start`. Joining a new cpu
/// cgroup costs init a wait for a CPU (the kernel reschedules a task that changes task
/// group, and its new group entity has no credit yet): 0.3 ms on a quiet host, about 1 ms
/// when the CPUs are busy, which on init's path before ready delayed `create` by as much.
/// After ready, it overlaps the runtime's end of `create` and its `start`. Init joins before
/// it opens the exec fifo, so the program's first instruction runs inside every hierarchy,
/// under limits the runtime wrote before it let init report ready (`InitArgs::place_late`).
/// The old root's detach child, started during setup, runs outside the container's cgroups
/// (it is gone before ready), and init's own setup is charged to the runtime's cgroups.
fn joins_after_ready(args: &InitArgs<'_>) -> bool {
    args.place_late && !args.runtime_hooks && !has_container_hooks(args.spec)
}

/// An unprivileged monitor may ptrace init only while it is dumpable (its memory still belongs
/// to the host's user namespace, where the monitor has no CAP_SYS_PTRACE). Init is alone in the
/// sandbox until its execve (no container process exists yet that could open its
/// /proc/<pid>/exe), and execve replaces the host binary right after the hand-over.
fn dumpable_for_an_unprivileged_gate(args: &InitArgs<'_>) {
    if args.gate.is_some() && args.rootless {
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
    }
}

fn arm_parent_death_signal() {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
}

fn set_not_dumpable() {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
}

fn set_domainname(name: &str) -> Result<(), nix::Error> {
    // SAFETY: setdomainname reads `len` bytes from a valid buffer.
    let rc = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    if rc < 0 {
        Err(nix::Error::last())
    } else {
        Ok(())
    }
}

/// Blocks until `start` opens the fifo for reading. The fifo lives in the runtime's state dir,
/// out of reach after pivot_root, so it is reopened through init's own O_PATH descriptor.
fn wait_for_start(args: &InitArgs<'_>) -> Result<(), String> {
    let path = format!("/proc/self/fd/{}", args.fifo.as_raw_fd());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|x| {
            format!("open exec fifo through {path}: {x} (the container needs /proc mounted)")
        })?;
    f.write_all(&[0])
        .map_err(|x| format!("write exec fifo: {x}"))?;
    Ok(())
}

/// Whether the Spec has createContainer or startContainer hooks (the hooks init runs itself).
fn has_container_hooks(spec: &Spec) -> bool {
    has_start_container_hooks(spec)
        || spec
            .hooks()
            .as_ref()
            .and_then(|h| h.create_container().as_ref())
            .is_some_and(|l| !l.is_empty())
}

fn has_start_container_hooks(spec: &Spec) -> bool {
    spec.hooks()
        .as_ref()
        .and_then(|h| h.start_container().as_ref())
        .is_some_and(|l| !l.is_empty())
}

/// startContainer hooks: in the container, after `start`, before the user's program.
fn start_container_hooks(args: &InitArgs<'_>, host_pid: i32) -> Result<(), String> {
    let hooks = args.spec.hooks().clone().unwrap_or_default();
    if let Some(list) = hooks.start_container().as_deref().filter(|l| !l.is_empty()) {
        let st = oci_state(
            args.id,
            ContainerState::Running,
            host_pid,
            args.bundle,
            args.spec,
        );
        hooks::run(HookKind::StartContainer, list, &st).map_err(|x| x.to_string())?;
    }
    Ok(())
}
