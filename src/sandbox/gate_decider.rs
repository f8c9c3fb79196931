//! The exec gate's decider for a sandbox: asks the profile (`policy::decide_argv`) about
//! everything the gate learned of an exec (the file really run, the name it was called by, a
//! busybox applet, each `#!` interpreter, the loader's target, and whether the file is a copy of
//! a blocked program, by device/inode or content), with the rule for programs that act by the
//! name they are called by (a blocked symlink or hard link to an allowed program).
//!
//! Owns only this translation and the scan of the host's program directories. Deciding is
//! `policy`'s; notifications and ptrace are `gate`'s; the audit side is `gate_link`'s.

use super::program_hashes::{Learned, ProgramHashes};
use super::program_witness::Witnesses;
use crate::gate::{ExeIdentity, ExecDecider, ExecRequest, GateVerdict};
use crate::policy::{decide_argv, CommandMode, ResolvedProfile};
use sha2::Digest;
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the host's programs live; the sandbox's host view shows the same files (same device
/// and inode), so a blocked program's identity found here is the one the gate sees inside.
const PROGRAM_DIRS: [&str; 4] = ["/usr/bin", "/usr/sbin", "/bin", "/sbin"];
/// Larger programs are blocked by device and inode and by name, but not hashed: hashing them at
/// every sandbox start would cost more than the start itself.
const MAX_HASHED: u64 = 16 << 20;

/// The policy as the gate asks it.
pub struct PolicyDecider {
    profile: Arc<ResolvedProfile>,
    /// Blocked programs by (device, inode) and by content, with their names: a hard link, a
    /// copy or a rename of `rm` is still `rm`.
    by_id: HashMap<(u64, u64), String>,
    by_hash: HashMap<[u8; 32], String>,
    /// Programs that act by the name they are called by, learned from a blocked name that is a
    /// symlink to an allowed one (`pkill -> pgrep`, `iptables -> xtables-nft-multi`): the file
    /// itself is not blocked, but run under a blocked `argv[0]` it is that program.
    by_argv0_id: std::collections::HashSet<(u64, u64)>,
    by_argv0_hash: std::collections::HashSet<[u8; 32]>,
    /// The program directories scanned for blocked names (the host's, but for tests).
    dirs: Vec<String>,
    /// The blocked programs' identities came from the cache (`ProgramHashes::learned`).
    learned_from_cache: bool,
}

impl PolicyDecider {
    /// In blocklist mode, finds every program in the host's program directories that the
    /// profile blocks by name and remembers its identity. (In allowlist mode an unknown name
    /// is refused anyway.)
    pub fn new(profile: Arc<ResolvedProfile>) -> PolicyDecider {
        PolicyDecider::with_hashes(profile, ProgramHashes::uncached())
    }

    /// As `new`, with the digests cached in `runtime_dir` (`Dirs.runtime`) across starts.
    pub fn cached(profile: Arc<ResolvedProfile>, runtime_dir: &Path) -> PolicyDecider {
        PolicyDecider::with_hashes(profile, ProgramHashes::open(runtime_dir))
    }

    /// `cached`, plus the gate's parts that need no listener, with the dynamic loader's digests
    /// read through the same program-hash cache (hashing ~200 KB at every start otherwise).
    /// `digest`: the profile's `ResolvedProfile::digest`, when the caller has it already (it
    /// keys the scan cache; computing it serialises the whole profile).
    pub fn cached_prepared(
        profile: Arc<ResolvedProfile>,
        runtime_dir: &Path,
        digest: Option<&str>,
    ) -> (PolicyDecider, crate::gate::Prepared) {
        let mut hashes = ProgramHashes::open(runtime_dir);
        let loaders: Vec<[u8; 32]> = crate::gate::LOADER_PATHS
            .iter()
            .filter_map(|p| {
                // The cache reads without following links; the gate follows them.
                let real = std::fs::canonicalize(p).ok()?;
                let meta = std::fs::metadata(&real).ok()?;
                hashes.digest(&real, &meta)
            })
            .collect();
        let fingerprint = digest.and_then(|h| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(h, &mut out).ok().map(|()| out)
        });
        let d = PolicyDecider::scanning_keyed(profile, hashes, &PROGRAM_DIRS, fingerprint);
        (d, crate::gate::Prepared::with_loader_digests(loaders))
    }

    fn with_hashes(profile: Arc<ResolvedProfile>, hashes: ProgramHashes) -> PolicyDecider {
        PolicyDecider::scanning(profile, hashes, &PROGRAM_DIRS)
    }

    fn scanning(
        profile: Arc<ResolvedProfile>,
        hashes: ProgramHashes,
        dirs: &[&str],
    ) -> PolicyDecider {
        PolicyDecider::scanning_keyed(profile, hashes, dirs, None)
    }

    /// `fingerprint`: the profile's SHA-256, computed here when `None`.
    fn scanning_keyed(
        profile: Arc<ResolvedProfile>,
        mut hashes: ProgramHashes,
        dirs: &[&str],
        fingerprint: Option<[u8; 32]>,
    ) -> PolicyDecider {
        let mut d = PolicyDecider {
            profile,
            by_id: HashMap::new(),
            by_hash: HashMap::new(),
            by_argv0_id: Default::default(),
            by_argv0_hash: Default::default(),
            dirs: dirs.iter().map(|d| d.to_string()).collect(),
            learned_from_cache: false,
        };
        if d.profile.commands.mode == CommandMode::Blocklist {
            d.learn_blocked_programs(&mut hashes, fingerprint);
            tracing::debug!(
                from_cache = d.learned_from_cache,
                "learned {} blocked programs",
                d.by_id.len() + d.by_argv0_id.len()
            );
        }
        hashes.save();
        d
    }

    fn learn_blocked_programs(&mut self, hashes: &mut ProgramHashes, known: Option<[u8; 32]>) {
        // Which names the profile blocks depends only on the directories' entries and the
        // profile, so it is cached (and what was learned of them, see `ProgramHashes::learned`).
        // The key is the profile's digest (`ResolvedProfile::digest`'s bytes); a profile that
        // cannot be serialised (not expected) is scanned every time.
        let fingerprint: Option<[u8; 32]> = known.or_else(|| {
            serde_json::to_vec(&*self.profile)
                .ok()
                .map(|bytes| sha2::Sha256::digest(&bytes).into())
        });
        let profile = self.profile.clone();
        let dirs: Vec<&str> = self.dirs.iter().map(String::as_str).collect();
        let blocked = hashes.blocked_programs(fingerprint, &dirs, |dir| {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return Vec::new();
            };
            entries
                .flatten()
                .filter(|e| {
                    let d = decide_argv(&profile, &[e.file_name().as_bytes().to_vec()]);
                    !d.permits(profile.commands.mode)
                })
                .map(|e| e.path())
                .collect()
        });
        if let Some(learned) = hashes.learned() {
            if self.adopt(learned).is_some() {
                self.learned_from_cache = true;
                return;
            }
        }
        // Recorded before learning, checked again before it is kept: a change in between
        // leaves this start's answer uncached.
        let mut witnesses = Witnesses::default();
        for path in &blocked {
            witnesses.record(path);
        }
        for path in blocked {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let Some(name) = path.file_name() else {
                continue;
            };
            let label = name.to_string_lossy().to_string();
            if self.acts_by_argv0(&path, &meta, hashes) {
                continue;
            }
            self.by_id.insert((meta.dev(), meta.ino()), label.clone());
            if meta.len() <= MAX_HASHED && !self.by_hash.values().any(|v| *v == label) {
                // The cache reads a file without following links (a link has no content to
                // run), so a blocked name that is a link is hashed at the file it leads to:
                // otherwise a copy of a program reached only through a link (its file outside
                // the program directories) would not be known by its content.
                let file = if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_symlink()) {
                    std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone())
                } else {
                    path.clone()
                };
                if let Some(digest) = hashes.digest(&file, &meta) {
                    self.by_hash.insert(digest, label);
                }
            }
        }
        hashes.remember_learned(self.learned(witnesses));
    }

    /// What `learn_blocked_programs` found, for the cache.
    fn learned(&self, witnesses: Witnesses) -> Learned {
        let mut l = Learned {
            by_id: self
                .by_id
                .iter()
                .map(|(&(dev, ino), name)| (dev, ino, name.clone()))
                .collect(),
            by_hash: self
                .by_hash
                .iter()
                .map(|(h, name)| (hex::encode(h), name.clone()))
                .collect(),
            by_argv0_id: self.by_argv0_id.iter().copied().collect(),
            by_argv0_hash: self.by_argv0_hash.iter().map(hex::encode).collect(),
            witnesses,
        };
        // Sorted, so that an unchanged result compares equal and is not written again.
        l.by_id.sort();
        l.by_hash.sort();
        l.by_argv0_id.sort();
        l.by_argv0_hash.sort();
        l
    }

    /// Takes a cached learned result (`ProgramHashes::learned` checked what it came from).
    /// `None`, leaving the decider as it was, when a digest in it is not one.
    fn adopt(&mut self, l: &Learned) -> Option<()> {
        let digest = |h: &str| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(h, &mut out).ok().map(|()| out)
        };
        let by_hash = l
            .by_hash
            .iter()
            .map(|(h, name)| Some((digest(h)?, name.clone())))
            .collect::<Option<HashMap<_, _>>>()?;
        let by_argv0_hash = l
            .by_argv0_hash
            .iter()
            .map(|h| digest(h))
            .collect::<Option<_>>()?;
        self.by_id = l
            .by_id
            .iter()
            .map(|(dev, ino, name)| ((*dev, *ino), name.clone()))
            .collect();
        self.by_hash = by_hash;
        self.by_argv0_id = l.by_argv0_id.iter().copied().collect();
        self.by_argv0_hash = by_argv0_hash;
        Some(())
    }

    /// A blocked name for a file that has an allowed name of its own: a symlink to a program
    /// whose own name is allowed (`pkill -> pgrep`), or a hard link whose file also has an
    /// allowed name in the program directories. Remembers that file (by identity and content)
    /// as one that acts by `argv[0]`, and says so: blocking the file itself would refuse `pgrep`
    /// because `pkill` links to it. A blocked file without an allowed name (`rm`) stays blocked
    /// by identity and content, whatever it is called.
    fn acts_by_argv0(
        &mut self,
        path: &Path,
        meta: &std::fs::Metadata,
        hashes: &mut ProgramHashes,
    ) -> bool {
        let Some(file) = self.allowed_identity(path, meta) else {
            return false;
        };
        self.by_argv0_id.insert((meta.dev(), meta.ino()));
        if meta.len() <= MAX_HASHED {
            if let Some(digest) = hashes.digest(&file, meta) {
                self.by_argv0_hash.insert(digest);
            }
        }
        true
    }

    /// The file behind the blocked name `path` when it has an allowed name of its own.
    fn allowed_identity(&self, path: &Path, meta: &std::fs::Metadata) -> Option<PathBuf> {
        let allowed = |name: &std::ffi::OsStr| {
            decide_argv(&self.profile, &[name.as_bytes().to_vec()])
                .permits(self.profile.commands.mode)
        };
        let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            let target = std::fs::canonicalize(path).ok()?;
            return allowed(target.file_name()?).then_some(target);
        }
        // A hard link: another name of the same file, found by the inode number readdir gives
        // (no stat per entry), confirmed by device.
        if meta.nlink() < 2 {
            return None;
        }
        use std::os::unix::fs::DirEntryExt;
        let twin = self.dirs.iter().find_map(|dir| {
            std::fs::read_dir(dir).ok()?.flatten().find(|e| {
                e.ino() == meta.ino()
                    && e.path() != path
                    && allowed(&e.file_name())
                    && std::fs::symlink_metadata(e.path())
                        .is_ok_and(|m| (m.dev(), m.ino()) == (meta.dev(), meta.ino()))
            })
        });
        twin.map(|_| path.to_path_buf())
    }

    /// The name a program that acts by `argv[0]` was called by, when `e` is one.
    fn argv0_check(&self, e: &ExeIdentity, argv: &[Vec<u8>]) -> Option<GateVerdict> {
        let acts_by_name = self.by_argv0_id.contains(&(e.dev, e.ino))
            || e.sha256
                .as_ref()
                .is_some_and(|h| self.by_argv0_hash.contains(h));
        let first = argv.first()?;
        if !acts_by_name {
            return None;
        }
        let name = first.rsplit(|b| *b == b'/').next().unwrap_or(first);
        let mut called = vec![name.to_vec()];
        called.extend_from_slice(argv.get(1..).unwrap_or(&[]));
        self.check(called)
    }

    /// The policy's answer for one argv (argv[0] the program's path or name).
    fn check(&self, argv: Vec<Vec<u8>>) -> Option<GateVerdict> {
        let d = decide_argv(&self.profile, &argv);
        if d.permits(self.profile.commands.mode) {
            return None;
        }
        let what = if d.via.is_empty() {
            d.program.clone()
        } else {
            format!("{} (via {})", d.program, d.via.join(", "))
        };
        Some(GateVerdict::block(
            format!("{what}: {}", d.reason),
            d.rule.map(|r| r.to_string()),
        ))
    }

    fn identity(&self, e: &ExeIdentity) -> Option<GateVerdict> {
        let copy_of = self
            .by_id
            .get(&(e.dev, e.ino))
            .or_else(|| e.sha256.as_ref().and_then(|h| self.by_hash.get(h)))?;
        Some(GateVerdict::block(
            format!(
                "{} is the blocked program {copy_of} (same file or same content)",
                e.resolved.display()
            ),
            None,
        ))
    }

    /// Everything one exe identity may be run as: its real path, its applet, its interpreters,
    /// its loader target.
    fn exe(&self, e: &ExeIdentity, rest: &[Vec<u8>]) -> Option<GateVerdict> {
        let with = |first: Vec<u8>| {
            let mut v = vec![first];
            v.extend_from_slice(rest);
            v
        };
        // By name first, so that the entry names the rule; then by identity (a renamed copy).
        if !e.resolved.as_os_str().is_empty() {
            if let Some(v) = self.check(with(e.resolved.as_os_str().as_bytes().to_vec())) {
                return Some(v);
            }
        }
        if let Some(v) = self.identity(e) {
            return Some(v);
        }
        if let Some(a) = &e.applet {
            if let Some(v) = self.check(with(a.as_bytes().to_vec())) {
                return Some(v);
            }
        }
        for i in &e.interpreters {
            let mut args = Vec::new();
            args.extend(i.arg.clone());
            args.extend_from_slice(rest);
            if let Some(v) = self.exe(&i.exe, &args) {
                return Some(GateVerdict::block(
                    format!("script interpreter {}", v.reason),
                    v.rule,
                ));
            }
        }
        if let Some(t) = &e.loader_target {
            return match &t.exe {
                None => Some(GateVerdict::block(
                    "the dynamic loader's target cannot be identified",
                    None,
                )),
                Some(x) => self.exe(x, &[]).map(|v| {
                    GateVerdict::block(format!("run through the loader: {}", v.reason), v.rule)
                }),
            };
        }
        None
    }
}

impl ExecDecider for PolicyDecider {
    fn decide(&self, req: &ExecRequest) -> GateVerdict {
        let rest: &[Vec<u8>] = req.argv.get(1..).unwrap_or(&[]);
        if let Some(v) = self.exe(&req.exe, rest) {
            return v;
        }
        if let Some(v) = self.argv0_check(&req.exe, &req.argv) {
            return v;
        }
        // The name it was called by (a symlink's own name) must pass too. The policy sees a
        // program only by its base name (`decide_argv`), so a path whose base name is the
        // resolved file's was answered by the check of the real path above.
        let resolved = req.exe.resolved.as_os_str().as_bytes();
        let same_name = !resolved.is_empty() && base_name(resolved) == base_name(&req.path);
        if !req.path.is_empty() && !same_name {
            let mut argv = vec![req.path.clone()];
            argv.extend_from_slice(rest);
            if let Some(v) = self.check(argv) {
                return v;
            }
        }
        GateVerdict::allow("allowed by the profile", None)
    }

    /// The answer is a function of the profile (fixed for the sandbox's life), the blocked
    /// programs learned at start, and the request's `exe`, `argv` and `path`.
    fn memoizable(&self) -> bool {
        true
    }
}

fn base_name(path: &[u8]) -> &[u8] {
    path.rsplit(|b| *b == b'/').next().unwrap_or(path)
}

#[cfg(test)]
#[path = "gate_decider_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "gate_decider_cache_tests.rs"]
mod cache_tests;
