//! `lasso audit` as a person runs it: exit statuses (0 intact, 1 damage, 2 usage), messages
//! that name the problem and the fix, and paths taken only from the overrides (never /etc/lasso
//! or /var/log/lasso).

mod audit_support;

use audit_support::*;
use std::process::{Command, Output};

fn lasso(env: &Env, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lasso"))
        .arg("audit")
        .args(args)
        .env("LASSO_AUDIT_DIR", env.log_dir())
        .env("LASSO_CONFIG_DIR", env.config_dir())
        .env_remove("NO_COLOR")
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn verify_exits_0_for_an_intact_log_and_1_with_the_first_bad_seq() {
    let env = Env::new();
    let path = env.log("sb1", 6, true);
    let o = lasso(&env, &["verify", "sb1"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(
        text(&o).0.contains("intact, sealed; 8 entries"),
        "{:?}",
        text(&o)
    );

    let mut ls = lines(&path);
    ls.swap(3, 4);
    write_lines(&path, &ls);
    let o = lasso(&env, &["verify", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).0.contains("reordered at seq 3 (line 4 of"),
        "{:?}",
        text(&o)
    );
}

#[test]
fn verify_all_fails_if_any_log_is_damaged() {
    let env = Env::new();
    env.log("good", 3, true);
    env.log("crashed", 3, false);
    let o = lasso(&env, &["verify", "--all"]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o).0;
    assert!(out.contains("good.jsonl: intact"), "{out}");
    assert!(out.contains("crashed.jsonl: unsealed at seq 4"), "{out}");
}

#[test]
fn missing_key_is_a_usage_error_that_says_where_the_key_belongs() {
    let env = Env::new();
    env.log("sb1", 2, true);
    std::fs::remove_file(env.config_dir().join("audit.key")).unwrap();
    let o = lasso(&env, &["verify", "sb1"]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o).1;
    assert!(
        err.contains("no audit key at") && err.contains("audit.key"),
        "{err}"
    );
    assert!(
        !env.config_dir().join("audit.key").exists(),
        "verify must not create a key"
    );
}

#[test]
fn log_from_another_machine_says_unknown_key_and_how_to_fix_it() {
    let env = Env::new();
    let other = Env::new();
    let path = other.log("sb1", 2, true);
    let o = lasso(&env, &["verify", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let (out, err) = text(&o);
    assert!(out.contains("unknown key at seq 0"), "{out}");
    assert!(err.contains("audit-keys"), "{err}");
    // The right key file verifies it.
    let key = other.config_dir().join("audit.key");
    let o = lasso(
        &env,
        &[
            "verify",
            "--key",
            key.to_str().unwrap(),
            path.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
}

#[test]
fn unknown_log_and_bad_flags_are_usage_errors_with_a_hint() {
    let env = Env::new();
    env.log("sb1", 1, true);
    let o = lasso(&env, &["view", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("lasso audit list"), "{:?}", text(&o));
    let o = lasso(&env, &["view", "--kind", "exex", "sb1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("sandbox.start"), "{:?}", text(&o));
    let o = lasso(&env, &["view", "--since", "yesterday", "sb1"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn list_shows_sandbox_agent_profile_count_and_seal() {
    let env = Env::new();
    env.log("alpha", 4, true);
    env.log("beta", 2, false);
    let o = lasso(&env, &["list"]);
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o).0;
    let alpha = out.lines().find(|l| l.starts_with("alpha")).unwrap();
    assert!(
        alpha.contains("claude")
            && alpha.contains("default")
            && alpha.contains(" 6 ")
            && alpha.ends_with("sealed"),
        "{alpha}"
    );
    let beta = out.lines().find(|l| l.starts_with("beta")).unwrap();
    assert!(beta.contains(" 3 ") && beta.ends_with("unsealed"), "{beta}");
}

#[test]
fn view_marks_blocked_commands_and_filters_by_kind_and_outcome() {
    let env = Env::new();
    env.log("sb1", 8, true);
    let o = lasso(&env, &["view", "sb1"]);
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o).0;
    assert!(
        out.lines()
            .any(|l| l.contains("BLOCKED") && l.contains("rm -rf '/work/caf\u{fffd}'")),
        "{out}"
    );
    let o = lasso(
        &env,
        &[
            "view",
            "--kind",
            "exec",
            "--outcome",
            "blocked",
            "--json",
            "sb1",
        ],
    );
    let out = text(&o).0;
    assert_eq!(out.lines().count(), 2, "{out}");
    for l in out.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(
            (v["kind"].as_str(), v["outcome"].as_str()),
            (Some("exec"), Some("blocked"))
        );
    }
    let o = lasso(&env, &["view", "--since", "1h", "--json", "sb1"]);
    assert_eq!(text(&o).0.lines().count(), 10);
    let o = lasso(
        &env,
        &["view", "--since", "2999-01-01T00:00:00Z", "--json", "sb1"],
    );
    assert_eq!(text(&o).0.lines().count(), 0);
}

#[test]
fn view_follow_prints_entries_as_they_come_and_stops_at_the_seal() {
    let env = Env::new();
    let w = env.writer("live");
    w.append(event(0)).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_lasso"))
        .args(["audit", "view", "--follow", "--json", "live"])
        .env("LASSO_AUDIT_DIR", env.log_dir())
        .env("LASSO_CONFIG_DIR", env.config_dir())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for i in 1..5 {
        w.append(event(i)).unwrap();
    }
    w.seal().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let kinds: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds.len(), 7, "{kinds:?}");
    assert_eq!(kinds.last().map(String::as_str), Some("seal"));
}

#[test]
fn rotate_key_keeps_old_logs_verifiable_and_signs_new_ones_with_the_new_key() {
    let env = Env::new();
    env.log("old", 2, true);
    let old_id = env.ring.current().id().to_string();
    let o = lasso(&env, &["rotate-key"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o).0.contains(&old_id));
    let ring = lasso::audit::KeyRing::load(&env.config_dir()).unwrap();
    assert_ne!(ring.current().id(), old_id);
    let w = lasso::audit::Writer::create(&env.log_dir(), &ring, genesis("new")).unwrap();
    w.seal().unwrap();
    let o = lasso(&env, &["verify", "--all"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(text(&o).0.contains(ring.current().id()));
}
