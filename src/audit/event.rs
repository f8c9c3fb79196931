//! What callers hand to the writer: an [`Event`] (kind, outcome, reason, details), the exec helper
//! [`ExecDetails`] that keeps argv bytes losslessly, and the [`Genesis`] facts of a sandbox.

use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// What an entry is about. `Genesis` and `Seal` are written by the writer itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Genesis,
    SandboxStart,
    SandboxStop,
    Exec,
    Dns,
    Net,
    Mount,
    Policy,
    Seal,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Genesis,
        Kind::SandboxStart,
        Kind::SandboxStop,
        Kind::Exec,
        Kind::Dns,
        Kind::Net,
        Kind::Mount,
        Kind::Policy,
        Kind::Seal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Genesis => "genesis",
            Kind::SandboxStart => "sandbox.start",
            Kind::SandboxStop => "sandbox.stop",
            Kind::Exec => "exec",
            Kind::Dns => "dns",
            Kind::Net => "net",
            Kind::Mount => "mount",
            Kind::Policy => "policy",
            Kind::Seal => "seal",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The decision or nature of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Allowed,
    Blocked,
    Error,
    Info,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Allowed,
        Outcome::Blocked,
        Outcome::Error,
        Outcome::Info,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Blocked => "blocked",
            Outcome::Error => "error",
            Outcome::Info => "info",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing that happened in a sandbox. `details` is a JSON object whose fields depend on the
/// kind; it may hold no floating-point numbers (see the canonical form).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: Kind,
    pub outcome: Outcome,
    pub reason: String,
    pub details: Value,
}

impl Event {
    pub fn new(kind: Kind, outcome: Outcome, reason: impl Into<String>) -> Event {
        Event {
            kind,
            outcome,
            reason: reason.into(),
            details: Value::Object(Map::new()),
        }
    }

    pub fn with_details(mut self, details: Value) -> Event {
        self.details = details;
        self
    }

    /// An exec decision: the gate's verdict on one program start.
    pub fn exec(outcome: Outcome, reason: impl Into<String>, details: &ExecDetails) -> Event {
        Event::new(Kind::Exec, outcome, reason).with_details(details.to_value())
    }
}

/// The facts of one program start. Byte strings (argv, paths) are kept exactly: Linux allows
/// any bytes but NUL in them, and an audit trail that rewrites a filename hides what ran.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecDetails {
    pub argv: Vec<Vec<u8>>,
    pub cwd: PathBuf,
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    /// The resolved path of the executable the kernel ran.
    pub exe: PathBuf,
    /// The policy rule that decided, if one did.
    pub rule: Option<String>,
}

impl ExecDetails {
    /// The `details` object of an exec entry. A byte string that is valid UTF-8 is stored as
    /// that string; one that is not is stored as its lossy text (for readers) plus the exact bytes
    /// in base64 under `<field>_b64` (for argv: `argv_b64`, an object keyed by the decimal index).
    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        let mut raw = Map::new();
        let argv: Vec<Value> = self
            .argv
            .iter()
            .enumerate()
            .map(|(i, arg)| {
                let (text, b64) = text_and_raw(arg);
                if let Some(b64) = b64 {
                    raw.insert(i.to_string(), Value::String(b64));
                }
                Value::String(text)
            })
            .collect();
        obj.insert("argv".into(), Value::Array(argv));
        if !raw.is_empty() {
            obj.insert("argv_b64".into(), Value::Object(raw));
        }
        put_bytes(&mut obj, "cwd", self.cwd.as_os_str().as_bytes());
        put_bytes(&mut obj, "exe", self.exe.as_os_str().as_bytes());
        obj.insert("pid".into(), json!(self.pid));
        obj.insert("ppid".into(), json!(self.ppid));
        obj.insert("uid".into(), json!(self.uid));
        obj.insert("rule".into(), json!(self.rule));
        Value::Object(obj)
    }

    /// Reads exec details back, restoring exact bytes; `None` when `v` is not an exec object.
    pub fn from_value(v: &Value) -> Option<ExecDetails> {
        let obj = v.as_object()?;
        let raw = obj.get("argv_b64").and_then(Value::as_object);
        let argv = obj
            .get("argv")?
            .as_array()?
            .iter()
            .enumerate()
            .map(|(i, a)| match raw.and_then(|r| r.get(&i.to_string())) {
                Some(b64) => decode_b64(b64),
                None => a.as_str().map(|s| s.as_bytes().to_vec()),
            })
            .collect::<Option<Vec<_>>>()?;
        let path = |field: &str| -> Option<PathBuf> {
            let bytes = match obj.get(&format!("{field}_b64")) {
                Some(b64) => decode_b64(b64)?,
                None => obj.get(field)?.as_str()?.as_bytes().to_vec(),
            };
            Some(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
        };
        let num = |field: &str| obj.get(field)?.as_u64().and_then(|n| u32::try_from(n).ok());
        Some(ExecDetails {
            argv,
            cwd: path("cwd")?,
            pid: num("pid")?,
            ppid: num("ppid")?,
            uid: num("uid")?,
            exe: path("exe")?,
            rule: obj.get("rule").and_then(Value::as_str).map(str::to_owned),
        })
    }
}

use std::os::unix::ffi::OsStringExt;

fn text_and_raw(bytes: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), None),
        Err(_) => (
            String::from_utf8_lossy(bytes).into_owned(),
            Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
        ),
    }
}

fn put_bytes(obj: &mut Map<String, Value>, field: &str, bytes: &[u8]) {
    let (text, b64) = text_and_raw(bytes);
    obj.insert(field.into(), Value::String(text));
    if let Some(b64) = b64 {
        obj.insert(format!("{field}_b64"), Value::String(b64));
    }
}

fn decode_b64(v: &Value) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str()?)
        .ok()
}

/// The facts recorded in entry 0 of a sandbox's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genesis {
    pub sandbox_id: String,
    pub profile_name: String,
    /// The hash of the resolved profile, e.g. `sha256:<hex>`.
    pub profile_digest: String,
    pub agent: Option<String>,
}

impl Genesis {
    pub fn new(
        sandbox_id: impl Into<String>,
        profile_name: impl Into<String>,
        profile_digest: impl Into<String>,
    ) -> Genesis {
        Genesis {
            sandbox_id: sandbox_id.into(),
            profile_name: profile_name.into(),
            profile_digest: profile_digest.into(),
            agent: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_utf8_argv_and_paths_round_trip_exactly() {
        let d = ExecDetails {
            argv: vec![
                b"rm".to_vec(),
                b"caf\xe9".to_vec(),
                b"-rf\n\"x\"".to_vec(),
                vec![0xff, 0xfe],
            ],
            cwd: PathBuf::from(std::ffi::OsString::from_vec(b"/w/\x80dir".to_vec())),
            pid: 7,
            ppid: 1,
            uid: 1000,
            exe: PathBuf::from("/usr/bin/rm"),
            rule: Some("deny rm -rf".into()),
        };
        let v = d.to_value();
        assert_eq!(v["argv"][0], "rm");
        assert!(v["argv_b64"].get("0").is_none());
        assert!(v["argv_b64"].get("1").is_some());
        assert!(v.get("exe_b64").is_none());
        assert_eq!(ExecDetails::from_value(&v).unwrap(), d);
    }
}
