//! Throughput of the audit log: append (exec entries, the hot path of the exec gate) and verify.
//! Run with `cargo bench --bench audit`; the README reports the figures.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lasso::audit::{verify, Event, ExecDetails, Genesis, KeyRing, Outcome, Writer};
use std::path::PathBuf;
use std::time::{Duration, Instant};

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

/// CPU time of the calling thread. The machine is shared, so besides criterion's wall-clock
/// figures the bench prints CPU time per entry, which other load disturbs much less.
fn thread_cpu() -> Duration {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
    Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
}

/// Time this thread spent runnable but waiting for a CPU (second field of schedstat).
fn runqueue_wait() -> Duration {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    Duration::from_nanos(
        s.split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    )
}

fn report(what: &str, n: u64, wall: Duration, cpu: Duration, waited: Duration) {
    eprintln!(
        "{what}: {n} entries, wall {:.3} s = {:.0} entries/s; CPU {:.2} us/entry = {:.0} entries per CPU-second; \
         waiting for a CPU {:.3} s, blocked {:.3} s",
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / n as f64,
        n as f64 / cpu.as_secs_f64(),
        waited.as_secs_f64(),
        wall.saturating_sub(cpu + waited).as_secs_f64(),
    );
}

fn fixed_runs() {
    const N: u64 = 300_000;
    let dir = tempfile::tempdir().unwrap();
    let ring = KeyRing::open(&dir.path().join("cfg")).unwrap();
    let w = Writer::create(&dir.path().join("logs"), &ring, genesis("fixed")).unwrap();
    let (t0, c0, q0) = (Instant::now(), thread_cpu(), runqueue_wait());
    for i in 0..N {
        w.append(exec_event(i)).unwrap();
    }
    report(
        "append (exec entries, caller thread)",
        N,
        t0.elapsed(),
        thread_cpu() - c0,
        runqueue_wait() - q0,
    );
    let path = w.seal().unwrap().path();
    let (t0, c0, q0) = (Instant::now(), thread_cpu(), runqueue_wait());
    let rep = verify(&path, &ring).unwrap();
    assert!(rep.is_intact());
    report(
        "verify",
        rep.entries,
        t0.elapsed(),
        thread_cpu() - c0,
        runqueue_wait() - q0,
    );
}

fn bench_append(c: &mut Criterion) {
    fixed_runs();
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
