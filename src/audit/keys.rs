//! The audit key ring: the current 32-byte HMAC key in `<config>/audit.key` and the retired keys
//! in `<config>/audit-keys/<key-id>.key`, all mode 0600. A key is named by its id, a fingerprint
//! that is safe to write into logs; the key bytes never leave this file's types (Debug redacts).
//! It must not be mounted into any sandbox: that is the engine's duty, this module only says where.

use super::AuditError;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub(crate) type HmacSha256 = Hmac<Sha256>;

const KEY_LEN: usize = 32;
const CURRENT: &str = "audit.key";
const RETIRED_DIR: &str = "audit-keys";

/// One HMAC-SHA256 key and its id.
#[derive(Clone)]
pub struct Key {
    id: String,
    // The keyed state after absorbing the key pads: cloning it saves two SHA-256 blocks per MAC.
    mac: HmacSha256,
}

impl Key {
    fn from_bytes(bytes: &[u8; KEY_LEN]) -> Key {
        let mut h = Sha256::new();
        h.update(b"lasso audit key id v1\0");
        h.update(bytes);
        let id = hex::encode(&h.finalize()[..8]);
        let mac = HmacSha256::new_from_slice(bytes).expect("HMAC takes keys of any length");
        Key { id, mac }
    }

    /// The fingerprint that logs name the key by: 16 lowercase hex digits, the first 8 bytes of
    /// SHA-256("lasso audit key id v1\0" || key).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// HMAC-SHA256 over the concatenation of `parts`, as lowercase hex.
    pub fn mac_hex(&self, parts: &[&[u8]]) -> [u8; 64] {
        let mut m = self.mac.clone();
        for p in parts {
            m.update(p);
        }
        let tag = m.finalize().into_bytes();
        let mut out = [0u8; 64];
        hex::encode_to_slice(tag, &mut out).expect("64 hex digits for 32 bytes");
        out
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.id)
    }
}

/// All keys one installation knows: the current one signs new logs, every one verifies.
#[derive(Debug, Clone)]
pub struct KeyRing {
    dir: PathBuf,
    current: Key,
    retired: BTreeMap<String, Key>,
}

impl KeyRing {
    /// Opens the key ring in `config_dir`, creating the directory (0700) and a new random key
    /// (0600) on first use. Writers call this.
    pub fn open(config_dir: &Path) -> Result<KeyRing, AuditError> {
        let path = config_dir.join(CURRENT);
        if !path.exists() {
            create_dir(config_dir)?;
            let mut bytes = [0u8; KEY_LEN];
            getrandom::fill(&mut bytes).map_err(|e| AuditError::Io {
                path: path.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
            install_new(&path, &bytes, false)?;
        }
        KeyRing::load(config_dir)
    }

    /// Opens an existing key ring and never creates a key: verifying with a fresh key would only
    /// say "unknown key" for every log. Readers call this.
    pub fn load(config_dir: &Path) -> Result<KeyRing, AuditError> {
        let path = config_dir.join(CURRENT);
        let current =
            read_key(&path)?.ok_or_else(|| AuditError::MissingKey { path: path.clone() })?;
        let mut retired = BTreeMap::new();
        let rdir = config_dir.join(RETIRED_DIR);
        match fs::read_dir(&rdir) {
            Ok(entries) => {
                for e in entries {
                    let e = e.map_err(AuditError::io(&rdir))?;
                    let p = e.path();
                    if p.extension().is_some_and(|x| x == "key") {
                        if let Some(k) = read_key(&p)? {
                            retired.insert(k.id.clone(), k);
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(AuditError::Io {
                    path: rdir,
                    source: e,
                })
            }
        }
        Ok(KeyRing {
            dir: config_dir.to_path_buf(),
            current,
            retired,
        })
    }

    /// A ring holding just the key in `path` (for `lasso audit verify --key FILE`).
    pub fn from_key_file(path: &Path) -> Result<KeyRing, AuditError> {
        let current = read_key(path)?.ok_or_else(|| AuditError::MissingKey {
            path: path.to_path_buf(),
        })?;
        Ok(KeyRing {
            dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            current,
            retired: BTreeMap::new(),
        })
    }

    /// The key new logs are written with.
    pub fn current(&self) -> &Key {
        &self.current
    }

    /// The key with this id, current or retired.
    pub fn get(&self, id: &str) -> Option<&Key> {
        if self.current.id == id {
            Some(&self.current)
        } else {
            self.retired.get(id)
        }
    }

    /// Every key, current first.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        std::iter::once(&self.current).chain(self.retired.values())
    }

    /// The directory the ring lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts a new current key. The old key is first written to `audit-keys/<id>.key` (and made
    /// durable) so that no moment exists in which a log's key is nowhere on disk; then the new key
    /// atomically replaces `audit.key`.
    pub fn rotate(&mut self) -> Result<&Key, AuditError> {
        let cur_path = self.dir.join(CURRENT);
        let old_bytes = read_bytes(&cur_path)?.ok_or_else(|| AuditError::MissingKey {
            path: cur_path.clone(),
        })?;
        let rdir = self.dir.join(RETIRED_DIR);
        create_dir(&rdir)?;
        let retired_path = rdir.join(format!("{}.key", self.current.id));
        if !retired_path.exists() {
            install_new(&retired_path, &old_bytes, false)?;
        }
        let mut bytes = [0u8; KEY_LEN];
        getrandom::fill(&mut bytes).map_err(|e| AuditError::Io {
            path: cur_path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        install_new(&cur_path, &bytes, true)?;
        let new = Key::from_bytes(&bytes);
        let old = std::mem::replace(&mut self.current, new);
        self.retired.insert(old.id.clone(), old);
        Ok(&self.current)
    }
}

fn create_dir(dir: &Path) -> Result<(), AuditError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(AuditError::io(dir))
}

fn read_bytes(path: &Path) -> Result<Option<[u8; KEY_LEN]>, AuditError> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(AuditError::Io {
                path: path.into(),
                source: e,
            })
        }
    };
    let meta = f.metadata().map_err(AuditError::io(path))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(AuditError::KeyPermissions {
            path: path.into(),
            mode,
        });
    }
    if meta.len() != KEY_LEN as u64 {
        return Err(AuditError::BadKeyLength {
            path: path.into(),
            len: meta.len(),
        });
    }
    let mut bytes = [0u8; KEY_LEN];
    f.read_exact(&mut bytes).map_err(AuditError::io(path))?;
    Ok(Some(bytes))
}

fn read_key(path: &Path) -> Result<Option<Key>, AuditError> {
    Ok(read_bytes(path)?.map(|b| Key::from_bytes(&b)))
}

/// Writes `bytes` to a private temporary file, makes it durable, then puts it at `path`: by
/// rename when `replace`, else by link so that two processes creating the first key at once
/// cannot overwrite each other's key (the loser reads the winner's).
fn install_new(path: &Path, bytes: &[u8; KEY_LEN], replace: bool) -> Result<(), AuditError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".audit-key.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(AuditError::io(&tmp))?;
    let res = f
        .write_all(bytes)
        .and_then(|()| f.sync_all())
        .and_then(|()| {
            if replace {
                fs::rename(&tmp, path)
            } else {
                fs::hard_link(&tmp, path)
            }
        });
    let _ = fs::remove_file(&tmp);
    match res {
        Ok(()) => {}
        Err(e) if !replace && e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(AuditError::Io {
                path: path.into(),
                source: e,
            })
        }
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(AuditError::io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_use_creates_a_private_32_byte_key() {
        let d = tempfile::tempdir().unwrap();
        let ring = KeyRing::open(&d.path().join("cfg")).unwrap();
        let meta = fs::metadata(d.path().join("cfg/audit.key")).unwrap();
        assert_eq!(meta.len(), 32);
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            KeyRing::open(&d.path().join("cfg")).unwrap().current().id(),
            ring.current().id()
        );
    }

    #[test]
    fn rotated_keys_still_verify_old_macs() {
        let d = tempfile::tempdir().unwrap();
        let mut ring = KeyRing::open(d.path()).unwrap();
        let old = ring.current().clone();
        let new_id = ring.rotate().unwrap().id().to_string();
        assert_ne!(new_id, old.id());
        let again = KeyRing::load(d.path()).unwrap();
        assert_eq!(again.current().id(), new_id);
        assert_eq!(
            again.get(old.id()).unwrap().mac_hex(&[b"x"]),
            old.mac_hex(&[b"x"])
        );
    }

    #[test]
    fn loose_key_permissions_are_refused() {
        let d = tempfile::tempdir().unwrap();
        KeyRing::open(d.path()).unwrap();
        fs::set_permissions(d.path().join(CURRENT), fs::Permissions::from_mode(0o644)).unwrap();
        let err = KeyRing::load(d.path()).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn missing_key_is_not_created_by_readers() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            KeyRing::load(d.path()),
            Err(AuditError::MissingKey { .. })
        ));
        assert!(!d.path().join(CURRENT).exists());
    }
}
