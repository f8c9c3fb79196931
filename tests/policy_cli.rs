//! `lasso why` and `lasso profile` as a person runs them: exit statuses 0/1/2, the documented
//! JSON object, and clear errors (never a panic) for bad profiles, bad flags and bad bytes.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::process::{Command, Output};

fn lasso<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    Command::new(env!("CARGO_BIN_EXE_lasso"))
        .args(args.into_iter().map(Into::into))
        .env_remove("LASSO_LOG")
        .output()
        .expect("run lasso")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn why_exits_0_for_allowed_and_1_for_blocked() {
    let o = lasso(["why", "ls -la"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let o = lasso(["why", "--", "rm", "-rf", "/"]);
    assert_eq!(o.status.code(), Some(1));
    let (out, _) = text(&o);
    assert!(
        out.contains("destructive") && out.contains("builtin:standard:"),
        "{out}"
    );
    let o = lasso(["why", "--profile", "strict", "curl", "https://example.com"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn why_json_is_the_documented_object() {
    let o = lasso(["why", "--json", "ls | env -S 'rm x'"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("stdout is one JSON object");
    assert_eq!(v["version"], 1);
    assert_eq!(v["profile"], "standard");
    assert_eq!(v["outcome"], "blocked");
    assert_eq!(v["mode"], "blocklist");
    assert_eq!(v["profile_digest"].as_str().unwrap().len(), 64);
    let d = v["decisions"].as_array().unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d[0]["outcome"], "allowed");
    assert_eq!(d[0]["rule"], serde_json::Value::Null);
    assert_eq!(d[1]["outcome"], "blocked");
    assert_eq!(d[1]["program"], "rm");
    assert_eq!(d[1]["via"], serde_json::json!(["env"]));
    assert_eq!(d[1]["category"], "destructive");
    assert_eq!(d[1]["rule"]["origin"], "builtin:standard");
    assert!(d[1]["rule"]["line"].as_u64().unwrap() > 1);
    assert!(d[1]["reason"].as_str().unwrap().contains("deletes files"));
}

#[test]
fn bad_profiles_exit_2_with_file_line_and_fix() {
    let o = lasso(["why", "--profile", "standrad", "ls"]);
    assert_eq!(o.status.code(), Some(2));
    let (_, err) = text(&o);
    assert!(
        err.contains("\"standrad\" not found") && err.contains("did you mean \"standard\""),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("broken.toml");
    std::fs::write(&f, "name = \"b\"\n[network]\nmode = \"ful\"\n").unwrap();
    let o = lasso([
        OsString::from("why"),
        "--profile-file".into(),
        f.clone().into(),
        "ls".into(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let (_, err) = text(&o);
    assert!(
        err.contains("broken.toml:3:8") && err.contains("did you mean `full`?"),
        "{err}"
    );

    std::fs::write(&f, "[commands\n").unwrap();
    let o = lasso([OsString::from("profile"), "validate".into(), f.into()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("broken.toml:1:"), "{:?}", text(&o));
}

#[test]
fn invalid_utf8_in_the_command_is_a_usage_error() {
    let o = lasso([
        OsString::from("why"),
        OsString::from_vec(b"rm \xff".to_vec()),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("not valid UTF-8"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(
        lasso(["why"]).status.code(),
        Some(2),
        "a command is required"
    );
    let o = lasso(["why", "--jsn", "ls"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a mistyped flag is not taken for the command"
    );
    assert!(text(&o).1.contains("--json"), "clap suggests the flag");
    assert_eq!(
        lasso(["why", "git", "push", "--force"]).status.code(),
        Some(1),
        "the command's own flags are its words"
    );
    assert_eq!(lasso(["why", "--", "-x"]).status.code(), Some(0));
    assert_eq!(lasso(["profile", "bogus"]).status.code(), Some(2));
}

#[test]
fn a_long_command_line_gets_a_verdict() {
    let mut args: Vec<String> = vec!["why".into(), "echo".into()];
    args.extend(std::iter::repeat_n("word".to_string(), 20_000));
    args.push(";rm".into());
    args.push("x".into());
    let o = lasso(args);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn profile_subcommands_list_show_validate_diff() {
    let o = lasso(["profile", "list"]);
    let (out, _) = text(&o);
    for n in ["standard", "open", "offline", "strict", "evaluation"] {
        assert!(out.contains(n), "{out}");
    }
    let o = lasso(["profile", "show", "open"]);
    assert!(text(&o).0.contains("extends = \"standard\""));
    let o = lasso(["profile", "show", "open", "--resolved", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o).0;
    let json = &out[out.find('{').unwrap()..];
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(v["network"]["mode"], "full");
    assert_eq!(
        v["commands"]["blocked"][0]["name"], "rm",
        "inherited from standard"
    );
    let o = lasso(["profile", "show", "strict", "--resolved"]);
    assert!(
        text(&o).0.contains("mode = \"allowlist\""),
        "{:?}",
        text(&o)
    );

    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("mine.toml");
    std::fs::write(&f, "extends = \"offline\"\n[resources]\npids = 64\n").unwrap();
    let o = lasso([
        OsString::from("profile"),
        "validate".into(),
        f.clone().into(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(text(&o).0.starts_with("ok: mine"));

    let o = lasso(["profile", "diff", "standard", "offline"]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o).0;
    assert!(
        out.contains("network.mode: \"allowlist\" -> \"none\""),
        "{out}"
    );
    assert!(out.contains("- network.registries[\"npm\"]"), "{out}");
    assert_eq!(
        lasso(["profile", "diff", "strict", "strict"]).status.code(),
        Some(0)
    );
}
