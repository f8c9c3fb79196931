//! The writer: one per sandbox, shared by the threads that record (exec gate, DNS, engine).
//! `append` formats, MACs and writes one whole line with one `write(2)` on an `O_APPEND` file
//! while holding an `flock`, so lines of two processes never interleave and the chain stays one
//! chain; it never waits for the disk. A background thread makes the log durable (`fdatasync`)
//! at least every 100 ms and then replaces the head file; `seal` writes the closing entry and
//! returns only when everything is on disk. It owns the log files of its sandbox id and nothing
//! else; it must not depend on the engine.

use super::event::{Event, Genesis, Kind, Outcome};
use super::files::{self, Head, LogFiles};
use super::keys::{Key, KeyRing};
use super::line::{self, DetailsOf, Envelope, GenesisDetails, SealDetails, MAX_LINE, ZERO_MAC};
use super::{canon, AuditError};
use serde_json::{json, Value};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
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

/// What the flusher needs, behind its own lock. Appenders hold the state lock almost all the
/// time under load and std's mutex is not fair, so a flusher waiting for the state lock could
/// starve; this lock is held only for a few stores per append.
struct FlushSlot {
    file: Arc<File>,
    key: Key,
    segment: u32,
    /// `seq` and MAC of the last entry written, if any.
    last: Option<(u64, [u8; 64])>,
    sealed: bool,
    dirty: bool,
    dir_dirty: bool,
    stop: bool,
    /// Segments left by rotation that still need their final `fdatasync`.
    retired: Vec<Arc<File>>,
    error: Option<String>,
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
        let mut segment = files.segments()?.last().copied().unwrap_or(0);
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
            tick: Condvar::new(),
        });
        {
            let mut st = lock(&shared.state);
            let guard = shared.catch_up(&mut st)?;
            if st.sealed {
                // Continue a closed log: a new segment, under the current key.
                st.key = shared.ring.current().clone();
                let _next = shared.next_segment(&mut st, guard, false)?;
                st.sealed = false;
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

    /// Closes the log with a seal entry and returns once it and everything before it is durable.
    pub fn seal(mut self) -> Result<SealedLog, AuditError> {
        let sealed = {
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
            SealedLog {
                files: sh.files.clone(),
                key_id: st.key.id().to_string(),
                segment: st.segment,
                seq: st.next_seq - 1,
                mac: String::from_utf8_lossy(&st.last_mac).into_owned(),
            }
        };
        self.stop_flusher();
        self.shared.flush_now()?;
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

impl Shared {
    /// Takes the segment lock and brings `st` up to date with the file: reads the chain's key
    /// from a segment's genesis the first time, follows rotations made by other processes, and
    /// writes a genesis into an empty segment.
    fn catch_up(&self, st: &mut State) -> Result<FileLock, AuditError> {
        loop {
            let path = self.files.segment_path(st.segment);
            let guard = FileLock::acquire(&st.file, &path)?;
            // lseek(SEEK_END) reads i_size without the attribute work of fstat: this runs per append.
            let size = rustix::fs::seek(&*st.file, rustix::fs::SeekFrom::End(0)).map_err(|e| {
                AuditError::Io {
                    path: path.clone(),
                    source: e.into(),
                }
            })?;
            if Some(size) == st.end {
                return Ok(guard);
            }
            if size == 0 {
                let continues = (st.segment > 0)
                    .then(|| (st.segment - 1, st.next_seq.saturating_sub(1), st.last_mac));
                st.end = Some(0);
                self.write_genesis(st, continues)?;
                return Ok(guard);
            }
            if let Some(end) = st.end {
                if size < end {
                    return Err(AuditError::BadLog {
                        path,
                        why: format!("it shrank from {end} to {size} bytes while being written; run `lasso audit verify`"),
                    });
                }
            } else {
                st.key = self.segment_key(&path)?;
            }
            let tail = files::read_tail(&st.file, size, &path)?;
            if tail.torn {
                return Err(AuditError::TornTail { path });
            }
            let bad = |why: &str| AuditError::BadLog {
                path: path.clone(),
                why: format!("{why}; run `lasso audit verify` on it"),
            };
            let last = tail.last.ok_or_else(|| bad("it holds no whole entry"))?;
            if !line::mac_ok(&st.key, &last) {
                return Err(bad("its last entry does not verify"));
            }
            let env = Envelope::parse(&last)
                .ok_or_else(|| bad("its last entry is not an audit entry"))?;
            st.end = Some(size);
            st.next_seq = env.seq + 1;
            st.last_mac.copy_from_slice(env.mac.as_bytes());
            let rotate = env.kind == Kind::Seal.as_str()
                && DetailsOf::<SealDetails>::parse(&last).is_some_and(|d| d.rotate);
            st.sealed = env.kind == Kind::Seal.as_str() && !rotate;
            self.publish(st);
            if !rotate {
                return Ok(guard);
            }
            // Rotated by another process: follow it into the next segment.
            let next = Arc::new(open_segment(&self.files.segment_path(st.segment + 1))?);
            self.retire(std::mem::replace(&mut st.file, next));
            st.segment += 1;
            st.end = None;
            drop(guard);
            let next_path = self.files.segment_path(st.segment);
            if fs::metadata(&next_path)
                .map_err(AuditError::io(&next_path))?
                .len()
                == 0
            {
                // The rotating process died before the genesis: ours continues the seal.
                st.end = Some(0);
                let g = FileLock::acquire(&st.file, &next_path)?;
                if st
                    .file
                    .metadata()
                    .map_err(AuditError::io(&next_path))?
                    .len()
                    == 0
                {
                    self.write_genesis(st, Some((st.segment - 1, st.next_seq - 1, st.last_mac)))?;
                    return Ok(g);
                }
                st.end = None;
            }
        }
    }

    /// The key named by the genesis of the segment at `path`, after checking that it made it.
    fn segment_key(&self, path: &Path) -> Result<Key, AuditError> {
        let bad = |why: String| AuditError::BadLog {
            path: path.into(),
            why,
        };
        let first = files::first_line(path)?
            .ok_or_else(|| bad("its first line is not a whole entry".into()))?;
        let g = DetailsOf::<GenesisDetails>::parse(&first)
            .ok_or_else(|| bad("its first entry is not a genesis entry".into()))?;
        let key = self
            .ring
            .get(&g.key_id)
            .ok_or_else(|| AuditError::UnknownKey {
                path: path.into(),
                key_id: g.key_id.clone(),
            })?;
        if !line::mac_ok(key, &first) {
            return Err(bad(
                "its genesis entry does not verify; run `lasso audit verify` on it".into(),
            ));
        }
        Ok(key.clone())
    }

    /// Seals the current segment as rotated and starts the next one.
    fn rotate(&self, st: &mut State, old: FileLock) -> Result<FileLock, AuditError> {
        self.next_segment(st, old, true)
    }

    /// Starts segment `st.segment + 1`. The next file is created before the rotation seal is
    /// written, so a crash anywhere in between leaves a log that reads as unsealed, never as one
    /// whose announced segment is missing.
    fn next_segment(
        &self,
        st: &mut State,
        old: FileLock,
        write_seal: bool,
    ) -> Result<FileLock, AuditError> {
        let path = self.files.segment_path(st.segment + 1);
        let file = Arc::new(open_segment(&path)?);
        let guard = FileLock::acquire(&file, &path)?;
        if file.metadata().map_err(AuditError::io(&path))?.len() != 0 {
            return Err(AuditError::BadLog {
                path,
                why: "the next segment exists already and is not empty".into(),
            });
        }
        if write_seal {
            let details = json!({"next_segment": st.segment + 1, "rotate": true});
            self.write_entry(
                st,
                Kind::Seal,
                Outcome::Info,
                "segment full; the log continues in the next segment",
                &details,
            )?;
        }
        let continues = (st.segment, st.next_seq - 1, st.last_mac);
        self.retire(std::mem::replace(&mut st.file, file));
        st.segment += 1;
        st.end = Some(0);
        drop(old);
        self.write_genesis(st, Some(continues))?;
        Ok(guard)
    }

    fn write_genesis(
        &self,
        st: &mut State,
        continues: Option<(u32, u64, [u8; 64])>,
    ) -> Result<(), AuditError> {
        let g = &self.genesis;
        let cont = continues.map(|(segment, seq, mac)| {
            json!({"mac": String::from_utf8_lossy(&mac), "segment": segment, "seq": seq})
        });
        st.last_mac = continues.map(|c| c.2).unwrap_or(ZERO_MAC);
        st.next_seq = 0;
        let details = json!({
            "agent": g.agent,
            "continues": cont,
            "host": self.host,
            "key_id": st.key.id(),
            "lasso_version": env!("CARGO_PKG_VERSION"),
            "profile": g.profile_name,
            "profile_digest": g.profile_digest,
            "segment": st.segment,
        });
        let reason = if continues.is_some() {
            "log continued"
        } else {
            "log opened"
        };
        self.write_entry(st, Kind::Genesis, Outcome::Info, reason, &details)
    }

    /// Formats, MACs and writes one entry with one `write(2)`; the caller holds the segment lock.
    fn write_entry(
        &self,
        st: &mut State,
        kind: Kind,
        outcome: Outcome,
        reason: &str,
        details: &Value,
    ) -> Result<(), AuditError> {
        let mut buf = std::mem::take(&mut st.buf);
        buf.clear();
        let seq = st.next_seq;
        buf.extend_from_slice(b"{\"details\":");
        let res = canon::write_value(&mut buf, details).map(|()| {
            buf.extend_from_slice(b",\"kind\":\"");
            buf.extend_from_slice(kind.as_str().as_bytes());
            buf.extend_from_slice(b"\",\"outcome\":\"");
            buf.extend_from_slice(outcome.as_str().as_bytes());
            buf.extend_from_slice(b"\",\"prev\":\"");
            buf.extend_from_slice(&st.last_mac);
            buf.extend_from_slice(b"\",\"reason\":");
            canon::write_str(&mut buf, reason);
            buf.extend_from_slice(b",\"sandbox\":");
            canon::write_str(&mut buf, self.files.sandbox_id());
            buf.extend_from_slice(b",\"seq\":");
            canon::write_u64(&mut buf, seq);
            buf.extend_from_slice(b",\"ts\":\"");
            write_ts(&mut buf, time::OffsetDateTime::now_utc());
            buf.extend_from_slice(b"\",\"v\":1");
            line::finish(&st.key, &mut buf)
        });
        let res = res.and_then(|mac| {
            if buf.len() > MAX_LINE {
                return Err(AuditError::EntryTooLarge {
                    len: buf.len(),
                    max: MAX_LINE,
                });
            }
            let path = self.files.segment_path(st.segment);
            match (&*st.file).write(&buf) {
                Ok(n) if n == buf.len() => Ok(mac),
                Ok(n) => {
                    // A short write to a regular file means the disk is full; what was
                    // written is a torn line, which verify will report as such.
                    st.end = None;
                    Err(AuditError::Io {
                        path,
                        source: std::io::Error::other(format!(
                            "short write: {n} of {} bytes",
                            buf.len()
                        )),
                    })
                }
                Err(e) => Err(AuditError::Io { path, source: e }),
            }
        });
        let len = buf.len() as u64;
        st.buf = buf;
        let mac = res?;
        st.end = st.end.map(|e| e + len);
        st.next_seq = seq + 1;
        st.last_mac = mac;
        self.publish(st);
        Ok(())
    }

    /// Tells the flusher what was written last.
    fn publish(&self, st: &State) {
        let mut slot = lock(&self.slot);
        if slot.segment != st.segment || !Arc::ptr_eq(&slot.file, &st.file) {
            slot.file = st.file.clone();
            slot.segment = st.segment;
        }
        if slot.key.id() != st.key.id() {
            slot.key = st.key.clone();
        }
        slot.last = st.next_seq.checked_sub(1).map(|seq| (seq, st.last_mac));
        slot.sealed = st.sealed;
        slot.dirty = true;
    }

    /// Hands a finished segment to the flusher for its last `fdatasync`.
    fn retire(&self, file: Arc<File>) {
        let mut slot = lock(&self.slot);
        slot.retired.push(file);
        slot.dir_dirty = true;
    }

    fn flush_loop(&self) {
        let mut slot = lock(&self.slot);
        loop {
            if slot.stop {
                return;
            }
            slot = self
                .tick
                .wait_timeout(slot, FLUSH_INTERVAL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            if slot.stop {
                return;
            }
            if !slot.dirty && slot.retired.is_empty() && !slot.dir_dirty {
                continue;
            }
            drop(slot);
            let res = self.flush_now();
            slot = lock(&self.slot);
            if let Err(e) = res {
                tracing::error!("audit log flush failed: {e}");
                slot.error.get_or_insert(e.to_string());
            }
        }
    }

    /// `fdatasync` of every segment written since the last flush, then the head. Holds no lock
    /// during the disk wait, so appends go on meanwhile.
    fn flush_now(&self) -> Result<(), AuditError> {
        let (file, retired, dir, head, key) = {
            let mut slot = lock(&self.slot);
            let head = slot.last.map(|(seq, mac)| Head {
                key_id: slot.key.id().to_string(),
                last: String::from_utf8_lossy(&mac).into_owned(),
                sandbox: self.files.sandbox_id().to_string(),
                sealed: slot.sealed,
                segment: slot.segment,
                seq,
                v: 1,
                mac: String::new(),
            });
            slot.dirty = false;
            let dir = std::mem::take(&mut slot.dir_dirty);
            (
                slot.file.clone(),
                std::mem::take(&mut slot.retired),
                dir,
                head,
                slot.key.clone(),
            )
        };
        let seg_path = || self.files.segment_path(0);
        for f in retired.iter().chain(std::iter::once(&file)) {
            f.sync_data().map_err(AuditError::io(seg_path()))?;
        }
        if dir {
            File::open(self.files.dir())
                .and_then(|d| d.sync_all())
                .map_err(AuditError::io(self.files.dir()))?;
        }
        if let Some(head) = head {
            files::write_head(&self.files, &key, &head)?;
        }
        Ok(())
    }
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, written directly: a general formatter costs a noticeable
/// share of an append.
fn write_ts(out: &mut Vec<u8>, t: time::OffsetDateTime) {
    fn pad(out: &mut Vec<u8>, n: u32, width: usize) {
        let mut d = [b'0'; 10];
        let mut n = n;
        for i in (0..width).rev() {
            d[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        out.extend_from_slice(&d[..width]);
    }
    pad(out, t.year().clamp(0, 9999) as u32, 4);
    out.push(b'-');
    pad(out, u8::from(t.month()).into(), 2);
    out.push(b'-');
    pad(out, t.day().into(), 2);
    out.push(b'T');
    pad(out, t.hour().into(), 2);
    out.push(b':');
    pad(out, t.minute().into(), 2);
    out.push(b':');
    pad(out, t.second().into(), 2);
    out.push(b'.');
    pad(out, t.nanosecond(), 9);
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::format_description::well_known::Rfc3339;

    #[test]
    fn timestamps_are_rfc3339_utc_with_nanoseconds() {
        let t = time::macros::datetime!(2026-03-04 05:06:07.000000089 UTC);
        let mut out = Vec::new();
        write_ts(&mut out, t);
        assert_eq!(out, b"2026-03-04T05:06:07.000000089Z");
        assert_eq!(
            time::OffsetDateTime::parse(std::str::from_utf8(&out).unwrap(), &Rfc3339).unwrap(),
            t
        );
    }
}
