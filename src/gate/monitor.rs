//! The gate's half of the sandbox monitor: a small pool of worker threads serving the seccomp
//! listener. Each worker takes one notification at a time and sees it through to the end:
//! reads and decides it, and for an allowed exec seizes the calling thread, lets the call go on
//! and verifies the image at its exec event before detaching (see `trace`). No process is traced
//! between execs, so forks, clones and exits cost nothing. Audit entries go to one off-path
//! thread (see `offpath`), so a worker never formats or writes them while a caller it has just
//! released waits for its CPU. The engine's monitor owns everything else (PTY, DNS, reaping of
//! non-sandbox children).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::identity::{Expected, Identifier};
use super::{notify, ExecAudit, ExecDecider, ExecOutcome, ExecRequest, GateError, GateVerdict};

/// Workers serving notifications at once. Two keep a second exec moving while one waits for
/// its exec event; a shell loop never needs more, and a parallel build does not gain from more
/// workers than cores (the machine this was tuned on has two).
pub(crate) const WORKERS: usize = 2;

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (linux/seccomp.h, 6.6), which the libc crate lacks.
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

/// An exec the notification side allowed, waiting for its exec event in the worker that seized
/// the calling thread.
pub(crate) struct Pending {
    pub request: ExecRequest,
    pub verdict: GateVerdict,
    pub expected: Expected,
}

pub(crate) struct Shared {
    pub decider: Arc<dyn ExecDecider>,
    pub audit: Arc<dyn ExecAudit>,
    pub ident: Identifier,
    /// Caller details and audit entries, handled off the caller's CPU (see `offpath`).
    pub offpath: super::offpath::OffPath,
    /// Allowed answers for repeated command lines, when the decider's answers may be kept.
    pub memo: Option<super::memo::Memo>,
    /// Thread ids of the workers: a thread traced by one of them is in the middle of an exec
    /// that worker handles (see `notify::handle`).
    pub workers: [AtomicI32; WORKERS],
    /// The root, and its raw wait status should a worker reap it: a tracee whose real parent
    /// is a thread of the tracer's own process is reaped by the tracer's wait, and its parent
    /// never sees it (kernel/exit.c, `wait_task_zombie`).
    pub root: i32,
    pub root_status: std::sync::Mutex<Option<i32>>,
    ran: AtomicU64,
    refused: AtomicU64,
    killed: AtomicU64,
}

impl Shared {
    pub(crate) fn count(&self, outcome: ExecOutcome) {
        let c = match outcome {
            ExecOutcome::Ran => &self.ran,
            ExecOutcome::Refused => &self.refused,
            ExecOutcome::KilledMismatch => &self.killed,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn reaped(&self, pid: i32, status: i32) {
        if pid == self.root {
            *self.root_status.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
        }
    }

    pub(crate) fn is_worker(&self, tid: i32) -> bool {
        tid != 0
            && self
                .workers
                .iter()
                .any(|w| w.load(Ordering::Acquire) == tid)
    }
}

/// Counts of exec outcomes so far, for `lasso status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GateStats {
    pub ran: u64,
    pub refused: u64,
    pub killed_mismatch: u64,
}

/// The parts of a gate that need neither the listener nor the sandbox: the executable
/// identifier with the dynamic loader's digests (a read and a SHA-256 of ~200 KB). A caller that
/// makes them in a thread beside init's setup (`Prepared::new`, then `Monitor::start_prepared`)
/// takes that work off the hand-over, where init waits.
pub struct Prepared {
    ident: Identifier,
    /// The gate's threads, parked (see `crew`); started at the hand-over otherwise.
    crew: Option<super::crew::Crew>,
}

impl Prepared {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Prepared {
        Prepared {
            ident: Identifier::new(),
            crew: None,
        }
    }

    /// With the loader's digests (SHA-256 of each of `LOADER_PATHS` that exists) from the
    /// caller's own cache, which must trust a digest only while its file is unchanged.
    pub fn with_loader_digests(digests: impl IntoIterator<Item = [u8; 32]>) -> Prepared {
        Prepared {
            ident: Identifier::with_loader_digests(digests.into_iter().collect()),
            crew: None,
        }
    }

    /// With the gate's threads started and parked until `Monitor::start_prepared` hands them
    /// the listener. Only once the engine has cloned init (clone3 runs no fork handlers: no
    /// other thread may be inside malloc then). Best effort: threads that cannot be started
    /// now are started (or fail) at the hand-over.
    pub fn with_threads(mut self) -> Prepared {
        match super::crew::Crew::hire() {
            Ok(c) => self.crew = Some(c),
            Err(e) => tracing::debug!("exec gate: parked threads: {e}"),
        }
        self
    }
}

/// What is left of a sandbox once its gate has ended: a descriptor of its root, the last hold
/// on its mounts once init is gone. Dropping it tears them down (the root tmpfs's superblock,
/// the host view's binds: `cleanup_mnt` in the closing thread), so a caller with other work
/// on its critical path drops it in a thread of its own. Holding it pins nothing on the host.
pub struct Remains(#[allow(dead_code)] Option<OwnedFd>);

/// A running gate for one sandbox.
pub struct Monitor {
    shared: Arc<Shared>,
    root: i32,
    /// Opened while the root is alive, so that its exit is seen without a wait (see `wait`).
    root_fd: Option<OwnedFd>,
    /// The root's raw wait status once [`Monitor::reap_root`] reaped it.
    root_raw: Option<i32>,
    workers: Vec<JoinHandle<io::Result<()>>>,
    offpath: Option<JoinHandle<()>>,
}

impl Monitor {
    /// Serves `listener` for the tree under `root` (the sandbox's init, waiting in
    /// [`super::send_listener`] for the go-ahead). When this returns Ok, call
    /// [`super::ack_traced`] to let the child go on. Nothing is traced until an exec arrives;
    /// the exec-ing thread is traced from its notification to its exec event, with
    /// `PTRACE_O_EXITKILL`, so that should the monitor die mid-exec the new image never runs
    /// unverified (and with the listener gone, every later exec fails).
    pub fn start(
        root: i32,
        listener: OwnedFd,
        decider: Arc<dyn ExecDecider>,
        audit: Arc<dyn ExecAudit>,
    ) -> Result<Monitor, GateError> {
        Monitor::start_prepared(root, listener, decider, audit, Prepared::new())
    }

    /// [`Monitor::start`] with the parts made ahead (see [`Prepared`]).
    pub fn start_prepared(
        root: i32,
        listener: OwnedFd,
        decider: Arc<dyn ExecDecider>,
        audit: Arc<dyn ExecAudit>,
        prepared: Prepared,
    ) -> Result<Monitor, GateError> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let r = unsafe { libc::syscall(libc::SYS_pidfd_open, root, 0) };
        if r < 0 {
            return Err(GateError::Seize {
                pid: root,
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: a fresh descriptor that we now own.
        let root_fd = Some(unsafe { OwnedFd::from_raw_fd(r as i32) });
        // The notifying thread sleeps until a worker answers; a synchronous wake-up lets the
        // scheduler run the worker on the caller's CPU at once (kernel 6.6+; older kernels
        // refuse the flag and keep the ordinary wake-up).
        // SAFETY: SET_FLAGS reads one u64 flag word passed by value.
        let modern = unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
            )
        } == 0;
        // The same kernel release (6.6) made a blocking RECV return once the filter has no
        // users. Before it, only poll sees the end, and a second worker could sleep in RECV
        // forever after a notification its sibling took: one polling worker then.
        let workers = if modern { WORKERS } else { 1 };
        let memo = decider.memoizable().then(super::memo::Memo::default);
        let crew = match prepared.crew {
            Some(c) => c,
            None => super::crew::Crew::hire()?,
        };
        let shared = Arc::new(Shared {
            decider,
            audit,
            memo,
            offpath: super::offpath::OffPath::new(),
            ident: prepared.ident.with_root(root),
            workers: std::array::from_fn(|_| AtomicI32::new(0)),
            root,
            root_status: std::sync::Mutex::new(None),
            ran: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            killed: AtomicU64::new(0),
        });
        let (handles, offpath) = crew.go(super::crew::Job {
            shared: shared.clone(),
            listener: Arc::new(listener),
            serving: workers,
            modern,
        });
        Ok(Monitor {
            shared,
            root,
            root_fd,
            root_raw: None,
            workers: handles,
            offpath,
        })
    }

    pub fn stats(&self) -> GateStats {
        GateStats {
            ran: self.shared.ran.load(Ordering::Relaxed),
            refused: self.shared.refused.load(Ordering::Relaxed),
            killed_mismatch: self.shared.killed.load(Ordering::Relaxed),
        }
    }

    /// The first half of [`Monitor::wait`]: waits until the root has exited and reaps it,
    /// without waiting for the gate's threads (they end once no process is left under the
    /// filter). Once this returned, no process of the sandbox is left when the root was its
    /// pid namespace's init: the kernel ends the namespace's other processes before it reports
    /// the init's exit. Idempotent; `wait` calls it.
    pub fn reap_root(&mut self) {
        let Some(fd) = self.root_fd.take() else {
            return;
        };
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd on the stack.
        while unsafe { libc::poll(&mut pfd, 1, -1) } < 0
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
        loop {
            let mut st = 0;
            crate::phases::mark("root-pidfd-ready");
            // SAFETY: waitpid writes the status into a local.
            let r = unsafe { libc::waitpid(self.root, &mut st, libc::__WALL) };
            if r == self.root {
                self.root_raw = Some(st);
                break;
            }
            if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        crate::phases::mark("root-reaped");
    }

    /// Waits until the root has exited and no process under the filter is left; returns the
    /// root's raw wait status (as from waitpid) when the root is a child of this process,
    /// `None` otherwise.
    ///
    /// The root is reaped only once its pidfd says it exited: a wait for it while a worker
    /// traces it would take the worker's exec-event stop away (a tracee's stops are reported to
    /// any thread of the tracer's process that waits for it, wait(2)).
    pub fn wait(mut self) -> Result<Option<i32>, GateError> {
        self.reap_root();
        let mut status = self.root_raw;
        for w in self.workers.drain(..) {
            w.join()
                .map_err(|_| GateError::Panicked("worker"))?
                .map_err(|source| GateError::Thread {
                    thread: "worker",
                    source,
                })?;
        }
        // Every worker is done: the off-path thread writes what they left and ends.
        crate::phases::mark("workers-joined");
        self.shared.offpath.close();
        if let Some(t) = self.offpath.take() {
            t.join().map_err(|_| GateError::Panicked("audit"))?;
        }
        crate::phases::mark("offpath-joined");
        if status.is_none() {
            // Killed at its exec event, the root was reaped by the worker that held it.
            status = *self
                .shared
                .root_status
                .lock()
                .unwrap_or_else(|e| e.into_inner());
        }
        Ok(status)
    }

    /// [`Monitor::wait`], leaving the sandbox's last remains to the caller (see [`Remains`]).
    pub fn wait_leaving(self) -> (Result<Option<i32>, GateError>, Remains) {
        let remains = Remains(self.shared.ident.pin_root());
        (self.wait(), remains)
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

/// One worker of a started crew (`crew::Crew::go`): serves the listener until no process is
/// left under the filter.
pub(crate) fn serve_worker(slot: usize, job: &super::crew::Job) -> io::Result<()> {
    raise_priority();
    // SAFETY: gettid has no arguments.
    job.shared.workers[slot].store(unsafe { libc::gettid() }, Ordering::Release);
    notify::serve(job.listener.as_raw_fd(), &job.shared, !job.modern)
}

/// Every exec in the sandbox waits for a worker twice (notification and exec event): on a busy
/// machine, scheduling latency rather than work is their cost. A higher priority than the
/// sandbox's also keeps a busy agent from starving its own gate. Best effort: an unprivileged
/// monitor keeps the default.
fn raise_priority() {
    // SAFETY: gettid and setpriority take and return integers only.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, -10);
    }
}
