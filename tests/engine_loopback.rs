//! `lo` in a container's new network namespace (`engine::loopback`): init brings it up before
//! it reports ready. Checked from inside a real container (lasso-runc, busybox bundle with a new
//! network namespace): by the time the container's process runs, the kernel has `lo` up with
//! its addresses, and a sysctl of `lo` (applied after `lo` came up) takes.

mod runc_support;
use runc_support::*;

#[test]
fn lo_is_up_with_its_addresses_before_the_process_runs() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    // IFF_UP is bit 0 of the flags; 127.0.0.1's local route and ::1 exist only once lo is up.
    let b = Bundle::new(
        "echo flags=$(cat /sys/class/net/lo/flags); \
         grep -q '^0\\{31\\}1 .* lo$' /proc/net/if_inet6 && echo v6-loopback; \
         ls /proc/sys/net/ipv6 >/dev/null 2>&1 || echo no-ipv6; \
         grep -q 'host LOCAL' /proc/net/fib_trie && echo v4-local; true",
    );
    let (code, out, err) = runc.run(&b, &unique_id("lo-up"));
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let flags = out
        .lines()
        .find_map(|l| l.strip_prefix("flags="))
        .unwrap_or_else(|| panic!("no flags: {out}"));
    let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "lo is down inside the container: {out}");
    assert!(out.contains("v4-local"), "no 127.0.0.1 on lo: {out}");
    assert!(
        out.contains("v6-loopback") || out.contains("no-ipv6"),
        "no ::1 on lo: {out}"
    );
}

#[test]
fn a_sysctl_of_lo_takes_and_lo_stays_up() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new(
        "echo flags=$(cat /sys/class/net/lo/flags); \
         echo rp=$(cat /proc/sys/net/ipv4/conf/lo/rp_filter)",
    );
    b.edit(|s| {
        s["linux"]["sysctl"] = serde_json::json!({"net.ipv4.conf.lo.rp_filter": "2"});
    });
    let (code, out, err) = runc.run(&b, &unique_id("lo-sysctl"));
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("rp=2\n"),
        "the sysctl of lo did not take: {out}"
    );
    assert!(out.contains("flags=0x9\n"), "lo is not up: {out}");
}
