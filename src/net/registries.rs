//! Host names of the package registries a profile names by ecosystem (`registries = ["npm"]`),
//! learned from the user's own tool configuration at run time, so a profile never spells a host
//! and a user's mirror is what gets allowed.
//!
//! Reads configuration files and environment variables only (no tool is started and nothing is
//! looked up): npm's `.npmrc` (`registry=`, `@scope:registry=`) and `NPM_CONFIG_REGISTRY`; pip's
//! `pip.conf` (`index-url`, `extra-index-url`) and `PIP_INDEX_URL` / `PIP_EXTRA_INDEX_URL`; cargo's
//! `config.toml` (`[source.*]` `registry`, `[registries.*]` `index`) under `CARGO_HOME`; `GOPROXY`;
//! apt's `sources.list`, `sources.list.d/*.list` and deb822 `*.sources`. When a tool is left at
//! its built-in default nothing is found: lasso does not carry registry host names, so such an
//! ecosystem adds no host until the user's configuration names one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where configuration is read from; [`Sources::current`] is the real user's, tests make up one.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub home: Option<PathBuf>,
    /// The directory standing for `/etc`.
    pub etc: PathBuf,
    pub env: HashMap<String, String>,
}

impl Sources {
    pub fn current() -> Self {
        Sources {
            home: std::env::var_os("HOME").map(PathBuf::from),
            etc: PathBuf::from("/etc"),
            env: std::env::vars().collect(),
        }
    }

    fn var(&self, k: &str) -> Option<&str> {
        self.env
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    fn home_file(&self, rel: &str) -> Option<PathBuf> {
        self.home.as_ref().map(|h| h.join(rel))
    }
}

/// The registry hosts of `ecosystem` in the current user's configuration.
pub fn discover(ecosystem: &str) -> Vec<String> {
    discover_in(ecosystem, &Sources::current())
}

/// The registry hosts of `ecosystem` as `src` configures them, lower-case, without duplicates.
pub fn discover_in(ecosystem: &str, src: &Sources) -> Vec<String> {
    let urls = match ecosystem {
        "npm" => npm(src),
        "pypi" => pip(src),
        "crates" => cargo(src),
        "go" => go(src),
        "debian" | "ubuntu" => apt(src),
        _ => Vec::new(),
    };
    let mut hosts: Vec<String> = Vec::new();
    for u in urls {
        if let Some(h) = host_of(&u) {
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
    }
    hosts
}

/// The host of a URL such as `sparse+https://user@mirror.example:8443/path`.
pub fn host_of(url: &str) -> Option<String> {
    let url = url.trim().trim_matches('"').trim_matches('\'');
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// `key = value` lines of an ini-like file whose key passes `want` (comments with `#` or `;`).
fn ini_values(text: &str, want: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut continuing = false;
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') || t.starts_with('[') {
            continuing = false;
            continue;
        }
        // pip allows `extra-index-url =` followed by indented URLs on the next lines.
        if continuing && line.starts_with(char::is_whitespace) && !t.contains('=') {
            out.push(t.to_string());
            continue;
        }
        continuing = false;
        if let Some((k, v)) = t.split_once('=') {
            if want(k.trim()) {
                out.extend(v.split_whitespace().map(str::to_string));
                continuing = true;
            }
        }
    }
    out
}

fn npm(src: &Sources) -> Vec<String> {
    let mut urls: Vec<String> = ["NPM_CONFIG_REGISTRY", "npm_config_registry"]
        .iter()
        .filter_map(|k| src.var(k).map(str::to_string))
        .collect();
    let files = [src.home_file(".npmrc"), Some(src.etc.join("npmrc"))];
    for f in files.into_iter().flatten() {
        urls.extend(ini_values(&read(&f), |k| {
            k == "registry" || k.ends_with(":registry")
        }));
    }
    urls
}

fn pip(src: &Sources) -> Vec<String> {
    let mut urls: Vec<String> = ["PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"]
        .iter()
        .filter_map(|k| src.var(k))
        .flat_map(|v| v.split_whitespace().map(str::to_string))
        .collect();
    let mut files = vec![src.etc.join("pip.conf")];
    if let Some(x) = src.var("XDG_CONFIG_HOME") {
        files.push(Path::new(x).join("pip/pip.conf"));
    }
    files.extend(src.home_file(".config/pip/pip.conf"));
    files.extend(src.home_file(".pip/pip.conf"));
    if let Some(f) = src.var("PIP_CONFIG_FILE") {
        files.push(PathBuf::from(f));
    }
    for f in files {
        urls.extend(ini_values(&read(&f), |k| {
            k == "index-url" || k == "extra-index-url"
        }));
    }
    urls
}

fn cargo(src: &Sources) -> Vec<String> {
    let home = match src.var("CARGO_HOME") {
        Some(h) => Some(PathBuf::from(h)),
        None => src.home_file(".cargo"),
    };
    let Some(home) = home else {
        return Vec::new();
    };
    let mut urls = Vec::new();
    for name in ["config.toml", "config"] {
        let Ok(doc) = read(&home.join(name)).parse::<toml::Table>() else {
            continue;
        };
        let tables = |key: &str| {
            doc.get(key)
                .and_then(|v| v.as_table())
                .map(|t| t.values().filter_map(|v| v.as_table()).cloned().collect())
                .unwrap_or_else(Vec::new)
        };
        for t in tables("source") {
            urls.extend(t.get("registry").and_then(|v| v.as_str()).map(String::from));
        }
        for t in tables("registries") {
            urls.extend(t.get("index").and_then(|v| v.as_str()).map(String::from));
        }
    }
    urls
}

fn go(src: &Sources) -> Vec<String> {
    src.var("GOPROXY")
        .map(|v| {
            v.split([',', '|'])
                .map(str::trim)
                .filter(|p| *p != "direct" && *p != "off")
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn apt(src: &Sources) -> Vec<String> {
    let apt = src.etc.join("apt");
    let mut files = vec![apt.join("sources.list")];
    if let Ok(rd) = std::fs::read_dir(apt.join("sources.list.d")) {
        let mut more: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    let mut urls = Vec::new();
    for f in files {
        let text = read(&f);
        if f.extension().is_some_and(|e| e == "sources") {
            for line in text.lines() {
                if let Some(v) = line.trim().strip_prefix("URIs:") {
                    urls.extend(v.split_whitespace().map(str::to_string));
                }
            }
        } else if f.extension().is_some_and(|e| e == "list") {
            for line in text.lines() {
                let mut w = line.split_whitespace();
                if !matches!(w.next(), Some("deb") | Some("deb-src")) {
                    continue;
                }
                // `deb [arch=amd64 signed-by=...] URL suite ...`: skip the options.
                let url = w.find(|x| x.contains("://"));
                urls.extend(url.map(str::to_string));
            }
        }
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake() -> (tempfile::TempDir, Sources) {
        let d = tempfile::tempdir().unwrap();
        let home = d.path().join("home");
        let etc = d.path().join("etc");
        std::fs::create_dir_all(home.join(".cargo")).unwrap();
        std::fs::create_dir_all(home.join(".config/pip")).unwrap();
        std::fs::create_dir_all(etc.join("apt/sources.list.d")).unwrap();
        let src = Sources {
            home: Some(home),
            etc,
            env: HashMap::new(),
        };
        (d, src)
    }

    fn write(p: PathBuf, text: &str) {
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn npm_registry_and_scoped_registries_come_from_npmrc() {
        let (_d, mut src) = fake();
        let home = src.home.clone().unwrap();
        write(
            home.join(".npmrc"),
            "# mirror\nregistry=https://npm-mirror.example.test/\n@corp:registry=https://user:pw@corp.example.test:4873/npm/\n//corp.example.test/:_authToken=x\n",
        );
        src.env.insert(
            "NPM_CONFIG_REGISTRY".into(),
            "http://env.example.test".into(),
        );
        assert_eq!(
            discover_in("npm", &src),
            vec![
                "env.example.test",
                "npm-mirror.example.test",
                "corp.example.test"
            ]
        );
    }

    #[test]
    fn pip_index_urls_come_from_pip_conf_and_the_environment() {
        let (_d, mut src) = fake();
        let home = src.home.clone().unwrap();
        write(
            home.join(".config/pip/pip.conf"),
            "[global]\nindex-url = https://pypi-mirror.example.test/simple\nextra-index-url =\n    https://extra1.example.test/simple\n    https://extra2.example.test/simple\ntimeout = 3\n",
        );
        src.env.insert(
            "PIP_EXTRA_INDEX_URL".into(),
            "https://a.example.test/ https://b.example.test/".into(),
        );
        assert_eq!(
            discover_in("pypi", &src),
            vec![
                "a.example.test",
                "b.example.test",
                "pypi-mirror.example.test",
                "extra1.example.test",
                "extra2.example.test"
            ]
        );
    }

    #[test]
    fn cargo_sources_registries_goproxy_and_apt_lists() {
        let (_d, mut src) = fake();
        let home = src.home.clone().unwrap();
        write(
            home.join(".cargo/config.toml"),
            "[source.mirror]\nregistry = \"sparse+https://crates-mirror.example.test/index/\"\n[source.std]\nreplace-with = \"mirror\"\n[registries.corp]\nindex = \"https://git.corp.example.test/index.git\"\n",
        );
        assert_eq!(
            discover_in("crates", &src),
            vec!["crates-mirror.example.test", "git.corp.example.test"]
        );
        src.env.insert(
            "GOPROXY".into(),
            "https://goproxy.example.test,https://fallback.example.test|direct".into(),
        );
        assert_eq!(
            discover_in("go", &src),
            vec!["goproxy.example.test", "fallback.example.test"]
        );
        write(
            src.etc.join("apt/sources.list"),
            "deb [signed-by=/k.gpg] http://deb.example.test/debian bookworm main\n# deb http://old.example.test/ x\n",
        );
        write(
            src.etc.join("apt/sources.list.d/more.sources"),
            "Types: deb\nURIs: https://sec.example.test/debian-security\nSuites: bookworm-security\n",
        );
        assert_eq!(
            discover_in("debian", &src),
            vec!["deb.example.test", "sec.example.test"]
        );
    }

    #[test]
    fn an_unconfigured_tool_adds_no_host() {
        let (_d, src) = fake();
        for e in ["npm", "pypi", "crates", "go", "debian", "maven"] {
            assert!(discover_in(e, &src).is_empty(), "{e}");
        }
    }
}
