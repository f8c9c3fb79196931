//! Registry credentials from the files other tools already keep: containers' `auth.json`
//! (`$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json`)
//! and Docker's `~/.docker/config.json` (`$DOCKER_CONFIG`). Only inline `auth` entries are read;
//! credential helpers are not run.

use base64::Engine as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// The files searched, in order; `explicit` (from `--authfile`) comes first.
pub fn auth_files(explicit: Option<&Path>) -> Vec<PathBuf> {
    let env = |k: &str| std::env::var_os(k).map(PathBuf::from);
    let home = env("HOME").unwrap_or_else(|| PathBuf::from("/"));
    let mut v: Vec<PathBuf> = explicit.map(Path::to_path_buf).into_iter().collect();
    v.extend(env("REGISTRY_AUTH_FILE"));
    v.extend(env("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")));
    v.push(
        env("XDG_CONFIG_HOME")
            .unwrap_or_else(|| home.join(".config"))
            .join("containers/auth.json"),
    );
    v.push(
        env("DOCKER_CONFIG")
            .unwrap_or_else(|| home.join(".docker"))
            .join("config.json"),
    );
    v
}

/// Credentials for `host` from the first file that has an entry for it.
pub fn lookup(host: &str, files: &[PathBuf]) -> Option<Credentials> {
    files.iter().find_map(|f| {
        let data = std::fs::read(f).ok()?;
        from_json(host, &data)
    })
}

fn from_json(host: &str, data: &[u8]) -> Option<Credentials> {
    let v: serde_json::Value = serde_json::from_slice(data).ok()?;
    let auths = v.get("auths")?.as_object()?;
    auths.iter().find_map(|(key, entry)| {
        // Keys may be `host`, `host/repo` (podman) or `https://host/v1/` (old docker).
        let k = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let k_host = k.split('/').next().unwrap_or(k);
        if k_host != host {
            return None;
        }
        let raw = entry.get("auth")?.as_str()?;
        let decoded = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (u, p) = text.split_once(':')?;
        Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_match_the_host_only() {
        let json = br#"{"auths":{"https://reg.example:5000/v1/":{"auth":"dTpw"},"other.example":{"auth":"eDp5"}}}"#;
        assert_eq!(
            from_json("reg.example:5000", json),
            Some(Credentials {
                username: "u".into(),
                password: "p".into()
            })
        );
        assert_eq!(from_json("reg.example", json), None);
    }
}
