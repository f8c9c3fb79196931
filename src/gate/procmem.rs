//! Reading another process's view: strings and pointer arrays from its memory
//! (`process_vm_readv`, one system call per read and no descriptor to open), and through /proc
//! its status (parent, uid, tracer), working directory and command line. Bounded reads only:
//! the sandbox controls these bytes and may make them as large as it likes.

use std::io;
use std::path::PathBuf;

/// Another process's memory. The reader must check afterwards that the process is still the
/// one it meant (the gate does, with the notification's ID_VALID).
pub(crate) struct Remote(pub i32);

impl Remote {
    fn read_at(&self, buf: &mut [u8], addr: u64) -> io::Result<usize> {
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: `local` describes `buf`, which we own for the call; the remote side is only
        // read by the kernel, with the target's page permissions.
        let n = unsafe { libc::process_vm_readv(self.0, &local, 1, &remote, 1, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// One `process_vm_readv` for several pieces: `(buffer, address)` pairs, read in order.
    /// Returns the bytes read; a fault stops the transfer at that piece (short count).
    fn read_pieces(&self, pieces: &mut [(&mut [u8], u64)]) -> io::Result<usize> {
        let local: Vec<libc::iovec> = pieces
            .iter_mut()
            .map(|(b, _)| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let remote: Vec<libc::iovec> = pieces
            .iter()
            .map(|(b, a)| libc::iovec {
                iov_base: *a as *mut libc::c_void,
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: each local iovec describes a buffer we hold mutably for the call; the remote
        // side is only read by the kernel, with the target's page permissions.
        let n = unsafe {
            libc::process_vm_readv(
                self.0,
                local.as_ptr(),
                local.len() as libc::c_ulong,
                remote.as_ptr(),
                remote.len() as libc::c_ulong,
                0,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn read_exact_at(&self, buf: &mut [u8], addr: u64) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let n = self.read_at(&mut buf[done..], addr + done as u64)?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
            done += n;
        }
        Ok(())
    }
}

/// Longest single string read (the kernel's MAX_ARG_STRLEN).
const MAX_STR: usize = 128 * 1024;
/// Most argv entries and bytes read in total; past these, the request carries a truncated argv,
/// and the exec-event check (which reads the real command line) has the last word.
pub(crate) const MAX_ARGS: usize = 4096;
pub(crate) const MAX_ARGV_BYTES: usize = 1024 * 1024;
const PAGE: u64 = 4096;

/// Reads a NUL-terminated string at `addr`, one page-bounded chunk at a time so that a string
/// ending just before an unmapped page is still read.
pub(crate) fn read_cstr(mem: &Remote, addr: u64, max: usize) -> io::Result<Vec<u8>> {
    let max = max.min(MAX_STR);
    let mut out = Vec::new();
    let mut at = addr;
    let mut buf = [0u8; PAGE as usize];
    while out.len() < max {
        let room = (PAGE - at % PAGE) as usize;
        let want = room.min(max - out.len());
        let n = mem.read_at(&mut buf[..want], at)?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..end]);
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        at += n as u64;
    }
    Ok(out)
}

/// Reads a NULL-terminated array of pointers of `width` bytes (8, or 4 for i386 and x32
/// callers) and the strings they point to. Returns the strings and whether the limits cut it.
pub(crate) fn read_argv(mem: &Remote, addr: u64, width: usize) -> io::Result<(Vec<Vec<u8>>, bool)> {
    let mut out = Vec::new();
    if addr == 0 {
        return Ok((out, false));
    }
    let mut total = 0usize;
    // Pointers are read a batch at a time, never across a page end (the next page may be
    // unmapped right after the terminating NULL).
    let mut batch = [0u8; 512];
    let (mut have, mut used) = (0usize, 0usize);
    let mut at = addr;
    for _ in 0..MAX_ARGS {
        if used + width > have {
            let room = (PAGE - at % PAGE) as usize;
            let want = room.min(batch.len()).max(width);
            have = mem.read_at(&mut batch[..want], at)?;
            if have < width {
                mem.read_exact_at(&mut batch[..width], at)?;
                have = width;
            }
            used = 0;
        }
        let p = &batch[used..used + width];
        used += width;
        at += width as u64;
        let ptr = if width == 8 {
            u64::from_ne_bytes(p.try_into().unwrap_or([0; 8]))
        } else {
            u32::from_ne_bytes(p.try_into().unwrap_or([0; 4])) as u64
        };
        if ptr == 0 {
            return Ok((out, false));
        }
        let s = read_cstr(mem, ptr, MAX_ARGV_BYTES - total)?;
        total += s.len() + 1;
        out.push(s);
        if total >= MAX_ARGV_BYTES {
            return Ok((out, true));
        }
    }
    Ok((out, true))
}

/// The most a string may be for the batched read; longer ones are read piece by piece.
const SHORT: usize = 256;
/// Most argv entries the batched read takes; more are read one by one.
const BATCH_ARGS: usize = 64;

/// The path and argv of an exec notification. Usually two `process_vm_readv` calls: one for
/// the path and the argv pointer table together, one for every argument string (each piece
/// kept within its page, so an unmapped page after a short string costs nothing); anything
/// longer or unusual is read by `read_cstr` and `read_argv`, one call per piece.
pub(crate) fn read_exec_args(
    mem: &Remote,
    path_ptr: u64,
    argv_ptr: u64,
    width: usize,
) -> io::Result<(Vec<u8>, Vec<Vec<u8>>)> {
    if let Some(r) = batched_exec_args(mem, path_ptr, argv_ptr, width) {
        return Ok(r);
    }
    let path = read_cstr(mem, path_ptr, libc::PATH_MAX as usize)?;
    let argv = read_argv(mem, argv_ptr, width)?.0;
    Ok((path, argv))
}

/// Bytes from `addr` to the end of its page, at most `max`.
fn in_page(addr: u64, max: usize) -> usize {
    ((PAGE - addr % PAGE) as usize).min(max)
}

/// The string at the start of `buf`, if its NUL is there.
fn terminated(buf: &[u8]) -> Option<Vec<u8>> {
    buf.iter()
        .position(|&b| b == 0)
        .map(|end| buf[..end].to_vec())
}

fn batched_exec_args(
    mem: &Remote,
    path_ptr: u64,
    argv_ptr: u64,
    width: usize,
) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    if argv_ptr == 0 || argv_ptr % width as u64 != 0 {
        return None;
    }
    let mut pbuf = [0u8; SHORT];
    let mut tbuf = [0u8; (BATCH_ARGS + 1) * 8];
    let plen = in_page(path_ptr, SHORT);
    let tlen = in_page(argv_ptr, (BATCH_ARGS + 1) * width);
    let n = mem
        .read_pieces(&mut [(&mut pbuf[..plen], path_ptr), (&mut tbuf[..tlen], argv_ptr)])
        .ok()?;
    if n != plen + tlen {
        return None;
    }
    let path = terminated(&pbuf[..plen])?;
    let mut ptrs = Vec::new();
    let mut ended = false;
    for c in tbuf[..tlen].chunks_exact(width) {
        let p = if width == 8 {
            u64::from_ne_bytes(c.try_into().ok()?)
        } else {
            u32::from_ne_bytes(c.try_into().ok()?) as u64
        };
        if p == 0 {
            ended = true;
            break;
        }
        ptrs.push(p);
    }
    if !ended {
        return None;
    }
    let lens: Vec<usize> = ptrs.iter().map(|&p| in_page(p, SHORT)).collect();
    let mut buf = vec![0u8; lens.iter().sum()];
    let mut pieces: Vec<(&mut [u8], u64)> = Vec::with_capacity(ptrs.len());
    let mut rest = &mut buf[..];
    for (&p, &len) in ptrs.iter().zip(&lens) {
        let (piece, tail) = rest.split_at_mut(len);
        pieces.push((piece, p));
        rest = tail;
    }
    if !pieces.is_empty() && mem.read_pieces(&mut pieces).ok()? != buf.len() {
        return None;
    }
    let mut argv = Vec::with_capacity(ptrs.len());
    let mut at = 0;
    for len in lens {
        argv.push(terminated(&buf[at..at + len])?);
        at += len;
    }
    Some((path, argv))
}

/// What /proc/PID/status says about a process, read once per exec.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Status {
    pub ppid: i32,
    /// Effective uid (second field of `Uid:`).
    pub euid: u32,
    /// The thread tracing it; 0 when untraced.
    pub tracer: i32,
}

/// `struct pidfd_info` (linux/pidfd.h, 6.13), its first version: the libc crate lacks it.
#[repr(C)]
#[derive(Default)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    pid: u32,
    tgid: u32,
    ppid: u32,
    ruid: u32,
    rgid: u32,
    euid: u32,
    egid: u32,
    suid: u32,
    sgid: u32,
    fsuid: u32,
    fsgid: u32,
    exit_code: i32,
}

/// `_IOWR(PIDFS_IOCTL_MAGIC, 11, struct pidfd_info)`.
const PIDFD_GET_INFO: libc::c_ulong = 0xC040_FF0B;
const PIDFD_INFO_PID: u64 = 1;
const PIDFD_INFO_CREDS: u64 = 2;
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;

/// Parent and effective uid of thread `tid`, from its pidfd (kernel 6.13+): three cheap system
/// calls instead of formatting and parsing /proc/PID/status, which costs more than the rest of
/// a gated exec's reads. Falls back to /proc/PID/status on older kernels.
pub(crate) fn parent_and_uid(tid: i32) -> (i32, u32) {
    fast_parent_and_uid(tid).unwrap_or_else(|| {
        let st = status(tid);
        (st.ppid, st.euid)
    })
}

fn fast_parent_and_uid(tid: i32) -> Option<(i32, u32)> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, tid, PIDFD_THREAD) };
    if r < 0 {
        return None;
    }
    // SAFETY: a fresh descriptor that we now own.
    let fd = unsafe { OwnedFd::from_raw_fd(r as i32) };
    let mut info = PidfdInfo {
        mask: PIDFD_INFO_PID | PIDFD_INFO_CREDS,
        ..PidfdInfo::default()
    };
    // SAFETY: PIDFD_GET_INFO reads the request mask from and writes at most the structure's
    // size (encoded in the request number) into `info`.
    if unsafe { libc::ioctl(fd.as_raw_fd(), PIDFD_GET_INFO, &mut info as *mut PidfdInfo) } != 0 {
        return None;
    }
    let want = PIDFD_INFO_PID | PIDFD_INFO_CREDS;
    (info.mask & want == want).then_some((info.ppid as i32, info.euid))
}

/// Reads /proc/PID/status. A vanished process reads as all zeros, with an impossible uid.
pub(crate) fn status(pid: i32) -> Status {
    let mut st = Status {
        euid: u32::MAX,
        ..Status::default()
    };
    // One read into a fixed buffer: the fields needed are in the first lines, and a buffered
    // read-to-end would cost a stat and several reads per exec.
    let Ok(f) = std::fs::File::open(format!("/proc/{pid}/status")) else {
        return st;
    };
    let mut buf = [0u8; 4096];
    let n = std::io::Read::read(&mut &f, &mut buf).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("PPid:") {
            st.ppid = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Uid:") {
            st.euid = v
                .split_whitespace()
                .nth(1)
                .and_then(|u| u.parse().ok())
                .unwrap_or(u32::MAX);
        } else if let Some(v) = line.strip_prefix("TracerPid:") {
            st.tracer = v.trim().parse().unwrap_or(0);
        }
    }
    st
}

pub(crate) fn cwd(pid: i32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default()
}

/// 64-bit user code segment: a tracee in it has 8-byte pointers on its initial stack.
const USER_CS_64: u64 = 0x33;

/// The argv of an image stopped at its exec event, read from its initial stack (argc, the
/// argv pointers, then the first envp pointer, which marks where the argument strings end):
/// a register read and one memory read (two or three with a large environment or argv) instead
/// of a /proc lookup of a pid never seen before.
/// Nothing but the kernel has written this memory yet (the image has not run; its mm is new).
/// Falls back to /proc/PID/cmdline for anything unusual (32-bit images, no environment).
pub(crate) fn exec_argv(pid: i32) -> io::Result<Vec<Vec<u8>>> {
    fast_exec_argv(pid).map_or_else(|| cmdline(pid), Ok)
}

fn fast_exec_argv(pid: i32) -> Option<Vec<Vec<u8>>> {
    // SAFETY: a zeroed user_regs_struct is valid plain data; GETREGS fills it in.
    let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    // SAFETY: PTRACE_GETREGS writes one user_regs_struct to the pointer; `pid` is our tracee,
    // stopped at its exec event.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGS,
            pid,
            0,
            &mut regs as *mut libc::user_regs_struct,
        )
    };
    if r != 0 || regs.cs != USER_CS_64 {
        return None;
    }
    let mem = Remote(pid);
    // argc, the pointer table and, with a small environment, the argument strings too in one
    // read: above the initial stack pointer lie argv, envp, auxv and then the strings, up to
    // the stack's end (a read past it stops short, at a page end).
    let mut first = [0u8; 4096];
    let got = mem.read_at(&mut first, regs.rsp).ok()?;
    if got < 8 {
        return None;
    }
    let argc = u64::from_ne_bytes(first[..8].try_into().ok()?) as usize;
    if argc == 0 || argc > MAX_ARGS {
        return None;
    }
    let need = (argc + 3) * 8;
    let table: std::borrow::Cow<'_, [u8]> = if need <= got {
        std::borrow::Cow::Borrowed(&first[8..need])
    } else {
        let mut t = vec![0u8; need - 8];
        mem.read_exact_at(&mut t, regs.rsp + 8).ok()?;
        std::borrow::Cow::Owned(t)
    };
    let ptr = |i: usize| u64::from_ne_bytes(table[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    let (start, end) = (ptr(0), ptr(argc + 1));
    if ptr(argc) != 0 || end <= start || (end - start) as usize > MAX_ARGV_BYTES {
        return None;
    }
    let mut raw = if start >= regs.rsp && end - regs.rsp <= got as u64 {
        first[(start - regs.rsp) as usize..(end - regs.rsp) as usize].to_vec()
    } else {
        let mut raw = vec![0u8; (end - start) as usize];
        mem.read_exact_at(&mut raw, start).ok()?;
        raw
    };
    if raw.last() != Some(&0) {
        return None;
    }
    raw.pop();
    let args: Vec<Vec<u8>> = raw.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
    (args.len() == argc).then_some(args)
}

/// The command line as the kernel placed it in the new image, split at NULs.
pub(crate) fn cmdline(pid: i32) -> io::Result<Vec<Vec<u8>>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline"))?;
    let mut args: Vec<Vec<u8>> = raw.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
    // The area ends with a NUL, which leaves one empty piece after it.
    if raw.last() == Some(&0) {
        args.pop();
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_and_piecewise_reads_agree() {
        use std::ffi::CString;
        let me = Remote(std::process::id() as i32);
        let long = "x".repeat(3000);
        for args in [
            vec!["/bin/true"],
            vec!["sh", "-c", "echo hi", ""],
            vec!["cc", long.as_str(), "-o", "out"],
            vec![],
        ] {
            let c: Vec<CString> = args.iter().map(|a| CString::new(*a).unwrap()).collect();
            let mut ptrs: Vec<*const libc::c_char> = c.iter().map(|s| s.as_ptr()).collect();
            ptrs.push(std::ptr::null());
            let path = CString::new("/usr/bin/env").unwrap();
            let (p, a) =
                read_exec_args(&me, path.as_ptr() as u64, ptrs.as_ptr() as u64, 8).unwrap();
            assert_eq!(p, b"/usr/bin/env");
            let want: Vec<Vec<u8>> = args.iter().map(|s| s.as_bytes().to_vec()).collect();
            assert_eq!(a, want);
            assert_eq!(read_argv(&me, ptrs.as_ptr() as u64, 8).unwrap().0, want);
        }
    }

    #[test]
    fn parent_and_uid_agree_with_proc_status() {
        // SAFETY: gettid, getppid and geteuid take no arguments.
        let (tid, ppid, euid) = unsafe { (libc::gettid(), libc::getppid(), libc::geteuid()) };
        assert_eq!(parent_and_uid(tid), (ppid, euid));
        let st = status(tid);
        assert_eq!((st.ppid, st.euid), (ppid, euid));
        assert_eq!(
            fast_parent_and_uid(tid),
            Some((ppid, euid)),
            "kernel 6.13+ here"
        );
    }
}
