//! The built-in profiles' snapshots (`profiles/resolved/*.json`, `policy::snapshot`) against
//! their TOML: a run that loads a built-in from its snapshot must get exactly the profile, and
//! the digest, that parsing the TOML gives; a stale or forged snapshot must not be used.
//! `LASSO_REGENERATE=1 cargo test --test policy_snapshots` rewrites the snapshots.

use lasso::paths::Dirs;
use lasso::policy::{self, snapshot, ProfileSource, BUILTINS};
use std::path::Path;

fn dirs() -> (tempfile::TempDir, Dirs) {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Dirs::current();
    d.config = tmp.path().join("config");
    (tmp, d)
}

fn json(p: &policy::ResolvedProfile) -> String {
    serde_json::to_string(p).unwrap()
}

#[test]
fn builtin_snapshots_match_their_toml() {
    let (_tmp, dirs) = dirs();
    let regenerate = std::env::var_os("LASSO_REGENERATE").is_some();
    for (name, _) in BUILTINS {
        let src = ProfileSource::builtin(name).unwrap();
        let from_toml = policy::resolve_toml(src.clone(), &dirs).unwrap();
        if regenerate {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("profiles/resolved")
                .join(format!("{name}.json"));
            let text = serde_json::to_string(&snapshot::make(&from_toml)).unwrap();
            std::fs::write(&path, text + "\n").unwrap();
            continue;
        }
        let (snap, digest) = snapshot::lookup(&src).unwrap_or_else(|| {
            panic!("the snapshot of {name} is stale or missing: run LASSO_REGENERATE=1 cargo test --test policy_snapshots")
        });
        assert_eq!(json(&snap), json(&from_toml), "{name}");
        assert_eq!(digest, from_toml.digest(), "{name}");
        // What callers get through the ordinary entry points.
        let (loaded, d) = policy::load_digested(name, &dirs).unwrap();
        assert_eq!(json(&loaded), json(&from_toml), "{name}");
        assert_eq!(d.as_deref(), Some(from_toml.digest().as_str()), "{name}");
    }
}

#[test]
fn edited_builtin_text_is_parsed_not_taken_from_the_snapshot() {
    let (_tmp, dirs) = dirs();
    // Same origin and name as the built-in, different text: the snapshot must not answer.
    let mut src = ProfileSource::builtin("offline").unwrap();
    src.text = src.text.replace(
        "description = \"Block dangerous commands, allow the rest; no network\"",
        "description = \"edited\"",
    );
    assert!(src.text.contains("edited"), "the test's edit must apply");
    assert!(snapshot::lookup(&src).is_none());
    let (p, digest) = policy::resolve_digested(src, &dirs).unwrap();
    assert_eq!(p.description, "edited");
    assert!(digest.is_none());
}

#[test]
fn file_named_like_a_builtin_is_not_taken_from_the_snapshot() {
    let (tmp, dirs) = dirs();
    // A file whose name and text are those of a built-in is still a file: its origin is its
    // path, and rules must point at that file.
    let path = tmp.path().join("builtin:offline");
    std::fs::write(&path, ProfileSource::builtin("offline").unwrap().text).unwrap();
    let src = ProfileSource::file(&path).unwrap();
    assert!(snapshot::lookup(&src).is_none());
    let p = policy::resolve(src, &dirs).unwrap();
    assert_eq!(p.chain.last().unwrap(), &path.display().to_string());
}

#[test]
fn user_profile_extending_a_builtin_resolves_as_from_toml() {
    let (_tmp, dirs) = dirs();
    let profiles = dirs.config.join("profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(
        profiles.join("team.toml"),
        "extends = \"offline\"\n[commands]\nblocked = { add = [{ name = \"teamtool\", category = \"team\", reason = \"ours\" }] }\n",
    )
    .unwrap();
    let src = ProfileSource::find("team", &dirs, None).unwrap();
    let (fast, digest) = policy::resolve_digested(src.clone(), &dirs).unwrap();
    let slow = policy::resolve_toml(src, &dirs).unwrap();
    assert_eq!(json(&fast), json(&slow));
    assert!(
        digest.is_none(),
        "a user profile's digest is computed, not taken"
    );
    assert_eq!(
        fast.chain,
        vec![
            "builtin:standard",
            "builtin:offline",
            &profiles.join("team.toml").display().to_string()
        ]
    );
    assert!(fast.commands.blocked.iter().any(|r| r.name == "teamtool"));
}

#[test]
fn user_profile_errors_keep_file_and_line() {
    let (_tmp, dirs) = dirs();
    let profiles = dirs.config.join("profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(
        profiles.join("bad.toml"),
        "extends = \"standard\"\n[commands]\nblockd = []\n",
    )
    .unwrap();
    let err = policy::load_digested("bad", &dirs).unwrap_err().to_string();
    assert!(err.contains("bad.toml:3:"), "{err}");
}
