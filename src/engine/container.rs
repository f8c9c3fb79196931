//! The container lifecycle as the runtime drives it: `create` forks init with its namespaces
//! and waits until init is ready and blocked; `start` releases it through the exec fifo;
//! `state`, `kill` and `delete` act on the persisted state, with liveness checked by PID *and*
//! start time and signals sent through a pidfd. Each command takes the container's lock.
//! It owns the state directory of each container and the init process; rootfs work happens in
//! init (`init`, `rootfs`), never here.

pub use super::after_clone::AfterClone;
use super::bundle::{Bundle, BundleError};
use super::cgroups::{self, Cgroup, CgroupError};
use super::devices;
use super::hooks::{self, HookError, HookKind};
use super::init::{self, InitArgs};
use super::namespaces::{self, NamespaceError, Plan};
use super::prepared::{PrepareError, Prepared};
use super::state::{self, Persisted, StateError, StateStore, Status};
use super::sync::{Channel, Message, SyncError};
use super::sysctl::{self, SysctlError};
use oci_spec::runtime::{ContainerState, Spec, State, StateBuilder};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error("container init failed: {0}")]
    Init(#[from] SyncError),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("cannot start container {id}: it is {status}, not created")]
    NotCreated { id: String, status: &'static str },
    #[error("cannot delete container {id} that is not stopped: {status} (use --force)")]
    NotStopped { id: String, status: &'static str },
    #[error("signal {sig} to container {id}: no such process")]
    NoSuchProcess { id: String, sig: i32 },
    #[error("process.terminal is true: pass --console-socket (or set process.terminal to false in config.json)")]
    TerminalWithoutSocket,
    #[error("console socket {path}: {source}")]
    ConsoleSocket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
    #[error("{0}")]
    Unsupported(String),
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ContainerError {
    let what = what.into();
    move |source| ContainerError::Io { what, source }
}

pub(crate) fn sys_err(what: impl Into<String>) -> impl FnOnce(nix::Error) -> ContainerError {
    let what = what.into();
    move |source| ContainerError::Sys { what, source }
}

/// Options of `create` (and `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    /// A socket (owned by the caller, open during `create`) over which init hands the exec
    /// gate's seccomp listener to the caller's monitor right before its execve, and waits
    /// until the monitor traces it (`gate::send_listener`). `None`: no gate, as runc.
    pub gate_socket: Option<std::os::fd::RawFd>,
    /// The Spec to run instead of the bundle's `config.json` (the bundle still gives the rootfs
    /// and relative paths): `lasso-runc` adds a `run.lasso.profile`'s hardening this way without
    /// rewriting the client's bundle, and a caller that just wrote `config.json` saves reading
    /// and parsing it back. It is checked as `config.json` would be. `None`: the bundle's own
    /// config.
    pub spec: Option<Spec>,
    /// Init (and with it its pid namespace) is SIGKILLed when the process that called
    /// `create` dies, even by SIGKILL: for a caller that stays in the foreground as the
    /// container's monitor (`lasso run`, the monitor of `lasso up`). runc's `create` returns
    /// at once, so `lasso-runc` leaves it off.
    pub die_with_parent: bool,
    /// Released right after init is cloned, for a caller's helper thread parked on it (see
    /// `AfterClone`). `None`: nothing waits.
    pub after_clone: Option<AfterClone>,
}

/// A runtime rooted at one state directory (`--root`).
#[derive(Debug, Clone)]
pub struct Runtime {
    pub store: StateStore,
    /// The state of the container this process created last, as `create` wrote it: a `start`
    /// in the same process (`lasso run`, `lasso-runc run`) takes it from here instead of
    /// reading and parsing `state.json` back. Only `create` ever writes a container's state,
    /// so the two are the same; the live status is still worked out as `load` does.
    created_here: std::sync::Arc<std::sync::Mutex<Option<Persisted>>>,
}

/// A container as loaded from its state, with its live status.
#[derive(Debug, Clone)]
pub struct Container {
    pub state: Persisted,
    pub status: Status,
}

/// The OCI state document printed by `state` (plus runc's extra fields).
#[derive(Debug, serde::Serialize)]
pub struct StateDoc {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    pub annotations: HashMap<String, String>,
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Whether the host's cgroups are pure v2 (one cgroup2 mount at /sys/fs/cgroup).
fn cgroup2_only() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// Cleans up a half-created container on every error path: kills init, removes the state dir.
struct CreateGuard<'a> {
    store: &'a StateStore,
    id: &'a str,
    child: Option<namespaces::Child>,
    cgroup: Option<Cgroup>,
    armed: bool,
}

impl Drop for CreateGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(c) = &self.child {
            let _ = namespaces::pidfd_signal(&c.pidfd, libc::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(c.pid), None);
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.destroy();
        }
        let _ = self.store.remove(self.id);
    }
}

impl Runtime {
    pub fn new(root: PathBuf) -> Runtime {
        Runtime {
            store: StateStore::new(root),
            created_here: Default::default(),
        }
    }

    /// Creates a container and returns once its init is set up and blocked until `start`.
    /// Init is this process's child (it is re-parented to the caller's subreaper when this
    /// process exits). The pid file is written atomically after the state.
    pub fn create(&self, opts: &CreateOptions) -> Result<Container, ContainerError> {
        match &opts.spec {
            Some(spec) => self.create_with_spec(opts, spec),
            None => {
                let bundle = Bundle::load(&opts.bundle)?;
                let checked = super::bundle::Checked {
                    dir: bundle.dir,
                    rootfs: bundle.rootfs,
                };
                self.create_checked(opts, &checked, &bundle.spec)
            }
        }
    }

    /// `create` with `spec` as `opts.spec` (which is ignored), borrowed: the caller keeps its
    /// Spec and no copy of it is made. The same checks as `create` with `opts.spec` set.
    pub fn create_with_spec(
        &self,
        opts: &CreateOptions,
        spec: &Spec,
    ) -> Result<Container, ContainerError> {
        let checked = super::bundle::check(&opts.bundle, spec)?;
        self.create_checked(opts, &checked, spec)
    }

    fn create_checked(
        &self,
        opts: &CreateOptions,
        bundle: &super::bundle::Checked,
        spec: &Spec,
    ) -> Result<Container, ContainerError> {
        crate::phases::mark("create-bundle");
        let process = spec.process().as_ref().expect("validated");
        if process.terminal().unwrap_or(false) && opts.console_socket.is_none() {
            return Err(ContainerError::TerminalWithoutSocket);
        }
        let linux = spec.linux().as_ref();
        // Everything that can be checked is checked before a process or a directory exists.
        let prepared =
            Prepared::new(process, linux)?.with_baseline(super::confine::wants_baseline(spec))?;
        crate::phases::mark("create-checked");
        let plan = Plan::from_spec(linux)?;
        let controllers = cgroups::controllers_from_annotations(spec.annotations().as_ref())?;
        let sysctl = linux.and_then(|l| l.sysctl().clone()).unwrap_or_default();
        sysctl::validate(&sysctl, plan.sysctl_namespaces())?;
        let rootless = !nix::unistd::geteuid().is_root();
        let _lock = self.store.claim(&opts.id)?;
        crate::phases::mark("claimed");
        let mut guard = CreateGuard {
            store: &self.store,
            id: &opts.id,
            child: None,
            cgroup: None,
            armed: true,
        };
        let joins = controllers
            .as_deref()
            .map_or(cgroups::Joins::All, cgroups::Joins::Only);
        let cgroup = Cgroup::create_joining(
            linux.and_then(|l| l.cgroups_path().as_deref()),
            &opts.id,
            rootless,
            joins,
        )?;
        guard.cgroup = Some(cgroup.clone());
        crate::phases::mark("cgroup");
        // lasso's own sandboxes get their limits written after the clone, while init builds
        // its root (below); a runc bundle keeps runc's order.
        let place_late = super::rootfs::is_skeleton(spec);
        let resources = devices::effective_resources(spec);
        if !place_late {
            if let Some(res) = &resources {
                cgroup.apply(res)?;
            }
        }
        crate::phases::mark("cgroup-limits");
        let fifo_path = self.store.fifo(&opts.id);
        nix::unistd::mkfifo(&fifo_path, nix::sys::stat::Mode::from_bits_truncate(0o622))
            .map_err(sys_err(format!("mkfifo {}", fifo_path.display())))?;
        // mkfifo honours the umask; init may run as a mapped uid that needs write access.
        std::fs::set_permissions(&fifo_path, std::fs::Permissions::from_mode(0o622))
            .map_err(io_err("chmod exec fifo"))?;
        let fifo: OwnedFd = rustix::fs::open(
            &fifo_path,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| ContainerError::Io {
            what: "open exec fifo".into(),
            source: e.into(),
        })?;
        let console = match &opts.console_socket {
            Some(p) => Some(OwnedFd::from(
                std::os::unix::net::UnixStream::connect(p).map_err(|source| {
                    ContainerError::ConsoleSocket {
                        path: p.clone(),
                        source,
                    }
                })?,
            )),
            None => None,
        };
        // Before joining a pid namespace: it clones a short-lived helper.
        super::idmap::prepare(spec, &bundle.dir).map_err(NamespaceError::from)?;
        plan.join_pid()?;
        let hooks = spec.hooks().clone().unwrap_or_default();
        #[allow(deprecated)]
        let runtime_hooks = hooks.prestart().as_ref().is_some_and(|h| !h.is_empty())
            || hooks
                .create_runtime()
                .as_ref()
                .is_some_and(|h| !h.is_empty());
        let (parent, child) = Channel::pair()?;
        let uid_maps = linux
            .and_then(|l| l.uid_mappings().clone())
            .unwrap_or_default();
        let gid_maps = linux
            .and_then(|l| l.gid_mappings().clone())
            .unwrap_or_default();
        let setgroups_allowed = !(rootless && plan.new_user());

        // Init's handle on this process: its parent-death signal covers only deaths after it
        // is armed, so init checks this pidfd once armed (see `process::die_with_parent`).
        let runtime_pidfd = if opts.die_with_parent {
            Some(
                namespaces::pidfd_open(std::process::id() as i32)
                    .map_err(sys_err("pidfd_open of the runtime itself"))?,
            )
        } else {
            None
        };
        // Init joins its v1 cgroups itself, first thing or, in a lasso sandbox without hooks,
        // right after ready (no global migration lock, see `cgroups::placement`, and
        // `init::joins_after_ready`); the runtime writes the rest (cgroup2) with init's PID.
        let mut placement = cgroup.placement()?;
        let cgroup_fds = placement.init_fds();
        // No helper thread may be inside the allocator at the clone (see `AfterClone`): it
        // had all of create's work until here to reach its parking place.
        crate::phases::mark("placement-ready");
        if let Some(helper) = &opts.after_clone {
            helper.wait_parked();
        }
        crate::phases::mark("clone");
        let cloned = match namespaces::clone3_into(plan.new, placement.clone_into()) {
            Err(_) if placement.clone_into().is_some() => {
                placement.clone_into_refused();
                namespaces::clone3(plan.new)?
            }
            other => other?,
        };
        let Some(c) = cloned else {
            drop(parent);
            init::run(InitArgs {
                id: &opts.id,
                bundle: &bundle.dir,
                spec,
                rootfs: bundle.rootfs.clone(),
                chan: child,
                fifo,
                console,
                plan: &plan,
                prepared: &prepared,
                preserve_fds: opts.preserve_fds,
                no_pivot: opts.no_pivot,
                cgroup2_only: cgroup2_only(),
                runtime_hooks,
                setgroups_allowed,
                gate: opts.gate_socket,
                rootless,
                runtime_pidfd: runtime_pidfd.as_ref().map(|f| f.as_raw_fd()),
                place_late,
                cgroup_self: &cgroup_fds,
            });
        };
        if let Some(helper) = &opts.after_clone {
            helper.release();
        }
        crate::phases::mark("cloned");
        drop(runtime_pidfd);
        drop(child);
        drop(console);
        drop(fifo);
        let pid = c.pid;
        guard.child = Some(c);
        placement.release_init_fds();
        // Init is root of its user namespace only once the maps exist.
        if !place_late {
            // What init could not join itself (a cgroup2 directory the clone could not start
            // in; usually nothing): written before init goes on.
            placement.add_task(pid)?;
        }
        if plan.new_user() {
            namespaces::write_id_maps(pid, &uid_maps, &gid_maps)?;
        }
        parent.proceed()?;
        crate::phases::mark("proceed");
        if place_late {
            // A runtime's move into a cgroup may wait an RCU grace period (the kernel's
            // cgroup_threadgroup_rwsem): init builds its mounts meanwhile, and waits for this
            // before anything of it can fork or exec (see `InitArgs::place_late`).
            placement.add_task(pid)?;
            // The limits are written here too, off init's path: init waits for `Placed`
            // before its first hook or else before it reports ready, and joins its v1
            // cgroups itself no earlier than that (`InitArgs::place_late`), so every limit
            // holds before any process of the container exists, and init's own setup was
            // never inside a half-configured cgroup.
            if let Some(res) = &resources {
                cgroup.apply(res)?;
            }
            crate::phases::mark("cgroup-limits-late");
            parent.placed()?;
        }
        // While init builds its root this thread only waits: the Spec is saved and the state
        // staged meanwhile (nothing lists a container before its state.json exists, which is
        // only renamed into place once init is ready; the guard removes the directory, staged
        // file included, if init fails). Init's start time is fixed at clone: init is this
        // process's unreaped child, so its PID cannot name another process yet.
        self.store.save_spec(&opts.id, spec)?;
        // No start time: init is gone already, and its own report (below) says why.
        let staged = match state::process_start_time(pid) {
            Some(pid_start) => {
                let persisted = Persisted {
                    id: opts.id.clone(),
                    bundle: bundle.dir.clone(),
                    rootfs: bundle.rootfs.clone(),
                    pid,
                    pid_start,
                    created: now_rfc3339(),
                    annotations: spec.annotations().clone().unwrap_or_default(),
                    rootless,
                    cgroup: Some(cgroup),
                    owner: nix::unistd::geteuid().as_raw(),
                    post_hooks: Some(state::has_post_hooks(spec)),
                };
                let staged = self.store.stage(&persisted)?;
                Some((persisted, staged))
            }
            None => None,
        };
        while let Message::RunRuntimeHooks = parent.wait_init_step()? {
            let st = oci_state(&opts.id, ContainerState::Creating, pid, &bundle.dir, spec);
            #[allow(deprecated)]
            hooks::run(
                HookKind::Prestart,
                hooks.prestart().as_deref().unwrap_or_default(),
                &st,
            )?;
            hooks::run(
                HookKind::CreateRuntime,
                hooks.create_runtime().as_deref().unwrap_or_default(),
                &st,
            )?;
            parent.hooks_done()?
        }
        crate::phases::mark("init-ready");
        let (persisted, staged) = staged.ok_or_else(|| {
            ContainerError::Init(SyncError::Failed("init exited right after setup".into()))
        })?;
        staged.commit()?;
        if let Some(p) = &opts.pid_file {
            write_pid_file(p, pid)?;
        }
        guard.armed = false;
        *self.created_here.lock().unwrap_or_else(|e| e.into_inner()) = Some(persisted.clone());
        // Init stays our child until we exit: the caller (or `run`) reaps it.
        std::mem::forget(guard.child.take());
        Ok(Container {
            state: persisted,
            status: Status::Created,
        })
    }

    /// Loads a container and works out its live status.
    pub fn load(&self, id: &str) -> Result<Container, ContainerError> {
        Ok(self.with_status(self.store.load(id)?))
    }

    /// The container this process created last, with its live status, as `load` would give
    /// it (without reading `state.json` back); else `load`. For `start`: it takes the memo.
    pub(crate) fn load_created_here(&self, id: &str) -> Result<Container, ContainerError> {
        let here = {
            let mut memo = self.created_here.lock().unwrap_or_else(|e| e.into_inner());
            match memo.as_ref() {
                // Taken: `start` is the one caller, and it needs it once.
                Some(st) if st.id == id => memo.take(),
                _ => None,
            }
        };
        match here {
            Some(st) => Ok(self.with_status(st)),
            None => self.load(id),
        }
    }

    fn with_status(&self, st: Persisted) -> Container {
        let id = st.id.as_str();
        let status = if !state::is_alive(st.pid, st.pid_start) {
            Status::Stopped
        } else if self.store.fifo(id).exists() {
            Status::Created
        } else if st.cgroup.as_ref().is_some_and(|c| c.is_frozen()) {
            Status::Paused
        } else {
            Status::Running
        };
        Container { state: st, status }
    }

    pub fn state(&self, id: &str) -> Result<StateDoc, ContainerError> {
        let c = self.load(id)?;
        Ok(c.doc())
    }
}

impl Container {
    pub fn doc(&self) -> StateDoc {
        let running = self.status != Status::Stopped;
        StateDoc {
            oci_version: "1.2.0".into(),
            id: self.state.id.clone(),
            pid: if running { self.state.pid } else { 0 },
            status: self.status.as_str().into(),
            bundle: self.state.bundle.clone(),
            rootfs: self.state.rootfs.clone(),
            created: self.state.created.clone(),
            owner: nix::unistd::User::from_uid(self.state.owner.into())
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_else(|| self.state.owner.to_string()),
            annotations: self.state.annotations.clone(),
        }
    }

    /// The container's cgroup when it is in use.
    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.state
            .cgroup
            .as_ref()
            .filter(|c| c.disabled().is_none())
    }

    /// Host PIDs of the container's processes: its cgroup's, or (without a cgroup) those
    /// sharing init's pid namespace when it has its own, else init alone.
    pub fn pids(&self) -> Vec<i32> {
        let init = self.state.pid;
        if let Some(cg) = self.cgroup() {
            let mut pids = cg.pids();
            pids.sort();
            return pids;
        }
        if !state::is_alive(init, self.state.pid_start) {
            return Vec::new();
        }
        let ns = namespaces::pid_ns_inode(init);
        if ns.is_none() || ns == namespaces::pid_ns_inode(std::process::id() as i32) {
            return vec![init];
        }
        let mut pids: Vec<i32> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|p| namespaces::pid_ns_inode(*p) == ns)
            .collect();
        pids.sort();
        pids
    }

    /// SIGKILL to init and wait (through a pidfd, since we may not be its parent) for it to go.
    pub(crate) fn kill_and_wait(&self) -> Result<(), ContainerError> {
        let Ok(fd) = namespaces::pidfd_open(self.state.pid) else {
            return Ok(());
        };
        if !state::is_alive(self.state.pid, self.state.pid_start) {
            return Ok(());
        }
        let _ = namespaces::pidfd_signal(&fd, libc::SIGKILL);
        if !namespaces::pidfd_wait_exit(&fd, 10_000) {
            return Err(ContainerError::Unsupported(format!(
                "container {} did not exit within 10 s of SIGKILL",
                self.state.id
            )));
        }
        Ok(())
    }
}

fn write_pid_file(path: &Path, pid: i32) -> Result<(), ContainerError> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map_err(io_err("cwd"))?.join(path)
    };
    state::write_atomic(&abs, pid.to_string().as_bytes())?;
    Ok(())
}

/// Exit status as a shell reports it: the code, or 128 + the signal that killed the process.
pub fn exit_code(status: nix::sys::wait::WaitStatus) -> i32 {
    use nix::sys::wait::WaitStatus;
    match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        _ => 255,
    }
}

/// Waits for a child of this process (init after `create` in the same process, as `run` does).
pub fn wait_child(pid: i32) -> Result<i32, ContainerError> {
    loop {
        match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(sys_err("waitpid")(e)),
            Ok(st) => return Ok(exit_code(st)),
        }
    }
}

/// Waits for init (a child of this process) while passing on the signals a foreground `run`
/// receives (TERM, INT, HUP, QUIT, USR1, USR2, WINCH), as runc does: a caller stopping
/// `lasso-runc run` stops the container, not just the runtime.
pub fn wait_forwarding_signals(pid: i32) -> Result<i32, ContainerError> {
    use nix::sys::signal::{SigSet, Signal};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        set.add(s);
    }
    set.thread_block().map_err(sys_err("block signals"))?;
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).map_err(sys_err("signalfd"))?;
    let pidfd = namespaces::pidfd_open(pid).map_err(sys_err("pidfd_open"))?;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: poll on two valid pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            continue;
        }
        if fds[1].revents & libc::POLLIN != 0 {
            if let Ok(Some(info)) = sfd.read_signal() {
                let _ = namespaces::pidfd_signal(&pidfd, info.ssi_signo as i32);
            }
        }
        if fds[0].revents & libc::POLLIN != 0 {
            return wait_child(pid);
        }
    }
}

/// The OCI state handed to hooks on stdin.
pub fn oci_state(id: &str, status: ContainerState, pid: i32, bundle: &Path, spec: &Spec) -> State {
    StateBuilder::default()
        .version("1.2.0")
        .id(id)
        .status(status)
        .pid(pid)
        .bundle(bundle.to_path_buf())
        .annotations(spec.annotations().clone().unwrap_or_default())
        .build()
        .expect("all fields set")
}
