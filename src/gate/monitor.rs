//! The gate's half of the sandbox monitor: two threads sharing the allowed-exec expectations.
//! The notification thread answers the seccomp listener; the tracer thread (the only one allowed
//! to issue ptrace requests to the tracees it seized) verifies each exec event. The engine's
//! monitor owns everything else (PTY, DNS, reaping of non-sandbox children).

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::identity::{Expected, Identifier};
use super::{
    notify, trace, ExecAudit, ExecDecider, ExecOutcome, ExecRequest, GateError, GateVerdict,
};

/// An exec the notification side allowed, waiting for its exec event. Keyed by the calling
/// thread's id, which the kernel reports at the event (PTRACE_GETEVENTMSG) even when a non-leader
/// thread exec'd.
pub(crate) struct Pending {
    pub request: ExecRequest,
    pub verdict: GateVerdict,
    pub expected: Expected,
}

pub(crate) struct Shared {
    pub decider: Arc<dyn ExecDecider>,
    pub audit: Arc<dyn ExecAudit>,
    pub ident: Identifier,
    pending: Mutex<HashMap<i32, Pending>>,
    pub done: AtomicBool,
    /// Thread id of the tracer; an exec from a process it does not trace is refused.
    pub tracer_tid: AtomicI32,
    ran: AtomicU64,
    refused: AtomicU64,
    killed: AtomicU64,
}

impl Shared {
    pub(crate) fn pending_insert(&self, tid: i32, p: Pending) {
        self.lock().insert(tid, p);
    }
    pub(crate) fn pending_take(&self, tid: i32) -> Option<Pending> {
        self.lock().remove(&tid)
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub(crate) fn count(&self, outcome: ExecOutcome) {
        let c = match outcome {
            ExecOutcome::Ran => &self.ran,
            ExecOutcome::Refused => &self.refused,
            ExecOutcome::KilledMismatch => &self.killed,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts of exec outcomes so far, for `lasso status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GateStats {
    pub ran: u64,
    pub refused: u64,
    pub killed_mismatch: u64,
}

/// A running gate for one sandbox.
pub struct Monitor {
    shared: Arc<Shared>,
    tracer: JoinHandle<io::Result<Option<i32>>>,
    notifier: JoinHandle<io::Result<()>>,
}

impl Monitor {
    /// Seizes `root` (the sandbox's init, waiting in [`super::send_listener`] for the go-ahead)
    /// with exec, fork, vfork and clone tracing, then serves `listener`. When this returns Ok,
    /// call [`super::ack_traced`] to let the child go on. The tracer thread is the ptrace parent
    /// of every sandbox process from now on; `PTRACE_O_EXITKILL` kills them all should the
    /// monitor die, so that no sandbox process ever runs ungated.
    pub fn start(
        root: i32,
        listener: OwnedFd,
        decider: Arc<dyn ExecDecider>,
        audit: Arc<dyn ExecAudit>,
    ) -> Result<Monitor, GateError> {
        let shared = Arc::new(Shared {
            decider,
            audit,
            ident: Identifier::new(),
            pending: Mutex::new(HashMap::new()),
            done: AtomicBool::new(false),
            tracer_tid: AtomicI32::new(0),
            ran: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            killed: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel();
        let s = shared.clone();
        let tracer = std::thread::Builder::new()
            .name("lasso-gate-trace".into())
            .spawn(move || {
                raise_priority();
                let r = trace::trace(root, &s, tx);
                s.done.store(true, Ordering::Release);
                r
            })
            .map_err(|source| GateError::Thread {
                thread: "tracer",
                source,
            })?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(source)) => {
                let _ = tracer.join();
                return Err(GateError::Seize { pid: root, source });
            }
            Err(_) => return Err(GateError::Panicked("tracer")),
        }
        let s = shared.clone();
        let notifier = std::thread::Builder::new()
            .name("lasso-gate-notify".into())
            .spawn(move || {
                raise_priority();
                notify::serve(listener, &s)
            })
            .map_err(|source| GateError::Thread {
                thread: "notification",
                source,
            })?;
        Ok(Monitor {
            shared,
            tracer,
            notifier,
        })
    }

    pub fn stats(&self) -> GateStats {
        GateStats {
            ran: self.shared.ran.load(Ordering::Relaxed),
            refused: self.shared.refused.load(Ordering::Relaxed),
            killed_mismatch: self.shared.killed.load(Ordering::Relaxed),
        }
    }

    /// Waits until every traced process is gone; returns the root's raw wait status (as from
    /// waitpid), or `None` if it was not observed.
    pub fn wait(self) -> Result<Option<i32>, GateError> {
        let status = self
            .tracer
            .join()
            .map_err(|_| GateError::Panicked("tracer"))?
            .map_err(|source| GateError::Thread {
                thread: "tracer",
                source,
            })?;
        self.notifier
            .join()
            .map_err(|_| GateError::Panicked("notification"))?
            .map_err(|source| GateError::Thread {
                thread: "notification",
                source,
            })?;
        Ok(status)
    }

    /// [`Monitor::start`] and [`Monitor::wait`] in one, for a monitor with nothing else to do.
    pub fn run(
        root: i32,
        listener: OwnedFd,
        decider: Arc<dyn ExecDecider>,
        audit: Arc<dyn ExecAudit>,
        release: impl FnOnce() -> Result<(), GateError>,
    ) -> Result<Option<i32>, GateError> {
        let m = Monitor::start(root, listener, decider, audit)?;
        let released = release();
        let status = m.wait();
        released?;
        status
    }
}

/// Every exec in the sandbox waits for these threads, several times (notification, fork and exec
/// stops, exit): on a busy machine, scheduling latency rather than work is their cost. A higher
/// priority than the sandbox's also keeps a busy agent from starving its own gate. Best effort:
/// an unprivileged monitor keeps the default.
fn raise_priority() {
    // SAFETY: gettid and setpriority take and return integers only.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, -10);
    }
}
