//! The writer: one per sandbox, shared by the threads that record (exec gate, DNS, engine).
//! `append` formats, MACs and writes one whole line with one `write(2)` on an `O_APPEND` file
//! while holding an `flock`, so lines of two processes never interleave and the chain stays one
//! chain; it never waits for the disk. A background thread makes the log durable (`fdatasync`)
//! at least every 100 ms and then updates the head file; `seal` writes the closing entry and
//! returns only when everything is on disk. It owns the log files of its sandbox id and nothing
//! else; it must not depend on the engine.

mod chain;
mod flush;
mod sealing;

use super::event::{Event, Genesis, Kind, Outcome};
use super::files::LogFiles;
use super::keys::{Key, KeyRing};
use super::line::ZERO_MAC;
use super::AuditError;
use flush::FlushSlot;
pub use sealing::Sealing;
use serde_json::json;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// The longest time an appended entry waits before it is handed to `fdatasync`.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// Tunables of a writer.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// A segment that has reached this size is sealed and the log continues in the next one.
    pub max_segment_bytes: u64,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            max_segment_bytes: 64 << 20,
        }
    }
}

/// Proof that a log was closed: where it is and the MAC of its seal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedLog {
    pub files: LogFiles,
    pub key_id: String,
    /// The segment holding the seal entry.
    pub segment: u32,
    /// The `seq` of the seal entry within that segment.
    pub seq: u64,
    pub mac: String,
}

impl SealedLog {
    /// Segment 0 of the log, the path `lasso audit verify` takes.
    pub fn path(&self) -> PathBuf {
        self.files.segment_path(0)
    }
}

/// Appends entries to one sandbox's hash-chained log. `append` takes `&self`: share the writer
/// between threads with an `Arc`.
pub struct Writer {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
}

struct Shared {
    files: LogFiles,
    ring: KeyRing,
    genesis: Genesis,
    host: String,
    max_segment: u64,
    state: Mutex<State>,
    slot: Mutex<FlushSlot>,
    /// Held through each flush (and the flusher's first directory sync), so flushes run one
    /// at a time and each takes its snapshot after the one before it ended: heads are written
    /// in order, and a flush that returns has every earlier one behind it.
    flushing: Mutex<()>,
    tick: Condvar,
}

struct State {
    /// The chain's key (named by the genesis of the current segment).
    key: Key,
    file: Arc<File>,
    segment: u32,
    /// Where this process believes the segment ends; `None` until the segment was read.
    end: Option<u64>,
    next_seq: u64,
    last_mac: [u8; 64],
    sealed: bool,
    buf: Vec<u8>,
}

/// An exclusive `flock` on a segment, released on drop.
struct FileLock(Arc<File>);

impl FileLock {
    fn acquire(file: &Arc<File>, path: &Path) -> Result<FileLock, AuditError> {
        rustix::fs::flock(&**file, rustix::fs::FlockOperation::LockExclusive).map_err(|e| {
            AuditError::Io {
                path: path.into(),
                source: e.into(),
            }
        })?;
        Ok(FileLock(file.clone()))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(&*self.0, rustix::fs::FlockOperation::Unlock);
    }
}

fn open_segment(path: &Path) -> Result<File, AuditError> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(AuditError::io(path))
}

/// The highest segment of the log on disk, 0 for a new log. Listing the directory costs one
/// entry per log of every sandbox ever run (thousands on a used host, 1-2 ms of CPU at each
/// start, growing), so a log with neither segment 0 nor a head is taken as new without it:
/// lasso never removes either, so only a tampered log has later segments without them, and
/// `lasso audit verify` reports that log whatever this writer does.
fn last_segment(files: &LogFiles) -> Result<u32, AuditError> {
    let absent = |p: &Path| matches!(fs::symlink_metadata(p), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
    if absent(&files.segment_path(0)) && absent(&files.head_path()) {
        return Ok(0);
    }
    Ok(files.segments()?.last().copied().unwrap_or(0))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another appending thread leaves the state consistent (every field is
    // updated after the write it describes), so the poison flag carries no meaning here.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Writer {
    /// Opens the log of `genesis.sandbox_id` in `log_dir` with default options.
    pub fn create(
        log_dir: &Path,
        keyring: &KeyRing,
        genesis: Genesis,
    ) -> Result<Writer, AuditError> {
        Writer::create_with(log_dir, keyring, genesis, WriterOptions::default())
    }

    /// Opens the log of `genesis.sandbox_id` in `log_dir`:
    /// - no log yet: starts a chain with a genesis entry under the ring's current key;
    /// - a sealed log: continues it in a new segment whose genesis names the seal's MAC;
    /// - an unsealed log (another live writer, or one that crashed after whole lines): joins
    ///   its chain under the key it was started with.
    pub fn create_with(
        log_dir: &Path,
        keyring: &KeyRing,
        genesis: Genesis,
        opts: WriterOptions,
    ) -> Result<Writer, AuditError> {
        let files = LogFiles::new(log_dir, &genesis.sandbox_id)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(log_dir)
            .map_err(AuditError::io(log_dir))?;
        let mut segment = last_segment(&files)?;
        // A crash between a rotation's seal and the next segment's genesis leaves an empty
        // segment: start from the one before, whose seal leads the way.
        if segment > 0
            && fs::metadata(files.segment_path(segment))
                .map(|m| m.len() == 0)
                .unwrap_or(true)
        {
            segment -= 1;
        }
        let file = Arc::new(open_segment(&files.segment_path(segment))?);
        let host = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        let slot = FlushSlot {
            file: file.clone(),
            key: keyring.current().clone(),
            segment,
            last: None,
            sealed: false,
            dirty: false,
            dir_dirty: true,
            stop: false,
            flush_at_stop: false,
            final_flushed: false,
            retired: Vec::new(),
            error: None,
        };
        let state = State {
            key: keyring.current().clone(),
            file,
            segment,
            end: None,
            next_seq: 0,
            last_mac: ZERO_MAC,
            sealed: false,
            buf: Vec::with_capacity(1024),
        };
        let shared = Arc::new(Shared {
            files,
            ring: keyring.clone(),
            genesis,
            host,
            max_segment: opts.max_segment_bytes.max(1),
            state: Mutex::new(state),
            slot: Mutex::new(slot),
            flushing: Mutex::new(()),
            tick: Condvar::new(),
        });
        {
            let mut st = lock(&shared.state);
            let guard = shared.catch_up(&mut st)?;
            if st.sealed {
                // Continue a closed log: a new segment, under the current key.
                st.key = shared.ring.current().clone();
                st.sealed = false;
                let _next = shared.next_segment(&mut st, guard, false)?;
            }
        }
        let flusher = {
            let sh = shared.clone();
            std::thread::Builder::new()
                .name("audit-flush".into())
                .spawn(move || sh.flush_loop())
                .map_err(AuditError::io(shared.files.dir()))?
        };
        Ok(Writer {
            shared,
            flusher: Some(flusher),
        })
    }

    /// Appends one event. Returns once the line is in the kernel (it survives the death of this
    /// process), not once it is on disk; that happens within [`FLUSH_INTERVAL`].
    pub fn append(&self, event: Event) -> Result<(), AuditError> {
        if matches!(event.kind, Kind::Genesis | Kind::Seal) {
            return Err(AuditError::InvalidEvent(format!(
                "kind {} is written by the writer itself (at creation and at seal)",
                event.kind
            )));
        }
        if !event.details.is_object() {
            return Err(AuditError::InvalidEvent(
                "details must be a JSON object".into(),
            ));
        }
        let sh = &*self.shared;
        let mut st = lock(&sh.state);
        if st.sealed {
            return Err(AuditError::Sealed {
                path: sh.files.segment_path(0),
            });
        }
        let mut guard = sh.catch_up(&mut st)?;
        if st.sealed {
            return Err(AuditError::Sealed {
                path: sh.files.segment_path(0),
            });
        }
        if st.end.unwrap_or(0) >= sh.max_segment && st.next_seq > 1 {
            guard = sh.rotate(&mut st, guard)?;
        }
        sh.write_entry(
            &mut st,
            event.kind,
            event.outcome,
            &event.reason,
            &event.details,
        )?;
        drop(guard);
        Ok(())
    }

    /// Blocks until every entry appended so far is on disk and the head file names it.
    pub fn sync(&self) -> Result<(), AuditError> {
        self.shared.flush_now()
    }

    /// Segment 0 of this writer's log.
    pub fn path(&self) -> PathBuf {
        self.shared.files.segment_path(0)
    }

    /// Writes the seal entry (in the kernel, not yet durable) and marks the log sealed.
    fn write_seal(&self) -> Result<SealedLog, AuditError> {
        let sh = &*self.shared;
        let mut st = lock(&sh.state);
        if st.sealed {
            return Err(AuditError::Sealed {
                path: sh.files.segment_path(0),
            });
        }
        let guard = sh.catch_up(&mut st)?;
        if st.sealed {
            return Err(AuditError::Sealed {
                path: sh.files.segment_path(0),
            });
        }
        let details = json!({"rotate": false});
        sh.write_entry(&mut st, Kind::Seal, Outcome::Info, "log sealed", &details)?;
        st.sealed = true;
        sh.publish(&st);
        drop(guard);
        Ok(SealedLog {
            files: sh.files.clone(),
            key_id: st.key.id().to_string(),
            segment: st.segment,
            seq: st.next_seq - 1,
            mac: String::from_utf8_lossy(&st.last_mac).into_owned(),
        })
    }

    /// Closes the log with a seal entry and returns once it and everything before it is durable.
    pub fn seal(mut self) -> Result<SealedLog, AuditError> {
        let sealed = self.write_seal()?;
        // The flusher is told to stop but not waited for before the last flush: that flush
        // queues behind any flush of the flusher's (see `Shared::flushing`), and the caller's
        // `fdatasync` starts without waiting for that thread to wake up and exit first.
        let flushed = match self.flusher.take() {
            Some(h) => {
                lock(&self.shared.slot).stop = true;
                self.shared.tick.notify_all();
                let flushed = self.shared.flush_now();
                let _ = h.join();
                flushed
            }
            None => self.shared.flush_now(),
        };
        flushed?;
        if let Some(e) = lock(&self.shared.slot).error.take() {
            return Err(AuditError::Io {
                path: self.path(),
                source: std::io::Error::other(e),
            });
        }
        Ok(sealed)
    }

    fn stop_flusher(&mut self) {
        if let Some(h) = self.flusher.take() {
            lock(&self.shared.slot).stop = true;
            self.shared.tick.notify_all();
            let _ = h.join();
        }
    }
}

impl Drop for Writer {
    /// A writer dropped without `seal` leaves an unsealed log (as a crash would), but first
    /// makes what it wrote durable.
    fn drop(&mut self) {
        if self.flusher.is_some() {
            self.stop_flusher();
            if let Err(e) = self.shared.flush_now() {
                tracing::error!(
                    "audit log {}: final flush failed: {e}",
                    self.path().display()
                );
            }
        }
    }
}
