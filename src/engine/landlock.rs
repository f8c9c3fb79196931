//! Landlock for lasso's own sandboxes (not part of OCI): restricts the calling thread, and
//! what it executes, to read, read-write and execute access beneath listed paths. Uses the
//! `landlock` crate best-effort and reports which kernel ABI applied, so a caller can refuse to
//! run an agent when the kernel enforces less than the profile promised.
//!
//! It owns only the ruleset it creates. Landlock needs no_new_privs or CAP_SYS_ADMIN;
//! `restrict` sets no_new_privs itself (it is next in the hardening order anyway).

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use ::landlock::{
    Access, AccessFs, BitFlags, PathBeneath, Ruleset, RulesetAttr, RulesetCreated,
    RulesetCreatedAttr, RulesetStatus, ABI,
};

/// Paths the sandboxed process may use; everything else on the filesystem is denied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LandlockRules {
    /// Read files and list directories beneath these.
    pub read: Vec<PathBuf>,
    /// Read, write, create, remove, rename and truncate beneath these (no execute).
    pub read_write: Vec<PathBuf>,
    /// Execute (and read) beneath these.
    pub execute: Vec<PathBuf>,
}

/// How much of the ruleset the kernel enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enforcement {
    Full,
    /// Older kernel: some access rights (e.g. truncate, device ioctl) are not restricted.
    Partial,
    /// No Landlock in this kernel: nothing is restricted.
    None,
}

/// What `restrict` achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LandlockStatus {
    /// The running kernel's Landlock ABI version (0 when it has none).
    pub abi: i32,
    pub enforcement: Enforcement,
}

#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error("landlock rules: {list} path {path} cannot be opened: {source}")]
    Path {
        list: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("landlock: {0}")]
    Ruleset(#[from] ::landlock::RulesetError),
}

/// The file-system rights Landlock knows up to ABI 5 (refer, truncate, device ioctl included);
/// later ABIs add network and scoping rights, which this module does not handle.
const FS_ABI: ABI = ABI::V5;

/// The running kernel's Landlock ABI version, 0 if none.
pub fn kernel_abi() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute and size 0 and the VERSION flag, the call only returns
    // the ABI number.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v < 0 {
        0
    } else {
        v as i32
    }
}

/// Opens `path` for a rule (`O_PATH`, following links as the crate's `PathFd` does) and tells
/// whether it is a directory: the `O_DIRECTORY` open answers that for directories, the usual
/// case, without a separate stat; anything else is opened again without it.
fn open_rule_path(list: &'static str, path: &PathBuf) -> Result<(OwnedFd, bool), LandlockError> {
    use rustix::fs::{open, Mode, OFlags};
    let err = |e: rustix::io::Errno| LandlockError::Path {
        list,
        path: path.clone(),
        source: e.into(),
    };
    let flags = OFlags::PATH | OFlags::CLOEXEC;
    match open(path, flags | OFlags::DIRECTORY, Mode::empty()) {
        Ok(fd) => Ok((fd, true)),
        Err(rustix::io::Errno::NOTDIR) => {
            Ok((open(path, flags, Mode::empty()).map_err(err)?, false))
        }
        Err(e) => Err(err(e)),
    }
}

/// The rules of the three lists, one per path: a path listed twice (read and execute, say)
/// gets the union of its rights in one rule, which is what the kernel makes of two rules on
/// the same file anyway (rights on one object are merged), with one open and one rule less.
type Rule<'a> = (&'static str, &'a PathBuf, BitFlags<AccessFs>);

fn merged<'a>(lists: [(&'static str, &'a [PathBuf], BitFlags<AccessFs>); 3]) -> Vec<Rule<'a>> {
    let mut out: Vec<Rule<'a>> = Vec::new();
    for (name, paths, access) in lists {
        for p in paths {
            match out.iter_mut().find(|(_, q, _)| *q == p) {
                Some(rule) => rule.2 |= access,
                None => out.push((name, p, access)),
            }
        }
    }
    out
}

/// Rights that make sense on a regular file (directory rights are refused there by the kernel).
fn for_file(access: BitFlags<AccessFs>, is_dir: bool) -> BitFlags<AccessFs> {
    if is_dir {
        access
    } else {
        access & AccessFs::from_file(FS_ABI)
    }
}

/// A ruleset built and filled in the runtime (opening the paths, which allocates), ready to be
/// enforced by init after clone with system calls only.
pub struct PreparedLandlock {
    ruleset: RulesetCreated,
}

/// Builds the ruleset for `rules`; every path must exist.
pub fn prepare(rules: &LandlockRules) -> Result<PreparedLandlock, LandlockError> {
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let write = AccessFs::from_all(FS_ABI) & !AccessFs::Execute;
    let exec = read | AccessFs::Execute;
    let lists = [
        ("read", rules.read.as_slice(), read),
        ("read_write", rules.read_write.as_slice(), write),
        ("execute", rules.execute.as_slice(), exec),
    ];
    let mut opened = Vec::new();
    for (name, path, access) in merged(lists) {
        let (fd, is_dir) = open_rule_path(name, path)?;
        opened.push(PathBeneath::new(fd, for_file(access, is_dir)));
    }
    let ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(FS_ABI))?
        .create()?
        .add_rules(opened.into_iter().map(Ok::<_, ::landlock::RulesetError>))?;
    Ok(PreparedLandlock { ruleset })
}

impl PreparedLandlock {
    /// Enforces the ruleset on the calling thread and what it executes (sets no_new_privs).
    pub fn restrict_self(self) -> Result<LandlockStatus, LandlockError> {
        let status = self.ruleset.restrict_self()?;
        let enforcement = match status.ruleset {
            RulesetStatus::FullyEnforced => Enforcement::Full,
            RulesetStatus::PartiallyEnforced => Enforcement::Partial,
            RulesetStatus::NotEnforced => Enforcement::None,
        };
        Ok(LandlockStatus {
            abi: kernel_abi(),
            enforcement,
        })
    }
}

/// Restricts the calling thread (and its future children) to `rules`: `prepare` then
/// `restrict_self` in one step.
pub fn restrict(rules: &LandlockRules) -> Result<LandlockStatus, LandlockError> {
    prepare(rules)?.restrict_self()
}
