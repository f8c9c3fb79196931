//! The Landlock execute floor of allowlist profiles, seen from inside real `lasso run --profile
//! strict` sandboxes: a copy of an allowed program under another path (/tmp, /workspace) is
//! refused by the kernel itself — the exec gate allows it by name, Landlock does not — while the
//! allowed programs at their own paths run.

mod sandbox_support;

use sandbox_support::*;

fn strict(w: &World, argv: &[&str]) -> std::process::Output {
    let mut args = vec!["run", "--profile", "strict", "--"];
    args.extend_from_slice(argv);
    run(&mut w.lasso(&args))
}

fn copy_of_ls_is_refused_by_the_kernel(who: As) {
    if !is_root() {
        eprintln!("skipped: needs root (to become nobody, and for cgroups)");
        return;
    }
    let w = world(who);
    let owner = if who == As::Root { OWNER } else { NOBODY };
    let copy = w.ws.join("ls");
    std::fs::copy("/usr/bin/ls", &copy).unwrap();
    std::os::unix::fs::chown(&copy, Some(owner), Some(owner)).unwrap();
    // make runs a recipe without a shell when it has no shell syntax: one exec per line.
    let makefile = "all:\n\tcp /usr/bin/ls /tmp/ls\n\t/tmp/ls /workspace\n";
    std::fs::write(w.ws.join("Makefile"), makefile).unwrap();
    std::os::unix::fs::chown(w.ws.join("Makefile"), Some(owner), Some(owner)).unwrap();

    // The allowed programs run.
    let out = strict(&w, &["ls", "/workspace"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Makefile"),
        "{t}"
    );
    let out = strict(&w, &["env", "ls", "/workspace"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Named `ls`, the copies pass the gate's name check; the kernel refuses to execute them.
    for (what, argv) in [
        ("copy in /workspace", vec!["/workspace/ls", "/"]),
        (
            "copy in /workspace, through env",
            vec!["env", "/workspace/ls", "/"],
        ),
        (
            "copy made in /tmp, run by make",
            vec!["make", "-C", "/workspace"],
        ),
    ] {
        let out = strict(&w, &argv);
        let t = text(&out);
        assert_ne!(out.status.code(), Some(0), "{what}: {t}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("Permission denied"), "{what}: {t}");
        assert!(
            !err.contains("lasso: blocked"),
            "{what}: the gate, not the kernel, refused: {t}"
        );
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("Makefile"),
            "{what}: the copy ran: {t}"
        );
    }
}

#[test]
fn copied_allowed_program_is_refused_by_the_kernel_in_strict() {
    copy_of_ls_is_refused_by_the_kernel(As::Root);
}

#[test]
fn copied_allowed_program_is_refused_by_the_kernel_in_strict_rootless() {
    copy_of_ls_is_refused_by_the_kernel(As::Nobody);
}
