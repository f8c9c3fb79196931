//! Shared by the rootless `lasso exec` suites: a sandbox of `nobody`'s, stopped when dropped.
#![allow(dead_code)]

use crate::sandbox_support::*;

pub fn needs_root() -> bool {
    if !is_root() {
        eprintln!("skipped: needs root (to become nobody)");
        return false;
    }
    true
}

/// A rootless sandbox of the world's, stopped when dropped (also when the test fails).
pub struct Sandbox<'a> {
    pub w: &'a World,
    pub id: String,
}

impl Drop for Sandbox<'_> {
    fn drop(&mut self) {
        let _ = run(&mut self.w.lasso(&["stop", "-t", "0", &self.id]));
    }
}

pub fn up<'a>(w: &'a World, cmd: &[&str]) -> Sandbox<'a> {
    let mut args = vec!["up", "--detach", "--agent", "shell", "--"];
    args.extend_from_slice(cmd);
    let out = run(&mut w.lasso(&args));
    assert!(out.status.success(), "{}", text(&out));
    Sandbox {
        w,
        id: String::from_utf8_lossy(&out.stdout).trim().to_string(),
    }
}
