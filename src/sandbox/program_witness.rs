//! What the exec gate's learned blocked programs were derived from, so that a later start can
//! trust the learned result (`program_hashes::Learned`) after one cheap look at each input
//! instead of deriving it again (a `metadata`, a `symlink_metadata` and a `canonicalize`, one
//! `readlink` per path component, for each blocked program: ~750 system calls per start).
//!
//! A blocked program's identity depends on the file its path reaches and on every symbolic
//! link met on the way there (`/bin -> usr/bin`, `/usr/bin/editor -> /etc/alternatives/editor
//! -> /usr/bin/vim.basic`): the file decides the device, inode and digest; the last link decides
//! the name the file is known by, which decides whether it acts by `argv[0]`. So a witness
//! keeps, for each path, the stamp of the file it reaches, and for each link met, the link's own
//! stamp. A link's target cannot change without a new inode or a new ctime (`symlink(2)` makes a
//! new inode; a hard link or rename of it moves its ctime), and a file's content cannot change
//! without a new ctime (which `utimensat` cannot set back), so equal stamps mean the same answer.
//!
//! Owns only these stamps; what they witness is `gate_decider`'s and the cache file is
//! `program_hashes`'.

use super::program_hashes::Stamp;
use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// More links than this on one path: stop following (the kernel's own limit is 40).
const MAX_HOPS: usize = 40;

/// The inputs of one derivation, with the stamps they had.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Witnesses {
    /// Each path looked up, with the stamp of the file it reached following links (`None`: it
    /// reached nothing, e.g. a dangling link, which a later start must see fixed).
    targets: Vec<(PathBuf, Option<Stamp>)>,
    /// Every symbolic link met on the way to them, by the path it was met at, with its own stamp.
    links: BTreeMap<PathBuf, Stamp>,
}

impl Witnesses {
    /// Remembers `path`, the file it reaches and every link met on the way.
    pub fn record(&mut self, path: &Path) {
        let stamp = std::fs::metadata(path).ok().map(|m| Stamp::of(&m));
        self.targets.push((path.to_path_buf(), stamp));
        links_on_the_way(path, &mut self.links);
    }

    /// Whether every path still reaches the same file through the same links.
    pub fn still_hold(&self) -> bool {
        self.links.iter().all(|(path, stamp)| {
            std::fs::symlink_metadata(path)
                .ok()
                .map(|m| Stamp::of(&m))
                .as_ref()
                == Some(stamp)
        }) && self
            .targets
            .iter()
            .all(|(path, stamp)| std::fs::metadata(path).ok().map(|m| Stamp::of(&m)) == *stamp)
    }
}

/// Resolves `path` as the kernel does, one component at a time, and adds each symbolic link
/// met to `links`. Stops where a component is missing or unreadable: what lies beyond depends
/// on that component, whose appearance changes the target's stamp (`None` then `Some`).
fn links_on_the_way(path: &Path, links: &mut BTreeMap<PathBuf, Stamp>) {
    let mut done = if path.is_absolute() {
        PathBuf::from("/")
    } else {
        match std::env::current_dir() {
            Ok(d) => d,
            Err(_) => return,
        }
    };
    let mut todo: VecDeque<OsString> = VecDeque::new();
    push_front(&mut todo, path, &mut done);
    let mut hops = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            done.pop();
            continue;
        }
        let next = done.join(&name);
        let Ok(meta) = std::fs::symlink_metadata(&next) else {
            return;
        };
        if !meta.file_type().is_symlink() {
            done = next;
            continue;
        }
        links.insert(next.clone(), Stamp::of(&meta));
        hops += 1;
        let Ok(target) = std::fs::read_link(&next) else {
            return;
        };
        if hops > MAX_HOPS {
            return;
        }
        push_front(&mut todo, &target, &mut done);
    }
}

/// Puts the components of `path` in front of `todo`; an absolute `path` restarts at `/`.
fn push_front(todo: &mut VecDeque<OsString>, path: &Path, done: &mut PathBuf) {
    let mut names = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir => *done = PathBuf::from("/"),
            Component::Normal(n) => names.push(n.to_os_string()),
            Component::ParentDir => names.push(OsString::from("..")),
            Component::CurDir | Component::Prefix(_) => {}
        }
    }
    for n in names.into_iter().rev() {
        todo.push_front(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn every_link_on_the_way_is_witnessed() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::create_dir(root.join("alt")).unwrap();
        std::fs::write(root.join("usr/bin/vim"), b"x").unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        symlink(root.join("alt/editor"), root.join("usr/bin/editor")).unwrap();
        symlink("../usr/bin/vim", root.join("alt/editor")).unwrap();
        let mut links = BTreeMap::new();
        links_on_the_way(&root.join("bin/editor"), &mut links);
        let found: Vec<&PathBuf> = links.keys().collect();
        assert_eq!(
            found,
            vec![
                &root.join("alt/editor"),
                &root.join("bin"),
                &root.join("usr/bin/editor")
            ]
        );
    }

    #[test]
    fn a_repointed_link_breaks_the_witness() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::write(root.join("a"), b"x").unwrap();
        // `b` is another name of the same file: re-pointing the link from `a` to `b` reaches
        // the same stamp, so only the link's own stamp can see it.
        std::fs::hard_link(root.join("a"), root.join("b")).unwrap();
        symlink("a", root.join("prog")).unwrap();
        let mut w = Witnesses::default();
        w.record(&root.join("prog"));
        assert!(w.still_hold());
        // Past the file system's timestamp granularity, as any later start is.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::remove_file(root.join("prog")).unwrap();
        symlink("b", root.join("prog")).unwrap();
        assert!(!w.still_hold(), "the link now names another file name");
    }

    #[test]
    fn a_dangling_link_that_comes_to_life_breaks_the_witness() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        symlink("later/prog", root.join("prog")).unwrap();
        let mut w = Witnesses::default();
        w.record(&root.join("prog"));
        assert!(w.still_hold());
        std::fs::create_dir(root.join("later")).unwrap();
        std::fs::write(root.join("later/prog"), b"x").unwrap();
        assert!(!w.still_hold());
    }
}
