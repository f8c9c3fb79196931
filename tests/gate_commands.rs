//! The exec gate against the ways an agent starts a blocked program: shells, scripts, make,
//! python, node, xargs, find, env, busybox, links, copies, the loader, shebangs and memfds.
//! Each case runs a real process tree under the real seccomp listener and ptrace verifier with
//! a policy that blocks /usr/bin/rm, and checks the victim file survived and the audit sink got
//! the refusal with the real argv.

mod gate_support;

use std::path::{Path, PathBuf};

use gate_support::{compile, require_root, run, Run, BLOCKED_ARG};

#[test]
fn helper_process() {
    gate_support::helper_main();
}

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("victim"), "precious\n").unwrap();
        Case { dir }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn write(&self, name: &str, content: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path(name);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    fn gated(&self, argv: &[&str]) -> Run {
        run(self.dir.path(), argv, &[Path::new("/usr/bin/rm")], true)
    }
    fn sh(&self, script: &str) -> Run {
        self.gated(&["/bin/sh", "-c", script])
    }
    /// The victim survived and the audit holds a refusal (or kill) naming it in its argv.
    fn assert_stopped(&self, r: &Run, what: &str) {
        assert!(
            self.path("victim").exists(),
            "{what}: the victim was deleted: {r:#?}"
        );
        assert!(
            !r.stopped_with("victim").is_empty(),
            "{what}: no refusal with the real argv in the audit: {r:#?}"
        );
    }
}

#[test]
fn allowed_commands_behave_exactly_as_outside() {
    if !require_root() {
        return;
    }
    let c = Case::new();
    let script = "echo out; echo err >&2; ls / | head -n 3; cat victim; env true; exit 7";
    let inside = c.sh(script);
    let outside = run(c.dir.path(), &["/bin/sh", "-c", script], &[], false);
    assert_eq!(inside.code, 7);
    assert_eq!(
        (inside.code, &inside.stdout, &inside.stderr),
        (outside.code, &outside.stdout, &outside.stderr)
    );
    assert!(outside.audit.is_empty());
    // One "ran" entry per exec, each with the argv the kernel used.
    let ran: Vec<_> = inside
        .entries("ran")
        .iter()
        .map(|e| e["argv"].clone())
        .collect();
    for want in [
        serde_json::json!(["/bin/sh", "-c", script]),
        serde_json::json!(["ls", "/"]),
        serde_json::json!(["head", "-n", "3"]),
        serde_json::json!(["cat", "victim"]),
        serde_json::json!(["true"]),
    ] {
        assert!(ran.contains(&want), "no ran entry for {want}: {ran:#?}");
    }
    assert!(inside.entries("refused").is_empty() && inside.entries("killed_mismatch").is_empty());
}

#[test]
fn rm_typed_into_a_shell_is_refused_with_a_reason() {
    if !require_root() {
        return;
    }
    let c = Case::new();
    let r = c.sh("rm victim; echo status=$?");
    c.assert_stopped(&r, "sh");
    assert!(r.stdout.contains("status=126"), "{r:#?}");
    assert!(
        r.stderr
            .contains("lasso: blocked: /usr/bin/rm is a blocked program"),
        "{r:#?}"
    );
    assert!(
        r.stderr.contains("Permission denied"),
        "EACCES reaches the caller: {r:#?}"
    );
    let e = &r.stopped_with("victim")[0];
    assert_eq!(e["argv"], serde_json::json!(["rm", "victim"]));
    assert_eq!(e["exe"], "/usr/bin/rm");
}

#[test]
fn rm_through_sh_c_exec_env_xargs_and_find_is_refused() {
    if !require_root() {
        return;
    }
    let c = Case::new();
    for cmd in [
        "sh -c 'exec rm victim'",
        "env rm victim",
        "env -S 'rm victim'",
        "echo victim | xargs rm",
        "find . -name victim -exec rm {} ';'",
        "bash -c 'rm -f victim'",
    ] {
        c.assert_stopped(&c.sh(cmd), cmd);
    }
}

#[test]
fn rm_in_a_script_and_a_makefile_is_refused() {
    if !require_root() {
        return;
    }
    let c = Case::new();
    c.write("job.sh", "#!/bin/sh\nrm victim\n", 0o755);
    c.assert_stopped(&c.gated(&["./job.sh"]), "script");
    c.write("Makefile", "all:\n\trm victim\n", 0o644);
    let r = c.gated(&["make", "-s"]);
    c.assert_stopped(&r, "make");
    assert_ne!(r.code, 0);
}

#[test]
fn rm_from_python_subprocess_is_refused() {
    if !require_root() {
        return;
    }
    let c = Case::new();
    let r = c.gated(&[
        "python3",
        "-c",
        "import subprocess,sys\ntry:\n subprocess.run(['rm','victim'])\nexcept PermissionError as e:\n print('refused', e.errno); sys.exit(3)",
    ]);
    c.assert_stopped(&r, "python");
    assert_eq!(r.code, 3, "{r:#?}");
    assert!(
        r.stdout.contains("refused 13"),
        "EACCES is errno 13: {r:#?}"
    );
}

#[test]
fn rm_from_node_child_process_is_refused() {
    if !require_root() {
        return;
    }
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: node is not installed");
        return;
    }
    let c = Case::new();
    let r = c.gated(&[
        "node",
        "-e",
        "require('child_process').execSync('rm victim')",
    ]);
    c.assert_stopped(&r, "node");
}

fn busybox() -> Option<&'static str> {
    let found = ["/usr/bin/busybox", "/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    if found.is_none() {
        eprintln!("skipped: busybox is not installed");
    }
    found
}

#[test]
fn busybox_rm_applet_is_refused_by_name_link_and_renamed_copy() {
    if !require_root() {
        return;
    }
    let Some(bb) = busybox() else {
        return;
    };
    let c = Case::new();
    std::os::unix::fs::symlink(bb, c.path("rm")).unwrap();
    // busybox treats any name starting with "busybox" as itself (and the next word as the
    // applet); a copy under another name runs the applet of that name.
    std::fs::copy(bb, c.path("busybox-copy")).unwrap();
    for argv in [
        vec![bb, "rm", "victim"],
        vec!["./rm", "victim"],
        vec!["./busybox-copy", "rm", "victim"],
    ] {
        let r = c.gated(&argv);
        c.assert_stopped(&r, &argv.join(" "));
        assert_eq!(r.stopped_with("victim")[0]["applet"], "rm");
    }
}

#[test]
fn busybox_applet_is_its_own_name_not_its_first_argument() {
    if !require_root() {
        return;
    }
    let Some(bb) = busybox() else {
        return;
    };
    let c = Case::new();
    // As in busybox images: `cat` is busybox under another name, and its argument happens to
    // be named like a blocked program. It is `cat` that runs, and it must be allowed.
    // (A copy, like the hard links there: the file's own name is `cat`.)
    std::fs::copy(bb, c.path("cat")).unwrap();
    std::fs::create_dir(c.path("d")).unwrap();
    std::fs::write(c.path("d/rm"), "not a program\n").unwrap();
    let r = c.gated(&["./cat", "d/rm"]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!(r.stdout, "not a program\n", "{r:#?}");
    assert!(r.stopped_with("d/rm").is_empty(), "{r:#?}");
    // A copy under a name busybox does not know runs nothing, whatever follows.
    std::fs::copy(bb, c.path("bb")).unwrap();
    let r = c.gated(&["./bb", "rm", "victim"]);
    assert!(c.path("victim").exists(), "{r:#?}");
}

#[test]
fn symlinked_hard_linked_copied_and_renamed_rm_is_still_blocked() {
    if !require_root() {
        return;
    }
    let c = Case::new();
    std::os::unix::fs::symlink("/usr/bin/rm", c.path("del")).unwrap();
    let hard = std::fs::hard_link("/usr/bin/rm", c.path("hard")).is_ok();
    std::fs::copy("/usr/bin/rm", c.path("copy")).unwrap();
    std::fs::copy("/usr/bin/rm", c.path("tmp")).unwrap();
    std::fs::rename(c.path("tmp"), c.path("renamed")).unwrap();
    let mut cases = vec!["./del victim", "./copy victim", "./renamed victim"];
    if hard {
        cases.push("./hard victim");
    } else {
        eprintln!("note: no hard link across file systems here; hard-link case skipped");
    }
    for cmd in cases {
        c.assert_stopped(&c.sh(cmd), cmd);
    }
}

#[test]
fn rm_through_the_dynamic_loader_is_refused() {
    if !require_root() {
        return;
    }
    let ld = "/lib64/ld-linux-x86-64.so.2";
    if !Path::new(ld).exists() {
        eprintln!("skipped: no {ld}");
        return;
    }
    let c = Case::new();
    std::fs::copy(ld, c.path("myld")).unwrap();
    for argv in [
        vec![ld, "/usr/bin/rm", "victim"],
        vec![ld, "--library-path", "/usr/lib", "/usr/bin/rm", "victim"],
        vec!["./myld", "/usr/bin/rm", "victim"],
    ] {
        let r = c.gated(&argv);
        c.assert_stopped(&r, &argv.join(" "));
        assert_eq!(r.stopped_with("victim")[0]["loader_target"], "/usr/bin/rm");
    }
    // The loader running an allowed program still works.
    let r = c.gated(&[ld, "/bin/echo", "via loader"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "via loader\n"), "{r:#?}");
}

#[test]
fn shebang_scripts_decide_their_interpreter() {
    if !require_root() {
        return;
    }
    let c = Case::new();
    // rm as the interpreter would delete the script itself.
    c.write("self-deleting", "#!/usr/bin/rm\n", 0o755);
    let r = c.gated(&["./self-deleting"]);
    assert!(c.path("self-deleting").exists(), "{r:#?}");
    assert_eq!(
        r.entries("refused")[0]["interpreters"],
        serde_json::json!(["/usr/bin/rm"])
    );
    c.write("split", "#!/usr/bin/env -S rm victim\n", 0o755);
    c.assert_stopped(&c.gated(&["./split"]), "env -S shebang");
    // A nested chain: a script whose interpreter is a script run by sh.
    c.write("inner", "#!/bin/sh\nshift\nexec \"$@\"\n", 0o755);
    c.write(
        "outer",
        &format!("#!{}\n", c.path("inner").display()),
        0o755,
    );
    let r = c.gated(&["./outer", "rm", "victim"]);
    c.assert_stopped(&r, "nested shebang");
    let r = c.gated(&["./outer", "echo", "chain ok"]);
    assert_eq!(r.stdout, "chain ok\n", "{r:#?}");
}

#[test]
fn rm_copied_into_a_memfd_is_refused() {
    if !require_root() {
        return;
    }
    let c = Case::new();
    compile("memfd_exec.c", &c.path("memfd_exec"), &[]);
    let r = c.gated(&["./memfd_exec", "/usr/bin/rm", "rm", "victim"]);
    c.assert_stopped(&r, "memfd");
    assert_eq!(r.code, 126, "fexecve fails with EACCES: {r:#?}");
    assert_eq!(r.stopped_with("victim")[0]["memfd"], true);
    let r = c.gated(&["./memfd_exec", "/bin/echo", "echo", "from memfd"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "from memfd\n"), "{r:#?}");
    assert_eq!(r.entries("ran").last().unwrap()["memfd"], true);
}

#[test]
fn a_sandboxed_process_cannot_install_a_listener_to_answer_for_the_monitor() {
    if !require_root() {
        return;
    }
    let c = Case::new();
    compile("own_listener.c", &c.path("own_listener"), &[]);
    let r = c.gated(&["./own_listener", "/usr/bin/rm", "rm", "victim"]);
    // A newer filter's notification would win over the monitor's; the kernel refuses a second
    // listener in a filter tree that already has one (EBUSY), which closes that door.
    assert_eq!(r.code, 3, "{r:#?}");
    assert!(
        r.stderr.contains("seccomp: Device or resource busy"),
        "{r:#?}"
    );
    assert!(c.path("victim").exists());
}

#[test]
fn signals_and_job_control_reach_gated_processes_unchanged() {
    if !require_root() {
        return;
    }
    let c = Case::new();
    // A real-time signal, a classic one, and a stopped-then-continued child (a group-stop,
    // which the tracer must leave stopped until SIGCONT).
    let py = "import os,signal\n\
              signal.signal(signal.SIGRTMIN+2, lambda *a: print('rt'))\n\
              signal.signal(signal.SIGUSR1, lambda *a: print('usr1'))\n\
              os.kill(os.getpid(), signal.SIGRTMIN+2)\n\
              os.kill(os.getpid(), signal.SIGUSR1)\n\
              print('done')";
    // ps shows a stopped tracee as "t" rather than "T": the one visible trace of the tracer.
    let sh = "sleep 1 & kill -STOP $!; sleep 0.2; \
              case $(ps -o stat= -p $!) in [Tt]*) echo stopped;; esac; \
              kill -CONT $!; wait; echo resumed";
    for argv in [vec!["python3", "-c", py], vec!["/bin/sh", "-c", sh]] {
        let inside = c.gated(&argv);
        let outside = run(c.dir.path(), &argv, &[], false);
        assert_eq!(
            (inside.code, &inside.stdout),
            (outside.code, &outside.stdout),
            "{inside:#?}"
        );
    }
}

#[test]
fn a_child_made_with_clone_untraced_is_gated_like_any_other() {
    if !require_root() {
        return;
    }
    let c = Case::new();
    compile("untraced.c", &c.path("untraced"), &[]);
    // CLONE_UNTRACED keeps a child out of a tracer's fork following; the gate follows no forks
    // and seizes each exec-ing thread at its notification, so the flag changes nothing.
    let r = c.gated(&["./untraced", "/usr/bin/rm", "rm", "victim"]);
    c.assert_stopped(&r, "CLONE_UNTRACED child");
    assert_eq!(r.code, 126, "{r:#?}");
    let r = c.gated(&["./untraced", "/bin/echo", "echo", "hello"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "hello\n"), "{r:#?}");
    assert!(
        r.entries("ran").iter().any(|e| e["exe"] == "/usr/bin/echo"),
        "{r:#?}"
    );
}

#[test]
fn rm_through_execveat_relative_to_a_directory_fd_is_refused() {
    if !require_root() {
        return;
    }
    let c = Case::new();
    let py = "import ctypes, os, sys\n\
              libc = ctypes.CDLL(None, use_errno=True)\n\
              fd = os.open('/usr/bin', os.O_PATH)\n\
              argv = (ctypes.c_char_p * 3)(b'rm', b'victim', None)\n\
              envp = (ctypes.c_char_p * 1)(None)\n\
              libc.syscall(322, fd, b'rm', argv, envp, 0)\n\
              print('errno', ctypes.get_errno())";
    let r = c.gated(&["python3", "-c", py]);
    c.assert_stopped(&r, "execveat");
    assert_eq!(r.stdout, "errno 13\n", "{r:#?}");
    assert_eq!(r.stopped_with("victim")[0]["exe"], "/usr/bin/rm");
}

#[test]
fn the_refusal_message_never_writes_through_a_read_only_stderr() {
    if !require_root() {
        return;
    }
    let c = Case::new();
    c.write("readonly-log", "untouched\n", 0o444);
    // fd 2 is open read-only: reopening /proc/PID/fd/2 as root would get write access; the
    // gate writes through the process's own file description, whose mode forbids it.
    let r = c.sh("exec 2<readonly-log; rm victim");
    c.assert_stopped(&r, "read-only stderr");
    assert_eq!(
        std::fs::read_to_string(c.path("readonly-log")).unwrap(),
        "untouched\n"
    );
}

#[test]
fn an_exec_the_kernel_fails_after_the_gate_allowed_it_holds_nothing_up() {
    if !require_root() {
        return;
    }
    let c = Case::new();
    // Allowed by the gate, refused by the kernel: no exec event comes, only the stop the gate's
    // interrupt asked for; the shell must go on, and so must the execs after it.
    c.write("not-executable", "#!/bin/sh\necho no\n", 0o644);
    c.write("no-shebang", "echo from-the-shell-itself\n", 0o755);
    let script = "./not-executable; echo status $?; ./no-shebang; /bin/echo after; \
                  ./not-executable; /bin/echo again";
    let r = c.sh(script);
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!(
        r.stdout, "status 126\nfrom-the-shell-itself\nafter\nagain\n",
        "{r:#?}"
    );
    assert_eq!(
        r.audit
            .iter()
            .filter(|e| e["outcome"] == "ran" && e["exe"] == "/usr/bin/echo")
            .count(),
        2,
        "{r:#?}"
    );
    // The same thread, seized for a failed exec and released, is seized again for the next.
    let py = "import os\n\
              try:\n    os.execv('./not-executable', ['x'])\n\
              except PermissionError:\n    print('refused by the kernel', flush=True)\n\
              os.execv('/bin/echo', ['echo', 'after'])";
    let r = c.gated(&["python3", "-c", py]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "refused by the kernel\nafter\n"),
        "{r:#?}"
    );
}

#[test]
fn an_exec_from_a_non_leader_thread_is_verified_under_the_process_id() {
    if !require_root() {
        return;
    }
    let c = Case::new();
    // The kernel reports the exec event under the thread-group id; the gate seized the thread.
    let ok = "import os, threading\n\
              t = threading.Thread(target=lambda: os.execv('/bin/echo', ['echo', 'from-thread']))\n\
              t.start(); t.join()";
    let r = c.gated(&["python3", "-c", ok]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "from-thread\n"), "{r:#?}");
    let ran: Vec<_> = r.entries("ran");
    assert!(
        ran.iter()
            .any(|e| e["exe"] == "/usr/bin/echo" && e["argv"][1] == "from-thread"),
        "{r:#?}"
    );
    let bad = "import os, threading\n\
               t = threading.Thread(target=lambda: os.execv('/usr/bin/rm', ['rm', 'victim']))\n\
               t.start(); t.join()";
    let r = c.gated(&["python3", "-c", bad]);
    c.assert_stopped(&r, "exec from a thread");
}

#[test]
fn paths_through_proc_self_are_resolved_as_the_caller_sees_them() {
    if !require_root() {
        return;
    }
    let c = Case::new();
    // /proc/self in the monitor is the monitor: resolved there, the caller's cwd would be the
    // monitor's, and the copy below would not be found.
    let r = c.sh("cp /bin/echo ./e && /proc/self/cwd/e hi");
    assert_eq!((r.code, r.stdout.as_str()), (0, "hi\n"), "{r:#?}");
    assert!(
        r.entries("ran")
            .iter()
            .any(|e| e["path"] == "/proc/self/cwd/e"),
        "{r:#?}"
    );
    // A re-exec of one's own image is identified at the notification as that image.
    let py = "import os\nos.execv('/proc/self/exe', ['python3', '-c', 'print(6 * 7)'])";
    let r = c.gated(&["python3", "-c", py]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "42\n"), "{r:#?}");
    assert!(
        r.entries("ran").iter().any(
            |e| e["path"] == "/proc/self/exe" && e["exe"].as_str().unwrap().contains("python3")
        ),
        "{r:#?}"
    );
    let copy = c.sh("cp /usr/bin/rm ./r && /proc/self/cwd/r victim");
    c.assert_stopped(&copy, "copy of rm through /proc/self/cwd");
    assert_eq!(copy.entries("refused").len(), 1, "{copy:#?}");
}

/// Stage 1 resolves absolute paths from the sandbox's root, opened once; a caller that stands
/// in another root (here: `chroot`) is still decided on what it really runs. Inside the chroot
/// `/usr/bin/true` is a copy of `rm` (with the libraries it needs): stage 1 sees the host's
/// `true`, the exec event sees `rm` and kills it. A path only the chroot has still runs.
#[test]
fn a_caller_in_another_root_is_decided_on_what_it_really_runs() {
    if !require_root() {
        return;
    }
    let c = Case::new();
    let root = c.path("root");
    for (from, to) in [
        ("/usr/bin/rm", "usr/bin/true"),
        ("/lib64/ld-linux-x86-64.so.2", "lib64/ld-linux-x86-64.so.2"),
        (
            "/lib/x86_64-linux-gnu/libc.so.6",
            "lib/x86_64-linux-gnu/libc.so.6",
        ),
        ("/bin/busybox", "only-here/echo"),
    ] {
        let to = root.join(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, &to).unwrap();
    }
    std::fs::write(root.join("victim"), "precious\n").unwrap();

    let r = c.gated(&[
        "/usr/sbin/chroot",
        root.to_str().unwrap(),
        "/usr/bin/true",
        "/victim",
    ]);
    assert!(root.join("victim").exists(), "rm ran in the chroot: {r:#?}");
    let killed = r.entries("killed_mismatch");
    assert!(
        killed.iter().any(|e| e["argv"][1] == "/victim"),
        "no kill of the real image with its argv in the audit: {r:#?}"
    );

    let r = c.gated(&[
        "/usr/sbin/chroot",
        root.to_str().unwrap(),
        "/only-here/echo",
        "hi",
    ]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "hi\n"), "{r:#?}");
}

/// The decision memo keeps allowed answers by command line and file stamp: the same path
/// overwritten with a copy of `rm` (same inode, new content) must be decided afresh and
/// stopped, and the same program with another argument must be asked about again.
#[test]
fn a_remembered_program_overwritten_with_rm_is_stopped_never_run() {
    if !require_root() {
        return;
    }
    let c = Case::new();
    let tool = c.path("tool");
    std::fs::copy("/usr/bin/ls", &tool).unwrap();
    let p = tool.display();
    let script = format!(
        "{p} victim >/dev/null; {p} victim >/dev/null; {p} {BLOCKED_ARG} 2>/dev/null; \
         cp /usr/bin/rm {p}; {p} victim; exit 0"
    );
    let r = c.sh(&script);
    c.assert_stopped(&r, "tool overwritten with rm");
    let argv = serde_json::json!([p.to_string(), "victim"]);
    let ran = r
        .entries("ran")
        .into_iter()
        .filter(|e| e["argv"] == argv)
        .count();
    assert_eq!(ran, 2, "both runs before the overwrite ran: {r:#?}");
    assert!(
        r.audit
            .iter()
            .any(|e| e["argv"] == argv && e["outcome"] != "ran" && e["exe"] != ""),
        "the overwritten tool is audited as stopped: {r:#?}"
    );
    assert_eq!(
        r.entries("refused")
            .iter()
            .filter(|e| e["argv"][1] == BLOCKED_ARG)
            .count(),
        1,
        "another argument is decided again: {r:#?}"
    );
}

/// The exec event reads the argv from the new image's stack in one read when it fits and in
/// more when it does not (600 environment pointers push the strings away, a long argument is
/// longer than the read): either way the audit holds exactly the argv the kernel used.
#[test]
fn the_audited_argv_is_exact_with_a_large_environment_or_argument() {
    if !require_root() {
        return;
    }
    let c = Case::new();
    let long = "x".repeat(6000);
    let script = format!(
        "/usr/bin/env $(seq -f 'V%g=1' 600) /bin/echo a 'b c' >/dev/null; \
         /bin/echo {long} >/dev/null; /bin/echo short >/dev/null"
    );
    let r = c.sh(&script);
    assert_eq!(r.code, 0, "{r:#?}");
    let ran: Vec<_> = r.entries("ran").iter().map(|e| e["argv"].clone()).collect();
    for want in [
        serde_json::json!(["/bin/echo", "a", "b c"]),
        serde_json::json!(["/bin/echo", long]),
        serde_json::json!(["/bin/echo", "short"]),
    ] {
        assert!(ran.contains(&want), "missing {want}: {ran:#?}");
    }
}
