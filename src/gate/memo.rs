//! The decision memo: for an exec the decider allowed, the identity and verdict are kept under
//! (path bytes, argv bytes), with the stamp of the file the path led to (device, inode, size,
//! mtime, ctime). A repeated exec of the same command line is then answered at the notification
//! from the table alone: no `openat2`, `fstat`, `fstatfs`, readlink or decision (~25 µs of the
//! caller's wait), only the reads of its path and argv.
//!
//! Why this is sound: the memo only ever answers "allowed, expect this image and this argv",
//! and stage 2 (the exec event) already compares the image the kernel really loaded (device,
//! inode, size, mtime, ctime of `/proc/PID/exe`) and the argv on its new stack with that
//! expectation, deciding afresh on anything else and killing it before its first instruction if
//! blocked. So a path whose file was replaced (a `cp` over it changes size, mtime and ctime; a
//! rename over it the inode) is decided on its real image and, when blocked, killed and audited
//! as `killed` rather than refused with `EACCES`; a path that no longer exists fails in the
//! kernel with the same `ENOENT` the gate would give. Only plain ELF programs are kept: scripts
//! (their `#!` chain is re-read and held open every time), the dynamic loader run as a command
//! (its target is another file), memfds and anything that is not ELF (binfmt_misc may run it
//! through an interpreter the gate never sees) take the full path each time, as do relative
//! paths (they depend on the cwd) and paths through `/proc` and `/dev`. Blocked answers are
//! never kept, so every refusal is decided and audited afresh. A kept entry names the file
//! the path resolved to when it was decided; should a symlink on the path later lead to
//! another name of the *same* inode (a hard link), that name is not asked about again: the
//! program that runs is the same file with the same argv, and the decider already decides
//! programs that act by the name they are called by on `argv[0]`, which is in the key.
//!
//! Owns only the table. It decides nothing (the decider's answer is what is kept) and must only
//! be used with a decider whose answer depends on nothing but `path`, `argv` and `exe`
//! (`ExecDecider::memoizable`); the profile does not change while a sandbox runs.

use std::collections::HashMap;
use std::sync::Mutex;

use super::identity::{Expected, Stamp};
use super::{ExeIdentity, GateVerdict};

/// Entries kept; past it the table starts afresh (an agent's working set of distinct command
/// lines is far smaller; a flood of distinct ones only costs the full path again).
const CAPACITY: usize = 4096;
/// Longest key kept: a huge command line is rare enough to identify in full every time.
const MAX_KEY: usize = 8192;

struct Entry {
    stamp: Stamp,
    exe: ExeIdentity,
    verdict: GateVerdict,
}

/// What a hit hands back: the identity and verdict as decided, and the expectation for the
/// exec event.
pub(crate) struct Hit {
    pub exe: ExeIdentity,
    pub verdict: GateVerdict,
    pub expected: Expected,
}

#[derive(Default)]
pub(crate) struct Memo {
    table: Mutex<HashMap<Vec<u8>, Entry>>,
}

/// The key: the path, then each argument with its length (so no two argvs share a key).
fn key(path: &[u8], argv: &[Vec<u8>]) -> Option<Vec<u8>> {
    let len = path.len() + argv.iter().map(|a| a.len() + 4).sum::<usize>() + 4;
    if len > MAX_KEY {
        return None;
    }
    let mut k = Vec::with_capacity(len);
    k.extend_from_slice(&(path.len() as u32).to_ne_bytes());
    k.extend_from_slice(path);
    for a in argv {
        k.extend_from_slice(&(a.len() as u32).to_ne_bytes());
        k.extend_from_slice(a);
    }
    Some(k)
}

/// Paths the memo leaves alone: relative ones (they depend on the caller's cwd), and those the
/// gate resolves through the caller's own /proc entry or descriptors (`/proc/self/...`,
/// `/dev/fd/N`), which name a different file for every caller.
fn eligible(path: &[u8]) -> bool {
    path.first() == Some(&b'/') && !path.starts_with(b"/proc/") && !path.starts_with(b"/dev/")
}

impl Memo {
    /// The kept answer for `path` + `argv`. Nothing is opened: the exec event compares the
    /// image the kernel really loads with the kept stamp (and decides afresh on any other).
    pub(crate) fn lookup(&self, path: &[u8], argv: &[Vec<u8>]) -> Option<Hit> {
        if !eligible(path) {
            return None;
        }
        let k = key(path, argv)?;
        let t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let e = t.get(&k)?;
        Some(Hit {
            exe: e.exe.clone(),
            verdict: e.verdict.clone(),
            expected: Expected {
                image: e.stamp,
                argv: argv.to_vec(),
                scripts: Vec::new(),
                memoizable: true,
            },
        })
    }

    /// Keeps an allowed answer for a plain ELF program named by an absolute path.
    pub(crate) fn remember(
        &self,
        path: &[u8],
        argv: &[Vec<u8>],
        exe: &ExeIdentity,
        expected: &Expected,
        verdict: &GateVerdict,
    ) {
        let plain = expected.memoizable
            && expected.scripts.is_empty()
            && exe.interpreters.is_empty()
            && exe.loader_target.is_none()
            && !exe.memfd
            && (exe.dev, exe.ino) == (expected.image.dev, expected.image.ino);
        if !verdict.allow || !plain || !eligible(path) {
            return;
        }
        let Some(k) = key(path, argv) else { return };
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if t.len() >= CAPACITY && !t.contains_key(&k) {
            t.clear();
        }
        t.insert(
            k,
            Entry {
                stamp: expected.image,
                exe: exe.clone(),
                verdict: verdict.clone(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_different_argvs_differ() {
        let a = key(b"/bin/x", &[b"a b".to_vec()]);
        let b = key(b"/bin/x", &[b"a".to_vec(), b"b".to_vec()]);
        assert_ne!(a, b);
        assert_ne!(key(b"/bin/x", &[]), key(b"/bin/xy", &[]));
    }

    #[test]
    fn only_absolute_paths_outside_proc_and_dev_are_kept() {
        assert!(eligible(b"/usr/bin/true"));
        assert!(!eligible(b"true"));
        assert!(!eligible(b"./true"));
        assert!(!eligible(b"/proc/self/exe"));
        assert!(!eligible(b"/dev/fd/3"));
    }
}
