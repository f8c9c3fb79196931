//! The sandbox's audit log as `lasso run` writes it: the order of its entries (genesis,
//! `sandbox.start`, the execs, the stop, the seal), nothing lost of a command that ends at
//! once, and a log that cannot be opened failing the run and leaving nothing behind.

mod sandbox_support;

use sandbox_support::*;

fn needs_root() -> bool {
    if !is_root() {
        eprintln!("skipped: needs root (to become nobody, and for cgroups)");
        return false;
    }
    true
}

fn only_log(w: &World) -> String {
    let logs: Vec<String> = std::fs::read_dir(w.audit_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    logs[0].trim_end_matches(".jsonl").to_string()
}

fn kinds(w: &World, id: &str) -> Vec<String> {
    w.log_entries(id)
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
fn every_exec_lands_between_sandbox_start_and_the_seal_in_order() {
    if !needs_root() {
        return;
    }
    for who in [As::Root, As::Nobody] {
        let w = world(who);
        // The shortest command: none of its entries may be lost, none may precede the start,
        // and the seal comes after them all.
        let out = run(&mut w.lasso(&["run", "--", "/bin/true"]));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let id = only_log(&w);
        let k = kinds(&w, &id);
        assert_eq!(
            k,
            ["genesis", "sandbox.start", "exec", "sandbox.stop", "seal"],
            "{who:?}"
        );
        let entries = w.log_entries(&id);
        assert!(
            entries[2].to_string().contains("/bin/true"),
            "{:#}",
            entries[2]
        );
        w.assert_log_verifies(&id);

        // Several execs: all of them, in the order they ran.
        let w = world(who);
        let out = run(&mut w.lasso(&[
            "run",
            "--",
            "/bin/sh",
            "-c",
            "/bin/true; /bin/echo one; /bin/echo two",
        ]));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let id = only_log(&w);
        let entries = w.log_entries(&id);
        let k = kinds(&w, &id);
        assert_eq!(k[..2], ["genesis", "sandbox.start"], "{k:?}");
        assert_eq!(k[k.len() - 2..], ["sandbox.stop", "seal"], "{k:?}");
        let argv: Vec<String> = entries
            .iter()
            .filter(|e| e["kind"] == "exec")
            .map(|e| e["details"]["argv"].to_string())
            .collect();
        assert_eq!(argv.len(), 4, "{argv:?}");
        for (got, want) in argv.iter().zip(["/bin/sh", "/bin/true", "one", "two"]) {
            assert!(got.contains(want), "{argv:?}");
        }
        w.assert_log_verifies(&id);
    }
}

#[test]
fn a_log_that_cannot_be_opened_fails_the_run_and_leaves_nothing_behind() {
    if !needs_root() {
        return;
    }
    let w = world(As::Root);
    // A file where the log directory should be: root's permissions cannot get past that.
    std::fs::write(w.audit_dir(), "not a directory\n").unwrap();
    let out = run(&mut w.lasso(&["run", "--", "/bin/sh", "-c", "exit 0"]));
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains(w.audit_dir().to_str().unwrap()), "{t}");
    assert!(!t.contains("panicked"), "{t}");
    assert!(w.leftovers().is_empty(), "{:?}", w.leftovers());
}
