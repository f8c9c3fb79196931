//! The decision memo: for an exec the decider allowed, the identity and verdict are kept under
//! (path bytes, argv bytes), with the stamp of the file the path led to (device, inode, size,
//! mtime, ctime). A repeated exec of the same command line then costs one `openat2` and one
//! `fstat` at the notification instead of the whole identification (`fstatfs`, readlink of the
//! resolved path, the cache look-ups) and the decision.
//!
//! Why this is sound: the memo only ever answers "allowed, expect this image and this argv".
//! Stage 2 (the exec event) compares the image the kernel really loaded and the argv on its new
//! stack with that expectation and decides afresh on anything else, killing it if blocked, so a
//! stale entry can at worst cost a second decision, never let a different program run unchecked.
//! On top of that, a hit is only taken when the path still leads to a file with the same stamp
//! (a `cp` over it changes size/mtime/ctime, a rename over it the inode) and, for an entry whose
//! path went through a symlink, to the same resolved name. Only plain ELF programs are kept:
//! scripts (their `#!` chain is re-read and held open every time), the dynamic loader run as a
//! command (its target is another file), memfds and anything that is not ELF (binfmt_misc may run
//! it through an interpreter the gate never sees) take the full path each time. Blocked and
//! refused execs are never kept, so every refusal is decided and audited afresh.
//!
//! Owns only the table. It decides nothing (the decider's answer is what is kept) and must only
//! be used with a decider whose answer depends on nothing but `path`, `argv` and `exe`
//! (`ExecDecider::memoizable`); the profile does not change while a sandbox runs.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::Mutex;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::identity::{Expected, Stamp};
use super::{ExeIdentity, GateVerdict};

/// Entries kept; past it the table starts afresh (an agent's working set of distinct command
/// lines is far smaller; a flood of distinct ones only costs the full path again).
const CAPACITY: usize = 4096;
/// Longest key kept: a huge command line is rare enough to identify in full every time.
const MAX_KEY: usize = 8192;

struct Entry {
    stamp: Stamp,
    /// The path had no symlink in it and named the file exactly (its resolved name is the path
    /// itself): a hit resolves it with `RESOLVE_NO_SYMLINKS` and needs no readlink.
    direct: bool,
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
    /// The kept answer for `path` + `argv`, when the path, opened from `root` as the caller
    /// would (`RESOLVE_IN_ROOT`), still leads to the same file with the same stamp.
    pub(crate) fn lookup(
        &self,
        root: BorrowedFd<'_>,
        path: &[u8],
        argv: &[Vec<u8>],
    ) -> Option<Hit> {
        if !eligible(path) {
            return None;
        }
        let k = key(path, argv)?;
        let (stamp, direct, resolved) = {
            let t = self.table.lock().unwrap_or_else(|e| e.into_inner());
            let e = t.get(&k)?;
            (
                e.stamp,
                e.direct,
                (!e.direct).then(|| e.exe.resolved.clone()),
            )
        };
        let mut how = ResolveFlags::IN_ROOT;
        if direct {
            how |= ResolveFlags::NO_SYMLINKS;
        }
        let f = rustix::fs::openat2(
            root,
            path,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            how,
        )
        .ok()?;
        let st = rustix::fs::fstat(&f).ok()?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG || Stamp::of_stat(&st) != stamp {
            return None;
        }
        if let Some(resolved) = resolved {
            if super::resolve::fd_path(&File::from(f)) != resolved {
                return None;
            }
        }
        let t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let e = t.get(&k)?;
        (e.stamp == stamp).then(|| Hit {
            exe: e.exe.clone(),
            verdict: e.verdict.clone(),
            expected: Expected {
                image: stamp,
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
        let direct = exe.resolved.as_os_str().as_bytes() == path;
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if t.len() >= CAPACITY && !t.contains_key(&k) {
            t.clear();
        }
        t.insert(
            k,
            Entry {
                stamp: expected.image,
                direct,
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
