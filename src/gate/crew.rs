//! The gate's threads, started before the sandbox hands its listener over and parked until it
//! does: the workers that serve the listener and the off-path thread that writes audit entries.
//! Starting three threads costs a few hundred microseconds, and at the hand-over the sandbox's
//! init waits for the gate; parked, they cost that hand-over one wake-up instead.
//!
//! Owns only the threads' start, their wait for the job and their dismissal; what they do once
//! started is `monitor`'s (`serve_worker`) and `offpath`'s. A crew must be hired after the
//! engine cloned init (clone3 runs no fork handlers: no other thread may be inside malloc then).

use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::monitor::{Shared, WORKERS};

/// What the crew is started with.
#[derive(Clone)]
pub(crate) struct Job {
    pub shared: Arc<Shared>,
    pub listener: Arc<OwnedFd>,
    /// How many of the workers serve (one on kernels before 6.6, see `Monitor::start`).
    pub serving: usize,
    pub modern: bool,
}

enum State {
    Waiting,
    Go(Job),
    Dismissed,
}

struct Slot {
    state: Mutex<State>,
    wake: Condvar,
}

impl Slot {
    fn wait(&self) -> Option<Job> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match &*st {
                State::Waiting => st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner()),
                State::Go(job) => return Some(job.clone()),
                State::Dismissed => return None,
            }
        }
    }

    fn set(&self, next: State) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*st, State::Waiting) {
            *st = next;
            self.wake.notify_all();
        }
    }
}

/// Parked gate threads, ready for a job.
pub(crate) struct Crew {
    slot: Arc<Slot>,
    workers: Vec<JoinHandle<io::Result<()>>>,
    offpath: Option<JoinHandle<()>>,
}

impl Crew {
    /// Starts the off-path thread and `WORKERS` workers, all parked. A thread that cannot be
    /// started dismisses those that were.
    pub(crate) fn hire() -> Result<Crew, super::GateError> {
        let slot = Arc::new(Slot {
            state: Mutex::new(State::Waiting),
            wake: Condvar::new(),
        });
        let mut crew = Crew {
            slot: slot.clone(),
            workers: Vec::with_capacity(WORKERS),
            offpath: None,
        };
        let s = slot.clone();
        crew.offpath = Some(
            std::thread::Builder::new()
                .name("lasso-gate-audit".into())
                .spawn(move || {
                    // Only the shared part: the listener closes when the last worker ends.
                    let Some(shared) = s.wait().map(|job| job.shared) else {
                        return;
                    };
                    drop(s);
                    shared.offpath.serve(&*shared.audit);
                })
                .map_err(|source| super::GateError::Thread {
                    thread: "audit",
                    source,
                })?,
        );
        for index in 0..WORKERS {
            let s = slot.clone();
            let w = std::thread::Builder::new()
                .name(format!("lasso-gate-{index}"))
                .spawn(move || {
                    let job = s.wait();
                    drop(s);
                    match job {
                        Some(job) if index < job.serving => {
                            super::monitor::serve_worker(index, &job)
                        }
                        _ => Ok(()),
                    }
                })
                .map_err(|source| super::GateError::Thread {
                    thread: "worker",
                    source,
                })?;
            crew.workers.push(w);
        }
        Ok(crew)
    }

    /// Starts the crew on `job`; hands back the threads to join.
    pub(crate) fn go(
        mut self,
        job: Job,
    ) -> (Vec<JoinHandle<io::Result<()>>>, Option<JoinHandle<()>>) {
        self.slot.set(State::Go(job));
        (std::mem::take(&mut self.workers), self.offpath.take())
    }
}

impl Drop for Crew {
    /// A crew never started (the sandbox failed before its hand-over): its threads end.
    fn drop(&mut self) {
        self.slot.set(State::Dismissed);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        if let Some(t) = self.offpath.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sandbox that fails before its hand-over must not leave the gate's threads behind,
    /// parked forever in the lasso process (`up`'s monitor lives as long as its sandbox).
    #[test]
    fn a_crew_never_started_ends_its_threads() {
        let crew = Crew::hire().unwrap();
        let slot = Arc::downgrade(&crew.slot);
        // Drop joins every thread: returning at all means each one ended.
        drop(crew);
        assert!(
            slot.upgrade().is_none(),
            "a thread still holds the crew's slot"
        );
    }
}
