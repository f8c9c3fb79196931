//! Figures for `benches/net.sh` (ignored in `cargo test`; no timing is asserted anywhere):
//! sandbox network start-up, DNS latency through lasso's resolver against the world's server
//! directly, and TCP throughput through pasta with and without the ruleset.

mod net_support;

use hickory_proto::rr::RecordType;
use lasso::net::{EgressMode, EgressPolicy};
use net_support::*;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn policy() -> EgressPolicy {
    EgressPolicy {
        mode: EgressMode::Allowlist,
        allowed_domains: vec![
            "allowed.test".into(),
            "sink.allowed.test".into(),
            "*.many.test".into(),
        ],
        ..Default::default()
    }
}

fn stats(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{name:<52} n={:<5} median {:>9.1} us   p90 {:>9.1} us",
        v.len(),
        us(v[v.len() / 2]),
        us(v[v.len() * 9 / 10])
    );
}

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let t = Instant::now();
    let r = f();
    (t.elapsed(), r)
}

#[test]
#[ignore = "benchmark: run benches/net.sh"]
fn bench_network_start_dns_and_throughput() {
    let world = World::new();

    // Start-up: namespace with loopback only, against pasta + ruleset + NFLOG reader + resolver.
    let mut offline = Vec::new();
    let mut online = Vec::new();
    for _ in 0..10 {
        let p = EgressPolicy {
            mode: EgressMode::None,
            ..Default::default()
        };
        let (d, sb) = time(|| Sandbox::new(&world, p, SandboxOpts::default()));
        offline.push(d);
        drop(sb);
        let (d, sb) = time(|| Sandbox::new(&world, policy(), SandboxOpts::default()));
        online.push(d);
        drop(sb);
    }
    stats("sandbox network start, mode none (loopback only)", offline);
    stats("sandbox network start, allowlist (pasta+nft+dns)", online);

    let sb = Sandbox::new(&world, policy(), SandboxOpts::default());
    let n = 500;
    let mut direct = Vec::new();
    let mut cached = Vec::new();
    let mut cold = Vec::new();
    for _ in 0..20 {
        sb.resolve("allowed.test", RecordType::A).unwrap();
    }
    world
        .ns
        .run(|| {
            for _ in 0..n {
                let (d, r) = time(|| lookup(sa(WORLD_DNS, 53), "allowed.test", RecordType::A));
                r.unwrap();
                direct.push(d);
            }
        })
        .unwrap();
    sb.agent(|| {
        for _ in 0..n {
            let (d, r) = time(|| lookup(sa(RESOLVER, 53), "allowed.test", RecordType::A));
            r.unwrap();
            cached.push(d);
        }
        for i in 0..n {
            let name = format!("h{i}.many.test");
            let (d, r) = time(|| lookup(sa(RESOLVER, 53), &name, RecordType::AAAA));
            assert_eq!(addresses(&r.unwrap().msg).len(), 1);
            cold.push(d);
        }
    });
    stats("DNS direct to the world's server (no lasso)", direct);
    stats("DNS via lasso resolver, address already allowed", cached);
    stats("DNS via lasso resolver, new address (netlink add)", cold);

    // Throughput through pasta, with and without the ruleset: send for three seconds.
    let send = |sb: &Sandbox| -> String {
        sb.resolve("sink.allowed.test", RecordType::A).unwrap();
        sb.agent(|| {
            let buf = vec![7u8; 1 << 16];
            let mut s = TcpStream::connect_timeout(&sa(SINK, 443), Duration::from_secs(2)).unwrap();
            s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
            let t = Instant::now();
            let mut sent = 0usize;
            while t.elapsed() < Duration::from_secs(3) {
                match s.write(&buf) {
                    Ok(n) => sent += n,
                    Err(e) => return format!("stalled after {} MiB: {e}", sent >> 20),
                }
            }
            format!(
                "{:.0} Mbit/s",
                (sent as f64 * 8.0 / 1e6) / t.elapsed().as_secs_f64()
            )
        })
    };
    let with = send(&sb);
    println!("TCP to a world host through pasta, with rules      {with}");
    let plain = Sandbox::new(
        &world,
        policy(),
        SandboxOpts {
            rules: false,
            ..Default::default()
        },
    );
    let without = send(&plain);
    println!("TCP to a world host through pasta, without rules   {without}");
}
