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

/// The files that `names` resolve to in the PATH directories `path_dirs` of an image whose
/// unpacked layers are `layers` (lowest first, in overlayfs's form: whiteouts are 0:0 character
/// devices, opaque directories carry the `overlay.opaque` attribute), plus the image's dynamic
/// loaders. Paths are the container's: Landlock opens them in init, inside the image's root.
/// Symlinks are followed inside the image (an absolute target means the image's root, never
/// the host's). Sorted, without duplicates.
pub fn allowed_in_image(names: &[String], path_dirs: &[&Path], layers: &[PathBuf]) -> Vec<PathBuf> {
    let img = Layers(layers.iter().rev().cloned().collect());
    let mut out = Vec::new();
    for dir in path_dirs {
        let Some((real_dir, stack)) = img.resolve_dir(dir) else {
            continue;
        };
        for name in img.list(&stack) {
            let Some(n) = name.to_str() else { continue };
            if !names.iter().any(|p| crate::policy::command_glob(p, n)) {
                continue;
            }
            if let Some(file) = img.resolve_file(&real_dir.join(&name)) {
                out.push(file);
            }
        }
    }
    for l in LOADERS {
        if let Some(file) = img.resolve_file(Path::new(l)) {
            out.push(file);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// An image's layers, topmost first.
struct Layers(Vec<PathBuf>);

/// What one name is in the merged tree.
enum Node {
    /// A directory, with the layer directories merged into it, topmost first.
    Dir(Vec<PathBuf>),
    Link(PathBuf),
    File,
}

/// The kernel's limit on symlinks followed in one lookup.
const MAX_LINKS: usize = 40;

impl Layers {
    /// Looks `name` up in the merged directory `stack`, as overlayfs does.
    fn lookup(&self, stack: &[PathBuf], name: &std::ffi::OsStr) -> Option<Node> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let mut dirs = Vec::new();
        for d in stack {
            let p = d.join(name);
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let ft = m.file_type();
            if ft.is_char_device() && m.rdev() == 0 {
                break; // whited out here: lower layers are hidden
            }
            if !dirs.is_empty() && !ft.is_dir() {
                break; // a non-directory below a directory is hidden by it
            }
            if ft.is_symlink() {
                return Some(Node::Link(std::fs::read_link(&p).ok()?));
            }
            if !ft.is_dir() {
                return Some(Node::File);
            }
            let opaque = is_opaque(&p);
            dirs.push(p);
            if opaque {
                break;
            }
        }
        (!dirs.is_empty()).then_some(Node::Dir(dirs))
    }

    /// Walks `path` from the root, following every symlink; returns the real container path
    /// and what it is.
    fn walk(&self, path: &Path) -> Option<(PathBuf, Node)> {
        use std::path::Component;
        let mut todo: Vec<std::ffi::OsString> = Vec::new();
        let push = |todo: &mut Vec<std::ffi::OsString>, p: &Path| {
            for c in p.components().rev() {
                match c {
                    Component::Normal(n) => todo.push(n.to_os_string()),
                    Component::ParentDir => todo.push("..".into()),
                    _ => {}
                }
            }
        };
        push(&mut todo, path);
        // The resolved components so far, each with its merged directory.
        let mut at: Vec<(std::ffi::OsString, Vec<PathBuf>)> = Vec::new();
        let root = self.0.clone();
        let mut links = 0;
        let mut last = Node::Dir(root.clone());
        while let Some(c) = todo.pop() {
            if c == ".." {
                at.pop();
                last = Node::Dir(at.last().map_or(root.clone(), |(_, s)| s.clone()));
                continue;
            }
            let stack = at.last().map_or(&root, |(_, s)| s);
            match self.lookup(stack, &c)? {
                Node::Link(target) => {
                    links += 1;
                    if links > MAX_LINKS {
                        return None;
                    }
                    if target.is_absolute() {
                        at.clear();
                    }
                    push(&mut todo, &target);
                    last = Node::Dir(at.last().map_or(root.clone(), |(_, s)| s.clone()));
                }
                Node::Dir(s) => {
                    at.push((c, s.clone()));
                    last = Node::Dir(s);
                }
                Node::File if todo.is_empty() => {
                    at.push((c, Vec::new()));
                    last = Node::File;
                }
                Node::File => return None,
            }
        }
        let real: PathBuf = std::iter::once(std::ffi::OsString::from("/"))
            .chain(at.into_iter().map(|(c, _)| c))
            .collect();
        Some((real, last))
    }

    fn resolve_dir(&self, path: &Path) -> Option<(PathBuf, Vec<PathBuf>)> {
        match self.walk(path)? {
            (real, Node::Dir(stack)) => Some((real, stack)),
            _ => None,
        }
    }

    fn resolve_file(&self, path: &Path) -> Option<PathBuf> {
        match self.walk(path)? {
            (real, Node::File) => Some(real),
            _ => None,
        }
    }

    /// The names in a merged directory.
    fn list(&self, stack: &[PathBuf]) -> Vec<std::ffi::OsString> {
        let mut names: Vec<std::ffi::OsString> = stack
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flat_map(|it| it.flatten().map(|e| e.file_name()))
            .collect();
        names.sort();
        names.dedup();
        // Whether a name really exists (not whited out) is the lookup's to say.
        names.retain(|n| self.lookup(stack, n).is_some());
        names
    }
}

/// Whether a layer's directory is opaque (hides the same directory in lower layers): root writes
/// `trusted.overlay.opaque`, rootless unpacking `user.overlay.opaque`.
fn is_opaque(dir: &Path) -> bool {
    ["user.overlay.opaque", "trusted.overlay.opaque"]
        .iter()
        .any(|name| {
            let mut v = [0u8; 4];
            rustix::fs::getxattr(dir, *name, &mut v).is_ok_and(|n| n >= 1 && v[0] == b'y')
        })
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

    /// Two layers: the lower one has ls, cat, a loader and links; the upper one whites cat
    /// out. Names resolve in the image (an absolute link means the image's root), never on
    /// the host.
    #[test]
    fn image_floor_follows_the_images_links_and_whiteouts() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let (lower, upper) = (dir.path().join("l0"), dir.path().join("l1"));
        for d in ["bin", "lib", "usr/bin"] {
            std::fs::create_dir_all(lower.join(d)).unwrap();
        }
        std::fs::create_dir_all(upper.join("bin")).unwrap();
        for f in ["bin/ls", "bin/cat", "lib/ld-musl-x86_64.so.1"] {
            std::fs::write(lower.join(f), "").unwrap();
        }
        // `dir` -> ls through an absolute link: counts as /bin/ls.
        symlink("/bin/ls", lower.join("usr/bin/dir")).unwrap();
        // `head` -> cat, which the upper layer removes: nothing.
        symlink("/bin/cat", lower.join("usr/bin/head")).unwrap();
        // `true` -> a path only the host has: nothing (never the host's file).
        symlink("/usr/bin/true", lower.join("bin/true")).unwrap();
        let whiteout = rustix::fs::mknodat(
            rustix::fs::CWD,
            upper.join("bin/cat"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            rustix::fs::makedev(0, 0),
        );
        if whiteout.is_err() {
            eprintln!("skipped: cannot make an overlay whiteout here");
            return;
        }
        let names: Vec<String> = ["ls", "cat", "head", "dir", "true"]
            .map(String::from)
            .into();
        let dirs = [Path::new("/bin"), Path::new("/usr/bin")];
        let got = allowed_in_image(&names, &dirs, &[lower, upper]);
        let want: Vec<PathBuf> = ["/bin/ls", "/lib/ld-musl-x86_64.so.1"]
            .map(PathBuf::from)
            .into();
        assert_eq!(got, want);
    }
}
