//! Bad input for a networked sandbox: pasta missing, and profiles with an invalid domain, CIDR
//! or port. Each is refused before anything starts, with an error naming the problem and the
//! fix, and leaves nothing behind. Nothing here starts a sandbox with a network.

#[path = "sandbox_support/mod.rs"]
mod sandbox_support;

use sandbox_support::{is_root, run, text, world, As};

#[test]
fn networked_profile_without_pasta_is_refused_and_names_the_package() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let w = world(As::Root);
    let mut cmd = w.lasso(&["run", "--profile", "standard", "--", "/bin/true"]);
    cmd.env("PATH", "/nonexistent");
    let out = run(&mut cmd);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pasta") && err.contains("passt") && err.contains("offline"),
        "{}",
        text(&out)
    );
    assert!(!err.contains("panicked"), "{}", text(&out));
    assert!(w.leftovers().is_empty(), "{:?}", w.leftovers());
    assert!(
        std::fs::read_dir(w.audit_dir())
            .map(|d| d.count() == 0)
            .unwrap_or(true),
        "no sandbox started, so no audit log"
    );
}

#[test]
fn invalid_domain_cidr_or_port_in_a_profile_is_named() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let w = world(As::Root);
    for (field, body, needle) in [
        (
            "domain",
            "allowed_domains = [\"exa mple.test\"]",
            "exa mple.test",
        ),
        ("wildcard", "allowed_domains = [\"*.*.test\"]", "*.*.test"),
        ("cidr", "allowed_cidrs = [\"10.0.0.0/33\"]", "10.0.0.0/33"),
        ("cidr", "blocked_cidrs = [\"300.1.2.3/8\"]", "300.1.2.3/8"),
        ("port", "allowed_ports = [70000]", "70000"),
        ("port", "blocked_ports = [0]", "port 0"),
    ] {
        let p = w.base.join("bad.toml");
        std::fs::write(
            &p,
            format!(
                "name = \"bad\"\nextends = \"standard\"\n[network]\nmode = \"allowlist\"\n{body}\n"
            ),
        )
        .unwrap();
        let out = run(&mut w.lasso(&[
            "run",
            "--profile-file",
            p.to_str().unwrap(),
            "--",
            "/bin/true",
        ]));
        assert_eq!(out.status.code(), Some(2), "{field}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{field} {needle}: {}", text(&out));
        assert!(err.contains("bad.toml"), "names the file: {}", text(&out));
        assert!(!err.contains("panicked"), "{}", text(&out));
    }
    assert!(w.leftovers().is_empty(), "{:?}", w.leftovers());
}
