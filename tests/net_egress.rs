//! The egress corpus: from inside a sandbox connected to a fake internet, what an agent may and
//! may not reach. Every check looks at what the kernel and the resolver actually let through.
//! Needs root (or an unprivileged user namespace), nft, pasta (passt), iproute2, util-linux
//! (unshare, setpriv) and busybox (ping); see tests/net_support.

mod net_support;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use lasso::net::{DropReason, EgressMode, EgressPolicy};
use net_support::*;
use std::net::IpAddr;
use std::time::Duration;

fn allowlist() -> EgressPolicy {
    EgressPolicy {
        mode: EgressMode::Allowlist,
        allowed_domains: vec![
            "allowed.test".into(),
            "alias.allowed.test".into(),
            "big.allowed.test".into(),
            "brief.allowed.test".into(),
            "v6.allowed.test".into(),
            "rebind.allowed.test".into(),
            "lan.allowed.test".into(),
            "mapped.allowed.test".into(),
            "*.wild.test".into(),
        ],
        ..Default::default()
    }
}

/// One attempt of the corpus: its name, whether it must succeed, and what happened.
struct Attempt {
    name: &'static str,
    expect_ok: bool,
    outcome: Result<String, String>,
}

fn attempt<T: std::fmt::Debug, E: std::fmt::Debug>(
    out: &mut Vec<Attempt>,
    name: &'static str,
    expect_ok: bool,
    r: Result<T, E>,
) {
    out.push(Attempt {
        name,
        expect_ok,
        outcome: r.map(|v| format!("{v:?}")).map_err(|e| format!("{e:?}")),
    });
}

/// Resolve through lasso's resolver; Ok(addresses) only for a NOERROR answer.
fn resolve(sb: &Sandbox, name: &str, ty: RecordType) -> Result<Vec<IpAddr>, String> {
    let l = sb.resolve(name, ty).map_err(|e| e.to_string())?;
    if l.msg.response_code() != ResponseCode::NoError {
        return Err(format!("{}", l.msg.response_code()));
    }
    Ok(addresses(&l.msg))
}

/// Ok when the raw answer has at least one address.
fn resolves_to_something(sb: &Sandbox, name: &str, ty: RecordType) -> Result<Vec<IpAddr>, String> {
    let a = resolve(sb, name, ty)?;
    if a.is_empty() {
        return Err("no address in the answer".into());
    }
    Ok(a)
}

fn report(attempts: &[Attempt]) {
    let mut bad = Vec::new();
    for a in attempts {
        let ok = a.outcome.is_ok();
        let verdict = if ok == a.expect_ok {
            "as expected"
        } else {
            "WRONG"
        };
        eprintln!(
            "{:<58} expected {:<5} got {:<5} {verdict}: {}",
            a.name,
            if a.expect_ok { "ok" } else { "fail" },
            if ok { "ok" } else { "fail" },
            match &a.outcome {
                Ok(v) | Err(v) => v,
            }
        );
        if ok != a.expect_ok {
            bad.push(a.name);
        }
    }
    assert!(
        bad.is_empty(),
        "egress attempts with the wrong outcome: {bad:?}"
    );
}

fn corpus(sb: &Sandbox) -> Vec<Attempt> {
    let mut at = Vec::new();
    let a = &mut at;
    // What the agent needs.
    attempt(
        a,
        "allowed name resolves",
        true,
        resolves_to_something(sb, "allowed.test", RecordType::A),
    );
    attempt(
        a,
        "allowed name connects on 443",
        true,
        sb.agent(|| tcp_talk(sa(ALLOWED, 443))),
    );
    attempt(
        a,
        "allowed name connects on 80",
        true,
        sb.agent(|| tcp_talk(sa(ALLOWED, 80))),
    );
    attempt(
        a,
        "allowed name answers UDP on 443 (QUIC)",
        true,
        sb.agent(|| udp_talk(sa(ALLOWED, 443), b"quic")),
    );
    attempt(
        a,
        "CNAME chain target resolves",
        true,
        resolves_to_something(sb, "alias.allowed.test", RecordType::A),
    );
    attempt(
        a,
        "CNAME chain target connects",
        true,
        sb.agent(|| tcp_talk(sa(CDN, 443))),
    );
    attempt(
        a,
        "wildcard subdomain resolves",
        true,
        resolves_to_something(sb, "x.wild.test", RecordType::A),
    );
    attempt(
        a,
        "wildcard subdomain connects",
        true,
        sb.agent(|| tcp_talk(sa(WILD, 443))),
    );
    attempt(
        a,
        "allowed IPv6 name resolves",
        true,
        resolves_to_something(sb, "v6.allowed.test", RecordType::AAAA),
    );
    attempt(
        a,
        "allowed IPv6 name connects",
        true,
        sb.agent(|| tcp_talk(sa(V6_ALLOWED, 443))),
    );
    attempt(
        a,
        "large answer: UDP truncated, client retries over TCP",
        true,
        sb.resolve("big.allowed.test", RecordType::TXT)
            .map_err(|e| e.to_string())
            .and_then(|l| {
                if l.via_tcp && l.msg.answers().len() == 1 && !l.msg.truncated() {
                    Ok("full answer over TCP")
                } else {
                    Err(format!(
                        "via_tcp={} answers={}",
                        l.via_tcp,
                        l.msg.answers().len()
                    ))
                }
            }),
    );
    // Names off the list.
    attempt(
        a,
        "unlisted name does not resolve",
        false,
        resolve(sb, "unlisted.test", RecordType::A),
    );
    attempt(
        a,
        "unlisted name: no TXT either",
        false,
        resolve(sb, "unlisted.test", RecordType::TXT),
    );
    attempt(
        a,
        "wildcard apex does not resolve",
        false,
        resolve(sb, "wild.test", RecordType::A),
    );
    attempt(
        a,
        "lookalike suffix does not resolve",
        false,
        resolve(sb, "allowed.test.unlisted.test", RecordType::A),
    );
    attempt(a, "unlisted name over TCP DNS", false, {
        sb.agent(|| lookup_tcp(sa(RESOLVER, 53), "unlisted.test", RecordType::A))
            .map_err(|e| e.to_string())
            .and_then(|m| {
                if m.response_code() == ResponseCode::NoError {
                    Ok(())
                } else {
                    Err(m.response_code().to_string())
                }
            })
    });
    // Direct addresses and ports.
    attempt(
        a,
        "allowed address on an unlisted port (8080)",
        false,
        sb.agent(|| tcp_talk(sa(ALLOWED, 8080))),
    );
    attempt(
        a,
        "unlisted address, direct IP",
        false,
        sb.agent(|| tcp_talk(sa(UNLISTED, 443))),
    );
    attempt(
        a,
        "unlisted address, UDP",
        false,
        sb.agent(|| udp_talk(sa(UNLISTED, 443), b"x")),
    );
    attempt(
        a,
        "unlisted IPv6 address",
        false,
        sb.agent(|| tcp_talk(sa(V6_UNLISTED, 443))),
    );
    attempt(
        a,
        "IPv4-mapped IPv6 form of an unlisted address",
        false,
        sb.agent(|| tcp_talk(sa(&format!("::ffff:{UNLISTED}"), 443))),
    );
    attempt(
        a,
        "cloud metadata 169.254.169.254",
        false,
        sb.agent(|| tcp_talk(sa(METADATA, 80))),
    );
    attempt(
        a,
        "cloud metadata, IPv4-mapped IPv6 form",
        false,
        sb.agent(|| tcp_talk(sa(&format!("::ffff:{METADATA}"), 80))),
    );
    attempt(
        a,
        "Alibaba metadata 100.100.100.200",
        false,
        sb.agent(|| tcp_talk(sa(ALIBABA_METADATA, 80))),
    );
    attempt(
        a,
        "LAN host 10.1.2.3",
        false,
        sb.agent(|| tcp_talk(sa(LAN_HOST, 443))),
    );
    attempt(
        a,
        "gateway mapped to the world's loopback",
        false,
        sb.agent(|| tcp_talk(sa("192.0.2.254", 443))),
    );
    attempt(
        a,
        "database port 5432 on an allowed address",
        false,
        sb.agent(|| tcp_talk(sa(ALLOWED, 5432))),
    );
    attempt(
        a,
        "database port 3306 on an allowed address",
        false,
        sb.agent(|| tcp_talk(sa(ALLOWED, 3306))),
    );
    attempt(
        a,
        "cache port 6379 on an allowed address",
        false,
        sb.agent(|| tcp_talk(sa(ALLOWED, 6379))),
    );
    // DNS that would bypass the resolver.
    attempt(
        a,
        "rogue DNS server over UDP",
        false,
        sb.agent(|| lookup(sa(ROGUE_DNS, 53), "unlisted.test", RecordType::A)),
    );
    attempt(
        a,
        "rogue DNS server over TCP",
        false,
        sb.agent(|| lookup_tcp(sa(ROGUE_DNS, 53), "unlisted.test", RecordType::A)),
    );
    attempt(
        a,
        "the host's own resolver directly",
        false,
        sb.agent(|| lookup(sa(WORLD_DNS, 53), "unlisted.test", RecordType::A)),
    );
    attempt(
        a,
        "DNS-over-TLS port 853",
        false,
        sb.agent(|| tcp_talk(sa(WORLD_DNS, 853))),
    );
    attempt(
        a,
        "port 853 on an allowed address",
        false,
        sb.agent(|| tcp_talk(sa(ALLOWED, 853))),
    );
    // Rebinding: an allowed name pointing into a dropped range.
    attempt(
        a,
        "rebinding name to the metadata service gets no address",
        false,
        resolves_to_something(sb, "rebind.allowed.test", RecordType::A),
    );
    attempt(
        a,
        "rebinding name to a LAN host gets no address",
        false,
        resolves_to_something(sb, "lan.allowed.test", RecordType::A),
    );
    attempt(
        a,
        "rebinding name to a mapped metadata address",
        false,
        resolves_to_something(sb, "mapped.allowed.test", RecordType::AAAA),
    );
    attempt(
        a,
        "metadata still unreachable after the rebinding lookup",
        false,
        sb.agent(|| tcp_talk(sa(METADATA, 80))),
    );
    // Raw, packet and ICMP.
    attempt(
        a,
        "ICMP echo to an allowed address",
        false,
        ping(sb, ALLOWED),
    );
    let (raw, packet) = socket_probe(sb);
    attempt(a, "raw socket without CAP_NET_RAW", false, raw);
    attempt(a, "packet socket without CAP_NET_RAW", false, packet);
    at
}

/// `ping` as root in the sandbox (it has CAP_NET_RAW, so only the ruleset stops the echo).
fn ping(sb: &Sandbox, ip: &str) -> Result<(), String> {
    let out = sb
        .ns
        .command("busybox")
        .args(["ping", "-c", "1", "-W", "1", ip])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .to_string())
    }
}

/// Run `probe_sockets_as_child` in the sandbox as nobody with no capabilities.
fn socket_probe(sb: &Sandbox) -> (Result<(), String>, Result<(), String>) {
    let exe = std::env::current_exe().unwrap();
    let out = sb
        .ns
        .command("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ])
        .arg(exe)
        .args([
            "--exact",
            "probe_sockets_as_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("LASSO_NET_PROBE", "1")
        .output()
        .expect("run the probe");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |key: &str| -> Result<(), String> {
        // The harness may print "test ... " on the same line before the probe's own words.
        let at = text
            .find(key)
            .ok_or(format!("probe said nothing: {text}"))?;
        let line = text[at..].lines().next().unwrap_or("");
        if line.ends_with("created") {
            Ok(())
        } else {
            Err(line.to_string())
        }
    };
    (field("raw:"), field("packet:"))
}

/// Not a test of its own: the body of the child `socket_probe` starts.
#[test]
fn probe_sockets_as_child() {
    if std::env::var_os("LASSO_NET_PROBE").is_none() {
        return;
    }
    for (key, domain, ty, proto) in [
        ("raw:", libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
        (
            "packet:",
            libc::AF_PACKET,
            libc::SOCK_RAW,
            (libc::ETH_P_ALL as u16).to_be() as i32,
        ),
    ] {
        // SAFETY: socket(2) with constant arguments; a returned fd is closed right away.
        let fd = unsafe { libc::socket(domain, ty, proto) };
        if fd >= 0 {
            // SAFETY: closing the fd we just got.
            unsafe { libc::close(fd) };
            println!("{key} created");
        } else {
            println!("{key} {}", std::io::Error::last_os_error());
        }
    }
}

fn assert_audited(sb: &Sandbox) {
    let refused = sb.audit.refused.lock().unwrap().clone();
    for n in ["unlisted.test", "wild.test", "allowed.test.unlisted.test"] {
        assert!(
            refused.iter().any(|r| r == n),
            "refused name {n} not audited: {refused:?}"
        );
    }
    let rebinds = sb.audit.rebinds.lock().unwrap().clone();
    for (n, ip) in [
        ("rebind.allowed.test", METADATA),
        ("lan.allowed.test", LAN_HOST),
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        assert!(
            rebinds.iter().any(|(rn, rip)| rn == n && *rip == ip),
            "rebinding {n} not audited: {rebinds:?}"
        );
    }
    let checks: &[(&str, DropReason, Option<u16>)] = &[
        (METADATA, DropReason::SpecialRange, Some(80)),
        (ALIBABA_METADATA, DropReason::SpecialRange, Some(80)),
        (LAN_HOST, DropReason::SpecialRange, Some(443)),
        (ALLOWED, DropReason::DatabasePort, Some(5432)),
        (ALLOWED, DropReason::DatabasePort, Some(6379)),
        (ROGUE_DNS, DropReason::ForeignDns, Some(53)),
        (WORLD_DNS, DropReason::ForeignDns, Some(53)),
        (WORLD_DNS, DropReason::DnsOverTls, Some(853)),
        (UNLISTED, DropReason::NotAllowed, Some(443)),
        (V6_UNLISTED, DropReason::NotAllowed, Some(443)),
        (ALLOWED, DropReason::NotAllowed, Some(8080)),
        (ALLOWED, DropReason::IcmpEcho, None),
    ];
    for (ip, reason, port) in checks {
        let ip: IpAddr = ip.parse().unwrap();
        assert!(
            sb.audit
                .saw_drop(|e| e.destination == ip && e.reason == *reason && e.port == *port),
            "drop to {ip} port {port:?} ({}) not audited; saw {:?}",
            reason.as_str(),
            sb.audit.drops.lock().unwrap()
        );
    }
}

#[test]
fn agent_reaches_only_allowlisted_names_as_root() {
    let world = World::new();
    let sb = Sandbox::new(&world, allowlist(), SandboxOpts::default());
    let attempts = corpus(&sb);
    assert!(
        attempts.len() >= 30,
        "the corpus shrank to {}",
        attempts.len()
    );
    report(&attempts);
    assert_audited(&sb);
}

/// Rootless: this test binary runs again as the unprivileged host user 65534 inside a user
/// namespace of its own (where it is root, as rootless lasso is), and builds world, sandbox,
/// pasta, rules, resolver and drop reader from there. No host capability is used.
#[test]
fn agent_reaches_only_allowlisted_names_rootless() {
    if std::env::var_os("LASSO_NET_ROOTLESS_CHILD").is_some() {
        let world = World::new();
        let opts = SandboxOpts {
            link: Link::best(),
            ..Default::default()
        };
        let sb = Sandbox::new(&world, allowlist(), opts);
        let attempts = corpus(&sb);
        assert!(attempts.len() >= 30);
        report(&attempts);
        assert_audited(&sb);
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["unshare", "--user", "--map-root-user", "--"])
        .arg(exe)
        .args([
            "--exact",
            "agent_reaches_only_allowlisted_names_rootless",
            "--nocapture",
        ])
        .env("LASSO_NET_ROOTLESS_CHILD", "1")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .expect("re-run the corpus as an unprivileged user");
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "rootless corpus failed: {stdout}"
    );
}

#[test]
fn agent_reaches_only_allowlisted_names_in_a_separate_user_namespace() {
    let world = World::new();
    let opts = SandboxOpts {
        userns: true,
        ..Default::default()
    };
    let sb = Sandbox::new(&world, allowlist(), opts);
    let attempts = corpus(&sb);
    report(&attempts);
    assert_audited(&sb);
}

#[test]
fn an_allowed_address_expires_after_its_ttl() {
    let world = World::new();
    let opts = SandboxOpts {
        ttl_floor: Duration::from_secs(2),
        ttl_ceiling: Duration::from_secs(2),
        ..Default::default()
    };
    let sb = Sandbox::new(&world, allowlist(), opts);
    let l = sb.resolve("brief.allowed.test", RecordType::A).unwrap();
    assert_eq!(addresses(&l.msg), vec![BRIEF.parse::<IpAddr>().unwrap()]);
    // The answer's TTL (60 upstream) was lowered to the ceiling, so no client caches it longer.
    assert!(
        l.msg.answers().iter().all(|r| r.ttl() <= 2),
        "{:?}",
        l.msg.answers()
    );
    sb.agent(|| tcp_talk(sa(BRIEF, 443)))
        .expect("reachable right after the lookup");
    std::thread::sleep(Duration::from_secs(4));
    let after = sb.agent(|| tcp_talk(sa(BRIEF, 443)));
    assert!(after.is_err(), "still reachable after the TTL: {after:?}");
    assert!(sb
        .audit
        .saw_drop(|e| e.destination.to_string() == BRIEF && e.reason == DropReason::NotAllowed));
    // Resolving again lets it back in.
    sb.resolve("brief.allowed.test", RecordType::A).unwrap();
    sb.agent(|| tcp_talk(sa(BRIEF, 443)))
        .expect("reachable after a fresh lookup");
}

#[test]
fn offline_sandbox_has_no_route_at_all() {
    let world = World::new();
    let policy = EgressPolicy {
        mode: EgressMode::None,
        ..Default::default()
    };
    let sb = Sandbox::new(&world, policy, SandboxOpts::default());
    assert!(sb.pasta.is_none() && sb.resolver.is_none());
    let err = sb.agent(|| tcp_talk(sa(ALLOWED, 443))).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENETUNREACH), "{err}");
    let err6 = sb.agent(|| tcp_talk(sa(V6_ALLOWED, 443))).unwrap_err();
    assert_eq!(err6.raw_os_error(), Some(libc::ENETUNREACH), "{err6}");
    assert!(sb
        .agent(|| lookup(sa(WORLD_DNS, 53), "allowed.test", RecordType::A))
        .is_err());
    let routes = sb
        .ns
        .command("ip")
        .args(["-4", "route", "show", "table", "all"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&routes.stdout);
    assert!(
        text.lines()
            .all(|l| l.contains(" lo ") || l.contains("dev lo")),
        "routes besides loopback: {text}"
    );
    // Loopback still works: tools inside the sandbox may talk to each other.
    let lo = sb.agent(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let port = lo.local_addr().unwrap().port();
    sb.agent(|| std::net::TcpStream::connect(("127.0.0.1", port)))
        .expect("loopback");
}

#[test]
fn full_mode_reaches_any_public_address_but_never_the_dropped_set() {
    let world = World::new();
    let policy = EgressPolicy {
        mode: EgressMode::Full,
        ..Default::default()
    };
    let sb = Sandbox::new(&world, policy, SandboxOpts::default());
    sb.agent(|| tcp_talk(sa(UNLISTED, 8080)))
        .expect("full mode reaches a public address on any port");
    assert!(resolve(&sb, "unlisted.test", RecordType::A).is_ok());
    for (ip, port) in [
        (METADATA, 80),
        (LAN_HOST, 443),
        (ALLOWED, 5432),
        (WORLD_DNS, 853),
    ] {
        assert!(
            sb.agent(|| tcp_talk(sa(ip, port))).is_err(),
            "{ip}:{port} reachable in full mode"
        );
    }
    assert!(sb
        .agent(|| lookup(sa(ROGUE_DNS, 53), "x.test", RecordType::A))
        .is_err());
    assert!(resolves_to_something(&sb, "rebind.allowed.test", RecordType::A).is_err());
}

#[test]
fn a_profile_cidr_opens_exactly_that_lan_range() {
    let world = World::new();
    let mut policy = allowlist();
    policy.allowed_cidrs = vec!["10.1.2.0/24".into()];
    policy.blocked_cidrs = vec![format!("{CDN}/32")];
    let sb = Sandbox::new(&world, policy, SandboxOpts::default());
    sb.agent(|| tcp_talk(sa(LAN_HOST, 443)))
        .expect("allowed CIDR inside RFC 1918");
    assert!(
        sb.agent(|| tcp_talk(sa(LAN_HOST, 5432))).is_err(),
        "database port stays closed"
    );
    assert!(sb.agent(|| tcp_talk(sa(METADATA, 80))).is_err());
    // lan.allowed.test is no rebinding any more, but a blocked CIDR is refused even by name.
    assert!(resolves_to_something(&sb, "lan.allowed.test", RecordType::A).is_ok());
    assert!(resolves_to_something(&sb, "alias.allowed.test", RecordType::A).is_err());
    assert!(sb.agent(|| tcp_talk(sa(CDN, 443))).is_err());
}

#[test]
fn missing_pasta_names_the_package_and_offline_still_works() {
    use lasso::net::pasta;
    let holder = NsHolder::new(true, false);
    let ns = holder.netns();
    let target = pasta::PastaTarget::Path {
        netns: holder.ns_path().into(),
        userns: None,
    };
    let err = pasta::connect_with(
        "/nonexistent/pasta",
        EgressMode::Allowlist,
        &ns,
        &target,
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("passt") && err.contains("apt-get install"),
        "{err}"
    );
    let none =
        pasta::connect_with("/nonexistent/pasta", EgressMode::None, &ns, &target, None).unwrap();
    assert!(none.is_none());
    let lo = ns
        .run(|| std::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap()
        .expect("loopback is up");
    drop(lo);
}

#[test]
fn rules_refuse_the_hosts_own_namespace() {
    let err = lasso::net::Netns::open("/proc/self/ns/net")
        .unwrap_err()
        .to_string();
    assert!(err.contains("host's own network namespace"), "{err}");
}
