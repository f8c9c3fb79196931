//! Tests of the decider's hard-link rule (`gate_decider::PolicyDecider`): a program directory of
//! our own, with real hard links and copies, never the host's /usr.
use super::*;
use crate::policy::{resolve, ProfileSource};
use std::os::unix::fs::PermissionsExt;

/// A program directory of our own (never the host's /usr): `viewer` is allowed, `shred`
/// is a blocked name hard-linked to it, `wipe` is a blocked program with no allowed name.
struct Bin {
    dir: tempfile::TempDir,
    decider: PolicyDecider,
}

impl Bin {
    fn new() -> Bin {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for (name, body) in [("viewer", "viewer program\n"), ("wipe", "wipe program\n")] {
            std::fs::write(bin.join(name), body).unwrap();
            std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        std::fs::hard_link(bin.join("viewer"), bin.join("shred")).unwrap();
        let toml = dir.path().join("p.toml");
        std::fs::write(&toml, "[commands]\nblocked = [\"shred\", \"wipe\"]\n").unwrap();
        let src = ProfileSource::file(&toml).unwrap();
        let profile = resolve(src, &crate::paths::Dirs::current()).unwrap();
        let dirs = [bin.to_str().unwrap()];
        let decider = PolicyDecider::scanning(Arc::new(profile), ProgramHashes::uncached(), &dirs);
        Bin { dir, decider }
    }

    /// The request the gate would make for `file` run with `argv`: identity by device and
    /// inode, content hash (the temp dir is on a writable mount), resolved by the path used.
    fn run(&self, file: &Path, argv: &[&str]) -> GateVerdict {
        let meta = std::fs::metadata(file).unwrap();
        let exe = ExeIdentity {
            resolved: file.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
            sha256: Some(sha2::Sha256::digest(std::fs::read(file).unwrap()).into()),
            ..ExeIdentity::default()
        };
        let req = ExecRequest {
            path: file.as_os_str().as_bytes().to_vec(),
            exe,
            argv: argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
            ..ExecRequest::default()
        };
        self.decider.decide(&req)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

#[test]
fn allowed_program_with_a_blocked_hard_link_runs_under_its_own_name() {
    let b = Bin::new();
    let v = b.run(&b.path("bin/viewer"), &["viewer", "file"]);
    assert!(v.allow, "{v:?}");
}

#[test]
fn blocked_hard_link_name_is_refused_by_path_and_by_argv0() {
    let b = Bin::new();
    let v = b.run(&b.path("bin/shred"), &["shred", "file"]);
    assert!(!v.allow, "{v:?}");
    // The allowed name's path, called as the blocked name: the program acts by argv[0].
    let v = b.run(&b.path("bin/viewer"), &["shred", "file"]);
    assert!(!v.allow, "{v:?}");
    // A copy of the shared file under another name, called as the blocked name.
    std::fs::copy(b.path("bin/viewer"), b.path("copy")).unwrap();
    let v = b.run(&b.path("copy"), &["/tmp/shred", "file"]);
    assert!(!v.allow, "{v:?}");
}

#[test]
fn copied_blocked_program_without_an_allowed_name_stays_blocked_under_any_name() {
    let b = Bin::new();
    std::fs::copy(b.path("bin/wipe"), b.path("viewer")).unwrap();
    let v = b.run(&b.path("viewer"), &["viewer", "file"]);
    assert!(!v.allow, "a renamed copy of wipe ran: {v:?}");
    std::fs::hard_link(b.path("bin/wipe"), b.path("innocent")).unwrap();
    let v = b.run(&b.path("innocent"), &["innocent"]);
    assert!(
        !v.allow,
        "a hard link to wipe made outside the program dirs ran: {v:?}"
    );
}

/// `decide` skips the check of the exec path when its base name is the resolved file's: sound
/// only while the policy sees a program by its base name alone. This pins that down.
#[test]
fn the_policy_sees_a_program_by_its_base_name_only() {
    let b = Bin::new();
    let p = &b.decider.profile;
    for name in ["wipe", "viewer", "rm", "git", "sh"] {
        for args in [&[][..], &["-rf", "/"][..], &["-c", "rm -rf /"][..]] {
            let at = |first: String| {
                let mut argv = vec![first.into_bytes()];
                argv.extend(args.iter().map(|a| a.as_bytes().to_vec()));
                let d = decide_argv(p, &argv);
                (d.outcome, d.program, d.via, d.rule, d.reason)
            };
            let bare = at(name.to_string());
            assert_eq!(at(format!("/usr/bin/{name}")), bare, "{name} {args:?}");
            assert_eq!(at(format!("./x/{name}")), bare, "{name} {args:?}");
        }
    }
}

#[test]
fn a_blocked_name_linking_to_an_allowed_program_is_still_refused_by_its_path() {
    let b = Bin::new();
    std::os::unix::fs::symlink(b.path("bin/viewer"), b.path("wipe")).unwrap();
    // Resolved to viewer (allowed), called through a path named wipe (blocked).
    let meta = std::fs::metadata(b.path("bin/viewer")).unwrap();
    let req = ExecRequest {
        path: b.path("wipe").as_os_str().as_bytes().to_vec(),
        exe: ExeIdentity {
            resolved: b.path("bin/viewer"),
            dev: meta.dev(),
            ino: meta.ino(),
            ..ExeIdentity::default()
        },
        argv: vec![b"viewer".to_vec()],
        ..ExecRequest::default()
    };
    let v = b.decider.decide(&req);
    assert!(!v.allow, "{v:?}");
}

#[test]
fn the_loaders_digest_comes_from_its_content_and_is_kept_by_its_real_path() {
    let Some(real) = crate::gate::LOADER_PATHS
        .iter()
        .find_map(|p| std::fs::canonicalize(p).ok())
    else {
        return; // no dynamic loader on this host
    };
    let runtime = tempfile::tempdir().unwrap();
    let toml = runtime.path().join("p.toml");
    std::fs::write(&toml, "[commands]\nblocked = [\"shred\"]\n").unwrap();
    let src = ProfileSource::file(&toml).unwrap();
    let profile = Arc::new(resolve(src, &crate::paths::Dirs::current()).unwrap());
    let _ = PolicyDecider::cached_prepared(profile, runtime.path(), None);
    let want = hex::encode(sha2::Sha256::digest(std::fs::read(&real).unwrap()));
    let cache = std::fs::read_dir(runtime.path())
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .find(|t| t.contains(real.to_str().unwrap()))
        .expect("the loader is in the program-hash cache");
    assert!(
        cache.contains(&want),
        "the cached digest is not the SHA-256 of {}",
        real.display()
    );
}
