use super::*;
use std::os::unix::fs::symlink;

fn exe(path: &Path) {
    std::fs::write(path, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn unknown_agent_lists_the_known_ones() {
    let err = find("claud-code").unwrap_err().to_string();
    for known in ["claude-code", "opencode", "codex", "shell"] {
        assert!(err.contains(known), "{err}");
    }
    assert!(err.contains("did you mean \"claude-code\""), "{err}");
}

#[test]
fn every_agent_is_found_by_its_name() {
    for a in AGENTS {
        assert_eq!(find(a.name).unwrap().name, a.name);
    }
}

#[test]
fn auto_detect_falls_back_to_shell_when_nothing_is_installed() {
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(auto_detect(empty.path().as_os_str()).name, SHELL);
}

#[test]
fn auto_detect_picks_an_installed_agent_and_resolves_its_real_path() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("lib/node_modules/codex-pkg/bin");
    std::fs::create_dir_all(&pkg).unwrap();
    exe(&pkg.join("codex.js"));
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    symlink(
        "../lib/node_modules/codex-pkg/bin/codex.js",
        bin.join("codex"),
    )
    .unwrap();
    let agent = auto_detect(bin.as_os_str());
    assert_eq!(agent.name, "codex");
    let found = agent.installed_in(bin.as_os_str()).unwrap();
    assert_eq!(found.on_path, bin.join("codex"));
    assert_eq!(
        found.real,
        std::fs::canonicalize(pkg.join("codex.js")).unwrap()
    );
}

#[test]
fn a_non_executable_file_is_not_an_installed_agent() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("claude"), "x").unwrap();
    assert!(find("claude-code")
        .unwrap()
        .installed_in(dir.path().as_os_str())
        .is_none());
}

#[test]
fn api_keys_pass_only_to_the_agent_that_uses_them() {
    let claude = find("claude-code").unwrap();
    let shell = find("shell").unwrap();
    assert!(claude.passes_env("ANTHROPIC_API_KEY"));
    assert!(claude.passes_env("LC_ALL"));
    assert!(!claude.passes_env("OPENAI_API_KEY"));
    assert!(!shell.passes_env("ANTHROPIC_API_KEY"));
    assert!(!claude.passes_env("AWS_SECRET_ACCESS_KEY"));
}

#[test]
fn claude_code_config_that_runs_host_code_is_never_writable() {
    let claude = find("claude-code").unwrap();
    for p in [
        ".claude/settings.json",
        ".claude/settings.local.json",
        ".claude/hooks",
        ".claude/commands",
        ".claude/agents",
        ".claude/plugins",
    ] {
        let m = claude.config.iter().find(|m| m.path == p).unwrap();
        assert_eq!(m.access, ConfigAccess::ReadOnly, "{p}");
        assert!(
            matches!(m.if_missing, IfMissing::Create(_)),
            "{p} must be created when missing, or the agent could create it inside"
        );
    }
}
