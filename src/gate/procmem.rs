//! Reading another process's view through /proc: strings and pointer arrays from its memory
//! (`/proc/PID/mem`), and its status (parent, uid, tracer), working directory and command line.
//! Bounded reads only: the sandbox controls these bytes and may make them as large as it likes.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// Longest single string read (the kernel's MAX_ARG_STRLEN).
const MAX_STR: usize = 128 * 1024;
/// Most argv entries and bytes read in total; past these, the request carries a truncated argv,
/// and the exec-event check (which reads the real command line) has the last word.
pub(crate) const MAX_ARGS: usize = 4096;
pub(crate) const MAX_ARGV_BYTES: usize = 1024 * 1024;
const PAGE: u64 = 4096;

/// Reads a NUL-terminated string at `addr`, one page-bounded chunk at a time so that a string
/// ending just before an unmapped page is still read.
pub(crate) fn read_cstr(mem: &File, addr: u64, max: usize) -> io::Result<Vec<u8>> {
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
pub(crate) fn read_argv(mem: &File, addr: u64, width: usize) -> io::Result<(Vec<Vec<u8>>, bool)> {
    let mut out = Vec::new();
    if addr == 0 {
        return Ok((out, false));
    }
    let mut total = 0usize;
    for i in 0..MAX_ARGS {
        let mut p = [0u8; 8];
        mem.read_exact_at(&mut p[..width], addr + (i * width) as u64)?;
        let ptr = if width == 8 {
            u64::from_ne_bytes(p)
        } else {
            u32::from_ne_bytes([p[0], p[1], p[2], p[3]]) as u64
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

/// What /proc/PID/status says about a process, read once per exec.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Status {
    pub ppid: i32,
    /// Effective uid (second field of `Uid:`).
    pub euid: u32,
    /// The thread tracing it; 0 when untraced.
    pub tracer: i32,
}

/// Reads /proc/PID/status. A vanished process reads as all zeros, with an impossible uid.
pub(crate) fn status(pid: i32) -> Status {
    let mut st = Status {
        euid: u32::MAX,
        ..Status::default()
    };
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return st;
    };
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
