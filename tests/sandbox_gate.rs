//! The exec gate live in real sandboxes under the built-in `standard` profile (which blocks
//! `rm`): every way of reaching `rm` from inside is refused and the file survives, allowed
//! commands run unchanged, `lasso exec` into a running sandbox is decided and gated too, an
//! interactive shell typed at in tmux is gated, and the audit log holds one exec entry per exec
//! and verifies intact.

mod sandbox_support;

use sandbox_support::*;

fn needs_root() -> bool {
    if !is_root() {
        eprintln!("skipped: needs root (to become nobody, and for cgroups)");
        return false;
    }
    true
}

/// A file the agent may delete if nothing stops it.
fn plant(w: &World) -> std::path::PathBuf {
    let f = w.ws.join("precious");
    std::fs::write(&f, "keep me\n").unwrap();
    let owner = if w.who == As::Root { OWNER } else { NOBODY };
    std::os::unix::fs::chown(&f, Some(owner), Some(owner)).unwrap();
    f
}

fn script(w: &World, name: &str, body: &str) {
    let p = w.ws.join(name);
    std::fs::write(&p, body).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

fn assert_refused(w: &World, what: &str, argv: &[&str]) {
    let f = plant(w);
    let mut args = vec!["run", "--"];
    args.extend_from_slice(argv);
    let out = run(&mut w.lasso(&args));
    let t = text(&out);
    assert!(f.exists(), "{what}: the file was deleted\n{t}");
    assert_ne!(out.status.code(), Some(0), "{what}\n{t}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lasso: blocked:"),
        "{what}: no refusal on stderr\n{t}"
    );
}

const X: &str = "/workspace/precious";

#[test]
fn rm_is_refused_through_every_wrapper_and_the_file_survives() {
    if !needs_root() {
        return;
    }
    let w = world(As::Root);
    script(&w, "del.sh", &format!("#!/bin/sh\nrm -f {X}\n"));
    let py =
        format!("import subprocess, sys; sys.exit(subprocess.run(['rm', '-f', '{X}']).returncode)");
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "sh -c",
            vec!["/bin/sh".into(), "-c".into(), format!("rm -f {X}")],
        ),
        (
            "a script",
            vec!["/bin/sh".into(), "-c".into(), "/workspace/del.sh".into()],
        ),
        (
            "sh SCRIPT",
            vec!["/bin/sh".into(), "/workspace/del.sh".into()],
        ),
        (
            "python subprocess",
            vec!["/usr/bin/python3".into(), "-c".into(), py],
        ),
        (
            "find -exec",
            vec![
                "/usr/bin/find".into(),
                X.into(),
                "-exec".into(),
                "rm".into(),
                "{}".into(),
                ";".into(),
            ],
        ),
        (
            "xargs",
            vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("echo {X} | xargs rm"),
            ],
        ),
        ("env", vec!["/usr/bin/env".into(), "rm".into(), X.into()]),
        (
            "a copy in /tmp",
            vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("cp /bin/rm /tmp/tidy && /tmp/tidy {X}"),
            ],
        ),
        (
            "a symlink",
            vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("ln -s /bin/rm /tmp/ls && /tmp/ls {X}"),
            ],
        ),
        (
            "the loader",
            vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("/lib64/ld-linux-x86-64.so.2 /bin/rm {X}"),
            ],
        ),
        (
            // Known by content: the loader's digest the gate was given at start.
            "a copy of the loader",
            vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("cp /lib64/ld-linux-x86-64.so.2 /tmp/ldx && /tmp/ldx /bin/rm {X}"),
            ],
        ),
    ];
    for (what, argv) in &cases {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        assert_refused(&w, what, &argv);
    }
}

#[test]
fn copied_rm_is_still_blocked_rootless() {
    if !needs_root() {
        return;
    }
    let w = world(As::Nobody);
    assert_refused(
        &w,
        "rootless copy",
        &[
            "/bin/sh",
            "-c",
            &format!("cp /bin/rm /tmp/tidy && /tmp/tidy {X}"),
        ],
    );
}

#[test]
fn allowed_commands_run_unchanged() {
    if !needs_root() {
        return;
    }
    let w = world(As::Root);
    let out = run(&mut w.lasso(&[
        "run",
        "--",
        "/bin/sh",
        "-c",
        "echo made > /workspace/out && cat /workspace/out && ls /workspace | grep -c out && python3 -c 'print(6*7)'",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "made\n1\n42\n",
        "{}",
        text(&out)
    );
}

fn exec_entries(w: &World, id: &str) -> Vec<serde_json::Value> {
    w.log_entries(id)
        .into_iter()
        .filter(|e| e.to_string().contains("\"exec\""))
        .collect()
}

#[test]
fn audit_log_has_one_exec_entry_per_exec_and_verifies() {
    if !needs_root() {
        return;
    }
    let w = world(As::Root);
    let f = plant(&w);
    // `sh FILE` cannot be decided before it runs: the gate decides each program inside.
    script(
        &w,
        "t.sh",
        &format!("/bin/true\n/usr/bin/rm -f {X}\n/bin/true\n"),
    );
    let out = run(&mut w.lasso(&["run", "--", "/bin/sh", "/workspace/t.sh"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(f.exists());
    let id = w.only_log();
    let execs = exec_entries(&w, &id);
    let s = |e: &serde_json::Value| e.to_string();
    assert_eq!(execs.len(), 4, "sh, true, rm (refused), true: {execs:#?}");
    assert_eq!(
        execs.iter().filter(|e| s(e).contains("\"ran\"")).count(),
        3,
        "{execs:#?}"
    );
    let refused: Vec<_> = execs
        .iter()
        .filter(|e| s(e).contains("\"refused\""))
        .collect();
    assert_eq!(refused.len(), 1, "{execs:#?}");
    let r = s(refused[0]);
    assert!(
        r.contains("/usr/bin/rm") && r.contains("builtin:standard"),
        "{r}"
    );
    w.assert_log_verifies(&id);
}

#[test]
fn lasso_exec_into_a_running_sandbox_is_decided_and_gated() {
    if !needs_root() {
        return;
    }
    let w = world(As::Root);
    let f = plant(&w);
    let out = run(&mut w.lasso(&[
        "up", "--detach", "--agent", "shell", "--", "/bin/sh", "-c", "sleep 60",
    ]));
    assert!(out.status.success(), "{}", text(&out));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stop = |w: &World| run(&mut w.lasso(&["stop", "-t", "1", &id]));

    let out = run(&mut w.lasso(&["exec", &id, "--", "rm", "-f", X]));
    let t = text(&out);
    assert_eq!(out.status.code(), Some(126), "{t}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lasso: blocked: rm"),
        "{t}"
    );
    // Not decidable from the command line: the session's own gate refuses the copy.
    let cmd = format!("cp /bin/rm /tmp/tidy && /tmp/tidy {X}");
    let out = run(&mut w.lasso(&["exec", &id, "--", "/bin/sh", "-c", &cmd]));
    let t = text(&out);
    assert_ne!(out.status.code(), Some(0), "{t}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lasso: blocked:"),
        "{t}"
    );
    assert!(f.exists(), "{t}");
    let out = run(&mut w.lasso(&["exec", &id, "--", "cat", X]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "keep me\n",
        "{}",
        text(&out)
    );

    let out = run(&mut w.lasso(&["status", "--json"]));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let row = rows
        .iter()
        .find(|r| r["id"] == id.as_str())
        .expect("listed");
    assert!(row["execs_blocked"].as_u64().unwrap() >= 1, "{row}");
    assert!(row["execs_allowed"].as_u64().unwrap() >= 2, "{row}");
    // Every session's log verifies.
    stop(&w);
    wait_until("the sandbox to end", || w.leftovers().is_empty());
    for e in std::fs::read_dir(w.audit_dir()).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        if let Some(log) = n.strip_suffix(".jsonl") {
            let out = run(&mut w.lasso(&["audit", "verify", log]));
            assert!(out.status.success(), "{log}: {}", text(&out));
        }
    }
}

#[test]
fn rm_typed_in_an_interactive_shell_is_refused() {
    if !needs_root() {
        return;
    }
    if !has_tmux() {
        return;
    }
    let w = world(As::Root);
    let f = plant(&w);
    let name = format!("lasso-gate-{}", std::process::id());
    let _t = tmux(&name, &format!("{LASSO} up --agent shell"), &w);
    let keys = |k: &[&str]| keys(&name, k);
    wait_until("a prompt", || screen(&name).contains('$'));
    keys(&[&format!("rm -f {X}; echo rc=$?"), "Enter"]);
    wait_until("the refusal", || screen(&name).contains("rc=126"));
    assert!(
        screen(&name).contains("lasso: blocked:"),
        "{}",
        screen(&name)
    );
    assert!(f.exists());
    keys(&["exit", "Enter"]);
    wait_until("the end", || screen(&name).contains("EXIT="));
}

#[test]
fn pgrep_runs_though_pkill_links_to_it_and_pgrep_called_pkill_is_refused() {
    if !needs_root() {
        return;
    }
    let linked = std::fs::read_link("/usr/bin/pkill").is_ok_and(|t| t.ends_with("pgrep"));
    if !linked {
        eprintln!("skipped: /usr/bin/pkill is not a symlink to pgrep here");
        return;
    }
    let w = world(As::Root);
    // The standard profile blocks `pkill`; `pgrep` is the same program acting by its name.
    let body = "pgrep -c no-such-process-name; echo \"pgrep=$?\"\n\
        python3 -c 'import os; os.execv(\"/usr/bin/pgrep\", [\"pkill\", \"-0\", \"no-such\"])'; echo \"alias=$?\"\n\
        cp /usr/bin/pgrep /tmp/x\n\
        python3 -c 'import os; os.execv(\"/tmp/x\", [\"pkill\", \"-0\", \"no-such\"])'; echo \"copy=$?\"\n\
        /tmp/x -c no-such-process-name; echo \"copy-as-itself=$?\"\n";
    script(&w, "names.sh", &format!("#!/bin/sh\n{body}"));
    let out = run(&mut w.lasso(&["run", "--", "/workspace/names.sh"]));
    let t = text(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("pgrep=1"),
        "pgrep must run (no match: 1)\n{t}"
    );
    assert!(stdout.contains("copy-as-itself=1"), "{t}");
    // Refused: execv fails with EACCES and python exits 1 (pkill itself would exit 1 or 0
    // too, so the refusals below are what tells).
    assert!(
        stdout.contains("alias=1") && stdout.contains("copy=1"),
        "{t}"
    );
    let refusals = String::from_utf8_lossy(&out.stderr)
        .matches("lasso: blocked:")
        .count();
    assert_eq!(
        refusals, 2,
        "pgrep run as pkill, directly and as a copy\n{t}"
    );
}
