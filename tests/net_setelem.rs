//! The resolver's netlink writer against the kernel: an address it allows is in the namespace's
//! allow set with the timeout asked for, a refresh replaces the timeout, and a namespace without
//! lasso's ruleset is an error naming the table. Runs in namespaces this test creates.

mod net_support;

use lasso::net::rules::{self, RulesConfig};
use lasso::net::setelem::SetWriter;
use lasso::net::EgressPolicy;
use net_support::NsHolder;
use std::net::IpAddr;
use std::time::Duration;

/// The `timeout` (seconds) the kernel holds for `ip` in the set, if the element is there.
fn kernel_timeout(ns: &lasso::net::Netns, set: &str, ip: &str) -> Option<u64> {
    let out = ns
        .command("nft")
        .args(["-j", "list", "set", "inet", "lasso", set])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let elems = v["nftables"]
        .as_array()?
        .iter()
        .find_map(|o| o.get("set"))?["elem"]
        .as_array()?
        .clone();
    elems.iter().find_map(|e| {
        let e = &e["elem"];
        (e["val"] == ip).then(|| e["timeout"].as_u64()).flatten()
    })
}

fn ruleset(ns: &lasso::net::Netns) {
    let policy = EgressPolicy::default().validate().unwrap();
    let cfg = RulesConfig {
        resolver: "127.0.0.53:53".parse().unwrap(),
        log_group: 7,
    };
    rules::apply(ns, &policy, &cfg).unwrap();
}

#[test]
fn an_allowed_address_lands_in_the_kernel_set_with_its_timeout_and_refreshes() {
    let holder = NsHolder::new(false, false);
    let ns = holder.netns();
    ruleset(&ns);
    let mut w = SetWriter::open(&ns).unwrap();
    let v4: IpAddr = "203.0.113.7".parse().unwrap();
    let v6: IpAddr = "2001:db8::7".parse().unwrap();
    assert_eq!(kernel_timeout(&ns, "allow4", "203.0.113.7"), None);
    w.allow(&[
        (v4, Duration::from_secs(100)),
        (v6, Duration::from_secs(200)),
    ])
    .unwrap();
    assert_eq!(kernel_timeout(&ns, "allow4", "203.0.113.7"), Some(100));
    assert_eq!(kernel_timeout(&ns, "allow6", "2001:db8::7"), Some(200));
    // A later answer with a longer TTL must extend the element, not keep the old timeout.
    w.allow(&[(v4, Duration::from_secs(300))]).unwrap();
    assert_eq!(kernel_timeout(&ns, "allow4", "203.0.113.7"), Some(300));
}

#[test]
fn a_namespace_without_the_ruleset_is_an_error_naming_the_table() {
    let holder = NsHolder::new(false, false);
    let ns = holder.netns();
    let mut w = SetWriter::open(&ns).unwrap();
    let err = w
        .allow(&[("203.0.113.7".parse().unwrap(), Duration::from_secs(30))])
        .unwrap_err()
        .to_string();
    assert!(err.contains("inet lasso"), "{err}");
}
