//! The exec gate wired to a sandbox: the decider (`gate_decider::PolicyDecider`, re-exported
//! here) and the audit sink that writes one `exec` entry per exec to the sandbox's log and keeps
//! the counts `lasso status` shows; `attach`/`finish` start and end the gate of a sandbox.
//!
//! The counts file is rewritten by a small thread of its own, `COUNTS_EVERY` (100 ms) after the
//! first exec it does not hold yet, at most that often while execs come, and at once when the
//! sink lets go of its log (except the sandbox's own sink, whose directory goes with it): a
//! create, write and rename of `gate.json` per exec cost the gate's threads more CPU on a
//! 2-core machine than all of the exec's own checks.
//!
//! Owns only this translation. Deciding is `policy`'s; notifications and ptrace are `gate`'s;
//! the log's chain is `audit`'s.

pub use super::gate_decider::PolicyDecider;
use super::SandboxError;
use crate::audit::{Event, ExecDetails, Kind, Outcome, Writer};
use crate::engine::state::write_atomic;
use crate::gate::Monitor;
use crate::gate::{ExecAudit, ExecOutcome, ExecRequest, GateVerdict};
use crate::policy::{AuditRecord, ResolvedProfile};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
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

/// The audit side: one entry per exec, as the profile's `[audit]` asks.
pub struct AuditSink {
    /// Set later for an exec session (see `set_writer`); entries wait meanwhile.
    log: super::audit_log::PendingLog,
    record: AuditRecord,
    enabled: bool,
    counts: Arc<Counts>,
    /// The thread that writes the counts file, started at the first exec (see `Counts`).
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Whether closing writes the last counts (see `ending_with_its_sandbox`).
    write_at_close: bool,
    /// The counts thread waits for `start_counts` (see `counts_started_later`).
    counts_held: std::sync::atomic::AtomicBool,
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

impl AuditSink {
    /// `counts_path`: where this sink keeps its counts (`gate*.json` in the sandbox's dir).
    pub fn new(writer: Arc<Writer>, profile: &ResolvedProfile, counts_path: PathBuf) -> AuditSink {
        AuditSink {
            log: super::audit_log::PendingLog::new("exec", Some(writer)),
            record: profile.audit.record,
            enabled: profile.audit.enabled,
            counts: Arc::new(Counts::new(counts_path)),
            writer_thread: Mutex::new(None),
            write_at_close: true,
            counts_held: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl AuditSink {
    /// The sink of a sandbox's own gate (its monitor's, not an exec session's): it closes
    /// only when the sandbox's init has ended, and the sandbox's directory, which holds the
    /// counts file, is removed right after. Its only reader, `lasso status`, lists live
    /// sandboxes only, so the last counts are not written then: a short run (`lasso run --
    /// /bin/true`) creates no counts file at all instead of creating one just before its
    /// removal, on the path from init's exit to the seal. (An exec session's sink and
    /// `lasso-runc`'s, whose state outlives the container, still write at close.)
    pub fn ending_with_its_sandbox(mut self) -> AuditSink {
        self.write_at_close = false;
        self
    }

    /// The counts thread is not started by an exec but by the owner's `start_counts`, which
    /// it calls within `COUNTS_EVERY` of the gate's start: a command that ends before then
    /// (`lasso run -- /bin/true`) starts, wakes and joins no thread for a file that its
    /// cleanup removes right after (with `ending_with_its_sandbox`). The file still follows the
    /// execs within `COUNTS_EVERY` from then on: the thread's first write is due that long
    /// after the first exec it does not hold, however late the thread started.
    pub fn counts_started_later(self) -> AuditSink {
        self.counts_held.store(true, Ordering::Relaxed);
        self
    }

    /// Lets the counts thread start: now, when execs were counted, else at the next exec.
    pub fn start_counts(&self) {
        self.counts_held.store(false, Ordering::Relaxed);
        if self.counts.lock().dirty {
            self.start_counts_thread();
        }
    }

    /// A sink whose log is opened later: a writer runs a flush thread, and the engine's exec
    /// forks from this process meanwhile (a fork of a threaded process may inherit a held
    /// malloc lock).
    pub fn deferred(profile: &ResolvedProfile, counts_path: PathBuf) -> AuditSink {
        AuditSink {
            log: super::audit_log::PendingLog::new("exec", None),
            record: profile.audit.record,
            enabled: profile.audit.enabled,
            counts: Arc::new(Counts::new(counts_path)),
            writer_thread: Mutex::new(None),
            write_at_close: true,
            counts_held: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Attaches the log and writes what waited for it.
    pub fn set_writer(&self, w: Arc<Writer>) {
        self.log.set_writer(w)
    }

    /// The entries that waited for a log that could not be opened (see `PendingLog::abandon`).
    pub fn abandon(&self) -> Vec<Event> {
        self.log.abandon()
    }

    /// Lets go of the log (so that its owner can seal it). The sandbox is ending: the counts
    /// file is brought up to date now, not within `COUNTS_EVERY`.
    pub fn take_writer(&self) -> Option<Arc<Writer>> {
        self.close_counts();
        self.log.take_writer()
    }

    /// Counts one exec; the file follows within `COUNTS_EVERY`. The thread starts at the first
    /// exec rather than with the sink: an exec session's sink exists while the engine still
    /// forks from this process (see `deferred`), and by the first exec it no longer does.
    fn count(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
        self.counts.touch();
        if !self.counts_held.load(Ordering::Relaxed) {
            self.start_counts_thread();
        }
    }

    /// Starts the counts thread unless it runs (or ran: a closed sink starts none).
    fn start_counts_thread(&self) {
        let mut t = self.writer_thread.lock().unwrap_or_else(|e| e.into_inner());
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

    /// Stops the counts thread and writes the final counts. Idempotent.
    fn close_counts(&self) {
        let t = self
            .writer_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(t) = t else {
            let dirty = {
                let mut st = self.counts.lock();
                // No thread starts after this (`start_counts_thread`).
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

    fn write(&self, event: Event) {
        self.log.write(event)
    }
}

impl Drop for AuditSink {
    fn drop(&mut self) {
        self.close_counts();
    }
}

impl ExecAudit for AuditSink {
    fn exec(&self, req: &ExecRequest, verdict: &GateVerdict, outcome: ExecOutcome) {
        let (result, out) = match outcome {
            ExecOutcome::Ran => (&self.counts.allowed, ("ran", Outcome::Allowed)),
            ExecOutcome::Refused => (&self.counts.blocked, ("refused", Outcome::Blocked)),
            ExecOutcome::KilledMismatch => (&self.counts.blocked, ("killed", Outcome::Blocked)),
        };
        self.count(result);
        if !self.enabled || (self.record == AuditRecord::Blocked && out.1 == Outcome::Allowed) {
            return;
        }
        let details = ExecDetails {
            argv: req.argv.clone(),
            cwd: req.cwd.clone(),
            pid: req.pid as u32,
            ppid: req.ppid as u32,
            uid: req.uid,
            exe: req.exe.resolved.clone(),
            rule: verdict.rule.clone(),
        };
        let mut v = details.to_value();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("result".into(), out.0.into());
            obj.insert("dev".into(), req.exe.dev.into());
            obj.insert("ino".into(), req.exe.ino.into());
            if let Some(h) = req.exe.sha256 {
                obj.insert("sha256".into(), hex::encode(h).into());
            }
        }
        self.write(Event::new(Kind::Exec, out.1, verdict.reason.clone()).with_details(v));
    }
}

/// The monitor's end of the gate hand-over and init's end (passed to `Launch::create`).
pub fn socket_pair() -> Result<(UnixStream, UnixStream), SandboxError> {
    UnixStream::pair().map_err(super::io_err("socketpair for the exec gate"))
}

/// What the gate's early thread hands back: the decider (after its program scan) and the
/// gate's parts that need no listener (`gate::Prepared`: the loader's digests).
type Scanned = (PolicyDecider, crate::gate::Prepared);

/// The decider's program scan, running in its own thread (`start_scan`).
pub struct Scan(std::thread::JoinHandle<Scanned>);

/// What a new sandbox's gate needs before `create`: the hand-over socket pair (ours, init's),
/// the program scan already running, and the hook that holds the scan parked while the engine
/// clones init (a thread must not run during that clone). Without a profile there is no gate.
pub struct GateStart {
    pub sockets: Option<(UnixStream, UnixStream)>,
    pub scan: Option<Scan>,
    pub after_clone: crate::engine::container::AfterClone,
}

/// Prepares the gate of a sandbox about to be created (see `GateStart`): the scan runs beside
/// init's whole setup instead of after it.
/// `digest` is the profile's (`Launch::profile_digest`): it keys the scan's cache.
pub fn prepare_start(
    profile: Option<&Arc<ResolvedProfile>>,
    digest: &str,
    sandbox_dir: &Path,
) -> Result<GateStart, SandboxError> {
    let after_clone = crate::engine::container::AfterClone::default();
    let Some(p) = profile else {
        return Ok(GateStart {
            sockets: None,
            scan: None,
            after_clone,
        });
    };
    Ok(GateStart {
        sockets: Some(socket_pair()?),
        scan: Some(start_scan_keyed(
            p.clone(),
            Some(digest.to_string()).filter(|d| !d.is_empty()),
            sandbox_dir,
            Some(after_clone.clone()),
        )?),
        after_clone,
    })
}

/// Starts the decider's program scan (the host's program directories: thousands of names, each
/// asked of the policy) in a thread. With `after_clone`, the thread parks until the engine has
/// cloned init (see `engine::container::AfterClone`), so it can be started before `create` and
/// run beside init's whole setup.
pub fn start_scan(
    profile: Arc<ResolvedProfile>,
    sandbox_dir: &Path,
    after_clone: Option<crate::engine::container::AfterClone>,
) -> Result<Scan, SandboxError> {
    start_scan_keyed(profile, None, sandbox_dir, after_clone)
}

/// `start_scan` with the profile's digest, when the caller has it.
fn start_scan_keyed(
    profile: Arc<ResolvedProfile>,
    digest: Option<String>,
    sandbox_dir: &Path,
    after_clone: Option<crate::engine::container::AfterClone>,
) -> Result<Scan, SandboxError> {
    let runtime_dir = sandbox_dir.parent().map(Path::to_path_buf);
    let parked = after_clone.clone();
    let scan = std::thread::Builder::new()
        .name("gate-decider".into())
        .spawn(move || {
            if let Some(p) = parked {
                p.park();
            }
            let (decider, prepared) = match runtime_dir {
                Some(dir) => PolicyDecider::cached_prepared(profile, &dir, digest.as_deref()),
                None => (PolicyDecider::new(profile), crate::gate::Prepared::new()),
            };
            // Init exists by now (parked until its clone, or started after it): the gate's
            // threads may start, and wait here rather than at the hand-over.
            (decider, prepared.with_threads())
        })
        .map_err(super::io_err("start the exec gate's program scan"))?;
    // The engine's create waits for the park right before it clones init.
    drop(after_clone);
    Ok(Scan(scan))
}

/// After `start`: receives init's listener, traces init and serves the gate with the profile's
/// decider and the sandbox's audit log, then lets init go on to its execve. `Ok(None)` when
/// init died before handing the listener over (its own error is on its stderr; reap it).
pub fn attach(
    sock: &UnixStream,
    init: i32,
    profile: Arc<ResolvedProfile>,
    writer: Arc<Writer>,
    sandbox_dir: &Path,
) -> Result<Option<Monitor>, SandboxError> {
    // Init has been forked already and the audit writer's thread runs anyway: one more
    // thread forks nothing. The scan runs beside init's wait for the hand-over.
    let scan = start_scan(profile.clone(), sandbox_dir, None)?;
    attach_scanned(sock, init, &profile, scan, writer, sandbox_dir)
}

/// `attach` with the decider's scan already started (`start_scan`).
pub fn attach_scanned(
    sock: &UnixStream,
    init: i32,
    profile: &Arc<ResolvedProfile>,
    scan: Scan,
    writer: Arc<Writer>,
    sandbox_dir: &Path,
) -> Result<Option<Monitor>, SandboxError> {
    let sink = Arc::new(
        AuditSink::new(writer, profile, sandbox_dir.join(COUNTS_FILE)).ending_with_its_sandbox(),
    );
    attach_sink(sock, init, scan, sink)
}

/// `attach_scanned` before the sandbox's log is open: the gate serves at once and its entries
/// wait, in order, in the returned sink until `AuditSink::set_writer`. The caller opens the
/// log while init goes on to its execve, instead of holding init at its hand-over meanwhile.
/// The caller's clone of the sink must be dropped before the log is sealed (the sink holds
/// the writer).
pub fn attach_pending(
    sock: &UnixStream,
    init: i32,
    profile: &Arc<ResolvedProfile>,
    scan: Scan,
    sandbox_dir: &Path,
) -> Result<Option<(Monitor, Arc<AuditSink>)>, SandboxError> {
    let sink = Arc::new(
        AuditSink::deferred(profile, sandbox_dir.join(COUNTS_FILE)).ending_with_its_sandbox(),
    );
    Ok(attach_sink(sock, init, scan, sink.clone())?.map(|m| (m, sink)))
}

/// `attach_pending` with the counts thread started by the caller's `AuditSink::start_counts`
/// (see `counts_started_later`), which it must call within `COUNTS_EVERY`.
pub fn attach_pending_counts_later(
    sock: &UnixStream,
    init: i32,
    profile: &Arc<ResolvedProfile>,
    scan: Scan,
    sandbox_dir: &Path,
) -> Result<Option<(Monitor, Arc<AuditSink>)>, SandboxError> {
    let sink = Arc::new(
        AuditSink::deferred(profile, sandbox_dir.join(COUNTS_FILE))
            .ending_with_its_sandbox()
            .counts_started_later(),
    );
    Ok(attach_sink(sock, init, scan, sink.clone())?.map(|m| (m, sink)))
}

/// The start of the counts thread is due this long after the gate's start, for
/// `attach_pending_counts_later`: half of `COUNTS_EVERY`, so that a thread started then still
/// writes within `COUNTS_EVERY` of the first exec.
pub const COUNTS_START_AFTER: Duration = Duration::from_millis(50);

fn attach_sink(
    sock: &UnixStream,
    init: i32,
    scan: Scan,
    sink: Arc<AuditSink>,
) -> Result<Option<Monitor>, SandboxError> {
    let gate_err = |e: crate::gate::GateError| SandboxError::Protocol(format!("exec gate: {e}"));
    let received = crate::gate::recv_listener(sock.as_fd());
    let (decider, prepared) = scan
        .0
        .join()
        .map_err(|_| SandboxError::Protocol("exec gate: the program scan panicked".into()))?;
    let Ok(listener) = received else {
        return Ok(None);
    };
    let decider = Arc::new(decider);
    let m = Monitor::start_prepared(init, listener, decider, sink, prepared).map_err(gate_err)?;
    crate::gate::ack_traced(sock.as_fd()).map_err(gate_err)?;
    Ok(Some(m))
}

/// Waits for the gated tree to end; returns init's exit status as a shell reports it.
pub fn finish(m: Monitor, init: i32) -> Result<i32, SandboxError> {
    finish_leaving(m, init).0
}

/// `finish`, leaving the sandbox's mounts to be torn down when the caller drops the remains.
pub fn finish_leaving(m: Monitor, init: i32) -> (Result<i32, SandboxError>, crate::gate::Remains) {
    let (raw, remains) = m.wait_leaving();
    (exit_status(raw, init), remains)
}

fn exit_status(
    raw: Result<Option<i32>, crate::gate::GateError>,
    init: i32,
) -> Result<i32, SandboxError> {
    let raw = raw.map_err(|e| SandboxError::Protocol(format!("exec gate: {e}")))?;
    Ok(match raw {
        Some(raw) => nix::sys::wait::WaitStatus::from_raw(nix::unistd::Pid::from_raw(init), raw)
            .map(crate::engine::container::exit_code)
            .unwrap_or(255),
        None => 255,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{resolve, ProfileSource};

    fn sink(dir: &Path) -> AuditSink {
        let toml = dir.join("p.toml");
        std::fs::write(&toml, "[commands]\nblocked = [\"wipe\"]\n").unwrap();
        let src = ProfileSource::file(&toml).unwrap();
        let profile = resolve(src, &crate::paths::Dirs::current()).unwrap();
        AuditSink::deferred(&profile, dir.join(COUNTS_FILE))
    }

    fn exec(s: &AuditSink, outcome: ExecOutcome) {
        let req = ExecRequest {
            pid: 1,
            argv: vec![b"true".to_vec()],
            ..ExecRequest::default()
        };
        s.exec(&req, &GateVerdict::allow("test", None), outcome);
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

    #[test]
    fn counts_held_for_the_owner_start_no_thread_until_asked_then_catch_up() {
        let dir = tempfile::tempdir().unwrap();
        let s = sink(dir.path()).counts_started_later();
        for _ in 0..3 {
            exec(&s, ExecOutcome::Ran);
        }
        // Held: no thread was started, so nothing writes the file however long one waits.
        assert!(
            s.writer_thread.lock().unwrap().is_none(),
            "a counts thread started"
        );
        std::thread::sleep(COUNTS_EVERY * 2);
        assert!(
            !dir.path().join(COUNTS_FILE).exists(),
            "counts written before start_counts"
        );
        s.start_counts();
        exec(&s, ExecOutcome::Refused);
        let want = ExecCounts {
            allowed: 3,
            blocked: 1,
        };
        wait_for_counts(dir.path(), want);
    }

    #[test]
    fn a_sink_closed_before_its_counts_start_starts_no_thread() {
        let dir = tempfile::tempdir().unwrap();
        let s = sink(dir.path())
            .ending_with_its_sandbox()
            .counts_started_later();
        exec(&s, ExecOutcome::Ran);
        s.close_counts();
        s.start_counts();
        assert!(
            s.writer_thread.lock().unwrap().is_none(),
            "a counts thread started after close"
        );
    }

    #[test]
    fn a_burst_of_execs_is_counted_exactly_once_the_burst_ends() {
        let dir = tempfile::tempdir().unwrap();
        let s = sink(dir.path());
        for _ in 0..2000 {
            exec(&s, ExecOutcome::Ran);
        }
        exec(&s, ExecOutcome::Refused);
        // No exec follows: the trailing write must still come.
        let want = ExecCounts {
            allowed: 2000,
            blocked: 1,
        };
        wait_for_counts(dir.path(), want);
    }

    #[test]
    fn the_counts_are_final_as_soon_as_the_log_is_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let s = sink(dir.path());
        for _ in 0..3 {
            exec(&s, ExecOutcome::Ran);
        }
        exec(&s, ExecOutcome::KilledMismatch);
        s.take_writer();
        let want = ExecCounts {
            allowed: 3,
            blocked: 1,
        };
        assert_eq!(read_counts(dir.path()), want);
        // And a sink dropped without `take_writer` writes them too.
        let other = tempfile::tempdir().unwrap();
        let s = sink(other.path());
        exec(&s, ExecOutcome::Refused);
        drop(s);
        let want = ExecCounts {
            allowed: 0,
            blocked: 1,
        };
        assert_eq!(read_counts(other.path()), want);
    }

    #[test]
    fn the_sandboxs_own_sink_leaves_no_counts_file_behind_at_its_end() {
        // While the sandbox runs, its counts still reach `lasso status` (the counts thread);
        // at its end nothing is created in the directory about to be removed.
        let dir = tempfile::tempdir().unwrap();
        let s = sink(dir.path()).ending_with_its_sandbox();
        exec(&s, ExecOutcome::Ran);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while read_counts(dir.path()).allowed != 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "no counts while running"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let short = tempfile::tempdir().unwrap();
        let s = sink(short.path()).ending_with_its_sandbox();
        exec(&s, ExecOutcome::Refused);
        s.take_writer();
        drop(s);
        assert!(!short.path().join(COUNTS_FILE).exists());
    }
}
