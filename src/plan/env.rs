//! The sandbox process's environment: a fixed base (PATH, HOME, USER, ...), then what the agent
//! passes through from the host, then `--env-file`, `--pass-env` and `--env`, later ones winning.
//! Nothing else from the host environment gets in, so a stray secret in lasso's environment
//! (a cloud token, SSH_AUTH_SOCK) never reaches the agent unless named.

use super::error::EnvError;
use crate::agents::Agent;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The environment options of `lasso run/up`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvRequest {
    /// `--env K=V`, as given.
    pub set: Vec<String>,
    /// `--pass-env K`.
    pub pass: Vec<String>,
    /// `--env-file F`.
    pub files: Vec<PathBuf>,
}

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn valid_key(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Parses one env file's text. `origin` is its path, for line-numbered errors.
pub fn parse_env_file(
    origin: &Path,
    text: &str,
    host: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, EnvError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let err = |problem: String| EnvError::FileLine {
            path: origin.to_path_buf(),
            line: line_no,
            problem,
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim_end(), Some(v)),
            None => (line, None),
        };
        if !valid_key(key) {
            return Err(err(format!("{key:?} is not a valid variable name")));
        }
        let value = match value {
            Some(v) => unquote(v).map_err(err)?,
            None => host.get(key).cloned().ok_or_else(|| {
                err(format!(
                    "{key} has no value and is not set in lasso's environment"
                ))
            })?,
        };
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// Strips one pair of matching quotes; no escapes or interpolation, so what is written is what
/// the agent gets.
fn unquote(v: &str) -> Result<String, String> {
    for q in ['"', '\''] {
        if let Some(rest) = v.strip_prefix(q) {
            return match rest.strip_suffix(q) {
                Some(inner) => Ok(inner.to_string()),
                None => Err(format!("unterminated {q} quote")),
            };
        }
    }
    Ok(v.to_string())
}

/// Builds the final `KEY=VALUE` list.
pub fn compose(
    agent: &Agent,
    request: &EnvRequest,
    host: &BTreeMap<String, String>,
    path: &str,
    shell: &str,
    hostname: &str,
) -> Result<Vec<String>, EnvError> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in [
        ("PATH", path),
        ("HOME", "/home/agent"),
        ("USER", "agent"),
        ("LOGNAME", "agent"),
        ("SHELL", shell),
        ("HOSTNAME", hostname),
        ("TERM", "xterm-256color"),
        ("LASSO_SANDBOX", "1"),
    ] {
        env.insert(k.into(), v.into());
    }
    for (k, v) in host {
        if agent.passes_env(k) {
            env.insert(k.clone(), v.clone());
        }
    }
    for f in &request.files {
        let text = std::fs::read_to_string(f).map_err(|e| EnvError::FileUnreadable {
            path: f.clone(),
            reason: e.to_string(),
        })?;
        env.extend(parse_env_file(f, &text, host)?);
    }
    for k in &request.pass {
        if !valid_key(k) {
            return Err(EnvError::BadKey {
                origin: format!("--pass-env {k}"),
                key: k.clone(),
            });
        }
        let v = host
            .get(k)
            .ok_or_else(|| EnvError::NotSet { key: k.clone() })?;
        env.insert(k.clone(), v.clone());
    }
    for kv in &request.set {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| EnvError::MissingEquals { value: kv.clone() })?;
        if !valid_key(k) {
            return Err(EnvError::BadKey {
                origin: format!("--env {kv}"),
                key: k.to_string(),
            });
        }
        env.insert(k.to_string(), v.to_string());
    }
    Ok(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::find;

    fn host() -> BTreeMap<String, String> {
        [
            ("ANTHROPIC_API_KEY", "sk-test"),
            ("AWS_SECRET_ACCESS_KEY", "aws"),
            ("SSH_AUTH_SOCK", "/run/user/1000/ssh"),
            ("LC_ALL", "C.UTF-8"),
            ("CI_TOKEN", "tok"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn compose_for(agent: &str, req: &EnvRequest) -> Result<Vec<String>, EnvError> {
        compose(
            find(agent).unwrap(),
            req,
            &host(),
            DEFAULT_PATH,
            "/bin/sh",
            "lasso-x",
        )
    }

    #[test]
    fn host_secrets_not_named_stay_outside() {
        let env = compose_for("claude-code", &EnvRequest::default()).unwrap();
        assert!(env.contains(&"ANTHROPIC_API_KEY=sk-test".to_string()));
        assert!(env.contains(&"LC_ALL=C.UTF-8".to_string()));
        assert!(env.contains(&"HOME=/home/agent".to_string()));
        assert!(!env.iter().any(|e| e.starts_with("AWS_SECRET_ACCESS_KEY=")));
        assert!(!env.iter().any(|e| e.starts_with("SSH_AUTH_SOCK=")));
    }

    #[test]
    fn explicit_env_wins_over_pass_env_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("vars.env");
        std::fs::write(&f, "# c\nexport A=\"from file\"\nB='x=y'\nCI_TOKEN\n\n").unwrap();
        let req = EnvRequest {
            set: vec!["A=from flag".into()],
            pass: vec!["CI_TOKEN".into()],
            files: vec![f],
        };
        let env = compose_for("shell", &req).unwrap();
        assert!(env.contains(&"A=from flag".to_string()));
        assert!(env.contains(&"B=x=y".to_string()));
        assert!(env.contains(&"CI_TOKEN=tok".to_string()));
    }

    #[test]
    fn env_file_errors_name_file_and_line() {
        let p = Path::new("/p/vars.env");
        let e = parse_env_file(p, "OK=1\n\n9BAD=2\n", &host()).unwrap_err();
        assert!(e.to_string().starts_with("/p/vars.env:3:"), "{e}");
        let e = parse_env_file(p, "A=\"open\n", &host()).unwrap_err();
        assert!(e.to_string().contains(":1: unterminated"), "{e}");
        let e = parse_env_file(p, "NOT_SET_ANYWHERE\n", &host()).unwrap_err();
        assert!(
            e.to_string().contains(":1: NOT_SET_ANYWHERE has no value"),
            "{e}"
        );
    }

    #[test]
    fn bad_flags_are_refused_by_name() {
        let e = compose_for(
            "shell",
            &EnvRequest {
                set: vec!["NOEQUALS".into()],
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            e,
            EnvError::MissingEquals {
                value: "NOEQUALS".into()
            }
        );
        let e = compose_for(
            "shell",
            &EnvRequest {
                pass: vec!["MISSING_VAR".into()],
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("--pass-env MISSING_VAR"), "{e}");
        let e = compose_for(
            "shell",
            &EnvRequest {
                files: vec!["/nonexistent/x.env".into()],
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("--env-file /nonexistent/x.env"),
            "{e}"
        );
    }
}
