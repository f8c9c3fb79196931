//! OCI hooks run as real processes: state JSON on stdin, argv and env as given, timeouts that
//! kill, errors that name the hook, and the ordering rules of the spec.

use std::path::{Path, PathBuf};

use lasso::engine::hooks::{self, HookKind};
use oci_spec::runtime::{ContainerState, Hook, HookBuilder, State, StateBuilder};

fn state() -> State {
    StateBuilder::default()
        .version("1.2.0")
        .id("ctr-abc")
        .status(ContainerState::Created)
        .pid(4242)
        .bundle("/bundles/abc")
        .build()
        .unwrap()
}

/// `sh -c script` with OUT pointing at `out`.
fn sh(script: &str, out: &Path, timeout: Option<i64>) -> Hook {
    let mut b = HookBuilder::default()
        .path("/bin/sh")
        .args(vec!["sh".to_string(), "-c".to_string(), script.to_string()])
        .env(vec![format!("OUT={}", out.display())]);
    if let Some(t) = timeout {
        b = b.timeout(t);
    }
    b.build().unwrap()
}

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("out");
    (d, p)
}

#[test]
fn hook_reads_the_container_state_on_stdin() {
    let (_d, out) = tmp();
    hooks::run(
        HookKind::CreateRuntime,
        &[sh("cat > \"$OUT\"", &out, None)],
        &state(),
    )
    .unwrap();
    let got: State = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(got, state());
}

#[test]
fn hook_gets_exactly_its_argv_and_environment() {
    let (_d, out) = tmp();
    let hook = HookBuilder::default()
        .path("/bin/sh")
        .args(vec![
            "sh".into(),
            "-c".into(),
            "echo \"$0|$1|$FOO|${HOME:-nohome}\" > \"$OUT\"".into(),
            "zero".into(),
            "one".into(),
        ])
        .env(vec![format!("OUT={}", out.display()), "FOO=bar=baz".into()])
        .build()
        .unwrap();
    hooks::run(HookKind::Prestart, &[hook], &state()).unwrap();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().trim(),
        "zero|one|bar=baz|nohome"
    );
}

#[test]
fn hook_past_its_timeout_is_killed_and_named() {
    let (_d, out) = tmp();
    let hook = sh("echo $$ > \"$OUT\"; exec sleep 30", &out, Some(1));
    let err = hooks::run(HookKind::StartContainer, &[hook], &state())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("startContainer") && err.contains("/bin/sh") && err.contains("timeout of 1s"),
        "{err}"
    );
    let pid: i32 = std::fs::read_to_string(&out)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Killed and reaped: the pid no longer names our child.
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists() || !is_sleep(pid),
        "hook {pid} still runs"
    );
}

fn is_sleep(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
}

#[test]
fn failing_hook_error_names_kind_path_status_and_output() {
    let (_d, out) = tmp();
    let err = hooks::run(
        HookKind::Prestart,
        &[sh("echo boom-from-hook >&2; exit 3", &out, None)],
        &state(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("hooks.prestart[0]"), "{err}");
    assert!(
        err.contains("/bin/sh") && err.contains("status 3") && err.contains("boom-from-hook"),
        "{err}"
    );
}

#[test]
fn hooks_stop_at_the_first_failure_except_poststop() {
    let (_d, out) = tmp();
    let list = [
        sh("echo 1 >> \"$OUT\"", &out, None),
        sh("exit 1", &out, None),
        sh("echo 3 >> \"$OUT\"", &out, None),
    ];
    assert!(hooks::run(HookKind::CreateContainer, &list, &state()).is_err());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "1\n");
    std::fs::remove_file(&out).unwrap();
    assert!(hooks::run(HookKind::Poststop, &list, &state()).is_err());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "1\n3\n");
}

#[test]
fn relative_hook_path_and_zero_timeout_are_refused() {
    let rel = HookBuilder::default().path("bin/true").build().unwrap();
    let err = hooks::run(HookKind::Poststart, &[rel], &state())
        .unwrap_err()
        .to_string();
    assert!(err.contains("absolute"), "{err}");
    let zero = HookBuilder::default()
        .path("/bin/true")
        .timeout(0)
        .build()
        .unwrap();
    let err = hooks::run(HookKind::Poststart, &[zero], &state())
        .unwrap_err()
        .to_string();
    assert!(err.contains("greater than zero"), "{err}");
}

#[test]
fn missing_hook_binary_is_named() {
    let h = HookBuilder::default()
        .path("/nonexistent/lasso-hook")
        .build()
        .unwrap();
    let err = hooks::run(HookKind::CreateRuntime, &[h], &state())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/nonexistent/lasso-hook") && err.contains("could not be started"),
        "{err}"
    );
}

#[test]
fn hook_that_ignores_a_large_state_still_meets_its_timeout() {
    let (_d, out) = tmp();
    let mut big = state();
    // Far beyond a pipe's buffer: writing it must not block the runtime.
    big.set_annotations(Some(std::collections::HashMap::from([(
        "big".to_string(),
        "x".repeat(1 << 20),
    )])));
    let hook = sh("exec sleep 30", &out, Some(1));
    let err = hooks::run(HookKind::CreateRuntime, &[hook], &big)
        .unwrap_err()
        .to_string();
    assert!(err.contains("timeout of 1s"), "{err}");
}
