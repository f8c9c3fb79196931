//! Helper processes for the engine-parts tests: a check that changes process state (seccomp,
//! capabilities, Landlock, setuid) runs in this test binary re-run with `LASSO_PARTS_CHILD=<test>`
//! and `--exact`, and reports `KEY: value` lines on stdout.

#![allow(dead_code)] // each test file uses a different subset

use std::path::Path;
use std::process::Command;

/// The variable that tells a re-run test binary which helper it is.
pub const CHILD: &str = "LASSO_PARTS_CHILD";

/// Runs test `name` of this binary in a fresh process with extra `env`; returns its stdout.
pub fn in_child_with(name: &str, env: &[(&str, &Path)]) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child {name} failed ({:?}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs test `name` of this binary in a fresh process; returns its stdout.
pub fn in_child(name: &str) -> String {
    in_child_with(name, &[])
}

/// True in the helper process of test `name`.
pub fn is_child(name: &str) -> bool {
    std::env::var(CHILD).as_deref() == Ok(name)
}

/// The value of a `KEY: value` line the child printed.
pub fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{key} missing in child output:\n{out}"))
}
