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
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use sha2::{Digest, Sha256};

use super::ExeIdentity;

/// The kernel's own limit on nested interpreters (BINPRM_MAX_RECURSION).
const MAX_DEPTH: usize = 4;
/// The kernel reads this much of a script for its `#!` line (BINPRM_BUF_SIZE).
const HEADER: usize = 256;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expected {
    pub image: Stamp,
    pub argv: Vec<Vec<u8>>,
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
}

#[derive(Clone, Copy)]
struct Facts {
    sha256: [u8; 32],
    multicall: bool,
}

/// Where the target stands: its pid (for /proc/PID/root and /proc/PID/cwd).
#[derive(Clone, Copy)]
pub(crate) struct Viewpoint {
    pub pid: i32,
}

/// How the exec named its file.
pub(crate) enum ExecPath<'a> {
    /// `execve(path)` or `execveat(dirfd, path)` with `dirfd` `None` for AT_FDCWD.
    Path { dirfd: Option<i32>, path: &'a [u8] },
    /// `execveat(fd, "", AT_EMPTY_PATH)`, as `fexecve` does.
    Fd(i32),
}

/// Identifies executables; keeps the content-hash cache for the monitor's lifetime.
pub(crate) struct Identifier {
    cache: Mutex<HashMap<(u64, u64), (Stamp, Facts)>>,
    loader_hashes: HashSet<[u8; 32]>,
}

const LOADER_PATHS: &[&str] = &[
    "/lib64/ld-linux-x86-64.so.2",
    "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "/lib/ld-linux.so.2",
    "/lib/ld-musl-x86_64.so.1",
];

impl Identifier {
    pub(crate) fn new() -> Identifier {
        let mut id = Identifier {
            cache: Mutex::new(HashMap::new()),
            loader_hashes: HashSet::new(),
        };
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

    /// Identifies what an exec notification names. `filename` is what the kernel will pass a
    /// script's interpreter in place of argv[0]. Errors mean the kernel will fail the exec too
    /// (or the file was moved away meanwhile, which the exec-event check covers).
    pub(crate) fn identify_exec(
        &self,
        vp: Viewpoint,
        how: ExecPath<'_>,
        argv: &[Vec<u8>],
    ) -> io::Result<(ExeIdentity, Expected)> {
        let (file, filename) = match how {
            ExecPath::Fd(fd) => (
                open_magic(vp.pid, fd)?,
                format!("/dev/fd/{fd}").into_bytes(),
            ),
            ExecPath::Path { dirfd, path } => {
                let f = open_in_view(vp, dirfd, path)?;
                let name = match dirfd {
                    Some(fd) if path.first() != Some(&b'/') => {
                        let mut n = format!("/dev/fd/{fd}/").into_bytes();
                        n.extend_from_slice(path);
                        n
                    }
                    _ => path.to_vec(),
                };
                (f, name)
            }
        };
        self.identify_open(vp, file, &filename, argv, 0)
    }

    /// The stamp of the image a process is running now: all the exec-event check needs when the
    /// exec went as expected, without reading the file.
    pub(crate) fn stamp_running(&self, pid: i32) -> io::Result<Stamp> {
        Ok(Stamp::of(&std::fs::metadata(format!("/proc/{pid}/exe"))?))
    }

    /// Identifies the image a process is running now (at the exec event): /proc/PID/exe is the
    /// file the kernel mapped, whatever any path says.
    pub(crate) fn identify_running(&self, pid: i32, argv: &[Vec<u8>]) -> io::Result<ExeIdentity> {
        let file = reopen_regular(
            rustix::fs::open(
                format!("/proc/{pid}/exe"),
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io::Error::from)?,
        )?;
        let filename = argv.first().cloned().unwrap_or_default();
        // Depth 0: /proc/PID/exe is never a script (the kernel resolved the `#!` chain), but
        // it may be the loader, whose target is still to identify.
        Ok(self
            .identify_open(Viewpoint { pid }, file, &filename, argv, 0)?
            .0)
    }

    fn identify_open(
        &self,
        vp: Viewpoint,
        file: File,
        filename: &[u8],
        argv: &[Vec<u8>],
        depth: usize,
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
        };
        if !meta.is_file() {
            return Ok((id, expected));
        }
        let writable = rustix::fs::fstatvfs(file.as_fd())
            .map(|s| !s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
            .unwrap_or(true);
        let facts = if writable || memfd {
            Some(self.facts(&file, stamp)?)
        } else {
            None
        };
        id.sha256 = facts.map(|f| f.sha256);

        let mut head = [0u8; HEADER];
        let n = file.read_at(&mut head, 0)?;
        let head = &head[..n];

        if let (Some((interp, arg)), true) = (parse_shebang(head), depth < MAX_DEPTH) {
            let ifile = open_in_view(vp, None, &interp)?;
            let mut iargv = vec![interp.clone()];
            iargv.extend(arg.clone());
            iargv.push(filename.to_vec());
            iargv.extend(argv.iter().skip(1).cloned());
            let (iid, iexp) = self.identify_open(vp, ifile, &interp, &iargv, depth + 1)?;
            let mut inner = iid.clone();
            inner.interpreters.clear();
            id.interpreters.push(Interpreter {
                path: interp,
                arg,
                exe: inner,
            });
            id.interpreters.extend(iid.interpreters);
            expected = iexp;
            return Ok((id, expected));
        }

        if let Some(elf) = parse_elf(&file, head) {
            let name = basename(id.resolved.as_os_str().as_bytes());
            let is_loader = elf.dyn_no_interp
                && (looks_like_loader_name(name)
                    || id.sha256.is_some_and(|h| self.loader_hashes.contains(&h)));
            if is_loader && depth < MAX_DEPTH {
                id.loader_target = loader_target(argv).map(|(i, arg)| {
                    let exe = open_in_view(vp, None, &arg).ok().and_then(|f| {
                        self.identify_open(vp, f, &arg, &argv[i..], depth + 1)
                            .ok()
                            .map(|(t, _)| Box::new(t))
                    });
                    LoaderTarget { arg, exe }
                });
            }
            let multicall = facts.is_some_and(|f| f.multicall) || is_multicall_name(name);
            if multicall {
                id.applet = applet(argv, name);
            }
        }
        Ok((id, expected))
    }

    /// Content facts of a regular file, from the cache when its stamp is unchanged.
    fn facts(&self, file: &File, stamp: Stamp) -> io::Result<Facts> {
        let key = (stamp.dev, stamp.ino);
        if let Some((s, f)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            if *s == stamp {
                return Ok(*f);
            }
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

/// Strings only the multi-call binaries carry: a renamed busybox is still busybox.
const MULTICALL_MARKS: &[&[u8]] = &[b"BusyBox v", b"Toybox ", b"toybox: "];

fn is_multicall_name(name: &[u8]) -> bool {
    name == b"busybox" || name == b"toybox"
}

fn looks_like_loader_name(name: &[u8]) -> bool {
    name.starts_with(b"ld-linux") || name.starts_with(b"ld-musl") || name == b"ld.so"
}

/// The applet a multi-call binary runs: `argv[0]`'s basename, unless that names the binary
/// itself (`busybox rm`), in which case the first argument that is not an option.
fn applet(argv: &[Vec<u8>], binary_name: &[u8]) -> Option<String> {
    let a0 = basename(argv.first()?);
    let named_itself = is_multicall_name(a0) || a0 == binary_name;
    let pick = if named_itself {
        argv.iter().skip(1).find(|a| !a.starts_with(b"-"))?
    } else {
        argv.first()?
    };
    Some(String::from_utf8_lossy(basename(pick)).into_owned())
}

/// The program in `ld.so [OPTIONS] PROGRAM [ARGS]`, and its index in argv.
fn loader_target(argv: &[Vec<u8>]) -> Option<(usize, Vec<u8>)> {
    const WITH_VALUE: &[&[u8]] = &[
        b"--library-path",
        b"--inhibit-rpath",
        b"--audit",
        b"--preload",
        b"--argv0",
        b"--glibc-hwcaps-prefix",
        b"--glibc-hwcaps-mask",
    ];
    let mut i = 1;
    while i < argv.len() {
        let a = &argv[i];
        if a == b"--" {
            return argv.get(i + 1).map(|t| (i + 1, t.clone()));
        }
        if WITH_VALUE.contains(&a.as_slice()) {
            i += 2;
            continue;
        }
        if a.starts_with(b"--") {
            i += 1;
            continue;
        }
        return Some((i, a.clone()));
    }
    None
}

/// Interpreter and optional argument of a `#!` line, split the way the kernel splits it: the
/// first word is the interpreter, the rest (trimmed) is one argument.
pub(crate) fn parse_shebang(head: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let line = head.strip_prefix(b"#!")?;
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    let line = &line[..end];
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let start = line.iter().position(|b| !is_space(b))?;
    let line = &line[start..];
    let line = &line[..line.iter().rposition(|b| !is_space(b))? + 1];
    match line.iter().position(is_space) {
        None => Some((line.to_vec(), None)),
        Some(sp) => {
            let rest = &line[sp..];
            let a = rest.iter().position(|b| !is_space(b)).map(|s| &rest[s..]);
            Some((line[..sp].to_vec(), a.map(<[u8]>::to_vec)))
        }
    }
}

struct Elf {
    /// ET_DYN without PT_INTERP: what the dynamic loader (and static-pie programs) look like.
    dyn_no_interp: bool,
}

fn parse_elf(file: &File, head: &[u8]) -> Option<Elf> {
    if head.len() < 64 || &head[..4] != b"\x7fELF" {
        return None;
    }
    // Type ET_DYN (3); 32-bit images are never taken for the 64-bit loader.
    let is_dyn = head[4] == 2 && u16::from_le_bytes([head[16], head[17]]) == 3;
    Some(Elf {
        dyn_no_interp: is_dyn && !has_interp(file, head),
    })
}

/// Whether the program headers carry PT_INTERP (3). Unreadable headers count as "has one", so a
/// damaged file is treated as a program, not as the loader.
fn has_interp(file: &File, head: &[u8]) -> bool {
    let word = |r: std::ops::Range<usize>| head.get(r).and_then(|b| b.try_into().ok());
    let phoff = word(32..40).map(u64::from_le_bytes).unwrap_or(0);
    let phentsize = u16::from_le_bytes([head[54], head[55]]) as usize;
    let phnum = u16::from_le_bytes([head[56], head[57]]) as usize;
    if phentsize < 4 || phnum == 0 || phnum * phentsize > 64 * 1024 {
        return true;
    }
    let mut table = vec![0u8; phnum * phentsize];
    if file.read_exact_at(&mut table, phoff).is_err() {
        return true;
    }
    table
        .chunks_exact(phentsize)
        .any(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]]) == 3)
}

pub(crate) fn basename(p: &[u8]) -> &[u8] {
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => &p[i + 1..],
        None => p,
    }
}

fn fd_path(f: &File) -> PathBuf {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())).unwrap_or_default()
}

/// Opens the file behind the target's descriptor `fd` (a memfd, or what `fexecve` got).
fn open_magic(pid: i32, fd: i32) -> io::Result<File> {
    let p = rustix::fs::open(
        format!("/proc/{pid}/fd/{fd}"),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    reopen_regular(p)
}

/// Opens `path` the way the target would: absolute paths inside the target's root (symlinks,
/// `..` and all, cannot climb out of it), relative ones from its cwd or the execveat dirfd.
/// Paths through the target's own descriptors (/dev/fd/N, /proc/self/fd/N) are taken from its
/// fd table, since /proc/self would mean the monitor here.
fn open_in_view(vp: Viewpoint, dirfd: Option<i32>, path: &[u8]) -> io::Result<File> {
    if let Some(fd) = own_fd_path(path) {
        return open_magic(vp.pid, fd);
    }
    let pid = vp.pid;
    let o = OFlags::PATH | OFlags::CLOEXEC;
    let opened = if path.first() == Some(&b'/') {
        let root = rustix::fs::open(
            format!("/proc/{pid}/root"),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        match rustix::fs::openat2(&root, path, o, Mode::empty(), ResolveFlags::IN_ROOT) {
            // IN_ROOT refuses magic links (e.g. a symlink into /proc/PID/fd); the kernel
            // follows them, so follow them from the target's /proc view.
            Err(rustix::io::Errno::LOOP) | Err(rustix::io::Errno::XDEV) => {
                let mut full = format!("/proc/{pid}/root").into_bytes();
                full.extend_from_slice(path);
                rustix::fs::open(
                    Path::new(std::ffi::OsStr::from_bytes(&full)),
                    o,
                    Mode::empty(),
                )
            }
            r => r,
        }
    } else {
        let base = match dirfd {
            Some(fd) => format!("/proc/{pid}/fd/{fd}"),
            None => format!("/proc/{pid}/cwd"),
        };
        let base = rustix::fs::open(base, o | OFlags::DIRECTORY, Mode::empty())?;
        rustix::fs::openat(&base, path, o, Mode::empty())
    };
    reopen_regular(opened?)
}

/// Turns an O_PATH descriptor into a readable one, but only for regular files: opening a device
/// or FIFO for reading can have effects (a tape rewinds, a FIFO blocks).
fn reopen_regular(p: std::os::fd::OwnedFd) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    let st = rustix::fs::fstat(&p)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(File::from(p));
    }
    let f = rustix::fs::open(
        format!("/proc/self/fd/{}", p.as_raw_fd()),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )?;
    Ok(File::from(f))
}

fn own_fd_path(path: &[u8]) -> Option<i32> {
    let num = |s: &[u8]| std::str::from_utf8(s).ok()?.parse::<i32>().ok();
    match path {
        b"/dev/stdin" => return Some(0),
        b"/dev/stdout" => return Some(1),
        b"/dev/stderr" => return Some(2),
        _ => {}
    }
    for prefix in [
        &b"/dev/fd/"[..],
        b"/proc/self/fd/",
        b"/proc/thread-self/fd/",
    ] {
        if let Some(rest) = path.strip_prefix(prefix) {
            return num(rest);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<Vec<u8>> {
        args.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    #[test]
    fn shebang_splits_like_the_kernel() {
        assert_eq!(
            parse_shebang(b"#!/usr/bin/env -S rm -f  \nx"),
            Some((b"/usr/bin/env".to_vec(), Some(b"-S rm -f".to_vec())))
        );
        assert_eq!(
            parse_shebang(b"#! /bin/sh\n"),
            Some((b"/bin/sh".to_vec(), None))
        );
        assert_eq!(parse_shebang(b"#!\n"), None);
        assert_eq!(parse_shebang(b"echo"), None);
    }

    #[test]
    fn busybox_applet_is_the_command() {
        assert_eq!(
            applet(&v(&["/bin/busybox", "rm", "x"]), b"busybox").as_deref(),
            Some("rm")
        );
        assert_eq!(
            applet(&v(&["/tmp/rm", "-f", "x"]), b"busybox").as_deref(),
            Some("rm")
        );
        assert_eq!(applet(&v(&["/tmp/bb", "rm"]), b"bb").as_deref(), Some("rm"));
    }

    #[test]
    fn loader_options_are_skipped_to_find_the_program() {
        assert_eq!(
            loader_target(&v(&[
                "ld.so",
                "--library-path",
                "/x",
                "--inhibit-cache",
                "/usr/bin/rm",
                "a"
            ])),
            Some((4, b"/usr/bin/rm".to_vec()))
        );
        assert_eq!(loader_target(&v(&["ld.so", "--list"])), None);
    }

    #[test]
    fn descriptor_paths_name_the_targets_own_fds() {
        assert_eq!(own_fd_path(b"/proc/self/fd/7"), Some(7));
        assert_eq!(own_fd_path(b"/dev/fd/3"), Some(3));
        assert_eq!(own_fd_path(b"/usr/bin/rm"), None);
    }
}
