//! A real agent inside a real sandbox: Claude Code, installed on the host from the npm registry
//! (`npm install -g @anthropic-ai/claude-code`), prints its version from inside, with no
//! network. Skipped with a message when it is not installed.

mod sandbox_support;

use sandbox_support::*;

#[test]
fn claude_code_runs_inside_and_prints_its_version() {
    if !is_root() {
        eprintln!("skipped: needs root to become nobody");
        return;
    }
    let path = "/usr/local/bin:/usr/bin:/bin";
    let Some(claude) = lasso::agents::which_in("claude", path.as_ref()) else {
        eprintln!("skipped: claude is not installed (npm install -g @anthropic-ai/claude-code)");
        return;
    };
    let host = std::process::Command::new(&claude)
        .arg("--version")
        .output()
        .unwrap();
    let host_version = String::from_utf8_lossy(&host.stdout).trim().to_string();
    assert!(!host_version.is_empty());
    let w = world(As::Nobody);
    let out = run(&mut w.lasso(&["run", "--agent", "claude-code", "--", "claude", "--version"]));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        host_version,
        "{}",
        text(&out)
    );
    // Its settings stayed read-only: the host file is what the test wrote.
    assert_eq!(
        std::fs::read_to_string(w.home.join(".claude/settings.json")).unwrap(),
        "{}"
    );
}
