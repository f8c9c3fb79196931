//! `lasso exec` and `lasso shell ID` run by an unprivileged user (nobody) into a running
//! rootless sandbox under the built-in `standard` profile (which blocks `rm`): a blocked
//! command line is refused before anything starts, a blocked program the session starts is
//! refused by the session's own gate, every refusal lands in the session's log, which
//! verifies; an allowed command's output and status are the same as outside; a shell typed
//! at in tmux is gated. (`sandbox_exec_window.rs` checks that the session, traceable by its
//! unprivileged monitor, stays out of the agent's reach.)

mod exec_rootless_support;
mod sandbox_support;

use exec_rootless_support::*;
use sandbox_support::*;
use std::process::{Command, Stdio};

const X: &str = "/workspace/precious";

/// A file the agent may delete if nothing stops it.
fn plant(w: &World) -> std::path::PathBuf {
    let f = w.ws.join("precious");
    std::fs::write(&f, "keep me\n").unwrap();
    std::os::unix::fs::chown(&f, Some(NOBODY), Some(NOBODY)).unwrap();
    f
}

/// Logs of the exec sessions into `id`, newest last (by the session's pid, in the name).
fn session_logs(w: &World, id: &str) -> Vec<String> {
    let prefix = format!("{id}-exec-");
    let mut logs: Vec<(u32, String)> = std::fs::read_dir(w.audit_dir())
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            let log = n.strip_suffix(".jsonl")?.to_string();
            let pid = log.strip_prefix(&prefix)?.parse().ok()?;
            Some((pid, log))
        })
        .collect();
    logs.sort();
    logs.into_iter().map(|(_, l)| l).collect()
}

#[test]
fn rootless_exec_of_rm_is_refused_before_it_starts_and_audited() {
    if !needs_root() {
        return;
    }
    let w = world(As::Nobody);
    let f = plant(&w);
    let s = up(&w, &["/bin/sh", "-c", "sleep 60"]);
    let out = run(&mut w.lasso(&["exec", &s.id, "--", "rm", "-f", X]));
    let t = text(&out);
    assert_eq!(out.status.code(), Some(126), "{t}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lasso: blocked: rm"),
        "{t}"
    );
    assert!(f.exists(), "{t}");
    let logs = session_logs(&w, &s.id);
    assert_eq!(logs.len(), 1, "{logs:?}");
    let blocked: Vec<_> = w
        .log_entries(&logs[0])
        .into_iter()
        .filter(|e| e["kind"] == "exec" && e["outcome"] == "blocked")
        .collect();
    assert_eq!(blocked.len(), 1, "{blocked:#?}");
    assert_eq!(blocked[0]["details"]["via"], "lasso exec", "{blocked:#?}");
    assert_eq!(blocked[0]["details"]["argv"][0], "rm", "{blocked:#?}");
    w.assert_log_verifies(&logs[0]);
}

#[test]
fn rootless_exec_session_refuses_a_blocked_program_it_starts() {
    if !needs_root() {
        return;
    }
    let w = world(As::Nobody);
    let f = plant(&w);
    let s = up(&w, &["/bin/sh", "-c", "sleep 60"]);
    // Neither is decidable from the command line: the session's own gate decides each exec.
    std::fs::write(w.ws.join("del.sh"), format!("rm -f {X}\necho rc=$?\n")).unwrap();
    let copy = format!("cp /bin/rm /tmp/tidy && /tmp/tidy {X}");
    for (what, argv) in [
        ("rm in a script", vec!["/bin/sh", "/workspace/del.sh"]),
        ("a copy of rm", vec!["/bin/sh", "-c", &copy]),
    ] {
        let mut args = vec!["exec", &s.id, "--"];
        args.extend_from_slice(&argv);
        let out = run(&mut w.lasso(&args));
        let t = text(&out);
        assert!(f.exists(), "{what}: the file was deleted\n{t}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("lasso: blocked:"),
            "{what}: no refusal on stderr\n{t}"
        );
        if what == "rm in a script" {
            // The shell goes on after the refused exec: 126, as for any non-executable file.
            assert_eq!(String::from_utf8_lossy(&out.stdout), "rc=126\n", "{t}");
        } else {
            assert_eq!(out.status.code(), Some(126), "{what}\n{t}");
        }
        let log = session_logs(&w, &s.id).pop().expect("a session log");
        let e = w.log_entries(&log);
        let ran_sh = e.iter().any(|e| {
            e["kind"] == "exec"
                && e["details"]["result"] == "ran"
                && e["details"]["argv"][0] == "/bin/sh"
        });
        assert!(ran_sh, "{what}: the shell's exec is audited: {e:#?}");
        let refused = e
            .iter()
            .filter(|e| e["kind"] == "exec" && e["details"]["result"] == "refused")
            .count();
        assert!(refused >= 1, "{what}: {e:#?}");
        w.assert_log_verifies(&log);
    }
}

#[test]
fn rootless_exec_output_and_status_are_exactly_as_outside() {
    if !needs_root() {
        return;
    }
    let w = world(As::Nobody);
    let s = up(&w, &["/bin/sh", "-c", "sleep 60"]);
    let script = "printf 'out\\n\\000bytes'; echo err >&2; read line; echo \"got $line\"; exit 7";
    let outside = typed_into(Command::new("/bin/sh").args(["-c", script]));
    let inside = typed_into(&mut w.lasso(&["exec", &s.id, "--", "/bin/sh", "-c", script]));
    assert_eq!(outside.status.code(), Some(7));
    assert_eq!(inside.status.code(), Some(7), "{}", text(&inside));
    assert_eq!(inside.stdout, outside.stdout, "{}", text(&inside));
    assert_eq!(inside.stderr, outside.stderr, "{}", text(&inside));
    let out = run(&mut w.lasso(&["exec", &s.id, "--", "/bin/true"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        text(&out)
    );
    for log in session_logs(&w, &s.id) {
        w.assert_log_verifies(&log);
    }
}

#[test]
fn rootless_shell_refuses_a_blocked_command_typed_at_its_prompt() {
    if !needs_root() || !has_tmux() {
        return;
    }
    let w = world(As::Nobody);
    let f = plant(&w);
    let s = up(&w, &["/bin/sh", "-c", "sleep 60"]);
    let name = format!("lasso-rootexec-{}", std::process::id());
    let cmd = format!(
        "XDG_RUNTIME_DIR={} LASSO_AUDIT_DIR={} LASSO_CONFIG_DIR={} setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups {LASSO} shell {}",
        w.base.join("xdg-run").display(),
        w.audit_dir().display(),
        w.base.join("config").display(),
        s.id
    );
    let _t = tmux(&name, &cmd, &w);
    let keys = |k: &[&str]| keys(&name, k);
    wait_until("a prompt", || screen(&name).contains('$'));
    keys(&["echo typed-$((6*7))", "Enter"]);
    wait_until("an allowed command's output", || {
        screen(&name).contains("typed-42")
    });
    keys(&[&format!("rm -f {X}; echo rc=$?"), "Enter"]);
    wait_until("the refusal", || screen(&name).contains("rc=126"));
    assert!(
        screen(&name).contains("lasso: blocked:"),
        "{}",
        screen(&name)
    );
    assert!(f.exists());
    keys(&["exit 3", "Enter"]);
    wait_until("the end", || screen(&name).contains("EXIT=3"));
    let log = session_logs(&w, &s.id).pop().expect("the shell's log");
    let e = w.log_entries(&log);
    assert!(
        e.iter()
            .any(|e| e["kind"] == "exec" && e["details"]["result"] == "refused"),
        "{e:#?}"
    );
    w.assert_log_verifies(&log);
}

/// Runs `cmd` with one line typed into its stdin, capturing stdout and stderr.
fn typed_into(cmd: &mut Command) -> std::process::Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"typed\n")?;
            c.wait_with_output()
        })
        .unwrap()
}
