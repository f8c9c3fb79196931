//! `lasso why --net`: the egress decision for a destination, as the binary prints it, with the
//! registry hosts learned from a made-up user configuration (never a real registry's name).

use std::path::Path;
use std::process::{Command, Output};

fn why(home: &Path, profile: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lasso"))
        .arg("why")
        .arg("--profile-file")
        .arg(profile)
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap()
}

fn setup(network: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join(".npmrc"),
        "registry=https://npm.mirror.example.test/\n",
    )
    .unwrap();
    let p = d.path().join("p.toml");
    std::fs::write(&p, format!("name = \"t\"\n[network]\n{network}")).unwrap();
    (d, p)
}

const ALLOWLIST: &str = "mode = \"allowlist\"\nregistries = [\"npm\"]\nallowed_domains = [\"*.api.example.com\"]\nallowed_ports = [443]\nblocked_cidrs = [\"198.51.100.0/24\"]\n";

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {o:?}"))
}

#[test]
fn registry_host_from_the_users_npmrc_is_allowed_and_named() {
    let (d, p) = setup(ALLOWLIST);
    let o = why(
        d.path(),
        &p,
        &["--net", "npm.mirror.example.test", "--json"],
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v = json(&o);
    assert_eq!(v["rule"], "registry");
    assert_eq!(v["ecosystem"], "npm");
    assert_eq!(v["registries"]["npm"][0], "npm.mirror.example.test");
}

#[test]
fn unlisted_names_and_wrong_ports_are_blocked_with_exit_1() {
    let (d, p) = setup(ALLOWLIST);
    for (t, rule) in [
        ("exfil.example.org", "name-not-listed"),
        ("v1.api.example.com:80", "port-not-allowed"),
        ("v1.api.example.com:3306", "database-port"),
        ("203.0.113.9", "address-not-learned"),
        ("198.51.100.7", "blocked-cidr"),
    ] {
        let o = why(d.path(), &p, &["--net", t, "--json"]);
        assert_eq!(o.status.code(), Some(1), "{t}: {o:?}");
        assert_eq!(json(&o)["rule"], rule, "{t}");
    }
    let o = why(d.path(), &p, &["--net", "v1.api.example.com"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("*.api.example.com"));
}

#[test]
fn metadata_service_is_blocked_even_in_full_mode() {
    let (d, p) = setup("mode = \"full\"\n");
    let o = why(d.path(), &p, &["--net", "169.254.169.254:80"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("169.254.0.0/16") && out.contains("metadata"),
        "{out}"
    );
    let o = why(d.path(), &p, &["--net", "203.0.113.9:22"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
}

#[test]
fn a_bad_destination_is_a_usage_error_naming_the_flag() {
    let (d, p) = setup(ALLOWLIST);
    for t in ["host:70000", "[2001:db8::1", "bad..name"] {
        let o = why(d.path(), &p, &["--net", t]);
        assert_eq!(o.status.code(), Some(2), "{t}: {o:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("--net"),
            "{o:?}"
        );
    }
}
