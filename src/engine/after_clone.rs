//! A helper thread of the runtime's caller that must not run while init is cloned, and the
//! go-ahead `create` gives it once init exists (`CreateOptions::after_clone`). Init is cloned
//! with clone3, which copies the process's memory but runs no fork handlers: a thread inside
//! malloc at that instant would leave the allocator's lock taken in init, which allocates.
//! Owns only that handshake (a mutex and a condition variable, no allocation while waiting),
//! and one task the caller leaves for `create`'s own thread to run while init sets up.

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum HelperState {
    #[default]
    Starting,
    Parked,
    Released,
    /// `create` failed before init was cloned: the helper's work has no sandbox to serve.
    Abandoned,
}

/// A helper thread's go-ahead, given by `create` right after init is cloned. A caller that
/// wants work done beside init's setup (the exec gate's program scan) starts its thread before
/// `create` and lets it `park` here (a futex wait, holding nothing of the allocator); `create`
/// waits until it did (`wait_parked`) right before clone3, so the thread's start overlaps
/// create's own work instead of delaying it, and releases it once init exists. A caller whose
/// `create` fails releases it itself.
#[derive(Default, Clone)]
pub struct AfterClone {
    state: std::sync::Arc<(std::sync::Mutex<HelperState>, std::sync::Condvar)>,
    meanwhile: std::sync::Arc<std::sync::Mutex<Option<Task>>>,
}

/// Work for `create`'s own thread while init sets up (see `AfterClone::meanwhile`).
type Task = Box<dyn FnOnce() + Send>;

impl std::fmt::Debug for AfterClone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfterClone").finish_non_exhaustive()
    }
}

impl AfterClone {
    fn wait_for(&self, done: impl Fn(HelperState) -> bool) {
        let (m, cv) = &*self.state;
        let mut st = m.lock().unwrap_or_else(|e| e.into_inner());
        while !done(*st) {
            st = cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// In the helper thread, first thing: says it is parked and waits for the release. True when
    /// init was cloned, false when the caller abandoned the sandbox before that (`abandon`).
    pub fn park(&self) -> bool {
        {
            let (m, cv) = &*self.state;
            let mut st = m.lock().unwrap_or_else(|e| e.into_inner());
            if *st == HelperState::Starting {
                *st = HelperState::Parked;
            }
            cv.notify_all();
        }
        self.wait_for(|s| matches!(s, HelperState::Released | HelperState::Abandoned));
        let (m, _) = &*self.state;
        *m.lock().unwrap_or_else(|e| e.into_inner()) == HelperState::Released
    }

    /// In the caller: returns once the helper is parked (or already released).
    pub fn wait_parked(&self) {
        self.wait_for(|s| s != HelperState::Starting);
    }

    /// Lets the helper run: init exists.
    pub fn release(&self) {
        let (m, cv) = &*self.state;
        *m.lock().unwrap_or_else(|e| e.into_inner()) = HelperState::Released;
        cv.notify_all();
    }

    /// Leaves `task` for `create` to run on its own thread once init was cloned and goes on with
    /// its setup, before `create` waits for init to be ready: that thread is idle then and
    /// already running, where a woken helper thread may first wait for a CPU. A failed
    /// `create` drops it unrun (`abandon`).
    pub fn meanwhile(&self, task: impl FnOnce() + Send + 'static) {
        *self.meanwhile.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(task));
    }

    /// In `create`, while init sets up: runs the caller's task, if any.
    pub fn run_meanwhile(&self) {
        let task = self.meanwhile.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = task {
            t();
        }
    }

    /// Lets the helper go when `create` failed; its `park` says false unless the engine had
    /// cloned init (and released it) before the failure.
    pub fn abandon(&self) {
        let (m, cv) = &*self.state;
        let mut st = m.lock().unwrap_or_else(|e| e.into_inner());
        if *st != HelperState::Released {
            *st = HelperState::Abandoned;
        }
        cv.notify_all();
        drop(st);
        drop(self.meanwhile.lock().unwrap_or_else(|e| e.into_inner()).take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn a_parked_helper_does_nothing_until_released() {
        let gate = AfterClone::default();
        let ran = Arc::new(AtomicBool::new(false));
        let (g, r) = (gate.clone(), ran.clone());
        let helper = std::thread::spawn(move || {
            let cloned = g.park();
            r.store(true, Ordering::SeqCst);
            cloned
        });
        gate.wait_parked();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(
            !ran.load(Ordering::SeqCst),
            "the helper ran before its release"
        );
        gate.release();
        assert!(
            helper.join().unwrap(),
            "a released helper was told init was not cloned"
        );
        assert!(ran.load(Ordering::SeqCst));
    }

    #[test]
    fn an_abandoned_helper_learns_that_no_init_was_cloned() {
        let gate = AfterClone::default();
        let g = gate.clone();
        let helper = std::thread::spawn(move || g.park());
        gate.wait_parked();
        gate.abandon();
        assert!(!helper.join().unwrap());
        // Once released, a later abandon (create failing after the clone) changes nothing.
        let gate = AfterClone::default();
        gate.release();
        gate.abandon();
        assert!(gate.park());
    }
}
