//! Commands on an existing container: `start` (release init through the exec fifo, then the
//! poststart hooks), `kill`, `delete` (with the cgroup and the poststop hooks), `pause`,
//! `resume` and `update` through the container's cgroup. Each takes the container's lock where
//! two runs at once could disagree.

use super::cgroups::Cgroup;
use super::container::{io_err, oci_state, sys_err, Container, ContainerError, Runtime};
use super::hooks::{self, HookKind};
use super::namespaces;
use super::state::{self, StateError, Status};
use nix::sys::signal::Signal;
use oci_spec::runtime::{ContainerState, LinuxResources};
use std::os::fd::AsRawFd;

impl Runtime {
    /// Releases a created container's init: opens the exec fifo for reading, which unblocks
    /// init's open for writing, and reads its byte. Then the poststart hooks run; a failing
    /// one is reported as a warning, as the spec asks.
    pub fn start(&self, id: &str) -> Result<Vec<String>, ContainerError> {
        let _lock = self.store.lock(id)?;
        let c = self.load_created_here(id)?;
        if c.status != Status::Created {
            return Err(ContainerError::NotCreated {
                id: id.into(),
                status: c.status.as_str(),
            });
        }
        let path = self.store.fifo(id);
        let fifo = nix::fcntl::open(
            &path,
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_NONBLOCK
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(sys_err("open exec fifo"))?;
        loop {
            let mut pfd = libc::pollfd {
                fd: fifo.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll on one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, 100) };
            if n > 0 && pfd.revents & libc::POLLIN != 0 {
                let mut b = [0u8; 1];
                let _ = nix::unistd::read(&fifo, &mut b);
                break;
            }
            if !state::is_alive(c.state.pid, c.state.pid_start) {
                let _ = std::fs::remove_file(&path);
                return Err(ContainerError::NotRunning(id.into()));
            }
        }
        std::fs::remove_file(&path).map_err(io_err("remove exec fifo"))?;
        let mut warnings = Vec::new();
        if !c.state.may_have_post_hooks() {
            return Ok(warnings);
        }
        let spec = self.store.load_spec(id)?;
        if let Some(list) = spec.hooks().as_ref().and_then(|h| h.poststart().clone()) {
            let st = oci_state(
                id,
                ContainerState::Running,
                c.state.pid,
                &c.state.bundle,
                &spec,
            );
            if let Err(e) = hooks::run(HookKind::Poststart, &list, &st) {
                warnings.push(e.to_string());
            }
        }
        Ok(warnings)
    }

    /// Sends `sig` to init (or, with `all`, to every process of the container).
    pub fn kill(&self, id: &str, sig: i32, all: bool) -> Result<(), ContainerError> {
        let c = self.load(id)?;
        if c.status == Status::Stopped {
            return Err(ContainerError::NotRunning(id.into()));
        }
        if all {
            if let (Some(cg), Ok(s)) = (c.cgroup(), Signal::try_from(sig)) {
                return Ok(cg.kill_all(s)?);
            }
            for pid in c.pids() {
                if let Ok(fd) = namespaces::pidfd_open(pid) {
                    let _ = namespaces::pidfd_signal(&fd, sig);
                }
            }
            return Ok(());
        }
        let fd = namespaces::pidfd_open(c.state.pid)
            .map_err(|_| ContainerError::NoSuchProcess { id: id.into(), sig })?;
        // The pidfd pins the process: re-check that it is still init, not a recycled PID.
        if !state::is_alive(c.state.pid, c.state.pid_start) {
            return Err(ContainerError::NotRunning(id.into()));
        }
        namespaces::pidfd_signal(&fd, sig)
            .map_err(|_| ContainerError::NoSuchProcess { id: id.into(), sig })
    }

    /// Deletes a stopped (or created) container; `force` kills a running or paused one first.
    /// A missing container is not an error with `force`. Returns poststop hook warnings.
    pub fn delete(&self, id: &str, force: bool) -> Result<Vec<String>, ContainerError> {
        let _lock = match self.store.lock(id) {
            Ok(l) => l,
            Err(StateError::NotFound(_)) if force => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let c = match self.load(id) {
            Ok(c) => c,
            Err(ContainerError::State(StateError::NotFound(_))) if force => {
                self.store.remove(id)?;
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        match c.status {
            Status::Stopped => {}
            Status::Created => c.kill_and_wait()?,
            Status::Running | Status::Paused if force => {
                // A frozen task cannot die: SIGKILL is delivered once it is thawed.
                if let Some(cg) = c.cgroup() {
                    let _ = cg.kill_all(Signal::SIGKILL);
                    let _ = cg.thaw();
                }
                c.kill_and_wait()?
            }
            s => {
                return Err(ContainerError::NotStopped {
                    id: id.into(),
                    status: s.as_str(),
                })
            }
        }
        if let Some(cg) = &c.state.cgroup {
            // Leftover processes (a daemon started by exec) go with the container.
            if cg.disabled().is_none() && !cg.pids().is_empty() {
                let _ = cg.kill_all(Signal::SIGKILL);
            }
            cg.destroy()?;
        }
        let mut warnings = Vec::new();
        let spec = if c.state.may_have_post_hooks() {
            self.store.load_spec(id).ok()
        } else {
            None
        };
        if let Some(spec) = spec {
            if let Some(list) = spec.hooks().as_ref().and_then(|h| h.poststop().clone()) {
                let st = oci_state(id, ContainerState::Stopped, 0, &c.state.bundle, &spec);
                if let Err(e) = hooks::run(HookKind::Poststop, &list, &st) {
                    warnings.push(e.to_string());
                }
            }
        }
        self.store.remove(id)?;
        Ok(warnings)
    }

    /// All containers under the root, with their status.
    pub fn list(&self) -> Result<Vec<Container>, ContainerError> {
        let mut out = Vec::new();
        for id in self.store.ids()? {
            if let Ok(c) = self.load(&id) {
                out.push(c);
            }
        }
        Ok(out)
    }

    fn running_cgroup(&self, id: &str) -> Result<(Container, Cgroup), ContainerError> {
        let c = self.load(id)?;
        if c.status == Status::Stopped {
            return Err(ContainerError::NotRunning(id.into()));
        }
        let cg =
            c.state.cgroup.clone().ok_or_else(|| {
                ContainerError::Unsupported(format!("container {id} has no cgroup"))
            })?;
        if let Some(why) = cg.disabled() {
            return Err(ContainerError::Unsupported(format!(
                "container {id} runs without a cgroup ({why}): pause, resume and update need one"
            )));
        }
        Ok((c, cg))
    }

    /// Freezes every process of the container.
    pub fn pause(&self, id: &str) -> Result<(), ContainerError> {
        let _lock = self.store.lock(id)?;
        let (c, cg) = self.running_cgroup(id)?;
        if c.status != Status::Running {
            return Err(ContainerError::Unsupported(format!(
                "cannot pause container {id}: it is {}, not running",
                c.status.as_str()
            )));
        }
        Ok(cg.freeze()?)
    }

    /// Thaws a paused container.
    pub fn resume(&self, id: &str) -> Result<(), ContainerError> {
        let _lock = self.store.lock(id)?;
        let (c, cg) = self.running_cgroup(id)?;
        if c.status != Status::Paused {
            return Err(ContainerError::Unsupported(format!(
                "cannot resume container {id}: it is {}, not paused",
                c.status.as_str()
            )));
        }
        Ok(cg.thaw()?)
    }

    /// Applies new resource limits to a running container.
    pub fn update(&self, id: &str, res: &LinuxResources) -> Result<(), ContainerError> {
        let _lock = self.store.lock(id)?;
        let (_, cg) = self.running_cgroup(id)?;
        Ok(cg.apply(res)?)
    }
}
