//! Criterion benchmarks of the policy engine: one decision for a typical command (target under
//! 20 µs), and profile load + resolve (target under 1 ms). `lasso why` as a whole process is
//! measured with hyperfine (see the README's Benchmarks section).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use lasso::paths::Dirs;
use lasso::policy;

fn decisions(c: &mut Criterion) {
    let dirs = Dirs::system();
    let standard = policy::load("standard", &dirs).unwrap();
    let strict = policy::load("strict", &dirs).unwrap();
    let mut g = c.benchmark_group("decide");
    g.bench_function("shell/typical/standard: cargo test --all", |b| {
        b.iter(|| policy::decide_shell(&standard, black_box("cargo test --all")))
    });
    g.bench_function(
        "shell/blocked/standard: git push origin main --force",
        |b| b.iter(|| policy::decide_shell(&standard, black_box("git push origin main --force"))),
    );
    g.bench_function(
        "shell/pipeline/strict: git log --oneline | grep fix | head -n 5",
        |b| {
            b.iter(|| {
                policy::decide_shell(
                    &strict,
                    black_box("git log --oneline | grep fix | head -n 5"),
                )
            })
        },
    );
    g.bench_function(
        "shell/wrapped/standard: env -i timeout 5 bash -c 'nice rm -rf x'",
        |b| {
            b.iter(|| {
                policy::decide_shell(
                    &standard,
                    black_box("env -i timeout 5 bash -c 'nice rm -rf x'"),
                )
            })
        },
    );
    let argv: Vec<Vec<u8>> = ["/usr/bin/git", "push", "origin", "main"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    g.bench_function("argv/standard: /usr/bin/git push origin main", |b| {
        b.iter(|| policy::decide_argv(&standard, black_box(&argv)))
    });
    g.finish();
}

fn loading(c: &mut Criterion) {
    let dirs = Dirs::system();
    let mut g = c.benchmark_group("profile");
    g.bench_function("load+resolve standard", |b| {
        b.iter(|| policy::load(black_box("standard"), &dirs).unwrap())
    });
    g.bench_function("load+resolve open (extends standard)", |b| {
        b.iter(|| policy::load(black_box("open"), &dirs).unwrap())
    });
    g.bench_function("load+resolve strict", |b| {
        b.iter(|| policy::load(black_box("strict"), &dirs).unwrap())
    });
    g.finish();
}

criterion_group!(benches, decisions, loading);
criterion_main!(benches);
