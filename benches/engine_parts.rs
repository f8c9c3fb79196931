//! Costs of the engine parts on the container start path: compiling seccomp policies, converting
//! capabilities, and (as root) a cgroup's create + apply + destroy on this host.
//! Run: `cargo bench --bench engine_parts`.

use criterion::{criterion_group, criterion_main, Criterion};
use lasso::engine::{capabilities, cgroups::Cgroup, seccomp};
use oci_spec::runtime::{
    LinuxCapabilities, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
};

fn parts(c: &mut Criterion) {
    let policy = seccomp::default_policy().clone();
    c.bench_function("seccomp compile seccomp/default.json", |b| {
        b.iter(|| seccomp::compile(&policy).unwrap())
    });
    let caps = LinuxCapabilities::default();
    c.bench_function("capabilities CapSets::from_spec (runc default set)", |b| {
        b.iter(|| capabilities::CapSets::from_spec(&caps).unwrap())
    });
    if nix::unistd::geteuid().is_root() {
        let res = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(256i64 << 20)
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(256i64).build().unwrap())
            .build()
            .unwrap();
        let path = std::path::PathBuf::from(format!("/lasso-bench-{}/c", std::process::id()));
        c.bench_function("cgroup create + apply(memory, pids) + destroy", |b| {
            b.iter(|| {
                let cg = Cgroup::create(Some(&path), "bench", false).unwrap();
                let applied = cg.apply(&res);
                cg.destroy().unwrap();
                applied.unwrap();
            })
        });
    }
}

criterion_group!(benches, parts);
criterion_main!(benches);
