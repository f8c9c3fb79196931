//! Reading and writing cgroupfs files with errors that name the file and the value.

use std::io;
use std::path::{Path, PathBuf};

use super::CgroupError;

pub fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_owned(),
        source,
    })
}

/// A control file written several times (one value per write(2)), opened on first use.
pub struct Writer {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl Writer {
    pub fn new(path: PathBuf) -> Writer {
        Writer { path, file: None }
    }

    pub fn write(&mut self, value: &str) -> Result<(), CgroupError> {
        use std::io::Write;
        let err = |path: &Path, source| CgroupError::Write {
            path: path.to_path_buf(),
            value: value.to_owned(),
            source,
        };
        let file = match &mut self.file {
            Some(f) => f,
            None => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&self.path)
                    .map_err(|e| err(&self.path, e))?;
                self.file.insert(f)
            }
        };
        // One write(2) per value: the kernel takes each call as one whole value.
        match file.write(value.as_bytes()) {
            Ok(n) if n == value.len() => Ok(()),
            Ok(_) => Err(err(&self.path, io::Error::from(io::ErrorKind::WriteZero))),
            Err(e) => Err(err(&self.path, e)),
        }
    }
}

pub fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// `mkdir -p` that records, parents first, each directory it really created, so that `destroy`
/// removes those and nothing that existed before. A parent that another container's `destroy`
/// removes between our look and our mkdir (ENOENT) is made again: the walk is retried.
/// The walk starts with a mkdir of `dir` itself and climbs only while the kernel answers
/// ENOENT: usually the container's directory (and at most the shared parent) is missing, so
/// no directory is looked at before it is made.
pub fn mkdir_all(dir: &Path, created: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
    const ATTEMPTS: usize = 8;
    for attempt in 1..=ATTEMPTS {
        // Climb: the directories found missing, deepest first.
        let mut missing = Vec::new();
        let mut cur = dir;
        loop {
            match std::fs::create_dir(cur) {
                Ok(()) => {
                    created.push(cur.to_path_buf());
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    missing.push(cur);
                    match cur.parent() {
                        Some(p) => cur = p,
                        None => break,
                    }
                }
                Err(source) => {
                    return Err(CgroupError::Create {
                        path: cur.to_path_buf(),
                        source,
                    })
                }
            }
        }
        // Descend: make them, parents first.
        let mut vanished = false;
        for d in missing.into_iter().rev() {
            match std::fs::create_dir(d) {
                Ok(()) => created.push(d.to_path_buf()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < ATTEMPTS => {
                    vanished = true;
                    break;
                }
                Err(source) => {
                    return Err(CgroupError::Create {
                        path: d.to_path_buf(),
                        source,
                    })
                }
            }
        }
        if !vanished {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_directories_made_here_are_recorded_parents_first() {
        let top = tempfile::tempdir().unwrap();
        let existing = top.path().join("shared");
        std::fs::create_dir(&existing).unwrap();
        let mut created = Vec::new();
        mkdir_all(&existing.join("a/b/c"), &mut created).unwrap();
        assert_eq!(
            created,
            vec![
                existing.join("a"),
                existing.join("a/b"),
                existing.join("a/b/c")
            ]
        );
        // Again: all there, nothing made, nothing recorded.
        let mut again = Vec::new();
        mkdir_all(&existing.join("a/b/c"), &mut again).unwrap();
        assert!(again.is_empty(), "{again:?}");
        // A file in the way is an error naming it, not a loop.
        std::fs::write(existing.join("file"), "").unwrap();
        let err = mkdir_all(&existing.join("file/x"), &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("file"), "{err}");
    }
}
