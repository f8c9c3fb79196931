//! Content digests (`sha256:<hex>`) and readers that verify them while data streams through.
//! A digest is parsed before it is ever used to build a store path, so a hostile manifest cannot
//! name `sha256:../../x`.

use sha2::{Digest as _, Sha256};
use std::cell::RefCell;
use std::fmt;
use std::io::{self, Read};
use std::rc::Rc;

/// A validated `sha256:` digest (64 lowercase hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("{0:?} is not a digest: expected sha256: followed by 64 lowercase hex digits")]
    Malformed(String),
    #[error("{0:?} uses an unsupported digest algorithm; lasso verifies sha256 only")]
    Algorithm(String),
}

impl Digest {
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let Some((algo, hex)) = s.split_once(':') else {
            return Err(DigestError::Malformed(s.into()));
        };
        if algo != "sha256" {
            return Err(DigestError::Algorithm(s.into()));
        }
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::Malformed(s.into()));
        }
        Ok(Digest(s.to_string()))
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(data))
    }

    fn from_hasher(h: Sha256) -> Digest {
        Digest(format!("sha256:{}", hex::encode(h.finalize())))
    }

    /// The 64 hex digits, safe as a file name.
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A running sha256 shared between a reader and whoever asks for the result afterwards (the
/// reader itself usually disappears inside a decompressor).
#[derive(Clone, Default)]
pub struct Hasher(Rc<RefCell<(Sha256, u64)>>);

impl Hasher {
    pub fn new() -> Hasher {
        Hasher::default()
    }

    /// Wraps `inner` so that every byte read is hashed.
    pub fn reader<R: Read>(&self, inner: R) -> HashingReader<R> {
        HashingReader {
            inner,
            hasher: self.clone(),
        }
    }

    pub fn update(&self, data: &[u8]) {
        let mut h = self.0.borrow_mut();
        h.0.update(data);
        h.1 += data.len() as u64;
    }

    /// Bytes hashed so far (cheap, unlike [`Hasher::finish`]).
    pub fn len(&self) -> u64 {
        self.0.borrow().1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Digest and byte count of everything hashed so far.
    pub fn finish(&self) -> (Digest, u64) {
        let h = self.0.borrow();
        (Digest::from_hasher(h.0.clone()), h.1)
    }
}

pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_that_could_climb_paths_are_rejected() {
        assert!(Digest::parse("sha256:../../etc/passwd").is_err());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(Digest::parse(&format!("sha512:{}", "a".repeat(64))).is_err());
        let d = Digest::of(b"");
        assert_eq!(
            d.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::parse(d.as_str()).unwrap(), d);
    }
}
