//! The gate's off-path thread: the work of an exec that the caller need not wait for. With
//! `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` the caller and the worker serving it share one CPU, and
//! the caller is queued behind whatever the worker does after answering: reading the audit's
//! parent, uid and cwd while the kernel runs the exec, and formatting, signing and writing the
//! audit entry after the detach (~40 µs per exec, measured with `perf sched timehist`). This
//! thread does both instead, on whichever CPU is free, so the worker goes straight back to
//! waiting.
//!
//! Owns the queue of caller details to read (each a [`Details`] slot the worker can also fill
//! itself, so a slow thread never leaves an entry without them) and the queue of audit entries
//! to hand to the sink, in the order the workers finished them. The thread is woken once per
//! exec, for the details; entries are written on that same wake-up or, when no exec follows,
//! within `FLUSH_EVERY`, and all of them before [`OffPath::close`] returns. Decides nothing and
//! touches no tracee: the details are read through /proc and a pidfd while the worker still
//! traces the thread (so its pid cannot be recycled).

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::monitor::Shared;
use super::{procmem, ExecOutcome, ExecRequest, GateVerdict};

/// Longest an entry waits for the next exec's wake-up before it is written anyway.
const FLUSH_EVERY: Duration = Duration::from_millis(2);

/// The audit's details of one caller.
#[derive(Default)]
pub(crate) struct Fields {
    pub ppid: i32,
    pub uid: u32,
    pub cwd: PathBuf,
    /// The caller's /proc directory, opened while it was traced: the exec event reads `exe`
    /// through it without looking the pid up again.
    pub proc_dir: Option<OwnedFd>,
}

impl Fields {
    /// Reads them now. The caller must keep `tid` from being recycled meanwhile (traced, or
    /// with a pending notification).
    pub(crate) fn read(tid: i32) -> Fields {
        let (ppid, uid) = procmem::parent_and_uid(tid);
        let proc_dir = rustix::fs::open(
            format!("/proc/{tid}"),
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .ok()
        .map(OwnedFd::from);
        let cwd = match &proc_dir {
            Some(d) => rustix::fs::readlinkat(d, "cwd", Vec::new())
                .map(|c| {
                    use std::os::unix::ffi::OsStringExt;
                    PathBuf::from(std::ffi::OsString::from_vec(c.into_bytes()))
                })
                .unwrap_or_default(),
            None => procmem::cwd(tid),
        };
        Fields {
            ppid,
            uid,
            cwd,
            proc_dir,
        }
    }

    pub(crate) fn apply(self, req: &mut ExecRequest) {
        req.ppid = self.ppid;
        req.uid = self.uid;
        req.cwd = self.cwd;
    }
}

/// One caller's details, read by whichever comes first: the off-path thread, or the worker at
/// the exec event.
pub(crate) struct Details {
    tid: i32,
    slot: Mutex<Option<Fields>>,
}

impl Details {
    /// The details, read now if the off-path thread has not read them yet (it holds the slot's
    /// lock while it reads, so this waits for it rather than reading twice).
    pub(crate) fn take(&self) -> Fields {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.take().unwrap_or_else(|| Fields::read(self.tid))
    }
}

struct Entry {
    req: ExecRequest,
    verdict: GateVerdict,
    outcome: ExecOutcome,
}

#[derive(Default)]
struct Queue {
    details: VecDeque<Arc<Details>>,
    entries: Vec<Entry>,
    /// The thread sleeps without a timeout: a detail request must wake it.
    idle: bool,
    closed: bool,
}

pub(crate) struct OffPath {
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl OffPath {
    pub(crate) fn new() -> OffPath {
        OffPath {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks for `tid`'s details to be read while its exec runs.
    pub(crate) fn details(&self, tid: i32) -> Arc<Details> {
        let d = Arc::new(Details {
            tid,
            slot: Mutex::new(None),
        });
        let mut q = self.lock();
        q.details.push_back(d.clone());
        q.idle = false;
        drop(q);
        self.wake.notify_one();
        d
    }

    /// Hands one audit entry to the thread; entries are written in the order given. It wakes
    /// the thread only when that sleeps without a deadline (no exec for a while): in a stream
    /// of execs, the next exec's wake-up or the flush interval writes it.
    pub(crate) fn audit(&self, req: ExecRequest, verdict: GateVerdict, outcome: ExecOutcome) {
        let mut q = self.lock();
        q.entries.push(Entry {
            req,
            verdict,
            outcome,
        });
        if q.idle {
            q.idle = false;
            drop(q);
            self.wake.notify_one();
        }
    }

    /// Writes what is queued and ends the thread's loop.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// The thread's loop. After work it sleeps at most `FLUSH_EVERY` (an entry may follow
    /// without a wake-up); only a quiet interval lets it sleep until woken.
    pub(crate) fn serve(&self, shared: &Shared) {
        let mut q = self.lock();
        let mut worked = false;
        loop {
            let details: Vec<_> = q.details.drain(..).collect();
            let entries = std::mem::take(&mut q.entries);
            if !details.is_empty() || !entries.is_empty() {
                drop(q);
                // Details first: a worker may be about to wait for them.
                for d in details {
                    let mut slot = d.slot.lock().unwrap_or_else(|e| e.into_inner());
                    // A worker that gave up on the exec (the caller died) dropped its handle.
                    if slot.is_none() && Arc::strong_count(&d) > 1 {
                        *slot = Some(Fields::read(d.tid));
                    }
                }
                for e in entries {
                    shared.audit.exec(&e.req, &e.verdict, e.outcome);
                }
                q = self.lock();
                worked = true;
                continue;
            }
            if q.closed {
                return;
            }
            if worked {
                worked = false;
                q = match self.wake.wait_timeout(q, FLUSH_EVERY) {
                    Ok((g, _)) => g,
                    Err(e) => e.into_inner().0,
                };
            } else {
                q.idle = true;
                q = self.wake.wait(q).unwrap_or_else(|e| e.into_inner());
                q.idle = false;
            }
        }
    }
}

/// `fstatat(dir, "exe")`: the stamp of the image a process runs, through its /proc directory.
pub(crate) fn exe_stat(dir: &OwnedFd) -> Option<rustix::fs::Stat> {
    rustix::fs::statat(dir, "exe", rustix::fs::AtFlags::empty()).ok()
}
