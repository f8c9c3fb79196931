//! The exec gate wired to a sandbox: the decider (`gate_decider::PolicyDecider`, re-exported
//! here) and the audit sink that writes one `exec` entry per exec to the sandbox's log and keeps
//! the counts `lasso status` shows (kept by `gate_counts`); `attach`/`finish` start and end the
//! gate of a sandbox.
//!
//! Owns only this translation. Deciding is `policy`'s; notifications and ptrace are `gate`'s;
//! the log's chain is `audit`'s.

use super::gate_counts::CountsKeeper;
pub use super::gate_counts::{read_counts, ExecCounts, COUNTS_FILE};
pub use super::gate_decider::PolicyDecider;
use super::SandboxError;
use crate::audit::{Event, ExecDetails, Kind, Outcome, Writer};
use crate::gate::Monitor;
use crate::gate::{ExecAudit, ExecOutcome, ExecRequest, GateVerdict};
use crate::policy::{AuditRecord, ResolvedProfile};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The audit side: one entry per exec, as the profile's `[audit]` asks.
pub struct AuditSink {
    /// Set later for an exec session (see `set_writer`); entries wait meanwhile.
    log: super::audit_log::PendingLog,
    record: AuditRecord,
    enabled: bool,
    counts: CountsKeeper,
}

impl AuditSink {
    /// `counts_path`: where this sink keeps its counts (`gate*.json` in the sandbox's dir).
    pub fn new(writer: Arc<Writer>, profile: &ResolvedProfile, counts_path: PathBuf) -> AuditSink {
        AuditSink::with_log(Some(writer), profile, counts_path)
    }

    fn with_log(
        writer: Option<Arc<Writer>>,
        profile: &ResolvedProfile,
        counts_path: PathBuf,
    ) -> AuditSink {
        AuditSink {
            log: super::audit_log::PendingLog::new("exec", writer),
            record: profile.audit.record,
            enabled: profile.audit.enabled,
            counts: CountsKeeper::new(counts_path),
        }
    }
}

impl AuditSink {
    /// The sink of a sandbox's own gate: its counts end with the sandbox (see
    /// `CountsKeeper::ending_with_its_sandbox`).
    pub fn ending_with_its_sandbox(mut self) -> AuditSink {
        self.counts = self.counts.ending_with_its_sandbox();
        self
    }

    /// The counts thread waits for the owner's `start_counts` (see
    /// `CountsKeeper::started_later`).
    pub fn counts_started_later(mut self) -> AuditSink {
        self.counts = self.counts.started_later();
        self
    }

    /// Lets the counts thread start: now, when execs were counted, else at the next exec.
    pub fn start_counts(&self) {
        self.counts.start();
    }

    /// A sink whose log is opened later: a writer runs a flush thread, and the engine's exec
    /// forks from this process meanwhile (a fork of a threaded process may inherit a held
    /// malloc lock).
    pub fn deferred(profile: &ResolvedProfile, counts_path: PathBuf) -> AuditSink {
        AuditSink::with_log(None, profile, counts_path)
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
    /// file is brought up to date now.
    pub fn take_writer(&self) -> Option<Arc<Writer>> {
        self.counts.close();
        self.log.take_writer()
    }

    fn write(&self, event: Event) {
        self.log.write(event)
    }
}

impl ExecAudit for AuditSink {
    fn exec(&self, req: &ExecRequest, verdict: &GateVerdict, outcome: ExecOutcome) {
        let out = match outcome {
            ExecOutcome::Ran => ("ran", Outcome::Allowed),
            ExecOutcome::Refused => ("refused", Outcome::Blocked),
            ExecOutcome::KilledMismatch => ("killed", Outcome::Blocked),
        };
        self.counts.count(out.1 == Outcome::Blocked);
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

    #[test]
    fn every_outcome_is_counted_and_final_once_the_log_is_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let s = sink(dir.path());
        for _ in 0..3 {
            exec(&s, ExecOutcome::Ran);
        }
        exec(&s, ExecOutcome::Refused);
        exec(&s, ExecOutcome::KilledMismatch);
        s.take_writer();
        let want = ExecCounts {
            allowed: 3,
            blocked: 2,
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
}
