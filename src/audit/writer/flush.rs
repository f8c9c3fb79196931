//! The background flusher: makes what was written durable (`fdatasync`) at least every
//! [`FLUSH_INTERVAL`] and then names it in the head file. It shares only a small slot with the
//! appenders, so it neither waits behind them nor makes them wait for the disk.

use super::{lock, Shared, State, FLUSH_INTERVAL};
use crate::audit::files::{self, Head};
use crate::audit::keys::Key;
use crate::audit::AuditError;
use std::fs::File;
use std::sync::Arc;

/// What the flusher needs, behind its own lock. Appenders hold the state lock almost all the
/// time under load and std's mutex is not fair, so a flusher waiting for the state lock could
/// starve; this lock is held only for a few stores per append.
pub(super) struct FlushSlot {
    pub(super) file: Arc<File>,
    pub(super) key: Key,
    pub(super) segment: u32,
    /// `seq` and MAC of the last entry written, if any.
    pub(super) last: Option<(u64, [u8; 64])>,
    pub(super) sealed: bool,
    pub(super) dirty: bool,
    pub(super) dir_dirty: bool,
    pub(super) stop: bool,
    /// With `stop`: flush once more before ending (`Writer::seal_in_background`).
    pub(super) flush_at_stop: bool,
    /// That last flush ran (its error, if any, is in `error`).
    pub(super) final_flushed: bool,
    /// Segments left by rotation that still need their final `fdatasync`.
    pub(super) retired: Vec<Arc<File>>,
    pub(super) error: Option<String>,
}

impl Shared {
    /// Tells the flusher what was written last.
    pub(super) fn publish(&self, st: &State) {
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
    pub(super) fn retire(&self, file: Arc<File>) {
        let mut slot = lock(&self.slot);
        slot.retired.push(file);
        slot.dir_dirty = true;
    }

    pub(super) fn flush_loop(&self) {
        let flushing = lock(&self.flushing);
        let mut slot = lock(&self.slot);
        // The directory sync that makes a new segment's name durable is owed by the seal at
        // the latest; done now, it runs while the sandbox starts instead of while the seal's
        // caller waits. Only its time moves: the seal still syncs the directory when anything
        // (a rotation, or a failure here) made it dirty again.
        if std::mem::take(&mut slot.dir_dirty) {
            drop(slot);
            let res = self.sync_dir();
            slot = lock(&self.slot);
            if res.is_err() {
                slot.dir_dirty = true;
            }
        }
        // A seal's flush waits for the sync above: a log whose seal returned has its name durable.
        drop(flushing);
        loop {
            if slot.stop {
                return self.flush_at_stop(slot);
            }
            slot = self
                .tick
                .wait_timeout(slot, FLUSH_INTERVAL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            if slot.stop {
                return self.flush_at_stop(slot);
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

    /// The flusher's last flush when its writer's seal asked for one: everything written so
    /// far, seal entry included, made durable and named in the head.
    fn flush_at_stop(&self, slot: std::sync::MutexGuard<'_, FlushSlot>) {
        if !slot.flush_at_stop {
            return;
        }
        drop(slot);
        let res = self.flush_now();
        let mut slot = lock(&self.slot);
        if let Err(e) = res {
            slot.error.get_or_insert(e.to_string());
        }
        slot.final_flushed = true;
    }

    /// `fdatasync` of every segment written since the last flush, then the head (written in
    /// place, not synced: only once the segment's sync returned may it name the entries, see
    /// `audit::head`). Holds no lock during the disk wait, so appends go on meanwhile.
    pub(super) fn flush_now(&self) -> Result<(), AuditError> {
        let _one_at_a_time = lock(&self.flushing);
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
            self.sync_dir()?;
        }
        if let Some(head) = head {
            files::write_head(&self.files, &self.ring, &key, &head)?;
        }
        Ok(())
    }

    fn sync_dir(&self) -> Result<(), AuditError> {
        File::open(self.files.dir())
            .and_then(|d| d.sync_all())
            .map_err(AuditError::io(self.files.dir()))
    }
}
