//! `lasso run`: the foreground sandbox. This process is the sandbox's monitor: it creates and
//! starts init, forwards the signals a user or CI runner sends (INT, TERM, HUP, QUIT, USR1,
//! USR2) to it through a pidfd, reaps it, and cleans up on every path. The exit status is the
//! command's, or 128 + the signal that killed it, as a shell reports it.
//!
//! The command is pid 1 of its namespace, and the kernel drops signals to a namespace's init
//! that it has no handler for: a plain `sh` ignores a forwarded SIGINT. So a second SIGINT or
//! SIGTERM kills the sandbox (SIGKILL always reaches it), as a user pressing ctrl-c twice expects.
//!
//! With a profile, this process also runs the exec gate (`gate_link`): its tracer thread is the
//! ptrace parent of every sandbox process and reaps init, so init's status comes from the gate
//! and this thread never waits for init itself (it would steal the tracer's stops).

use super::launch::Launch;
use super::signals::{poll, SignalPipe};
use super::SandboxError;
use crate::audit::Writer;
use crate::engine::container::wait_child;
use crate::engine::namespaces::{pidfd_open, pidfd_signal};
use std::os::fd::AsRawFd;
use std::sync::Arc;

/// The signals forwarded to the sandbox.
pub const FORWARDED: [i32; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Runs the prepared sandbox to completion; cleans up whatever happens.
pub fn run(launch: &mut Launch) -> Result<i32, SandboxError> {
    let mut ended = match run_inner(launch) {
        Ok(ended) => ended,
        Err(e) => {
            launch.cleanup();
            return Err(e);
        }
    };
    // Init is reaped: nothing of the sandbox runs any more (it was its pid namespace's init,
    // and the kernel ends the namespace's other processes before it reports init's exit).
    // What is left runs on two threads, and this returns only once both are done:
    // - the cleanup thread removes the engine's state and the cgroups at once, while this
    //   thread ends the gate (its workers, the off-path writer, the counts); the sandbox's
    //   directory goes once the gate is done (its counts file is written there) and last (its
    //   record is how the next lasso command finds leftovers);
    // - this thread then writes the log's seal entry; the seal's fdatasync runs in the log's
    //   own flusher thread while this one goes on, and this waits for it before it returns, so
    //   the log is as durable when the command returns as it was when all ran in turn.
    // The sandbox's mounts (its mount namespace, at once, and the gate's hold on its root,
    // once the gate is done) are torn down by whichever thread is free first: the cleanup
    // thread while it waits for the gate, or after its work, or this one after the seal.
    // Nothing in the cleanup needs them gone (the sandbox's directory, its engine state and
    // its cgroups are not under any of its mounts, which live only in its own mount namespace).
    let remains = std::sync::Mutex::new(Mounts {
        ns: ended.ns.take(),
        root: None,
    });
    let unmount = || {
        let held = std::mem::replace(
            &mut *remains.lock().unwrap_or_else(|e| e.into_inner()),
            Mounts {
                ns: None,
                root: None,
            },
        );
        if held.ns.is_some() || held.root.is_some() {
            drop(held);
            crate::phases::mark("unmounted");
        }
    };
    let (gate_done, gate_ended) = std::sync::mpsc::channel::<()>();
    let result = std::thread::scope(|s| {
        let (launch_ref, unmount_ref) = (&*launch, &unmount);
        let cleaner = std::thread::Builder::new()
            .name("cleanup".into())
            .spawn_scoped(s, move || {
                launch_ref.cleanup_engine();
                crate::phases::mark("engine-cleaned");
                unmount_ref();
                // Err once the sender is gone: the gate ended, or failed to.
                let _ = gate_ended.recv();
                launch_ref.cleanup_dir();
                crate::phases::mark("cleanup-done");
                unmount_ref();
            });
        let finished = ended.finish();
        drop(gate_done);
        let result = finished.and_then(|(status, log, root)| {
            remains.lock().unwrap_or_else(|e| e.into_inner()).root = root;
            // The seal's fdatasync runs in the log's own flusher thread while this one tears
            // the mounts down (when the cleanup thread has not yet), then waits for it.
            let sealing = super::audit_log::stop_shared_in_background(log, status)?;
            crate::phases::mark("seal-written");
            unmount();
            let sealed = sealing.wait();
            crate::phases::mark("sealed");
            sealed.map(|()| status)
        });
        unmount();
        match cleaner {
            // A panic in the cleanup leaves leftovers that the next lasso command removes.
            Ok(h) => drop(h.join()),
            Err(_) => launch.cleanup(),
        }
        result
    });
    crate::phases::mark("cleaned");
    result
}

/// The sandbox once its init is reaped: what is left to end.
struct Ended {
    pid: i32,
    /// The gate, its root reaped, its threads still to be joined.
    gate: Option<crate::gate::Monitor>,
    /// Init's status, when no gate reaped it.
    status: i32,
    log: Arc<Writer>,
    /// The sandbox's mount namespace (see `Mounts`).
    ns: Option<std::fs::File>,
    net: super::network::SandboxNet,
}

impl Ended {
    /// Ends the gate and the network: init's exit status, the log to seal, the gate's hold on
    /// the sandbox's root.
    fn finish(self) -> Result<(i32, Arc<Writer>, Option<crate::gate::Remains>), SandboxError> {
        let (status, root) = match self.gate {
            Some(m) => {
                let (status, remains) = super::gate_link::finish_leaving(m, self.pid);
                (status?, Some(remains))
            }
            None => (self.status, None),
        };
        self.net.finish();
        crate::phases::mark("init-exited");
        Ok((status, self.log, root))
    }
}

/// What keeps the sandbox's mounts once init is gone, so that their teardown runs beside the
/// seal instead of in init's exit. Init is the last process in the sandbox's mount namespace:
/// when it exits, the kernel dissolves the namespace (every mount of the host view, `/proc`,
/// `/sys`, the tmpfs mounts, an expedited RCU grace period) in init's own exit, before its
/// pidfd reports the exit, all on this command's critical path. A descriptor of the namespace
/// taken while init runs leaves init's exit with nothing to tear down; dropping this does it.
/// It pins nothing on the host that the sandbox did not already pin while it ran (its binds),
/// and no process can enter the namespace through it: the descriptor is this process's own
/// (close-on-exec) and is closed before `lasso run` returns.
struct Mounts {
    /// The sandbox's mount namespace (`/proc/<init>/ns/mnt`), dropped first.
    ns: Option<std::fs::File>,
    /// The gate's hold on the sandbox's root (see `gate::Remains`).
    root: Option<crate::gate::Remains>,
}

impl Mounts {
    /// Opens init's mount namespace. `None` when init is already gone (its exit then tore the
    /// mounts down itself, as before).
    fn pin_namespace(init: i32) -> Option<std::fs::File> {
        std::fs::File::open(format!("/proc/{init}/ns/mnt")).ok()
    }
}

/// Runs the sandbox until its init is reaped.
fn run_inner(launch: &mut Launch) -> Result<Ended, SandboxError> {
    let signals = SignalPipe::install(&FORWARDED)?;
    // The exec gate's program scan runs beside init's whole setup.
    let start = super::gate_link::prepare_start(
        launch.profile.as_ref(),
        launch.profile_digest(),
        &launch.dir,
    )?;
    let (gate, scan) = (start.sockets, start.scan);
    let pid = launch.create(
        None,
        gate.as_ref().map(|(_, init)| init.as_raw_fd()),
        Some(start.after_clone),
    )?;
    let gate = gate.map(|(mine, _init)| mine);
    crate::phases::mark("created");
    let pidfd = pidfd_open(pid).map_err(super::sys_err("pidfd_open of the sandbox's init"))?;
    // Egress is in place before the agent's first instruction: wired here (root) while init is
    // blocked, or (rootless) after start while init waits for the exec gate's go-ahead.
    let mut net = super::network::SandboxNet::new(&launch.egress, pid, &launch.dir);
    net.before_start()?;
    launch.start()?;
    crate::phases::mark("started");
    // The network is wired before the gate lets init go on to its execve.
    net.before_exec(gate.is_some())?;
    // The gate first, its entries pending: init's hand-over does not wait for the log's open
    // (key ring, files, genesis), which runs while init goes on to its execve.
    let (mut monitor, sink) = match (&gate, &launch.profile, scan) {
        (Some(sock), Some(profile), Some(scan)) => {
            match super::gate_link::attach_pending_counts_later(
                sock,
                pid,
                profile,
                scan,
                &launch.dir,
            )? {
                Some((m, sink)) => (Some(m), Some(sink)),
                None => (None, None),
            }
        }
        _ => (None, None),
    };
    crate::phases::mark("gate-attached");
    let counts_due = std::time::Instant::now() + super::gate_link::COUNTS_START_AFTER;
    let log = match super::audit_log::start(launch, pid) {
        Ok(w) => std::sync::Arc::new(w),
        Err(e) => {
            // No log, no sandbox: what init already ran was gated but is not recorded.
            let _ = pidfd_signal(&pidfd, libc::SIGKILL);
            match monitor.take() {
                Some(m) => drop(super::gate_link::finish_leaving(m, pid)),
                None => drop(wait_child(pid)),
            }
            net.finish();
            let unrecorded = sink.map(|s| s.abandon()).unwrap_or_default();
            return Err(super::audit_log::unopened(e, &unrecorded));
        }
    };
    crate::phases::mark("log-open");
    // `sandbox.start` is the first entry after the genesis; what waited comes after it.
    net.set_writer(log.clone());
    if let Some(sink) = &sink {
        sink.set_writer(log.clone());
    }
    // The gate's counts thread starts only if the command still runs `COUNTS_START_AFTER`
    // after the gate's start (see `AuditSink::counts_started_later`). This clone of the sink
    // is dropped then, or when this returns, before the log is sealed (it holds the writer).
    let mut counts_sink = sink;
    let mut record = launch.record();
    record.init_pid = pid;
    record.init_start = crate::engine::state::process_start_time(pid).unwrap_or(0);
    record.state = super::SandboxState::Running;
    record.save(&launch.dirs)?;
    let mut interrupts = 0;
    crate::phases::mark("recorded");
    // Here, not earlier: this thread only polls from now on, while the command starts up.
    let ns = Mounts::pin_namespace(pid);
    // A sandbox still running after a second is an agent's session, not a quick command: this
    // process is its monitor for as long, so it hands back its start-up pages then.
    let mut shed = super::footprint::ShedTimer::start();
    loop {
        let mut timeout = shed.timeout_ms();
        if counts_sink.is_some() {
            let left = counts_due.saturating_duration_since(std::time::Instant::now());
            // Rounded up: a poll that returns before the instant would only spin.
            let left = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
            timeout = if timeout < 0 { left } else { timeout.min(left) };
        }
        let ready = poll(&[signals.fd(), pidfd.as_raw_fd()], timeout)?;
        shed.tick();
        if counts_sink.is_some() && std::time::Instant::now() >= counts_due {
            if let Some(sink) = counts_sink.take() {
                sink.start_counts();
            }
        }
        if ready[0] != 0 {
            for sig in signals.drain() {
                if sig == libc::SIGINT || sig == libc::SIGTERM {
                    interrupts += 1;
                }
                let sig = if interrupts >= 2 { libc::SIGKILL } else { sig };
                let _ = pidfd_signal(&pidfd, sig);
            }
        }
        if ready[1] != 0 {
            let (gate, status) = match monitor.take() {
                Some(mut m) => {
                    m.reap_root();
                    (Some(m), 0)
                }
                None => (None, wait_child(pid)?),
            };
            return Ok(Ended {
                pid,
                gate,
                status,
                log,
                ns,
                net,
            });
        }
    }
}
