//! The Landlock execute floor of allowlist profiles (strict, evaluation): instead of whole
//! directories, Landlock's execute right covers only the files the allowed command names
//! resolve to in the host view's program directories, plus the dynamic loader (the kernel opens
//! a program's ELF interpreter for execution too). A copy or rename of any program into /tmp,
//! /workspace or the agent's home is then refused by the kernel itself (EACCES), below the exec
//! gate, whatever name it carries.
//!
//! Owns only this path resolution, on the host's filesystem (the host view shows the same files
//! at the same paths). It must not decide commands (the policy does, at run time, through the
//! gate) nor touch the kernel.

use std::path::{Path, PathBuf};

/// The ELF interpreters a program may name, as the host view shows them.
const LOADERS: &[&str] = &[
    "/lib64/ld-linux-x86-64.so.2",
    "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "/lib/ld-linux.so.2",
    "/lib/ld-musl-x86_64.so.1",
];

/// The files that `names` (command-name patterns with `*` and `?`, as profiles write them)
/// resolve to in `path_dirs`, symlinks followed, kept only where `visible` (the read-only binds of
/// the host view, shown at the same path) shows them; plus the loaders. Sorted, without
/// duplicates.
pub fn allowed_executables(
    names: &[String],
    path_dirs: &[&Path],
    visible: &[PathBuf],
) -> Vec<PathBuf> {
    let shown = |p: &Path| visible.iter().any(|v| p.starts_with(v));
    let mut out = Vec::new();
    for dir in path_dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if !names.iter().any(|n| crate::policy::command_glob(n, name)) {
                continue;
            }
            if let Ok(real) = std::fs::canonicalize(e.path()) {
                if real.is_file() && shown(&real) {
                    out.push(real);
                }
            }
        }
    }
    for l in LOADERS {
        if let Ok(real) = std::fs::canonicalize(l) {
            if shown(&real) {
                out.push(real);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_names_and_the_loader_are_executable() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in ["ls", "rm", "mkfs.ext4", "["] {
            std::fs::write(d.join(f), "").unwrap();
        }
        std::os::unix::fs::symlink(d.join("ls"), d.join("dir")).unwrap();
        let names: Vec<String> = ["ls", "mkfs*", "[", "dir"].map(String::from).into();
        let got = allowed_executables(&names, &[d], &[d.to_path_buf()]);
        let files: Vec<_> = got
            .iter()
            .filter(|p| p.starts_with(d))
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        // `dir` is a link to ls: the file it resolves to counts, once.
        assert_eq!(files, ["[", "ls", "mkfs.ext4"]);
        assert!(!got.iter().any(|p| p.ends_with("rm")));
    }

    #[test]
    fn files_outside_the_host_view_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ls"), "").unwrap();
        let got = allowed_executables(&["ls".into()], &[dir.path()], &[PathBuf::from("/usr")]);
        assert!(!got.iter().any(|p| p.starts_with(dir.path())));
    }
}
