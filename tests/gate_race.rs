//! The gate's time-of-check/time-of-use defence. A program execs an allowed binary with an
//! allowed argv while other threads — or another process through a shared mapping — rewrite the
//! path and argv in a tight loop. The notification side may read the harmless version and answer
//! CONTINUE while the kernel then loads the rewritten one; the exec-event check must catch every
//! such case. Over 10,000 attempts per variant, the blocked program never runs (it would leave a
//! marker file), the allowed one never runs with the forbidden argument, and the audit sink holds
//! one entry per exec that ran (with the argv that ran) or per kill.

mod gate_support;

use std::path::Path;

use gate_support::{compile, require_root, run};

#[test]
fn helper_process() {
    gate_support::helper_main();
}

const ATTEMPTS: usize = 10_000;
const WORKERS: usize = 4;

fn race(mode: &str) {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let marker_dir = format!("-DMARKER_DIR=\"{}\"", d.display());
    compile(
        "target.c",
        &d.join("okprog"),
        std::slice::from_ref(&marker_dir),
    );
    compile(
        "target.c",
        &d.join("marker"),
        &[marker_dir, "-DBLOCKED".into()],
    );
    compile("racer.c", &d.join("racer"), &[]);
    let (ok, bad) = (d.join("okprog"), d.join("marker"));
    let r = run(
        d,
        &[
            "./racer",
            mode,
            &ATTEMPTS.to_string(),
            &WORKERS.to_string(),
            ok.to_str().unwrap(),
            bad.to_str().unwrap(),
        ],
        &[Path::new(&bad)],
        true,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    eprintln!("{mode}: {}", r.stdout.trim());
    assert!(
        !d.join("ran-marker").exists(),
        "the blocked program ran ({mode})"
    );
    assert!(
        !d.join("ran-forbidden-arg").exists(),
        "the forbidden argv ran ({mode})"
    );

    // Tally the racer's own view of its children.
    let field = |k: &str| -> usize {
        r.stdout
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {:?}", r.stdout))
    };
    let (exited0, refused, killed, other) = (
        field("exited0"),
        field("refused"),
        field("killed"),
        field("other"),
    );
    assert_eq!(exited0 + refused + killed + other, ATTEMPTS);
    assert_eq!(other, 0, "every attempt ran, was refused or was killed");

    // The audit agrees with what happened: every okprog that ran has a "ran" entry with the
    // harmless argv; nothing blocked has one; every SIGKILL has a kill entry.
    let ran_ok: Vec<_> = r
        .entries("ran")
        .into_iter()
        .filter(|e| e["exe"] == ok.to_str().unwrap())
        .collect();
    assert_eq!(ran_ok.len(), exited0, "one ran entry per okprog run");
    // The argv in the audit is the one the program really received: a torn copy of a string
    // being rewritten may legitimately run (it is not the forbidden argument), and argv[0]
    // shares the path buffer, but the audit must show exactly what ran.
    let mut audited: Vec<String> = ran_ok
        .iter()
        .map(|e| e["argv"][1].as_str().unwrap().to_string())
        .collect();
    let mut received: Vec<String> = std::fs::read_to_string(d.join("okprog-argv1"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    audited.sort();
    received.sort();
    assert!(
        audited == received,
        "the audit's argv differs from what ran ({mode})"
    );
    for e in r.entries("ran") {
        assert_ne!(e["exe"], bad.to_str().unwrap(), "{e}");
        let argv = e["argv"].as_array().unwrap();
        assert!(
            !argv
                .iter()
                .any(|a| a.as_str().unwrap().starts_with("forbidden")),
            "{e}"
        );
    }
    assert_eq!(
        r.entries("killed_mismatch").len(),
        killed,
        "one kill entry per SIGKILL"
    );
    assert_eq!(
        r.entries("refused").len(),
        refused,
        "one refusal entry per EACCES"
    );
}

#[test]
fn racing_threads_cannot_swap_in_a_blocked_exec() {
    race("threads");
}

#[test]
fn a_process_sharing_the_memory_cannot_swap_in_a_blocked_exec() {
    race("shared");
}
