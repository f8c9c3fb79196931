//! Throughput of the audit log: append (exec entries, the hot path of the exec gate) and verify.
//! Run with `cargo bench --bench audit`; the README reports the figures.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lasso::audit::{verify, Event, ExecDetails, Genesis, KeyRing, Outcome, Writer};
use std::path::PathBuf;

fn exec_event(i: u64) -> Event {
    Event::exec(
        if i % 5 == 0 {
            Outcome::Blocked
        } else {
            Outcome::Allowed
        },
        "matched rule",
        &ExecDetails {
            argv: vec![
                b"git".to_vec(),
                b"commit".to_vec(),
                b"-m".to_vec(),
                format!("change number {i}").into_bytes(),
            ],
            cwd: PathBuf::from("/home/agent/project"),
            pid: 4000 + (i % 1000) as u32,
            ppid: 3999,
            uid: 1000,
            exe: PathBuf::from("/usr/bin/git"),
            rule: Some("allow git *".into()),
        },
    )
}

fn genesis(id: &str) -> Genesis {
    Genesis {
        sandbox_id: id.into(),
        profile_name: "default".into(),
        profile_digest: "sha256:00".into(),
        agent: Some("claude".into()),
    }
}

fn bench_append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let ring = KeyRing::open(&dir.path().join("cfg")).unwrap();
    let w = Writer::create(&dir.path().join("logs"), &ring, genesis("bench-append")).unwrap();
    let mut g = c.benchmark_group("audit");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("append_exec_entry", |b| {
        b.iter(|| {
            i += 1;
            w.append(exec_event(i)).unwrap();
        })
    });
    g.finish();
    w.seal().unwrap();
}

fn bench_verify(c: &mut Criterion) {
    const N: u64 = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let ring = KeyRing::open(&dir.path().join("cfg")).unwrap();
    let w = Writer::create(&dir.path().join("logs"), &ring, genesis("bench-verify")).unwrap();
    for i in 0..N {
        w.append(exec_event(i)).unwrap();
    }
    let path = w.seal().unwrap().path();
    let bytes = std::fs::metadata(&path).unwrap().len();
    eprintln!(
        "verify bench log: {N} entries, {bytes} bytes ({} bytes/entry)",
        bytes / N
    );
    let mut g = c.benchmark_group("audit");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N + 2));
    g.bench_function("verify_200k_entries", |b| {
        b.iter(|| {
            let rep = verify(&path, &ring).unwrap();
            assert!(rep.is_intact());
        })
    });
    g.finish();
}

criterion_group!(benches, bench_append, bench_verify);
criterion_main!(benches);
