//! Blobs: streamed into `tmp/`, hashed on the way, renamed into `blobs/sha256/` only when digest
//! and size match; small JSON blobs re-verified whenever they are read.

use super::{Result, Store, StoreError, MAX_JSON};
use crate::image::digest::{Digest, Hasher};
use crate::image::progress::Progress;
use std::io::{self, Read, Write};

impl Store {
    /// Streams a blob into the store, verifying digest (and size when known) before it becomes
    /// visible. Returns the bytes written.
    pub fn put_blob(
        &self,
        expected: &Digest,
        size: Option<u64>,
        reader: impl Read,
        progress: &Progress,
    ) -> Result<u64> {
        if self.has_blob(expected) {
            return Ok(std::fs::metadata(self.blob_path(expected)).map_or(0, |m| m.len()));
        }
        let tmp_dir = self.root.join("tmp");
        let mut tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&tmp_dir)
            .map_err(|e| self.io(&tmp_dir, e))?;
        let hasher = Hasher::new();
        let mut src = hasher.reader(reader);
        let mut bar = progress.start(expected.as_str(), size);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = src.read(&mut buf).map_err(|e| self.io(tmp.path(), e))?;
            if n == 0 {
                break;
            }
            tmp.write_all(&buf[..n])
                .map_err(|e| self.io(tmp.path(), e))?;
            bar.inc(n as u64);
            // A source that sends more than the descriptor promised is cut off right away.
            if let Some(want) = size {
                let got = hasher.len();
                if got > want {
                    return Err(StoreError::SizeMismatch {
                        digest: expected.clone(),
                        expected: want,
                        actual: got,
                    });
                }
            }
        }
        let (actual, got) = hasher.finish();
        if let Some(want) = size {
            if got != want {
                return Err(StoreError::SizeMismatch {
                    digest: expected.clone(),
                    expected: want,
                    actual: got,
                });
            }
        }
        if &actual != expected {
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
                size: got,
            });
        }
        tmp.as_file()
            .sync_all()
            .map_err(|e| self.io(tmp.path(), e))?;
        let dest = self.blob_path(expected);
        tmp.persist(&dest).map_err(|e| self.io(&dest, e.error))?;
        bar.finish();
        Ok(got)
    }

    /// Streams a blob whose digest is not known in advance (a docker-archive layer, a rootfs
    /// tarball) into the store under the digest it hashes to.
    pub fn put_blob_computed(
        &self,
        reader: impl Read,
        progress: &Progress,
    ) -> Result<(Digest, u64)> {
        let tmp_dir = self.root.join("tmp");
        let mut tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&tmp_dir)
            .map_err(|e| self.io(&tmp_dir, e))?;
        let hasher = Hasher::new();
        let mut bar = progress.start("import", None);
        let mut src = bar.reader(hasher.reader(reader));
        io::copy(&mut src, tmp.as_file_mut()).map_err(|e| self.io(tmp.path(), e))?;
        let (digest, size) = hasher.finish();
        tmp.as_file()
            .sync_all()
            .map_err(|e| self.io(tmp.path(), e))?;
        let dest = self.blob_path(&digest);
        tmp.persist(&dest).map_err(|e| self.io(&dest, e.error))?;
        bar.finish();
        Ok((digest, size))
    }

    /// Stores bytes that lasso made itself (a synthesized config or manifest).
    pub fn put_bytes(&self, data: &[u8]) -> Result<Digest> {
        let d = Digest::of(data);
        self.put_blob(&d, Some(data.len() as u64), data, &Progress::Silent)?;
        Ok(d)
    }

    /// Reads a small JSON blob, re-verifying its digest: a store file edited on disk is caught
    /// here rather than trusted.
    pub fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        d: &Digest,
    ) -> Result<T> {
        let path = self.blob_path(d);
        let f = std::fs::File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingBlob(d.clone()),
            _ => self.io(&path, e),
        })?;
        let mut data = Vec::new();
        f.take(MAX_JSON + 1)
            .read_to_end(&mut data)
            .map_err(|e| self.io(&path, e))?;
        if data.len() as u64 > MAX_JSON {
            return Err(StoreError::TooLarge {
                what,
                digest: d.clone(),
            });
        }
        let actual = Digest::of(&data);
        if &actual != d {
            return Err(StoreError::DigestMismatch {
                expected: d.clone(),
                actual,
                size: data.len() as u64,
            });
        }
        serde_json::from_slice(&data).map_err(|source| StoreError::BadJson {
            what,
            digest: d.clone(),
            source,
        })
    }
}
