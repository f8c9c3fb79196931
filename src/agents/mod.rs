//! What each agent needs inside a sandbox: its binary, default arguments, the environment passed
//! through from the host, and its auth/config files in the user's home with the access each one
//! gets. This module is a registry of facts plus PATH lookup; it never mounts anything, and the
//! planner (`plan/`) turns these facts into OCI mounts.
//!
//! The rule behind every `ConfigMount`: no file that runs code on the host may be writable from
//! inside. Hooks, settings that name commands, plugins and MCP server definitions are read-only or
//! private copies; credentials, history and transcripts stay writable so that logging in and
//! resuming work inside the sandbox.

mod registry;

pub use registry::AGENTS;

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// One agent lasso knows how to run.
#[derive(Debug, PartialEq, Eq)]
pub struct Agent {
    /// The name used on the command line (`--agent claude-code`).
    pub name: &'static str,
    /// One line for `lasso agents`.
    pub description: &'static str,
    /// Binary names looked up on PATH, first match wins.
    pub binaries: &'static [&'static str],
    /// Arguments passed after the binary when the user gives no command.
    pub default_args: &'static [&'static str],
    /// Host environment variables passed through when set. An entry ending in `*` is a prefix.
    pub pass_env: &'static [&'static str],
    /// Files and directories under the user's home that the agent reads or writes.
    pub config: &'static [ConfigMount],
}

/// How the sandbox sees one path under the user's home.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigMount {
    /// Path relative to the home directory, e.g. `.claude/settings.json`.
    pub path: &'static str,
    pub kind: EntryKind,
    pub access: ConfigAccess,
    /// What happens when the path does not exist on the host.
    pub if_missing: IfMissing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigAccess {
    /// Read-only bind mount: the file can run code on the host (hooks, commands, plugins).
    ReadOnly,
    /// Writable bind mount. For a directory, `writable_entries` lists the top-level entries that
    /// stay writable when they exist; every other existing entry is bound read-only over itself,
    /// so unknown files (a status-line script, a locally installed copy of the agent) cannot be
    /// rewritten. `None` leaves the whole directory writable.
    ReadWrite {
        writable_entries: Option<&'static [&'static str]>,
    },
    /// A private copy in the sandbox's state directory is mounted writable; nothing written inside
    /// reaches the host file. For files the agent must write but that also name host commands.
    PrivateCopy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// Mount nothing.
    Skip,
    /// Create it on the host (a directory, or a file with this content) before the sandbox starts.
    /// Used for read-only paths: if they were skipped, the agent could create them inside and the
    /// host would run them next time.
    Create(&'static str),
}

/// The agent name that `auto_detect` falls back to.
pub const SHELL: &str = "shell";

/// `--agent NAME` named no known agent.
#[derive(Debug, thiserror::Error)]
#[error("unknown agent {name:?}; known agents: {known}{suggestion}")]
pub struct UnknownAgent {
    pub name: String,
    pub known: String,
    suggestion: String,
}

/// Where an agent's binary was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The PATH entry that matched, e.g. `/root/.npm-global/bin/claude`.
    pub on_path: PathBuf,
    /// The same file with every symlink resolved.
    pub real: PathBuf,
}

/// Looks an agent up by name. `auto` is not resolved here (see `auto_detect`).
pub fn find(name: &str) -> Result<&'static Agent, UnknownAgent> {
    if let Some(agent) = AGENTS.iter().find(|a| a.name == name) {
        return Ok(agent);
    }
    let known: Vec<&str> = AGENTS.iter().map(|a| a.name).collect();
    let closest = known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    Err(UnknownAgent {
        name: name.to_string(),
        known: format!("{} (or auto)", known.join(", ")),
        suggestion: closest
            .map(|(_, k)| format!("; did you mean {k:?}?"))
            .unwrap_or_default(),
    })
}

/// The first coding agent installed on `path` (a PATH value), in registry order; `shell` when none is.
pub fn auto_detect(path: &OsStr) -> &'static Agent {
    AGENTS
        .iter()
        .filter(|a| a.name != SHELL)
        .find(|a| a.installed_in(path).is_some())
        .unwrap_or_else(|| find(SHELL).expect("the registry always holds the shell agent"))
}

impl Agent {
    /// Resolves the binary on the current process's PATH.
    pub fn is_installed(&self) -> Option<Installed> {
        self.installed_in(&std::env::var_os("PATH").unwrap_or_default())
    }

    /// Resolves the binary on the given PATH value: the first executable regular file wins.
    pub fn installed_in(&self, path: &OsStr) -> Option<Installed> {
        self.binaries
            .iter()
            .find_map(|bin| which_in(bin, path))
            .and_then(|on_path| {
                let real = std::fs::canonicalize(&on_path).ok()?;
                Some(Installed { on_path, real })
            })
    }

    /// Whether the host variable `key` is passed through for this agent.
    pub fn passes_env(&self, key: &str) -> bool {
        self.pass_env.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => key.starts_with(prefix),
            None => *p == key,
        })
    }
}

/// Finds an executable regular file named `name` in the `:`-separated `path`.
pub fn which_in(name: &str, path: &OsStr) -> Option<PathBuf> {
    if name.contains('/') {
        return is_executable(Path::new(name)).then(|| PathBuf::from(name));
    }
    std::env::split_paths(path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests;
