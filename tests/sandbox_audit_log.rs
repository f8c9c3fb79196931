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

fn kinds(w: &World, id: &str) -> Vec<String> {
    w.log_entries(id)
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// The log's shape: genesis and `sandbox.start` first, `sandbox.stop` and the seal last, and
/// the argv of every exec entry between them (other entries, such as the network's, may come
/// between too). The execs are compared as a set: init's own exec and its children's are
/// recorded by different gate threads.
fn execs_between_start_and_seal(w: &World, id: &str) -> Vec<String> {
    let k = kinds(w, id);
    assert!(k.len() >= 4, "{k:?}");
    assert_eq!(k[..2], ["genesis", "sandbox.start"], "{k:?}");
    assert_eq!(k[k.len() - 2..], ["sandbox.stop", "seal"], "{k:?}");
    let mut argv: Vec<String> = w
        .log_entries(id)
        .iter()
        .filter(|e| e["kind"] == "exec")
        .map(|e| e["details"]["argv"].to_string())
        .collect();
    argv.sort();
    argv
}

#[test]
fn every_exec_lands_between_sandbox_start_and_the_seal() {
    if !needs_root() {
        return;
    }
    for who in [As::Root, As::Nobody] {
        let w = world(who);
        // The shortest command: its one exec must be there, after the start, before the seal.
        let out = run(&mut w.lasso(&["run", "--", "/bin/true"]));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let id = w.only_log();
        assert_eq!(
            execs_between_start_and_seal(&w, &id),
            ["[\"/bin/true\"]"],
            "{who:?}"
        );
        w.assert_log_verifies(&id);

        // Several execs: all of them.
        let w = world(who);
        let script = "/bin/true; /bin/echo one; /bin/echo two";
        let out = run(&mut w.lasso(&["run", "--", "/bin/sh", "-c", script]));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let id = w.only_log();
        let mut want = vec![
            "[\"/bin/true\"]".to_string(),
            serde_json::json!(["/bin/sh", "-c", script]).to_string(),
            "[\"/bin/echo\",\"one\"]".into(),
            "[\"/bin/echo\",\"two\"]".into(),
        ];
        want.sort();
        assert_eq!(execs_between_start_and_seal(&w, &id), want, "{who:?}");
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
