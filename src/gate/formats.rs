//! Reading executable formats, without deciding anything: the `#!` line as the kernel splits it,
//! the ELF header and program headers (is this the dynamic loader?), the applet a multi-call
//! binary will run, and the program named on the loader's command line.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// Strings only the multi-call binaries carry: a renamed busybox is still busybox.
pub(crate) const MULTICALL_MARKS: &[&[u8]] = &[b"BusyBox v", b"Toybox ", b"toybox: "];

pub(crate) fn is_multicall_name(name: &[u8]) -> bool {
    name == b"busybox" || name == b"toybox"
}

pub(crate) fn looks_like_loader_name(name: &[u8]) -> bool {
    name.starts_with(b"ld-linux") || name.starts_with(b"ld-musl") || name == b"ld.so"
}

/// The applet a multi-call binary runs: `argv[0]`'s basename, unless that names the binary
/// itself (`busybox rm`), in which case the first argument that is not an option. Like busybox,
/// "names itself" means a basename starting with `busybox` (or `toybox`): a hard link or copy
/// named `cat` runs `cat` whatever its first argument is (`cat /etc/passwd` is not `passwd`),
/// and a copy named `bb` runs nothing (`bb: applet not found`), so `bb` is what is decided.
pub(crate) fn applet(argv: &[Vec<u8>], _binary_name: &[u8]) -> Option<String> {
    let a0 = basename(argv.first()?);
    let named_itself = a0.starts_with(b"busybox") || a0.starts_with(b"toybox");
    let pick = if named_itself {
        argv.iter().skip(1).find(|a| !a.starts_with(b"-"))?
    } else {
        argv.first()?
    };
    Some(String::from_utf8_lossy(basename(pick)).into_owned())
}

/// The program in `ld.so [OPTIONS] PROGRAM [ARGS]`, and its index in argv.
pub(crate) fn loader_target(argv: &[Vec<u8>]) -> Option<(usize, Vec<u8>)> {
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

pub(crate) struct Elf {
    /// ET_DYN without PT_INTERP: what the dynamic loader (and static-pie programs) look like.
    pub dyn_no_interp: bool,
}

/// `head`: the start of the file as read (at least the ELF header; the program headers are
/// taken from it when it holds them, else read from the file).
pub(crate) fn parse_elf(file: &File, head: &[u8]) -> Option<Elf> {
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
    let len = phnum * phentsize;
    let in_head = usize::try_from(phoff)
        .ok()
        .and_then(|off| head.get(off..off.checked_add(len)?));
    let mut table = Vec::new();
    let table = match in_head {
        Some(t) => t,
        None => {
            table.resize(len, 0);
            if file.read_exact_at(&mut table, phoff).is_err() {
                return true;
            }
            &table[..]
        }
    };
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
        assert_eq!(
            applet(&v(&["/tmp/busybox2", "rm"]), b"busybox2").as_deref(),
            Some("rm")
        );
        assert_eq!(applet(&v(&["/tmp/bb", "rm"]), b"bb").as_deref(), Some("bb"));
        // A hard link named `cat` (as in busybox images): its argument is not the applet.
        assert_eq!(
            applet(&v(&["cat", "/etc/passwd"]), b"cat").as_deref(),
            Some("cat")
        );
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
}
