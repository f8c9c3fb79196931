//! Profiles reach the kernel: a profile's read-only workspace cannot be written from inside, its
//! memory limit kills a process that exceeds it (and a CLI flag overrides it), rootless without a
//! delegated cgroup its limits are reported as not enforced, and a profile that does not load
//! stops `lasso run` before anything starts.

mod sandbox_support;

use sandbox_support::*;

fn needs_root() -> bool {
    if !is_root() {
        eprintln!("skipped: needs root (for cgroups and to become nobody)");
        return false;
    }
    true
}

fn profile(w: &World, name: &str, body: &str) -> String {
    let p = w.base.join(format!("{name}.toml"));
    std::fs::write(&p, format!("name = \"{name}\"\n{body}")).unwrap();
    p.display().to_string()
}

#[test]
fn evaluation_workspace_is_read_only_from_inside() {
    if !needs_root() {
        return;
    }
    let w = world(As::Root);
    // `test` is on evaluation's allowlist; access(2) answers for the mount (EROFS).
    let out = run(&mut w.lasso(&[
        "run",
        "--profile",
        "evaluation",
        "--",
        "test",
        "-w",
        "/workspace",
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // The same profile with a shell allowed: a write really fails, and the file never appears.
    let ro = profile(
        &w,
        "ro-shell",
        "extends = \"evaluation\"\n[commands]\nmode = \"blocklist\"\n",
    );
    let out = run(&mut w.lasso(&[
        "run",
        "--profile-file",
        &ro,
        "--",
        "/bin/sh",
        "-c",
        "echo x > /workspace/planted",
    ]));
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("Read-only file system"),
        "{}",
        text(&out)
    );
    assert!(!w.ws.join("planted").exists());
    // Control: standard's workspace is writable.
    let out = run(&mut w.lasso(&["run", "--", "test", "-w", "/workspace"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn profile_memory_limit_kills_and_the_flag_overrides_it() {
    if !needs_root() {
        return;
    }
    let w = world(As::Root);
    let small = profile(
        &w,
        "small",
        "extends = \"standard\"\n[resources]\nmemory = \"64MiB\"\n",
    );
    let grab = "b = b'x' * (200 << 20); print('alive')";
    let out = run(&mut w.lasso(&[
        "run",
        "--profile-file",
        &small,
        "--",
        "/usr/bin/python3",
        "-c",
        grab,
    ]));
    assert_eq!(out.status.code(), Some(137), "{}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("alive"));
    let out = run(&mut w.lasso(&[
        "run",
        "--profile-file",
        &small,
        "--memory-mib",
        "512",
        "--",
        "/usr/bin/python3",
        "-c",
        grab,
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("alive"));
}

#[test]
fn rootless_profile_limits_are_reported_not_enforced() {
    if !needs_root() {
        return;
    }
    let w = world(As::Nobody);
    let out = run(&mut w.lasso(&["run", "--", "true"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("resource limits are NOT enforced"),
        "{}",
        text(&out)
    );
    // A limit typed on the command line is a demand: refused, not silently dropped.
    let out = run(&mut w.lasso(&["run", "--memory-mib", "64", "--", "true"]));
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
}

#[test]
fn a_profile_that_does_not_load_starts_nothing() {
    if !needs_root() {
        return;
    }
    let w = world(As::Root);
    let out = run(&mut w.lasso(&["run", "--profile", "no-such-profile", "--", "true"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no-such-profile"), "{}", text(&out));
    let bad = profile(&w, "bad", "[resources]\nmemory = \"lots\"\n");
    let out = run(&mut w.lasso(&["run", "--profile-file", &bad, "--", "true"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("bad.toml:"), "{}", text(&out));
    assert!(w.leftovers().is_empty());
    assert!(!w.audit_dir().exists() || std::fs::read_dir(w.audit_dir()).unwrap().next().is_none());
}

#[test]
fn audit_genesis_names_the_profile_and_its_digest() {
    if !needs_root() {
        return;
    }
    let w = world(As::Root);
    let out = run(&mut w.lasso(&["run", "--profile", "offline", "--", "true"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = std::fs::read_dir(w.audit_dir())
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
        .expect("a log");
    let first = std::fs::read_to_string(log.path()).unwrap();
    let first = first.lines().next().unwrap();
    let digest = lasso::policy::load("offline", &lasso::paths::Dirs::current())
        .unwrap()
        .digest();
    assert!(first.contains("\"offline\""), "{first}");
    assert!(first.contains(&format!("sha256:{digest}")), "{first}");
}
