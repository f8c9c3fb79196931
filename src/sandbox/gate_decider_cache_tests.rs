//! Tests of the decider's cached learned result (`ProgramHashes::learned`): a later start takes
//! it only while every file and link it was learned from is unchanged. A program directory of
//! our own, never the host's /usr.
use super::*;
use crate::policy::{resolve, ProfileSource};

/// `bin/` is the program directory (`wipe` a blocked program, `shred` a blocked name linking
/// through `alt/shred`, as `/etc/alternatives` does, to `lib/viewer`, an allowed name outside
/// it); `cache/` is the runtime directory holding the program-hash cache.
struct Host {
    dir: tempfile::TempDir,
    profile: Arc<ResolvedProfile>,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let p = |s: &str| dir.path().join(s);
        for d in ["bin", "alt", "lib", "cache"] {
            std::fs::create_dir(p(d)).unwrap();
        }
        std::fs::write(p("bin/wipe"), "wipe program\n").unwrap();
        std::fs::write(p("lib/viewer"), "viewer program\n").unwrap();
        std::fs::write(p("lib/wipe"), "another wipe program\n").unwrap();
        std::os::unix::fs::symlink(p("lib/viewer"), p("alt/shred")).unwrap();
        std::os::unix::fs::symlink("../alt/shred", p("bin/shred")).unwrap();
        let toml = p("p.toml");
        std::fs::write(&toml, "[commands]\nblocked = [\"shred\", \"wipe\"]\n").unwrap();
        let src = ProfileSource::file(&toml).unwrap();
        let profile = Arc::new(resolve(src, &crate::paths::Dirs::current()).unwrap());
        Host { dir, profile }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A sandbox start: the decider as the gate builds it, through the cache.
    fn start(&self) -> PolicyDecider {
        let bin = self.path("bin");
        let hashes = ProgramHashes::open(&self.path("cache"));
        PolicyDecider::scanning(self.profile.clone(), hashes, &[bin.to_str().unwrap()])
    }

    /// What `start` learned, for comparing with a start that reads nothing from the cache.
    fn learned(d: &PolicyDecider) -> Learned {
        d.learned(Witnesses::default())
    }

    fn fresh(&self) -> Learned {
        let bin = self.path("bin");
        let d = PolicyDecider::scanning(
            self.profile.clone(),
            ProgramHashes::uncached(),
            &[bin.to_str().unwrap()],
        );
        Host::learned(&d)
    }

    /// The gate's request for a file of ours run as `argv0`.
    fn run(&self, d: &PolicyDecider, file: &Path, argv0: &str) -> GateVerdict {
        let meta = std::fs::metadata(file).unwrap();
        let req = ExecRequest {
            path: file.as_os_str().as_bytes().to_vec(),
            exe: ExeIdentity {
                resolved: file.to_path_buf(),
                dev: meta.dev(),
                ino: meta.ino(),
                sha256: Some(sha2::Sha256::digest(std::fs::read(file).unwrap()).into()),
                ..ExeIdentity::default()
            },
            argv: vec![argv0.as_bytes().to_vec()],
            ..ExecRequest::default()
        };
        d.decide(&req)
    }
}

/// Past the file system's timestamp granularity, as any later start is.
fn later() {
    std::thread::sleep(std::time::Duration::from_millis(20));
}

#[test]
fn an_unchanged_host_is_learned_from_the_cache() {
    let h = Host::new();
    let first = h.start();
    assert!(!first.learned_from_cache);
    let second = h.start();
    assert!(
        second.learned_from_cache,
        "nothing changed: the cache stands"
    );
    assert_eq!(Host::learned(&second), h.fresh());
    // The cached result still refuses a renamed copy of the blocked program.
    std::fs::copy(h.path("bin/wipe"), h.path("innocent")).unwrap();
    let v = h.run(&second, &h.path("innocent"), "innocent");
    assert!(!v.allow, "a renamed copy of wipe ran: {v:?}");
}

#[test]
fn a_blocked_program_rewritten_in_place_is_learned_again() {
    let h = Host::new();
    h.start();
    later();
    // Same inode, same directory entry: only the file's own stamp moves.
    std::fs::write(h.path("bin/wipe"), "wipe program, new release\n").unwrap();
    let d = h.start();
    assert!(
        !d.learned_from_cache,
        "the rewritten program was not learned again"
    );
    assert_eq!(Host::learned(&d), h.fresh());
    std::fs::copy(h.path("bin/wipe"), h.path("innocent")).unwrap();
    let v = h.run(&d, &h.path("innocent"), "innocent");
    assert!(!v.allow, "a copy of the new wipe ran: {v:?}");
}

#[test]
fn a_repointed_alternatives_link_is_learned_again() {
    let h = Host::new();
    let before = h.start();
    // `shred` reached an allowed name: that file acts by argv[0] and is not blocked itself.
    assert!(h.run(&before, &h.path("lib/viewer"), "viewer").allow);
    later();
    // The program directory is untouched; only the link outside it changes.
    std::fs::remove_file(h.path("alt/shred")).unwrap();
    std::os::unix::fs::symlink(h.path("lib/wipe"), h.path("alt/shred")).unwrap();
    let d = h.start();
    assert!(!d.learned_from_cache, "the re-pointed link was not seen");
    assert_eq!(Host::learned(&d), h.fresh());
    // By identity only: the digest is read through the blocked name, without following it.
    std::fs::hard_link(h.path("lib/wipe"), h.path("innocent")).unwrap();
    let v = h.run(&d, &h.path("innocent"), "innocent");
    assert!(!v.allow, "another name of what shred now runs ran: {v:?}");
}

#[test]
fn a_changed_cache_result_is_written_back_and_then_trusted() {
    let h = Host::new();
    h.start();
    later();
    std::fs::write(h.path("bin/wipe"), "wipe program, new release\n").unwrap();
    h.start();
    let d = h.start();
    assert!(d.learned_from_cache, "the relearned result was not kept");
    assert_eq!(Host::learned(&d), h.fresh());
}

#[test]
fn the_launchs_profile_digest_keys_the_same_cache_as_the_deciders_own() {
    let h = Host::new();
    let bin = h.path("bin");
    let mut key = [0u8; 32];
    hex::decode_to_slice(h.profile.digest(), &mut key).unwrap();
    let hashes = ProgramHashes::open(&h.path("cache"));
    PolicyDecider::scanning_keyed(
        h.profile.clone(),
        hashes,
        &[bin.to_str().unwrap()],
        Some(key),
    );
    // `lasso exec` sessions compute the key themselves: they must find what `run` left.
    let d = h.start();
    assert!(d.learned_from_cache, "the two keys differ");
}

#[test]
fn a_copy_of_a_blocked_program_reached_only_through_a_link_is_refused() {
    let h = Host::new();
    // `bin/wipe` is now a link to a file outside the program directory; the copy detection
    // must know that file's content, both when learning and from the cache.
    std::fs::remove_file(h.path("bin/wipe")).unwrap();
    std::os::unix::fs::symlink("../lib/wipe", h.path("bin/wipe")).unwrap();
    std::fs::copy(h.path("lib/wipe"), h.path("innocent")).unwrap();
    let learned = h.start();
    assert!(!learned.learned_from_cache);
    let v = h.run(&learned, &h.path("innocent"), "innocent");
    assert!(!v.allow, "a renamed copy of the linked wipe ran: {v:?}");
    let cached = h.start();
    assert!(cached.learned_from_cache);
    let v = h.run(&cached, &h.path("innocent"), "innocent");
    assert!(
        !v.allow,
        "a renamed copy of the linked wipe ran (cached): {v:?}"
    );
}
