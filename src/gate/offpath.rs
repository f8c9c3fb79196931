//! The gate's off-path thread and the audit details of a caller. With
//! `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` the caller and the worker serving it share one CPU, and
//! a caller the worker has released waits in the run queue for whatever the worker does next:
//! formatting, signing and writing the audit entry after the detach (5-20 µs per exec, seen as
//! the caller's scheduling delay in `perf sched timehist`). This thread writes the entries
//! instead, in the order the workers hand them over, so a worker goes straight back to RECV.
//!
//! Owns the queue of audit entries and [`Fields`], the caller's parent, uid and cwd (read by the
//! worker at the exec event while the thread is stopped: a process such as `true` exits at once
//! and takes its cwd with it, so no later reader could get them). The thread is not woken per
//! exec: after writing it sleeps `FLUSH_EVERY`, and entries queued meanwhile wait for it; only
//! the first entry after a quiet interval wakes it. Every entry is written before
//! [`OffPath::close`]'s caller joins it. Refusals and kills are not left to it: the worker
//! writes them (after whatever is queued) before the caller or its parent can see the outcome
//! ([`OffPath::audit_now`]). Decides nothing and touches no tracee.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::{procmem, ExecAudit, ExecOutcome, ExecRequest, GateVerdict};

/// Longest an entry waits for the next exec's wake-up before it is written anyway.
const FLUSH_EVERY: Duration = Duration::from_millis(2);

/// The audit's details of one caller.
#[derive(Default)]
pub(crate) struct Fields {
    pub ppid: i32,
    pub uid: u32,
    pub cwd: PathBuf,
}

impl Fields {
    /// The caller's /proc directory (the monitor's pid namespace).
    pub(crate) fn proc_dir(tid: i32) -> Option<OwnedFd> {
        rustix::fs::open(
            format!("/proc/{tid}"),
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .ok()
    }

    /// Reads them now, through `dir` when given. The caller must keep `tid` from being
    /// recycled meanwhile (traced and stopped, or with a pending notification).
    pub(crate) fn read_from(tid: i32, dir: Option<&OwnedFd>) -> Fields {
        let (ppid, uid) = procmem::parent_and_uid(tid);
        let cwd = match dir {
            Some(d) => rustix::fs::readlinkat(d, "cwd", Vec::new())
                .map(|c| {
                    use std::os::unix::ffi::OsStringExt;
                    PathBuf::from(std::ffi::OsString::from_vec(c.into_bytes()))
                })
                .unwrap_or_default(),
            None => procmem::cwd(tid),
        };
        Fields { ppid, uid, cwd }
    }

    pub(crate) fn apply(self, req: &mut ExecRequest) {
        req.ppid = self.ppid;
        req.uid = self.uid;
        req.cwd = self.cwd;
    }
}

struct Entry {
    req: ExecRequest,
    verdict: GateVerdict,
    outcome: ExecOutcome,
}

#[derive(Default)]
struct Queue {
    entries: Vec<Entry>,
    /// The thread sleeps without a timeout: a detail request must wake it.
    idle: bool,
    closed: bool,
}

pub(crate) struct OffPath {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Held while entries are written (by the thread, or by a worker in `audit_now`), so that
    /// entries reach the log in the order they were handed over. Taken before `queue`.
    writing: Mutex<()>,
}

impl OffPath {
    pub(crate) fn new() -> OffPath {
        OffPath {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            writing: Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
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

    /// Writes what is queued and then this entry, before returning: for refusals and kills,
    /// whose entry must be in the log before the caller (or its parent) can see the outcome.
    /// Rare, so their cost on the worker does not matter.
    pub(crate) fn audit_now(
        &self,
        audit: &dyn ExecAudit,
        req: ExecRequest,
        verdict: GateVerdict,
        outcome: ExecOutcome,
    ) {
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let queued = std::mem::take(&mut self.lock().entries);
        for e in queued {
            audit.exec(&e.req, &e.verdict, e.outcome);
        }
        audit.exec(&req, &verdict, outcome);
    }

    /// Writes what is queued and ends the thread's loop.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// The thread's loop: it writes what is queued, then sleeps `FLUSH_EVERY` (entries
    /// queued meanwhile wake no one); only an interval with nothing queued lets it sleep
    /// until the next entry wakes it. A stream of execs thus costs one wake-up per interval,
    /// not one per exec.
    pub(crate) fn serve(&self, audit: &dyn ExecAudit) {
        let mut worked = false;
        loop {
            {
                let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
                let entries = std::mem::take(&mut self.lock().entries);
                if !entries.is_empty() {
                    for e in entries {
                        audit.exec(&e.req, &e.verdict, e.outcome);
                    }
                    worked = true;
                    continue;
                }
            }
            let mut q = self.lock();
            if !q.entries.is_empty() {
                continue;
            }
            if q.closed {
                return;
            }
            if worked {
                worked = false;
                drop(match self.wake.wait_timeout(q, FLUSH_EVERY) {
                    Ok((g, _)) => g,
                    Err(e) => e.into_inner().0,
                });
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct Record(Mutex<Vec<i32>>);

    impl ExecAudit for Record {
        fn exec(&self, req: &ExecRequest, _: &GateVerdict, _: ExecOutcome) {
            self.0.lock().unwrap().push(req.pid);
        }
    }

    #[test]
    fn every_entry_is_written_in_the_order_given_before_close_returns() {
        let off = Arc::new(OffPath::new());
        let rec = Arc::new(Record(Mutex::new(Vec::new())));
        let (o, r) = (off.clone(), rec.clone());
        let t = std::thread::spawn(move || o.serve(&*r));
        let verdict = GateVerdict::allow("test", None);
        for pid in 0..5000 {
            let req = ExecRequest {
                pid,
                ..ExecRequest::default()
            };
            off.audit(req, verdict.clone(), ExecOutcome::Ran);
            if pid % 1000 == 0 {
                // Let the thread go idle now and then, so both wake-up paths are taken.
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        off.close();
        t.join().unwrap();
        assert_eq!(*rec.0.lock().unwrap(), (0..5000).collect::<Vec<_>>());
    }
}
