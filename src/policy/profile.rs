//! The resolved profile: what a sandbox is allowed to do once `extends` chains are merged and every
//! value is checked. Owns the typed sections and the digest the audit genesis records; it knows
//! nothing about files or TOML (that is `load`), and nothing about commands' meaning (`decide`).

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// Where a rule came from: the profile's origin (`builtin:standard` or a file path) and the line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RuleRef {
    pub origin: String,
    pub line: u32,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.origin, self.line)
    }
}

/// A profile after `extends` is resolved and every value validated. Only this type reaches the
/// decision engine, the planner and the audit genesis.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ResolvedProfile {
    pub name: String,
    pub description: String,
    /// Origins from the root ancestor to this profile, e.g. `["builtin:strict", "/p/team.toml"]`.
    pub chain: Vec<String>,
    pub commands: CommandPolicy,
    pub network: NetworkPolicy,
    pub filesystem: FilesystemPolicy,
    pub resources: Resources,
    pub audit: AuditPolicy,
}

impl ResolvedProfile {
    /// sha256 (hex) of the canonical JSON serialization: fields in declaration order, maps sorted,
    /// lists in resolved order. Rule origins and lines are part of it, so the audit log records
    /// exactly which files produced the policy.
    pub fn digest(&self) -> String {
        // Serializing plain structs, Vecs and BTreeMaps to JSON cannot fail.
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandMode {
    /// Everything runs except what `blocked` / `blocked_args` name.
    Blocklist,
    /// Only what `allowed` names runs (and `allowed_args` narrows it further).
    Allowlist,
}

/// One command-name rule: a name or glob (`mkfs*`), why it exists, and where it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CommandRule {
    pub name: String,
    pub category: String,
    pub reason: String,
    pub source: RuleRef,
}

/// One argument pattern for a command, e.g. `push --force` for git.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ArgRule {
    pub pattern: String,
    pub reason: String,
    pub source: RuleRef,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CommandPolicy {
    pub mode: CommandMode,
    pub mode_source: Option<RuleRef>,
    pub blocked: Vec<CommandRule>,
    pub allowed: Vec<CommandRule>,
    /// Command name -> patterns that block it.
    pub blocked_args: BTreeMap<String, Vec<ArgRule>>,
    /// Command name -> patterns of which at least one must match (allowlist narrowing).
    pub allowed_args: BTreeMap<String, Vec<ArgRule>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    None,
    Allowlist,
    Full,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct NetworkPolicy {
    pub mode: NetworkMode,
    /// Exact names and `*.` wildcards.
    pub allowed_domains: Vec<String>,
    pub allowed_ports: Vec<u16>,
    pub blocked_ports: Vec<u16>,
    pub allowed_cidrs: Vec<String>,
    pub blocked_cidrs: Vec<String>,
    /// Package ecosystems (`npm`, `pypi`, `crates`, ...) whose hosts are learned at run time from
    /// the user's tool configuration; never host names.
    pub registries: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceAccess {
    Rw,
    Ro,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FilesystemPolicy {
    pub workspace: WorkspaceAccess,
    pub read_only: Vec<String>,
    pub writable: Vec<String>,
    pub hidden: Vec<String>,
    /// The sandbox's root: `None` is the host view; `Some("prebuilt")` the agent's image from
    /// `lasso prebuild` when one is in the store (else the host view, with a note); any other
    /// value names an image in lasso's store, which must exist.
    pub image: Option<String>,
}

/// Resource limits; `None` means no limit is set by the profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Resources {
    pub memory_bytes: Option<u64>,
    /// CPU quota in thousandths of a CPU (1500 = 1.5 CPUs); integers keep the digest canonical.
    pub cpu_millis: Option<u32>,
    pub pids: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditRecord {
    /// Every decision, allowed or not.
    All,
    /// Only blocked and undecidable decisions.
    Blocked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AuditPolicy {
    pub enabled: bool,
    pub record: AuditRecord,
}
