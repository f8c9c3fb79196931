//! Keeping a writer's view of the chain in step with the file: reading the key and tail of a
//! segment it joins, following rotations made by other processes, starting segments, and
//! formatting and writing one entry. Runs under the state lock and the segment's `flock`.

use super::{open_segment, FileLock, Shared, State};
use crate::audit::event::{Kind, Outcome};
use crate::audit::files;
use crate::audit::keys::Key;
use crate::audit::line::{
    self, DetailsOf, Envelope, GenesisDetails, SealDetails, MAX_LINE, ZERO_MAC,
};
use crate::audit::{canon, AuditError};
use serde_json::{json, Value};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

impl Shared {
    /// Takes the segment lock and brings `st` up to date with the file: reads the chain's key
    /// from a segment's genesis the first time, follows rotations made by other processes, and
    /// writes a genesis into an empty segment.
    pub(super) fn catch_up(&self, st: &mut State) -> Result<FileLock, AuditError> {
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
    pub(super) fn segment_key(&self, path: &Path) -> Result<Key, AuditError> {
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
    pub(super) fn rotate(&self, st: &mut State, old: FileLock) -> Result<FileLock, AuditError> {
        self.next_segment(st, old, true)
    }

    /// Starts segment `st.segment + 1`. The next file is created before the rotation seal is
    /// written, so a crash anywhere in between leaves a log that reads as unsealed, never as one
    /// whose announced segment is missing.
    pub(super) fn next_segment(
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

    pub(super) fn write_genesis(
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
    pub(super) fn write_entry(
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
            line::write_ts(&mut buf, time::OffsetDateTime::now_utc());
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
}
