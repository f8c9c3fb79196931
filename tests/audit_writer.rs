//! The writer under concurrency: threads of one process and two processes appending to one log
//! never produce a broken line or a broken chain; the background flush makes entries durable
//! and names them in the head without anyone calling sync.

mod audit_support;

use audit_support::*;
use lasso::audit::{
    verify, EntryReader, Event, HeadState, KeyRing, Kind, Outcome, Writer, WriterOptions,
};
use serde_json::json;
use std::process::Command;
use std::sync::Arc;

const CHILD_ENV: &str = "LASSO_AUDIT_TEST_CHILD";

fn count_events(path: &std::path::Path) -> (u64, u64) {
    let mut r = EntryReader::open(path).unwrap();
    let (mut events, mut all) = (0, 0);
    while let Some((e, _)) = r.next_entry().unwrap() {
        all += 1;
        if e.kind != "genesis" && e.kind != "seal" {
            events += 1;
        }
    }
    (events, all)
}

#[test]
fn threads_appending_at_once_keep_one_unbroken_chain() {
    let env = Env::new();
    let w = Arc::new(env.writer_with("threads", 32 * 1024));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let w = w.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    w.append(event(t * 1000 + i)).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let w = Arc::into_inner(w).unwrap();
    let sealed = w.seal().unwrap();
    let rep = verify(&sealed.path(), &env.ring).unwrap();
    assert!(rep.is_intact(), "{rep}");
    assert!(rep.segments > 1, "rotation was not exercised");
    assert_eq!(count_events(&sealed.path()).0, 2000);
}

/// The body of the child process of the two-process test (a no-op when run as a normal test).
#[test]
fn child_appender() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split('|');
    let (cfg, logs, n): (&str, &str, usize) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap().parse().unwrap(),
    );
    let ring = KeyRing::open(std::path::Path::new(cfg)).unwrap();
    let w = Arc::new(
        Writer::create_with(
            std::path::Path::new(logs),
            &ring,
            genesis("shared"),
            WriterOptions {
                max_segment_bytes: 64 * 1024,
            },
        )
        .unwrap(),
    );
    let hs: Vec<_> = (0..2)
        .map(|t| {
            let w = w.clone();
            std::thread::spawn(move || {
                for i in 0..n {
                    let e = Event::new(
                        Kind::Policy,
                        Outcome::Info,
                        format!("pid {} thread {t} entry {i}", std::process::id()),
                    )
                    .with_details(json!({"pad": "x".repeat(i % 300)}));
                    w.append(e).unwrap();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
}

#[test]
fn two_processes_appending_to_one_log_never_break_a_line_or_the_chain() {
    let env = Env::new();
    let n = 1500;
    let spec = format!(
        "{}|{}|{n}",
        env.config_dir().display(),
        env.log_dir().display()
    );
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "child_appender",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, &spec)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let files = lasso::audit::LogFiles::new(&env.log_dir(), "shared").unwrap();
    let segments = files.segments().unwrap();
    assert!(
        segments.len() > 1,
        "rotation across processes was not exercised"
    );
    for s in segments {
        for l in lines(&files.segment_path(s)) {
            assert_eq!(l.last(), Some(&b'\n'));
            serde_json::from_slice::<serde_json::Value>(&l)
                .expect("every line is one whole JSON entry");
        }
    }
    // A third writer joins the chain and closes it; the whole log verifies.
    env.writer("shared").seal().unwrap();
    let rep = verify(&files.segment_path(0), &env.ring).unwrap();
    assert!(rep.is_intact(), "{rep}");
    assert_eq!(count_events(&files.segment_path(0)).0, 2 * 2 * n as u64);
}

#[test]
fn background_flush_names_appended_entries_in_the_head_without_sync() {
    let env = Env::new();
    let w = env.writer("bg");
    for i in 0..10 {
        w.append(event(i)).unwrap();
    }
    let files = lasso::audit::LogFiles::new(&env.log_dir(), "bg").unwrap();
    let head_seq = || match lasso::audit::read_head(&files, &env.ring).unwrap() {
        HeadState::Valid(h) => Some(h.seq),
        _ => None,
    };
    // Not a timing assertion: wait as long as it takes (bounded for a hung flusher).
    let mut waited = 0;
    while head_seq() != Some(10) {
        assert!(waited < 500, "the flusher never wrote the head");
        std::thread::sleep(std::time::Duration::from_millis(10));
        waited += 1;
    }
    drop(w);
}

#[test]
fn floats_in_details_are_refused_before_anything_is_written() {
    let env = Env::new();
    let w = env.writer("f");
    let err = w
        .append(Event::new(Kind::Net, Outcome::Blocked, "x").with_details(json!({"ratio": 0.5})))
        .unwrap_err();
    assert!(err.to_string().contains("integers only"), "{err}");
    let err = w
        .append(Event::new(Kind::Seal, Outcome::Info, "fake seal"))
        .unwrap_err();
    assert!(
        err.to_string().contains("written by the writer itself"),
        "{err}"
    );
    let sealed = w.seal().unwrap();
    assert_eq!(sealed.seq, 1);
}

#[test]
fn non_utf8_argv_survives_the_log_byte_for_byte() {
    let env = Env::new();
    let w = env.writer("bytes");
    let d = lasso::audit::ExecDetails {
        argv: vec![
            b"cat".to_vec(),
            b"\xff\xfe/etc/\x80passwd".to_vec(),
            b"ok \"quoted\"\n".to_vec(),
        ],
        cwd: "/".into(),
        pid: 1,
        ppid: 0,
        uid: 0,
        exe: "/bin/cat".into(),
        rule: None,
    };
    w.append(Event::exec(Outcome::Blocked, "reads a secret", &d))
        .unwrap();
    let path = w.seal().unwrap().path();
    let mut r = EntryReader::open(&path).unwrap();
    r.next_entry().unwrap();
    let (e, _) = r.next_entry().unwrap().unwrap();
    assert_eq!(
        lasso::audit::ExecDetails::from_value(&e.details).unwrap(),
        d
    );
}

#[test]
fn a_seal_finished_in_the_flusher_names_the_seal_in_the_head_once_wait_returns() {
    let env = Env::new();
    let w = env.writer("bgseal");
    for i in 0..10 {
        w.append(event(i)).unwrap();
    }
    let sealing = w.seal_in_background().unwrap();
    let sealed = sealing.wait().unwrap();
    // Read at once, no waiting: `wait` returned only after the last flush wrote the head.
    let files = lasso::audit::LogFiles::new(&env.log_dir(), "bgseal").unwrap();
    match lasso::audit::read_head(&files, &env.ring).unwrap() {
        HeadState::Valid(h) => {
            assert!(h.sealed, "the head does not say sealed: {h:?}");
            assert_eq!(h.seq, sealed.seq, "the head does not name the seal entry");
            assert_eq!(h.last, sealed.mac);
        }
        other => panic!("no valid head after the seal: {other:?}"),
    }
    let rep = verify(&files.segment_path(0), &env.ring).unwrap();
    assert!(rep.is_intact() && rep.sealed, "{rep}");
}
