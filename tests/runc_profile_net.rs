//! Egress of a `run.lasso.profile` container under lasso-runc, driven directly with a bundle
//! whose network namespace is one the test made (as Podman passes `/run/netns/...`), wired by a
//! veth into the test's fake internet (`net_support`: a world namespace with a DNS server,
//! hosts on documentation addresses and a fake metadata service). lasso-runc itself runs in the
//! world, so its resolver forwards to the world's DNS server and nothing reaches the machine's
//! own network. One container runs a probe; what the kernel let through is checked, then the
//! container's audit log (each refusal recorded, the chain verifying), then that `delete`
//! leaves neither the monitor nor lasso's table behind in the namespace the "client" keeps.

#[path = "net_sandbox_support/mod.rs"]
mod net_sandbox_support;
#[path = "net_support/mod.rs"]
mod net_support;
mod runc_support;

use net_sandbox_support::in_world_tun;
use net_support::{ip, NsHolder, World};
use runc_support::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};

/// The standard profile with the test zone allowlisted, and `nc` let through the exec gate so
/// the probe can connect (its network is what is under test here).
const PROFILE: &str = r#"extends = "standard"
name = "runcnet"

[commands]
blocked = { remove = ["nc"] }

[network]
mode = "allowlist"
registries = []
allowed_domains = ["allowed.test"]
allowed_ports = [80, 443]
"#;

/// One line per attempt, `NAME=rcN output`; nc prints the host's greeting on success.
const PROBE: &str = r#"p() { k=$1; shift; out=$("$@" 2>&1 </dev/null); rc=$?; echo "$k=rc$rc $(echo "$out" | tr '\n' ' ')"; }
p resolv_conf cat /etc/resolv.conf
p resolve_allowed nslookup allowed.test
p tcp_allowed_443 nc -w 3 203.0.113.10 443
p resolve_unlisted nslookup unlisted.test
p direct_ip_unlisted nc -w 2 203.0.113.20 443
p metadata_http nc -w 2 169.254.169.254 80
p db_postgres_allowed_host nc -w 2 203.0.113.10 5432
"#;

/// A veth pair from the world into the container's namespace on a documentation /30: the
/// client's connectivity, which lasso only filters.
fn wire(world: &World, holder: &NsHolder) {
    let ns = holder.netns();
    ip(
        &world.ns,
        &format!(
            "link add w-rcn type veth peer name eth0 netns /proc/{}/ns/net",
            holder.pid()
        ),
    );
    ip(&world.ns, "addr add 198.51.100.129/30 dev w-rcn");
    ip(&world.ns, "link set w-rcn up");
    ip(&ns, "addr add 198.51.100.130/30 dev eth0");
    ip(&ns, "link set eth0 up");
    ip(&ns, "route add default via 198.51.100.129");
}

fn lasso_table_present(ns_path: &str) -> bool {
    lasso::net::Netns::open(ns_path)
        .unwrap()
        .command("nft")
        .args(["list", "table", "inet", "lasso"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn profile_container_reaches_only_allowlisted_names_and_audits_refusals() {
    if !can_run() {
        return;
    }
    let world = World::new();
    // The container's namespace is held by a descriptor of this test, with no process inside
    // (as Podman holds one by a bind mount under /run/netns): lasso's table must leave it when
    // the container ends.
    let ns_file = {
        let holder = NsHolder::new(false, false);
        wire(&world, &holder);
        std::fs::File::open(holder.ns_path()).unwrap()
    };
    use std::os::fd::AsRawFd;
    let netns_path = format!("/proc/{}/fd/{}", std::process::id(), ns_file.as_raw_fd());
    assert!(!lasso_table_present(&netns_path));

    let base = tempfile::Builder::new()
        .prefix("ocitest-net")
        .tempdir()
        .unwrap();
    let audit = base.path().join("audit");
    let keys = base.path().join("keys");
    let profile = base.path().join("runcnet.toml");
    std::fs::write(&profile, PROFILE).unwrap();
    let bundle = Bundle::new("sh /probe.sh");
    for applet in ["nslookup", "tr"] {
        let _ = std::os::unix::fs::symlink("busybox", bundle.rootfs().join("bin").join(applet));
    }
    std::fs::write(bundle.rootfs().join("probe.sh"), PROBE).unwrap();
    bundle.edit(|s| {
        s["root"]["readonly"] = false.into();
        s["annotations"] = serde_json::json!({
            "run.lasso.profile": profile.display().to_string(),
            "run.lasso.audit": audit.display().to_string(),
        });
        for n in s["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "network" {
                n["path"] = netns_path.clone().into();
            }
        }
    });

    let runc = Runc::new();
    let id = unique_id("prof-net");
    let _guard = Guard::new(&runc, &id);
    let mut create = runc.cmd();
    create
        .env("LASSO_CONFIG_DIR", &keys)
        .args(["create", "--bundle"])
        .arg(bundle.path())
        .arg(&id);
    let out_path = bundle.path().join("stdout");
    let err_path = bundle.path().join("stderr");
    let status = in_world_tun(&world, base.path(), &create, false)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .status()
        .unwrap();
    let stderr = || std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(status.success(), "create: {}", stderr());
    // The rules are in the container's namespace before `start`.
    assert!(lasso_table_present(&netns_path), "no table after create");
    let record: Value = serde_json::from_slice(
        &std::fs::read(runc.root.path().join(&id).join("lasso-gate.json")).unwrap(),
    )
    .unwrap();
    let monitor = record["pid"].as_i64().unwrap() as i32;

    let start = runc.exec(&["start", &id]);
    assert!(
        start.status.success(),
        "start: {}",
        String::from_utf8_lossy(&start.stderr)
    );
    let mut stopped = false;
    for _ in 0..4 {
        if runc.wait_status(&id, "stopped") {
            stopped = true;
            break;
        }
    }
    let stdout = std::fs::read_to_string(&out_path).unwrap();
    assert!(stopped, "the probe did not finish:\n{stdout}\n{}", stderr());
    runc.reap(&id);
    let got: BTreeMap<String, String> = net_sandbox_support::lines(stdout.as_bytes())
        .into_iter()
        .collect();
    let get = |k: &str| got.get(k).cloned().unwrap_or_default();
    let why = format!("{stdout}\n{}", stderr());

    assert!(
        get("resolv_conf").contains("nameserver 127.0.0.53"),
        "{why}"
    );
    assert!(
        get("resolve_allowed").contains(net_support::ALLOWED),
        "{why}"
    );
    assert!(get("tcp_allowed_443").starts_with("rc0"), "{why}");
    assert!(
        get("tcp_allowed_443").contains("hello 203.0.113.10:443"),
        "{why}"
    );
    assert!(
        !get("resolve_unlisted").contains(net_support::UNLISTED),
        "{why}"
    );
    for k in [
        "direct_ip_unlisted",
        "metadata_http",
        "db_postgres_allowed_host",
    ] {
        assert!(!get(k).starts_with("rc0"), "{k} got through: {why}");
        assert!(!get(k).contains("hello"), "{k} got through: {why}");
    }

    // delete: the monitor seals the log and removes lasso's table from the client's namespace.
    let del = runc.exec(&["delete", &id]);
    assert!(
        del.status.success(),
        "delete: {}",
        String::from_utf8_lossy(&del.stderr)
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{monitor}")).exists() || reaped(monitor),
        "the gate monitor outlived delete"
    );
    assert!(
        !lasso_table_present(&netns_path),
        "lasso's table is still in the namespace"
    );

    let log = audit.join(format!("{id}.jsonl"));
    let entries: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let has = |kind: &str, key: &str, val: Value, reason: &str| {
        entries.iter().any(|e| {
            e["kind"] == kind
                && e["outcome"] == "blocked"
                && e["details"][key] == val
                && e["details"]["reason"] == reason
        })
    };
    let shown = serde_json::to_string_pretty(&entries).unwrap();
    assert!(
        has("dns", "name", "unlisted.test".into(), "not-allowlisted"),
        "{shown}"
    );
    assert!(
        has(
            "net",
            "destination",
            net_support::UNLISTED.into(),
            "not-allowed"
        ),
        "{shown}"
    );
    // The standard profile lists link-local among its blocked ranges, ahead of lasso's own.
    assert!(
        has(
            "net",
            "destination",
            net_support::METADATA.into(),
            "blocked-cidr"
        ) || has(
            "net",
            "destination",
            net_support::METADATA.into(),
            "special-range"
        ),
        "{shown}"
    );
    assert!(
        entries.iter().any(|e| e["kind"] == "net"
            && e["details"]["port"] == 5432
            && e["details"]["reason"] == "database-port"),
        "{shown}"
    );
    let verify = Command::new(env!("CARGO_BIN_EXE_lasso"))
        .args(["audit", "verify", "--config-dir"])
        .arg(&keys)
        .arg(&log)
        .output()
        .unwrap();
    let vt = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success() && vt.contains(", sealed"),
        "{vt}{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}
