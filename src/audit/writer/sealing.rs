//! Sealing a log while its owner goes on with other work: the seal entry is written at once,
//! and the last `fdatasync` (then the head naming the seal) runs in the writer's own flusher
//! thread, which is alive anyway; [`Sealing::wait`] returns once that is done. The log's
//! guarantees are `Writer::seal`'s: when `wait` returned Ok, the seal and everything before it
//! is durable and named in the head. Owns nothing beyond that hand-over.

use super::{lock, AuditError, SealedLog, Shared, Writer};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A seal under way (see the module docs). Dropping it waits as `wait` does.
pub struct Sealing {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
    sealed: Option<SealedLog>,
}

impl Writer {
    /// `seal`, except that the last flush runs in the flusher thread while the caller goes on
    /// (the caller's own CPU work then overlaps the disk's wait); call [`Sealing::wait`] before
    /// relying on the log being durable.
    pub fn seal_in_background(mut self) -> Result<Sealing, AuditError> {
        let sealed = self.write_seal()?;
        let flusher = self.flusher.take();
        if flusher.is_some() {
            {
                let mut slot = lock(&self.shared.slot);
                slot.stop = true;
                slot.flush_at_stop = true;
            }
            self.shared.tick.notify_all();
        }
        Ok(Sealing {
            shared: self.shared.clone(),
            flusher,
            sealed: Some(sealed),
        })
    }
}

impl Sealing {
    /// Returns once the seal and everything before it is durable.
    pub fn wait(mut self) -> Result<SealedLog, AuditError> {
        let sealed = self.sealed.take();
        self.finish()?;
        // Always there: only this takes it.
        sealed.ok_or_else(|| AuditError::Sealed {
            path: self.shared.files.segment_path(0),
        })
    }

    fn finish(&mut self) -> Result<(), AuditError> {
        if let Some(h) = self.flusher.take() {
            let _ = h.join();
        }
        // A flusher that ended before it saw the request (it failed, or panicked) left the
        // last flush undone: it is made here.
        let done = lock(&self.shared.slot).final_flushed;
        if !done {
            self.shared.flush_now()?;
        }
        if let Some(e) = lock(&self.shared.slot).error.take() {
            return Err(AuditError::Io {
                path: self.shared.files.segment_path(0),
                source: std::io::Error::other(e),
            });
        }
        Ok(())
    }
}

impl Drop for Sealing {
    fn drop(&mut self) {
        if self.sealed.is_some() {
            if let Err(e) = self.finish() {
                tracing::error!("audit log: final flush failed: {e}");
            }
        }
    }
}
