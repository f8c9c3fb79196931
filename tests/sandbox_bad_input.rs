//! Bad input: each case fails with exit status 2 and a message naming the problem and its
//! fix, and leaves nothing behind (run as nobody, whose runtime directory is private to the
//! test, so "nothing" is exact: no sandbox directory, no engine state).

mod sandbox_support;

use sandbox_support::*;

fn refused(w: &World, args: &[&str], needles: &[&str]) {
    let out = run(&mut w.lasso(args));
    let t = text(&out);
    // Limits the host cannot enforce are the host's shortcoming (125), the rest usage (2).
    let want = if args.contains(&"--pids") { 125 } else { 2 };
    assert_eq!(out.status.code(), Some(want), "{args:?}\n{t}");
    let err = String::from_utf8_lossy(&out.stderr);
    for n in needles {
        assert!(err.contains(n), "{args:?}: stderr lacks {n:?}\n{t}");
    }
    let rt = w.runtime();
    let left: Vec<_> = std::fs::read_dir(&rt)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n != "engine")
        .collect();
    assert!(left.is_empty(), "{args:?} left {left:?}");
    let engine: Vec<_> = std::fs::read_dir(rt.join("engine"))
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    assert!(engine.is_empty(), "{args:?} left engine state");
}

#[test]
fn bad_input_is_refused_with_the_fix_and_nothing_is_left() {
    if !is_root() {
        eprintln!("skipped: needs root to become nobody");
        return;
    }
    let w = world(As::Nobody);
    let home = w.home.to_str().unwrap().to_string();
    let locked = w.base.join("locked");
    std::fs::create_dir_all(&locked).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    let locked = locked.to_str().unwrap().to_string();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["run", "--dir", "/no/such/dir", "--", "true"],
            vec!["--dir /no/such/dir", "no such directory"],
        ),
        (
            vec!["run", "--dir", &locked, "--", "true"],
            vec!["cannot read it"],
        ),
        (vec!["run", "--dir", "/", "--", "true"], vec!["--force-dir"]),
        (
            vec!["run", "--dir", &home, "--", "true"],
            vec!["home directory", "--force-dir"],
        ),
        (
            vec!["run", "--agent", "claude-cod", "--", "true"],
            vec!["--agent claude-cod", "claude-code"],
        ),
        (
            vec!["run", "--profile", "nope", "--", "true"],
            vec!["profile \"nope\" not found", "lasso profile list"],
        ),
        (
            vec![
                "run",
                "--mount",
                "/usr/share:/data",
                "--mount",
                "/usr/lib:/data",
                "--",
                "true",
            ],
            vec!["/data"],
        ),
        (
            vec!["run", "--mount", "/etc:/hostetc", "--", "true"],
            vec!["--allow-sensitive"],
        ),
        (
            vec!["run", "--mount", "nocolon", "--", "true"],
            vec!["--mount"],
        ),
        (
            vec!["run", "--pids", "10", "--", "true"],
            vec!["limits", "delegate"],
        ),
        (vec!["attach", "zzzzzzzz"], vec!["no sandbox zzzzzzzz"]),
        (
            vec!["exec", "zzzzzzzz", "--", "true"],
            vec!["no sandbox zzzzzzzz"],
        ),
        (vec!["stop", "../../etc"], vec!["no sandbox"]),
    ];
    for (args, needles) in cases {
        refused(&w, &args, &needles);
    }
}

#[test]
fn root_refuses_a_root_owned_workspace() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    // Root-owned workspaces are refused only where they cannot be idmapped (devpts cannot);
    // elsewhere they reach the agent through an idmapped mount (tests/sandbox_startup.rs).
    let w = world(As::Root);
    let dir = std::path::Path::new("/dev/pts");
    let out = run(&mut w.lasso(&[
        "run",
        "--force-dir",
        "--dir",
        dir.to_str().unwrap(),
        "--",
        "true",
    ]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("chown"),
        "{}",
        text(&out)
    );
}
