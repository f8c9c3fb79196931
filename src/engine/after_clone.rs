//! A helper thread of the runtime's caller that must not run while init is cloned, and the
//! go-ahead `create` gives it once init exists (`CreateOptions::after_clone`). Init is cloned
//! with clone3, which copies the process's memory but runs no fork handlers: a thread inside
//! malloc at that instant would leave the allocator's lock taken in init, which allocates.
//! Owns only that handshake (a mutex and a condition variable, no allocation while waiting).

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum HelperState {
    #[default]
    Starting,
    Parked,
    Released,
}

/// A helper thread's go-ahead, given by `create` right after init is cloned. A caller that
/// wants work done beside init's setup (the exec gate's program scan) starts its thread before
/// `create` and lets it `park` here (a futex wait, holding nothing of the allocator); `create`
/// waits until it did (`wait_parked`) right before clone3, so the thread's start overlaps
/// create's own work instead of delaying it, and releases it once init exists. A caller whose
/// `create` fails releases it itself.
#[derive(Debug, Default, Clone)]
pub struct AfterClone(std::sync::Arc<(std::sync::Mutex<HelperState>, std::sync::Condvar)>);

impl AfterClone {
    fn wait_for(&self, done: impl Fn(HelperState) -> bool) {
        let (m, cv) = &*self.0;
        let mut st = m.lock().unwrap_or_else(|e| e.into_inner());
        while !done(*st) {
            st = cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// In the helper thread, first thing: says it is parked and waits for the release.
    pub fn park(&self) {
        {
            let (m, cv) = &*self.0;
            let mut st = m.lock().unwrap_or_else(|e| e.into_inner());
            if *st == HelperState::Starting {
                *st = HelperState::Parked;
            }
            cv.notify_all();
        }
        self.wait_for(|s| s == HelperState::Released);
    }

    /// In the caller: returns once the helper is parked (or already released).
    pub fn wait_parked(&self) {
        self.wait_for(|s| s != HelperState::Starting);
    }

    /// Lets the helper run.
    pub fn release(&self) {
        let (m, cv) = &*self.0;
        *m.lock().unwrap_or_else(|e| e.into_inner()) = HelperState::Released;
        cv.notify_all();
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
            g.park();
            r.store(true, Ordering::SeqCst);
        });
        gate.wait_parked();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(
            !ran.load(Ordering::SeqCst),
            "the helper ran before its release"
        );
        gate.release();
        helper.join().unwrap();
        assert!(ran.load(Ordering::SeqCst));
    }
}
