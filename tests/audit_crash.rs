//! A writer killed with SIGKILL at random moments never leaves a log that verify calls
//! tampered: it is unsealed (or has a torn tail), every entry the writer reported appended is in
//! it and verifies, and the log can be joined and sealed afterwards.

mod audit_support;

use audit_support::*;
use lasso::audit::{verify, DamageClass, EntryReader, KeyRing, Writer, WriterOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

const CHILD_ENV: &str = "LASSO_AUDIT_CRASH_CHILD";
const TRIALS: usize = 200;

/// The child: append forever, reporting each appended entry on stdout (a no-op as a normal test).
#[test]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (cfg, logs) = spec.split_once('|').unwrap();
    let ring = KeyRing::open(Path::new(cfg)).unwrap();
    // Small segments, so that kills also land inside rotations.
    let w = Writer::create_with(
        Path::new(logs),
        &ring,
        genesis("crash"),
        WriterOptions {
            max_segment_bytes: 6 * 1024,
        },
    )
    .unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    for i in 0.. {
        w.append(event(i)).unwrap();
        writeln!(out, "{}", i + 1).unwrap();
    }
}

fn events_in(path: &Path) -> u64 {
    let mut r = EntryReader::open(path).unwrap();
    let mut n = 0;
    while let Ok(Some((e, _))) = r.next_entry() {
        n += u64::from(e.kind != "genesis" && e.kind != "seal");
    }
    n
}

fn random_below(n: u32) -> u32 {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).unwrap();
    u32::from_le_bytes(b) % n
}

#[test]
fn sigkilled_writer_never_leaves_a_tampered_log() {
    let env = Env::new();
    let exe = std::env::current_exe().unwrap();
    let mut classes = std::collections::BTreeMap::new();
    for trial in 0..TRIALS {
        let logs = env.dir.path().join(format!("logs{trial}"));
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(
                CHILD_ENV,
                format!("{}|{}", env.config_dir().display(), logs.display()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        // The test harness prints its own lines first; wait for ours.
        while !line.trim_end().ends_with("ready") {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                panic!("trial {trial}: child died before it was ready: {err}");
            }
        }
        std::thread::sleep(std::time::Duration::from_micros(u64::from(random_below(
            15_000,
        ))));
        child.kill().unwrap();
        child.wait().unwrap();
        drop(child.stderr.take());
        let mut appended = 0u64;
        for l in out.lines() {
            if let Ok(n) = l.unwrap().trim().parse::<u64>() {
                appended = n;
            }
        }
        let path = logs.join("crash.jsonl");
        let rep = verify(&path, &env.ring).unwrap();
        let d = rep
            .damage
            .clone()
            .expect("a killed writer cannot have sealed");
        assert!(
            matches!(d.class, DamageClass::Unsealed | DamageClass::TornTail),
            "trial {trial}: {rep}"
        );
        let in_log = events_in(&path);
        assert!(
            in_log >= appended,
            "trial {trial}: {appended} entries reported appended, {in_log} in the log"
        );
        *classes.entry(d.class.as_str()).or_insert(0) += 1;
        if d.class == DamageClass::Unsealed {
            // The chain can be picked up where the dead writer left it.
            Writer::create(&logs, &env.ring, genesis("crash"))
                .unwrap()
                .seal()
                .unwrap();
            assert!(
                verify(&path, &env.ring).unwrap().is_intact(),
                "trial {trial}"
            );
        }
    }
    eprintln!("{TRIALS} kills: {classes:?}");
}
