//! Egress from inside real lasso sandboxes. `lasso run` is started inside the test's fake
//! internet (a world network namespace with its own DNS server, hosts on documentation
//! addresses, fake metadata services and a LAN host; see `net_support`), so pasta connects the
//! sandbox to that world and nothing reaches the machine's own network. One sandbox runs a probe
//! that makes every attempt and prints one line per attempt; the kernel's answer is what is
//! checked, then the sandbox's audit log (each refusal recorded, the chain intact). As root and
//! as an unprivileged user.

#[path = "net_sandbox_support/mod.rs"]
mod net_sandbox_support;
#[path = "net_support/mod.rs"]
mod net_support;
#[path = "sandbox_support/mod.rs"]
mod sandbox_support;

use net_sandbox_support::{audit_entries, in_world, in_world_tun, lines};
use sandbox_support::{is_root, run, text, world, As};
use std::collections::BTreeMap;

const PROBE: &str = include_str!("net_sandbox_support/netprobe.py");

/// What each attempt of the allowlist corpus must end in.
const EXPECTED: &[(&str, bool)] = &[
    ("resolve_allowed", true),
    ("tcp_allowed_443", true),
    ("tcp_allowed_80", true),
    ("cname_chain_443", true),
    ("resolver_tcp_allowed", true),
    ("resolve_unlisted", false),
    ("resolve_wildcard_elsewhere", false),
    ("resolver_tcp_unlisted", true), // the resolver answers, with REFUSED: checked below
    ("direct_ip_unlisted_443", false),
    ("direct_ip_unlisted_80", false),
    ("direct_ipv6_unlisted", false),
    ("udp_unlisted", false),
    ("allowed_host_port_8080", false),
    ("metadata_http", false),
    ("metadata_alibaba", false),
    ("metadata_udp", false),
    ("metadata_mapped_v6", false),
    ("link_local_other", false),
    ("cgnat_range", false),
    ("lan_host_443", false),
    ("gateway_443", false),
    ("db_mysql_allowed_host", false),
    ("db_postgres_allowed_host", false),
    ("db_redis_allowed_host", false),
    ("dns_udp_rogue", false),
    ("dns_tcp_rogue", false),
    ("dns_udp_world_direct", false),
    ("dns_tcp_world_direct", false),
    ("dot_world_853", false),
    ("dot_allowed_host_853", false),
    ("raw_socket", false),
    ("packet_socket", false),
    ("icmp_echo_allowed_host", false),
    ("rebinding_metadata", false),
    ("rebinding_lan", false),
    ("rebinding_mapped_v6", false),
];

const PROFILE: &str = r#"extends = "standard"
name = "nettest"

[network]
mode = "allowlist"
registries = []
allowed_domains = ["allowed.test", "*.allowed.test"]
allowed_ports = [80, 443]
"#;

fn profile_file(w: &sandbox_support::World, body: &str) -> String {
    let p = w.base.join("nettest.toml");
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

fn probe(w: &sandbox_support::World) {
    std::fs::write(w.ws.join("netprobe.py"), PROBE).unwrap();
}

fn details_match(e: &serde_json::Value, kind: &str, pairs: &[(&str, serde_json::Value)]) -> bool {
    e["kind"] == kind && pairs.iter().all(|(k, v)| e["details"][*k] == *v)
}

fn egress_corpus(who: As) {
    let w = world(who);
    probe(&w);
    let prof = profile_file(&w, PROFILE);
    let internet = net_support::World::new();
    let cmd = w.lasso(&[
        "run",
        "--profile-file",
        &prof,
        "--",
        "/usr/bin/python3",
        "/workspace/netprobe.py",
        "allowlist",
    ]);
    let out = run(&mut in_world(&internet, &w.base, &cmd));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let got: BTreeMap<String, String> = lines(&out.stdout).into_iter().collect();
    let mut wrong = Vec::new();
    for (name, reach) in EXPECTED {
        match got.get(*name) {
            Some(v) if v.starts_with("reached:") == *reach => {}
            other => wrong.push(format!("{name}: expected reached={reach}, got {other:?}")),
        }
    }
    assert!(wrong.is_empty(), "{}\n{}", wrong.join("\n"), text(&out));
    assert!(
        got["resolve_allowed"].contains(net_support::ALLOWED),
        "{}",
        got["resolve_allowed"]
    );
    assert!(
        got["tcp_allowed_443"].contains("hello 203.0.113.10:443"),
        "{}",
        got["tcp_allowed_443"]
    );
    assert!(
        got["cname_chain_443"].contains(net_support::CDN),
        "the CNAME target's address was learned: {}",
        got["cname_chain_443"]
    );
    assert!(
        got["resolver_tcp_unlisted"].contains("rcode5"),
        "REFUSED over TCP too: {}",
        got["resolver_tcp_unlisted"]
    );
    assert!(
        got["raw_socket"].contains("PermissionError")
            && got["packet_socket"].contains("PermissionError"),
        "{got:?}"
    );

    let (id, entries) = audit_entries(&w.audit_dir());
    let j = |s: &str| serde_json::Value::from(s);
    let n = |p: u16| serde_json::Value::from(p);
    let must = [
        (
            "dns",
            vec![
                ("name", j("unlisted.test")),
                ("reason", j("not-allowlisted")),
            ],
        ),
        (
            "dns",
            vec![("name", j("x.wild.test")), ("reason", j("not-allowlisted"))],
        ),
        (
            "dns",
            vec![
                ("name", j("rebind.allowed.test")),
                ("address", j(net_support::METADATA)),
                ("reason", j("rebinding")),
            ],
        ),
        (
            "dns",
            vec![("name", j("lan.allowed.test")), ("reason", j("rebinding"))],
        ),
        (
            "net",
            vec![
                ("destination", j("203.0.113.20")),
                ("port", n(443)),
                ("protocol", j("tcp")),
                ("reason", j("not-allowed")),
            ],
        ),
        (
            "net",
            vec![
                ("destination", j("203.0.113.20")),
                ("port", n(443)),
                ("protocol", j("udp")),
                ("reason", j("not-allowed")),
            ],
        ),
        (
            "net",
            vec![
                ("destination", j("203.0.113.10")),
                ("port", n(8080)),
                ("protocol", j("tcp")),
                ("reason", j("not-allowed")),
            ],
        ),
        // The standard profile lists the metadata address in blocked_cidrs, which match first.
        (
            "net",
            vec![
                ("destination", j("169.254.169.254")),
                ("port", n(80)),
                ("protocol", j("tcp")),
                ("reason", j("blocked-cidr")),
            ],
        ),
        (
            "net",
            vec![
                ("destination", j("100.100.100.200")),
                ("port", n(80)),
                ("reason", j("special-range")),
            ],
        ),
        (
            "net",
            vec![
                ("destination", j("10.1.2.3")),
                ("port", n(443)),
                ("reason", j("special-range")),
            ],
        ),
        (
            "net",
            vec![
                ("destination", j("203.0.113.10")),
                ("port", n(3306)),
                ("reason", j("database-port")),
            ],
        ),
        (
            "net",
            vec![
                ("destination", j("203.0.113.10")),
                ("port", n(6379)),
                ("reason", j("database-port")),
            ],
        ),
        (
            "net",
            vec![
                ("destination", j("198.51.100.54")),
                ("port", n(53)),
                ("protocol", j("udp")),
                ("reason", j("foreign-dns")),
            ],
        ),
        (
            "net",
            vec![
                ("destination", j("198.51.100.54")),
                ("port", n(53)),
                ("protocol", j("tcp")),
                ("reason", j("foreign-dns")),
            ],
        ),
        (
            "net",
            vec![
                ("destination", j("198.51.100.53")),
                ("port", n(853)),
                ("reason", j("dns-over-tls")),
            ],
        ),
        (
            "net",
            vec![
                ("destination", j("2001:db8:1::20")),
                ("port", n(443)),
                ("reason", j("not-allowed")),
            ],
        ),
    ];
    let missing: Vec<String> = must
        .iter()
        .filter(|(kind, pairs)| !entries.iter().any(|e| details_match(e, kind, pairs)))
        .map(|(kind, pairs)| format!("{kind} {pairs:?}"))
        .collect();
    assert!(
        missing.is_empty(),
        "refusals missing from the audit log:\n{}\n--- log\n{}",
        missing.join("\n"),
        entries
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        entries
            .iter()
            .all(|e| e["kind"] != "net" || e["outcome"] == "blocked"),
        "every net entry is a refusal"
    );
    let out = run(&mut w.lasso(&["audit", "verify", &id]));
    assert!(out.status.success(), "{}", text(&out));
    assert!(w.leftovers().is_empty(), "{:?}", w.leftovers());
}

#[test]
fn agent_reaches_only_allowlisted_names_as_root() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    egress_corpus(As::Root);
}

#[test]
fn agent_reaches_only_allowlisted_names_rootless() {
    if !is_root() {
        eprintln!("skipped: needs root to build the world and become nobody");
        return;
    }
    egress_corpus(As::Nobody);
}

/// The audit log is not floodable: 200 SYNs to one blocked destination are one entry and then
/// one count; 150 distinct blocked destinations stop at the cap of 100 first entries a minute
/// with one summary of what was suppressed; 20 refusals of one name are one entry and a count.
/// Every drop is accounted for, and the chain still verifies.
#[test]
fn a_flood_of_blocked_connections_cannot_grow_the_audit_log() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let w = world(As::Root);
    probe(&w);
    let prof = profile_file(&w, PROFILE);
    let internet = net_support::World::new();
    let cmd = w.lasso(&[
        "run",
        "--profile-file",
        &prof,
        "--",
        "/usr/bin/python3",
        "/workspace/netprobe.py",
        "flood",
    ]);
    let out = run(&mut in_world(&internet, &w.base, &cmd));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let got: BTreeMap<String, String> = lines(&out.stdout).into_iter().collect();
    assert_eq!(
        got.get("flood").map(String::as_str),
        Some("sent"),
        "{}",
        text(&out)
    );
    assert!(
        got["flood_dns"].contains("rcode5"),
        "REFUSED: {}",
        got["flood_dns"]
    );

    let (id, entries) = audit_entries(&w.audit_dir());
    let log = || {
        entries
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let u = |e: &serde_json::Value, k: &str| e["details"][k].as_u64();
    let net: Vec<&serde_json::Value> = entries.iter().filter(|e| e["kind"] == "net").collect();
    let repeated: Vec<_> = net
        .iter()
        .filter(|e| e["details"]["destination"] == "203.0.113.20")
        .collect();
    let firsts = repeated.iter().filter(|e| u(e, "count").is_none()).count();
    let counted: u64 = repeated.iter().filter_map(|e| u(e, "count")).sum();
    assert_eq!(
        firsts,
        1,
        "one entry for the repeated destination\n{}",
        log()
    );
    assert!(
        counted >= 199,
        "then its repeats counted: {counted}\n{}",
        log()
    );

    let distinct = net
        .iter()
        .filter(|e| {
            e["details"]["destination"]
                .as_str()
                .is_some_and(|d| d != "203.0.113.20" && d.starts_with("203.0.113."))
        })
        .count();
    let firsts_total = net
        .iter()
        .filter(|e| u(e, "count").is_none() && e["details"]["reason"] != "rate-limited")
        .count();
    let suppressed: u64 = net
        .iter()
        .filter(|e| e["details"]["reason"] == "rate-limited")
        .filter_map(|e| u(e, "suppressed"))
        .sum();
    eprintln!(
        "flood: {} entries in all, {} net; repeated destination: {firsts} + count {counted}; \
         distinct written {distinct}, suppressed {suppressed}",
        entries.len(),
        net.len()
    );
    assert!(
        firsts_total <= 100,
        "the cap holds: {firsts_total}\n{}",
        log()
    );
    assert!(suppressed > 0, "a suppression summary\n{}", log());
    assert!(
        distinct as u64 + suppressed >= 150,
        "every distinct drop written or counted: {distinct} + {suppressed}\n{}",
        log()
    );

    let names: Vec<_> = entries
        .iter()
        .filter(|e| e["kind"] == "dns" && e["details"]["name"] == "unlisted.test")
        .collect();
    assert_eq!(
        names.iter().filter(|e| u(e, "count").is_none()).count(),
        1,
        "one entry for the refused name\n{}",
        log()
    );
    assert_eq!(
        names.iter().filter_map(|e| u(e, "count")).sum::<u64>(),
        19,
        "{}",
        log()
    );
    let out = run(&mut w.lasso(&["audit", "verify", &id]));
    assert!(out.status.success(), "{}", text(&out));
    assert!(w.leftovers().is_empty(), "{:?}", w.leftovers());
}

/// A rootless user who may not open /dev/net/tun (this machine's node is 0600) gets no network
/// at all, with a warning saying why and how to fix it: fail closed, never open.
#[test]
fn rootless_without_a_usable_tun_fails_closed_with_a_warning() {
    if !is_root() {
        eprintln!("skipped: needs root to build the world and become nobody");
        return;
    }
    let tun_mode = std::fs::metadata("/dev/net/tun").map(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o006
    });
    if tun_mode.map_or(true, |m| m == 0o006) {
        eprintln!("skipped: /dev/net/tun is usable by everyone here");
        return;
    }
    let w = world(As::Nobody);
    probe(&w);
    let prof = profile_file(&w, PROFILE);
    let internet = net_support::World::new();
    let cmd = w.lasso(&[
        "run",
        "--profile-file",
        &prof,
        "--",
        "/usr/bin/python3",
        "/workspace/netprobe.py",
        "allowlist",
    ]);
    let out = run(&mut in_world_tun(&internet, &w.base, &cmd, false));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gets no network at all") && err.contains("chmod 0666 /dev/net/tun"),
        "{}",
        text(&out)
    );
    let got = lines(&out.stdout);
    assert_eq!(got.len(), EXPECTED.len(), "{}", text(&out));
    for (name, v) in &got {
        assert!(v.starts_with("refused:"), "{name}={v}");
    }
    assert!(w.leftovers().is_empty(), "{:?}", w.leftovers());
}

/// `offline` (mode none): loopback only, no route at all, and no pasta needed (PATH has none).
fn offline_has_no_route(who: As) {
    let w = world(who);
    probe(&w);
    let internet = net_support::World::new();
    let mut cmd = w.lasso(&[
        "run",
        "--profile",
        "offline",
        "--",
        "/usr/bin/python3",
        "/workspace/netprobe.py",
        "offline",
    ]);
    // lasso itself finds no pasta: offline needs none.
    cmd.env("PATH", "/nonexistent");
    let out = run(&mut in_world(&internet, &w.base, &cmd));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let got = lines(&out.stdout);
    assert_eq!(got.len(), 6, "{}", text(&out));
    for (name, v) in &got {
        assert!(v.starts_with("refused:"), "{name}={v}");
    }
    let route = &got
        .iter()
        .find(|(k, _)| k == "offline_default_route")
        .unwrap()
        .1;
    assert!(route.contains("no default route"), "{route}");
    let tcp = &got
        .iter()
        .find(|(k, _)| k == "offline_tcp_direct_ip")
        .unwrap()
        .1;
    assert!(tcp.contains("unreachable"), "no route, not a drop: {tcp}");
    assert!(w.leftovers().is_empty(), "{:?}", w.leftovers());
}

#[test]
fn offline_sandbox_has_no_route_as_root() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    offline_has_no_route(As::Root);
}

#[test]
fn offline_sandbox_has_no_route_rootless() {
    if !is_root() {
        eprintln!("skipped: needs root to build the world and become nobody");
        return;
    }
    offline_has_no_route(As::Nobody);
}
