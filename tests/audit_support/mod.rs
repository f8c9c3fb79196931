//! Helpers shared by the audit integration tests: a key ring and log directory in a tempdir,
//! logs with realistic entries, and line-level surgery on log files.
#![allow(dead_code)]

use lasso::audit::{Event, ExecDetails, Genesis, KeyRing, Kind, Outcome, Writer, WriterOptions};
use serde_json::json;
use std::path::{Path, PathBuf};

pub struct Env {
    pub dir: tempfile::TempDir,
    pub ring: KeyRing,
}

impl Env {
    pub fn new() -> Env {
        Env::in_dir(tempfile::tempdir().unwrap())
    }

    /// In memory when the machine has /dev/shm: for tests that churn through thousands of small
    /// files (on a disk mounted with `discard`, every unlink costs a device round trip).
    pub fn in_memory() -> Env {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        };
        Env::in_dir(dir.unwrap())
    }

    fn in_dir(dir: tempfile::TempDir) -> Env {
        let ring = KeyRing::open(&dir.path().join("config")).unwrap();
        Env { dir, ring }
    }

    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    pub fn writer(&self, id: &str) -> Writer {
        Writer::create(&self.log_dir(), &self.ring, genesis(id)).unwrap()
    }

    pub fn writer_with(&self, id: &str, max_segment_bytes: u64) -> Writer {
        Writer::create_with(
            &self.log_dir(),
            &self.ring,
            genesis(id),
            WriterOptions { max_segment_bytes },
        )
        .unwrap()
    }

    /// A log of `n` events after the genesis, sealed or not; returns segment 0's path.
    pub fn log(&self, id: &str, n: usize, seal: bool) -> PathBuf {
        let w = self.writer(id);
        for i in 0..n {
            w.append(event(i)).unwrap();
        }
        let path = w.path();
        if seal {
            w.seal().unwrap();
        } else {
            drop(w);
        }
        path
    }
}

pub fn genesis(id: &str) -> Genesis {
    Genesis {
        sandbox_id: id.into(),
        profile_name: "default".into(),
        profile_digest: "sha256:0f00".into(),
        agent: Some("claude".into()),
    }
}

/// A varied event: execs (some blocked, one with non-UTF-8 argv), DNS, net.
pub fn event(i: usize) -> Event {
    match i % 4 {
        0 => Event::exec(
            Outcome::Allowed,
            "allowed by rule git",
            &ExecDetails {
                argv: vec![
                    b"git".to_vec(),
                    b"status".to_vec(),
                    format!("--n={i}").into_bytes(),
                ],
                cwd: "/work".into(),
                pid: 100 + i as u32,
                ppid: 1,
                uid: 1000,
                exe: "/usr/bin/git".into(),
                rule: Some("allow git".into()),
            },
        ),
        1 => Event::exec(
            Outcome::Blocked,
            "rm -rf is denied",
            &ExecDetails {
                argv: vec![b"rm".to_vec(), b"-rf".to_vec(), b"/work/caf\xe9".to_vec()],
                cwd: "/work".into(),
                pid: 100 + i as u32,
                ppid: 1,
                uid: 1000,
                exe: "/usr/bin/rm".into(),
                rule: Some("deny rm -rf".into()),
            },
        ),
        2 => Event::new(Kind::Dns, Outcome::Blocked, "name not in egress allow list")
            .with_details(json!({"name": format!("x{i}.example.org"), "qtype": "A"})),
        _ => Event::new(
            Kind::Net,
            Outcome::Blocked,
            "connection refused by egress rules",
        )
        .with_details(json!({"dst": "192.0.2.7", "port": 443, "proto": "tcp"})),
    }
}

pub fn lines(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    bytes
        .split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

pub fn write_lines(path: &Path, lines: &[Vec<u8>]) {
    std::fs::write(path, lines.concat()).unwrap();
}
