//! The exec counts `lasso status` shows (allowed and blocked execs of a sandbox's gate, and of
//! each `lasso exec`/`shell` session's), kept in `gate*.json` files in the sandbox's directory.
//!
//! The file is rewritten by a small thread of its own, `COUNTS_EVERY` (100 ms) after the first
//! exec it does not hold yet, at most that often while execs come, and at once when the keeper
//! is closed (except a sandbox's own keeper, whose directory goes with it): a create, write and
//! rename of `gate.json` per exec cost the gate's threads more CPU on a 2-core machine than all
//! of the exec's own checks.

use crate::engine::state::write_atomic;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// The longest the counts file lags behind the execs while the sandbox runs.
const COUNTS_EVERY: Duration = Duration::from_millis(100);

/// Counts of gated execs, kept beside the record for `lasso status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExecCounts {
    pub allowed: u64,
    pub blocked: u64,
}

pub const COUNTS_FILE: &str = "gate.json";

/// A sandbox's counts: its monitor's plus those of every `lasso exec`/`shell` session in it
/// (`gate*.json`; zero when there are none yet).
pub fn read_counts(sandbox_dir: &Path) -> ExecCounts {
    let mut total = ExecCounts::default();
    for e in std::fs::read_dir(sandbox_dir)
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().to_string();
        if !(name.starts_with("gate") && name.ends_with(".json")) {
            continue;
        }
        let c: ExecCounts = std::fs::read(e.path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        total.allowed += c.allowed;
        total.blocked += c.blocked;
    }
    total
}

/// The counts of one gate and the thread that keeps their file: the gate's workers count, the
/// thread writes.
pub(super) struct CountsKeeper {
    counts: Arc<Counts>,
    /// The thread that writes the file, started at the first exec (see `count`).
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Whether closing writes the last counts (see `ending_with_its_sandbox`).
    write_at_close: bool,
    /// The thread waits for `start` (see `started_later`).
    held: AtomicBool,
}

impl CountsKeeper {
    /// Counts kept in `path` (`gate*.json` in the sandbox's directory).
    pub(super) fn new(path: PathBuf) -> CountsKeeper {
        CountsKeeper {
            counts: Arc::new(Counts::new(path)),
            thread: Mutex::new(None),
            write_at_close: true,
            held: AtomicBool::new(false),
        }
    }

    /// The counts of a sandbox's own gate (its monitor's, not an exec session's): closed only
    /// when the sandbox's init has ended, and the sandbox's directory, which holds the file, is
    /// removed right after. Its only reader, `lasso status`, lists live sandboxes only, so the
    /// last counts are not written then: a short run (`lasso run -- /bin/true`) creates no
    /// counts file at all instead of creating one just before its removal, on the path from
    /// init's exit to the seal. (An exec session's counts and `lasso-runc`'s, whose state
    /// outlives the container, are still written at close.)
    pub(super) fn ending_with_its_sandbox(mut self) -> CountsKeeper {
        self.write_at_close = false;
        self
    }

    /// The thread is not started by an exec but by the owner's `start`, which it calls within
    /// `COUNTS_EVERY` of the gate's start: a command that ends before then (`lasso run --
    /// /bin/true`) starts, wakes and joins no thread for a file that its cleanup removes right
    /// after (with `ending_with_its_sandbox`). The file still follows the execs within
    /// `COUNTS_EVERY` from then on: the thread's first write is due that long after the first
    /// exec it does not hold, however late the thread started.
    pub(super) fn started_later(self) -> CountsKeeper {
        self.held.store(true, Ordering::Relaxed);
        self
    }

    /// Lets the thread start: now, when execs were counted, else at the next exec.
    pub(super) fn start(&self) {
        self.held.store(false, Ordering::Relaxed);
        if self.counts.lock().dirty {
            self.start_thread();
        }
    }

    /// Counts one exec; the file follows within `COUNTS_EVERY`. The thread starts at the first
    /// exec rather than with the keeper: an exec session's keeper exists while the engine still
    /// forks from this process (a fork of a threaded process may inherit a held malloc lock),
    /// and by the first exec it no longer does.
    pub(super) fn count(&self, blocked: bool) {
        let counter = if blocked {
            &self.counts.blocked
        } else {
            &self.counts.allowed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.counts.touch();
        if !self.held.load(Ordering::Relaxed) {
            self.start_thread();
        }
    }

    /// Starts the thread unless it runs (or ran: a closed keeper starts none).
    fn start_thread(&self) {
        let mut t = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        if t.is_none() && !self.counts.lock().closed {
            let c = self.counts.clone();
            match std::thread::Builder::new()
                .name("gate-counts".into())
                .spawn(move || c.serve())
            {
                Ok(h) => *t = Some(h),
                // No thread: the file is written at the end only (and `lasso status` lags).
                Err(e) => tracing::warn!("exec gate: counts thread: {e}"),
            }
        }
    }

    /// The sandbox or session is ending: stops the thread and brings the file up to date now,
    /// not within `COUNTS_EVERY` (unless `ending_with_its_sandbox`). Idempotent.
    pub(super) fn close(&self) {
        let t = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(t) = t else {
            let dirty = {
                let mut st = self.counts.lock();
                // No thread starts after this (`start_thread`).
                st.closed = true;
                std::mem::take(&mut st.dirty)
            };
            if dirty && self.write_at_close {
                self.counts.write();
            }
            return;
        };
        {
            let mut st = self.counts.lock();
            st.closed = true;
            self.counts.wake.notify_one();
        }
        let _ = t.join();
        if self.write_at_close {
            self.counts.write();
        }
    }
}

impl Drop for CountsKeeper {
    fn drop(&mut self) {
        self.close();
    }
}

/// The counts and their file. The gate's workers only add and mark them dirty; the counts
/// thread writes the file.
struct Counts {
    path: PathBuf,
    allowed: AtomicU64,
    blocked: AtomicU64,
    state: Mutex<CountsState>,
    wake: Condvar,
}

#[derive(Default)]
struct CountsState {
    /// Counted since the file was last written.
    dirty: bool,
    /// The thread waits for work (not between two writes): a worker must wake it.
    idle: bool,
    /// The sink is going: write what is left and end.
    closed: bool,
    /// When the counts first changed since the file was last written: the write is due
    /// `COUNTS_EVERY` later, also for a thread started after that change.
    dirty_since: Option<std::time::Instant>,
}

impl Counts {
    fn new(path: PathBuf) -> Counts {
        Counts {
            path,
            allowed: AtomicU64::new(0),
            blocked: AtomicU64::new(0),
            state: Mutex::new(CountsState::default()),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CountsState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the file now.
    fn write(&self) {
        let counts = ExecCounts {
            allowed: self.allowed.load(Ordering::Relaxed),
            blocked: self.blocked.load(Ordering::Relaxed),
        };
        if let Ok(text) = serde_json::to_vec(&counts) {
            let _ = write_atomic(&self.path, &text);
        }
    }

    /// Marks the counts changed; wakes the thread only when it waits for work (during a burst
    /// it sleeps out its interval and finds the flag set, with no wake-up per exec).
    fn touch(&self) {
        let mut st = self.lock();
        st.dirty = true;
        st.dirty_since.get_or_insert_with(std::time::Instant::now);
        if st.idle {
            st.idle = false;
            self.wake.notify_one();
        }
    }

    /// The counts thread: `COUNTS_EVERY` after the first exec not yet in the file, a write.
    /// The pause comes before the write, so a sandbox that ends within it (`lasso run --
    /// /bin/true`) writes its file once, at close, instead of twice.
    fn serve(&self) {
        let mut st = self.lock();
        loop {
            while !st.dirty && !st.closed {
                st.idle = true;
                st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            st.idle = false;
            if st.closed {
                return;
            }
            // Only closing cuts the pause short; the last write is `close`'s.
            let pause = st.dirty_since.map_or(COUNTS_EVERY, |t| {
                (t + COUNTS_EVERY).saturating_duration_since(std::time::Instant::now())
            });
            st = match self.wake.wait_timeout_while(st, pause, |s| !s.closed) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
            if st.closed {
                return;
            }
            st.dirty = false;
            st.dirty_since = None;
            drop(st);
            self.write();
            st = self.lock();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keeper(dir: &Path) -> CountsKeeper {
        CountsKeeper::new(dir.join(COUNTS_FILE))
    }

    /// Waits until the sandbox directory's counts file says `want`: a liveness wait, not a
    /// timing assertion (30 s is far past the 100 ms the counts thread waits).
    fn wait_for_counts(dir: &Path, want: ExecCounts) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while read_counts(dir) != want {
            assert!(
                std::time::Instant::now() < deadline,
                "gate.json never caught up: {:?}",
                read_counts(dir)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn thread_started(k: &CountsKeeper) -> bool {
        k.thread.lock().unwrap().is_some()
    }

    #[test]
    fn counts_held_for_the_owner_start_no_thread_until_asked_then_catch_up() {
        let dir = tempfile::tempdir().unwrap();
        let k = keeper(dir.path()).started_later();
        for _ in 0..3 {
            k.count(false);
        }
        // Held: no thread was started, so nothing writes the file however long one waits.
        assert!(!thread_started(&k), "a counts thread started");
        std::thread::sleep(COUNTS_EVERY * 2);
        assert!(
            !dir.path().join(COUNTS_FILE).exists(),
            "counts written before start"
        );
        k.start();
        k.count(true);
        let want = ExecCounts {
            allowed: 3,
            blocked: 1,
        };
        wait_for_counts(dir.path(), want);
    }

    #[test]
    fn a_keeper_closed_before_its_start_starts_no_thread() {
        let dir = tempfile::tempdir().unwrap();
        let k = keeper(dir.path()).ending_with_its_sandbox().started_later();
        k.count(false);
        k.close();
        k.start();
        assert!(!thread_started(&k), "a counts thread started after close");
    }

    #[test]
    fn a_burst_of_execs_is_counted_exactly_once_the_burst_ends() {
        let dir = tempfile::tempdir().unwrap();
        let k = keeper(dir.path());
        for _ in 0..2000 {
            k.count(false);
        }
        k.count(true);
        // No exec follows: the trailing write must still come.
        let want = ExecCounts {
            allowed: 2000,
            blocked: 1,
        };
        wait_for_counts(dir.path(), want);
    }

    #[test]
    fn the_counts_are_final_as_soon_as_the_keeper_closes_or_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let k = keeper(dir.path());
        for _ in 0..3 {
            k.count(false);
        }
        k.count(true);
        k.close();
        let want = ExecCounts {
            allowed: 3,
            blocked: 1,
        };
        assert_eq!(read_counts(dir.path()), want);
        let other = tempfile::tempdir().unwrap();
        let k = keeper(other.path());
        k.count(true);
        drop(k);
        let want = ExecCounts {
            allowed: 0,
            blocked: 1,
        };
        assert_eq!(read_counts(other.path()), want);
    }

    #[test]
    fn the_sandboxs_own_counts_leave_no_file_behind_at_its_end() {
        // While the sandbox runs, its counts still reach `lasso status` (the counts thread);
        // at its end nothing is created in the directory about to be removed.
        let dir = tempfile::tempdir().unwrap();
        let k = keeper(dir.path()).ending_with_its_sandbox();
        k.count(false);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while read_counts(dir.path()).allowed != 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "no counts while running"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let short = tempfile::tempdir().unwrap();
        let k = keeper(short.path()).ending_with_its_sandbox();
        k.count(true);
        k.close();
        drop(k);
        assert!(!short.path().join(COUNTS_FILE).exists());
    }
}
