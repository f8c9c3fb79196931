//! Who an executable really is: the file an exec path resolves to in the target's view, its device
//! and inode, its content hash on writable mounts (cached by device, inode, size, mtime and ctime),
//! the applet of a multi-call binary, the `#!` chain of a script, the program the dynamic loader
//! is asked to run, and whether it is a memfd. Reads files; decides nothing.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::Mutex;

use rustix::fs::{Mode, OFlags};
use sha2::{Digest, Sha256};

use super::formats::{
    applet, basename, is_multicall_name, loader_target, looks_like_loader_name, parse_elf,
    parse_shebang, MULTICALL_MARKS,
};
use super::resolve::{fd_path, open_in_view, open_magic, reopen_regular};
use super::ExeIdentity;

/// The kernel's own limit on nested interpreters (BINPRM_MAX_RECURSION).
const MAX_DEPTH: usize = 4;
/// The kernel reads this much of a script for its `#!` line (BINPRM_BUF_SIZE).
const HEADER: usize = 256;
/// Read at once from the start of a file: the `#!` line, or an ELF header with its program
/// headers (which usually follow it), in one system call.
const HEAD_READ: usize = 1024;

/// One interpreter of a `#!` chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interpreter {
    /// The interpreter path as written after `#!`.
    pub path: Vec<u8>,
    /// The optional single argument after it (`-S rm -f` for `#!/usr/bin/env -S rm -f`).
    pub arg: Option<Vec<u8>>,
    pub exe: ExeIdentity,
}

/// The program the dynamic loader was asked to run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoaderTarget {
    /// The argument naming it, as given.
    pub arg: Vec<u8>,
    /// Its identity, when the path resolves to a file. `None` means the loader will fail to find
    /// it, or it was swapped away: deciders should treat an unresolved target as suspect.
    pub exe: Option<Box<ExeIdentity>>,
}

/// What the kernel will have loaded once the exec succeeds: the final ELF image after the `#!`
/// chain, and the command line it builds. The exec-event check compares against this.
#[derive(Debug, Clone)]
pub(crate) struct Expected {
    pub image: Stamp,
    pub argv: Vec<Vec<u8>>,
    /// The scripts of the `#!` chain as checked, outermost first: at the exec event each must
    /// be unchanged (same stamp through the descriptor opened at the check) and, when named by
    /// a path, that path must still lead to it.
    pub scripts: Vec<ScriptCheck>,
    /// The image is a plain ELF program named directly (no script, not the dynamic loader, not
    /// a memfd): what the decision memo may keep (see `memo`).
    pub memoizable: bool,
}

/// One script of a `#!` chain, held open from its check to the exec event.
#[derive(Debug, Clone)]
pub(crate) struct ScriptCheck {
    pub file: std::sync::Arc<File>,
    pub stamp: Stamp,
    /// The path it was named by (absolute, or relative to the caller's cwd); `None` for a
    /// descriptor (`fexecve`, an `execveat` dirfd), which cannot be looked up again.
    pub path: Option<Vec<u8>>,
}

/// A file's identity plus the metadata that changes when its content does. ctime is in the key
/// because mtime can be set back with utimes(2); ctime cannot be set from user space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Stamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    pub(crate) fn of_stat(st: &rustix::fs::Stat) -> Stamp {
        Stamp {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime: (st.st_mtime, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime, st.st_ctime_nsec as i64),
        }
    }
}

/// What the start of a file says it is, which decides how it is identified further.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Head {
    Script,
    Elf { dyn_no_interp: bool },
    Other,
}

#[derive(Clone, Copy)]
struct Facts {
    sha256: [u8; 32],
    multicall: bool,
}

/// Where the target stands: its pid (for /proc/PID/root and /proc/PID/cwd), and optionally the
/// sandbox's root, opened once, to resolve absolute paths from in place of /proc/PID/root.
#[derive(Clone, Copy)]
pub(crate) struct Viewpoint<'a> {
    pub pid: i32,
    /// The sandbox's root (see `Identifier::with_root` for why this is sound).
    pub root: Option<std::os::fd::BorrowedFd<'a>>,
}

impl Viewpoint<'static> {
    /// The target's own root, looked up through /proc each time.
    pub(crate) fn own(pid: i32) -> Viewpoint<'static> {
        Viewpoint { pid, root: None }
    }
}

/// How the exec named its file.
#[derive(Clone, Copy)]
pub(crate) enum ExecPath<'a> {
    /// `execve(path)` or `execveat(dirfd, path)` with `dirfd` `None` for AT_FDCWD.
    Path { dirfd: Option<i32>, path: &'a [u8] },
    /// `execveat(fd, "", AT_EMPTY_PATH)`, as `fexecve` does.
    Fd(i32),
}

/// Identifies executables; keeps the content-hash cache for the monitor's lifetime.
pub(crate) struct Identifier {
    cache: Mutex<HashMap<(u64, u64), (Stamp, Facts)>>,
    /// The kind of each file seen (script, ELF and whether it is a loader, other), by the same
    /// stamp as the hashes: a repeated exec of a known program then needs neither a readable
    /// reopen nor a read. A script is read every time (its `#!` line is needed).
    heads: Mutex<HashMap<(u64, u64), (Stamp, Head)>>,
    /// The sandbox's root, opened once at start (see `with_root`).
    root: Option<std::os::fd::OwnedFd>,
    loader_hashes: HashSet<[u8; 32]>,
}

/// Where the dynamic loader may be, in the monitor's (the host's) view.
pub const LOADER_PATHS: &[&str] = &[
    "/lib64/ld-linux-x86-64.so.2",
    "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "/lib/ld-linux.so.2",
    "/lib/ld-musl-x86_64.so.1",
];

impl Identifier {
    pub(crate) fn new() -> Identifier {
        let mut id = Identifier::with_loader_digests(HashSet::new());
        // A copy of the loader under another name must still count as the loader, so its
        // content is known up front (these paths are the monitor's, which is the host's view).
        for p in LOADER_PATHS {
            if let Ok(f) = File::open(p) {
                if let Ok(m) = f.metadata() {
                    if let Ok(facts) = id.facts(&f, Stamp::of(&m)) {
                        id.loader_hashes.insert(facts.sha256);
                    }
                }
            }
        }
        id
    }

    /// An identifier told the loader's digests (SHA-256 of each of `LOADER_PATHS` that exists)
    /// by a caller that keeps them in a cache of its own, trusted only while the file is unchanged.
    pub(crate) fn with_loader_digests(loader_hashes: HashSet<[u8; 32]>) -> Identifier {
        Identifier {
            cache: Mutex::new(HashMap::new()),
            heads: Mutex::new(HashMap::new()),
            root: None,
            loader_hashes,
        }
    }

    /// Resolves the absolute paths of exec notifications from the root `root_pid` has now (the
    /// sandbox's, opened once) instead of each caller's /proc/PID/root: the lookup of a new pid's
    /// /proc entry and its root link is the largest single cost of a gated exec. A caller whose
    /// root differs (it entered a chroot or another mount namespace) may get a first decision on
    /// another file; that decision never counts alone: the exec event compares the image the
    /// kernel really loaded (by device, inode and stamp) with the one decided, and decides again
    /// on the real image when they differ. Without a readable root, each caller's is used.
    pub(crate) fn with_root(mut self, root_pid: i32) -> Identifier {
        self.root = rustix::fs::open(
            format!("/proc/{root_pid}/root"),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok();
        self
    }

    /// Another descriptor of the sandbox's root (see `with_root`), for `Monitor::wait_leaving`.
    pub(crate) fn pin_root(&self) -> Option<std::os::fd::OwnedFd> {
        self.root.as_ref()?.try_clone().ok()
    }

    /// Where a notification's caller stands.
    pub(crate) fn viewpoint(&self, pid: i32) -> Viewpoint<'_> {
        Viewpoint {
            pid,
            root: self.root.as_ref().map(|r| r.as_fd()),
        }
    }

    /// Identifies what an exec notification names. `filename` is what the kernel will pass a
    /// script's interpreter in place of argv[0]. Errors mean the kernel will fail the exec too
    /// (or the file was moved away meanwhile, which the exec-event check covers).
    pub(crate) fn identify_exec(
        &self,
        vp: Viewpoint<'_>,
        how: ExecPath<'_>,
        argv: &[Vec<u8>],
    ) -> io::Result<(ExeIdentity, Expected)> {
        let (file, filename, lookup) = match how {
            ExecPath::Fd(fd) => (
                open_magic(vp.pid, fd)?,
                format!("/dev/fd/{fd}").into_bytes(),
                None,
            ),
            ExecPath::Path { dirfd, path } => {
                let f = open_in_view(vp, dirfd, path)?;
                match dirfd {
                    Some(fd) if path.first() != Some(&b'/') => {
                        let mut n = format!("/dev/fd/{fd}/").into_bytes();
                        n.extend_from_slice(path);
                        (f, n, None)
                    }
                    _ => (f, path.to_vec(), Some(path.to_vec())),
                }
            }
        };
        self.identify_open(vp, file, &filename, argv, 0, lookup)
    }

    /// The stamp of the image a process is running now: all the exec-event check needs when the
    /// exec went as expected, without reading the file.
    pub(crate) fn stamp_running(&self, pid: i32) -> io::Result<Stamp> {
        Ok(Stamp::of(&std::fs::metadata(format!("/proc/{pid}/exe"))?))
    }

    /// Whether every script of an allowed `#!` chain is still what was checked: unchanged
    /// through the descriptor opened at the check (a write changes size, mtime or ctime), and
    /// still what its path leads to in the process's view (a rename over it changes the inode).
    /// Returns the first script that changed.
    pub(crate) fn changed_script(&self, pid: i32, expected: &Expected) -> Option<Vec<u8>> {
        for s in &expected.scripts {
            let name = || s.path.clone().unwrap_or_else(|| b"(a descriptor)".to_vec());
            let now = s.file.metadata().map(|m| Stamp::of(&m));
            if now.ok() != Some(s.stamp) {
                return Some(name());
            }
            if let Some(path) = &s.path {
                let same = open_in_view(Viewpoint::own(pid), None, path)
                    .and_then(|f| f.metadata())
                    .map(|m| (m.dev(), m.ino()) == (s.stamp.dev, s.stamp.ino));
                if !matches!(same, Ok(true)) {
                    return Some(name());
                }
            }
        }
        None
    }

    /// Identifies the image a process is running now (at the exec event): /proc/PID/exe is the
    /// file the kernel mapped, whatever any path says.
    pub(crate) fn identify_running(&self, pid: i32, argv: &[Vec<u8>]) -> io::Result<ExeIdentity> {
        let file = File::from(
            rustix::fs::open(
                format!("/proc/{pid}/exe"),
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io::Error::from)?,
        );
        let filename = argv.first().cloned().unwrap_or_default();
        // Depth 0: /proc/PID/exe is never a script (the kernel resolved the `#!` chain), but
        // it may be the loader, whose target is still to identify.
        Ok(self
            .identify_open(Viewpoint::own(pid), file, &filename, argv, 0, None)?
            .0)
    }

    fn identify_open(
        &self,
        vp: Viewpoint<'_>,
        file: File,
        filename: &[u8],
        argv: &[Vec<u8>],
        depth: usize,
        lookup: Option<Vec<u8>>,
    ) -> io::Result<(ExeIdentity, Expected)> {
        let meta = file.metadata()?;
        let stamp = Stamp::of(&meta);
        let resolved = fd_path(&file);
        let memfd = resolved.as_os_str().as_bytes().starts_with(b"/memfd:");
        let mut id = ExeIdentity {
            resolved,
            dev: stamp.dev,
            ino: stamp.ino,
            memfd,
            ..ExeIdentity::default()
        };
        let mut expected = Expected {
            image: stamp,
            argv: argv.to_vec(),
            scripts: Vec::new(),
            memoizable: false,
        };
        if !meta.is_file() {
            return Ok((id, expected));
        }
        let writable = rustix::fs::fstatvfs(file.as_fd())
            .map(|s| !s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
            .unwrap_or(true);
        // `file` may be an O_PATH descriptor: reopened for reading only when a cache misses.
        let mut readable: Option<File> = None;
        let facts = if writable || memfd {
            Some(match self.cached_facts(stamp) {
                Some(f) => f,
                None => self.facts(read_through(&file, &mut readable)?, stamp)?,
            })
        } else {
            None
        };
        id.sha256 = facts.map(|f| f.sha256);

        let mut first = [0u8; HEAD_READ];
        let (kind, n) = match self.cached_head(stamp) {
            Some(k @ (Head::Elf { .. } | Head::Other)) => (k, 0),
            _ => {
                let r = read_through(&file, &mut readable)?;
                let n = r.read_at(&mut first, 0)?;
                let whole = &first[..n];
                let kind = if parse_shebang(&whole[..n.min(HEADER)]).is_some() {
                    Head::Script
                } else if let Some(elf) = parse_elf(r, whole) {
                    Head::Elf {
                        dyn_no_interp: elf.dyn_no_interp,
                    }
                } else {
                    Head::Other
                };
                self.remember_head(stamp, kind);
                (kind, n)
            }
        };
        let head = &first[..n.min(HEADER)];

        let shebang = (kind == Head::Script)
            .then(|| parse_shebang(head))
            .flatten();
        if let (Some((interp, arg)), true) = (shebang, depth < MAX_DEPTH) {
            let ifile = open_in_view(vp, None, &interp)?;
            let mut iargv = vec![interp.clone()];
            iargv.extend(arg.clone());
            iargv.push(filename.to_vec());
            iargv.extend(argv.iter().skip(1).cloned());
            let (iid, iexp) =
                self.identify_open(vp, ifile, &interp, &iargv, depth + 1, Some(interp.clone()))?;
            let mut inner = iid.clone();
            inner.interpreters.clear();
            id.interpreters.push(Interpreter {
                path: interp,
                arg,
                exe: inner,
            });
            id.interpreters.extend(iid.interpreters);
            expected.image = iexp.image;
            expected.argv = iexp.argv;
            expected.scripts.push(ScriptCheck {
                file: std::sync::Arc::new(file),
                stamp,
                path: lookup,
            });
            expected.scripts.extend(iexp.scripts);
            return Ok((id, expected));
        }

        if let Head::Elf { dyn_no_interp } = kind {
            let name = basename(id.resolved.as_os_str().as_bytes());
            let is_loader = dyn_no_interp
                && (looks_like_loader_name(name)
                    || id.sha256.is_some_and(|h| self.loader_hashes.contains(&h)));
            if is_loader && depth < MAX_DEPTH {
                id.loader_target = loader_target(argv).map(|(i, arg)| {
                    let exe = open_in_view(vp, None, &arg).ok().and_then(|f| {
                        self.identify_open(vp, f, &arg, &argv[i..], depth + 1, None)
                            .ok()
                            .map(|(t, _)| Box::new(t))
                    });
                    LoaderTarget { arg, exe }
                });
            }
            expected.memoizable = depth == 0 && !is_loader && !memfd;
            let multicall = facts.is_some_and(|f| f.multicall) || is_multicall_name(name);
            if multicall {
                id.applet = applet(argv, name);
            }
        }
        Ok((id, expected))
    }

    fn cached_facts(&self, stamp: Stamp) -> Option<Facts> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(&(stamp.dev, stamp.ino))
            .filter(|(s, _)| *s == stamp)
            .map(|(_, f)| *f)
    }

    fn cached_head(&self, stamp: Stamp) -> Option<Head> {
        let heads = self.heads.lock().unwrap_or_else(|e| e.into_inner());
        heads
            .get(&(stamp.dev, stamp.ino))
            .filter(|(s, _)| *s == stamp)
            .map(|(_, h)| *h)
    }

    fn remember_head(&self, stamp: Stamp, head: Head) {
        self.heads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((stamp.dev, stamp.ino), (stamp, head));
    }

    /// Content facts of a regular file, from the cache when its stamp is unchanged.
    fn facts(&self, file: &File, stamp: Stamp) -> io::Result<Facts> {
        let key = (stamp.dev, stamp.ino);
        if let Some(f) = self.cached_facts(stamp) {
            return Ok(f);
        }
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut off = 0u64;
        let mut multicall = false;
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let n = file.read_at(&mut buf, off)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            if !multicall {
                // Search across chunk borders by keeping the last few bytes of the previous one.
                tail.extend_from_slice(&buf[..n]);
                multicall = MULTICALL_MARKS
                    .iter()
                    .any(|m| tail.windows(m.len()).any(|w| w == *m));
                let keep = tail.len().saturating_sub(16);
                tail.drain(..keep);
            }
            off += n as u64;
        }
        let facts = Facts {
            sha256: hasher.finalize().into(),
            multicall,
        };
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (stamp, facts));
        Ok(facts)
    }
}

/// `file` opened for reading: `slot` once reopened (a regular file opened with O_PATH).
fn read_through<'a>(file: &File, slot: &'a mut Option<File>) -> io::Result<&'a File> {
    if slot.is_none() {
        let fd = file.try_clone()?;
        *slot = Some(reopen_regular(fd.into())?);
    }
    slot.as_ref()
        .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(script: &std::path::Path) -> (Identifier, Expected) {
        let id = Identifier::new();
        let path = script.as_os_str().as_bytes();
        let argv = vec![path.to_vec()];
        let how = ExecPath::Path { dirfd: None, path };
        let me = Viewpoint::own(std::process::id() as i32);
        let (_, expected) = id.identify_exec(me, how, &argv).unwrap();
        assert_eq!(expected.scripts.len(), 1);
        (id, expected)
    }

    #[test]
    fn a_script_rewritten_after_its_check_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("build.sh");
        std::fs::write(&script, "#!/bin/sh\necho build\n").unwrap();
        let me = std::process::id() as i32;
        let (id, expected) = checked(&script);
        assert_eq!(id.changed_script(me, &expected), None);
        // Same length, so only mtime and ctime tell.
        std::fs::write(&script, "#!/bin/sh\necho BUILD\n").unwrap();
        assert!(id.changed_script(me, &expected).is_some());
    }

    #[test]
    fn a_script_replaced_by_rename_after_its_check_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("build.sh");
        std::fs::write(&script, "#!/bin/sh\necho build\n").unwrap();
        let me = std::process::id() as i32;
        let (id, expected) = checked(&script);
        let other = dir.path().join("other");
        std::fs::write(&other, "#!/bin/sh\nrm -rf /\n").unwrap();
        std::fs::rename(&other, &script).unwrap();
        assert!(id.changed_script(me, &expected).is_some());
    }
}
