//! The built-in profiles already resolved: for each built-in, the `ResolvedProfile` its TOML
//! chain resolves to and that profile's digest, as JSON embedded in the binary
//! (`profiles/resolved/NAME.json`). Parsing the TOML of a built-in chain (`offline` is ~8 KB
//! with `standard`) took ~0.3 ms of every `lasso run`; reading its snapshot is a fraction of
//! that. It owns the snapshot files' format and the check that a snapshot still matches the
//! TOML it was made from; it never decides what a profile means (that is `load` and `merge`).
//!
//! A snapshot is used only when it provably equals what resolving the TOML would give: it names
//! every source of its chain with the SHA-256 of the text it was made from, and each must equal
//! the SHA-256 of the text embedded in this binary. A stale snapshot (a profile edited without
//! regenerating) is ignored and the TOML is parsed, so it can cost time, never correctness; the
//! test `builtin_snapshots_match_their_toml` fails until it is regenerated (`LASSO_REGENERATE=1`).
//! The snapshots are constants of the binary: nothing is read from disk, so nothing outside
//! the binary can change a built-in's meaning.

use super::load::{ProfileSource, BUILTINS};
use super::profile::ResolvedProfile;
use sha2::{Digest, Sha256};

/// The snapshot of each built-in, in `BUILTINS` order.
const SNAPSHOTS: &[(&str, &str)] = &[
    (
        "standard",
        include_str!("../../profiles/resolved/standard.json"),
    ),
    ("open", include_str!("../../profiles/resolved/open.json")),
    (
        "offline",
        include_str!("../../profiles/resolved/offline.json"),
    ),
    (
        "strict",
        include_str!("../../profiles/resolved/strict.json"),
    ),
    (
        "evaluation",
        include_str!("../../profiles/resolved/evaluation.json"),
    ),
];

/// One snapshot file.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// Each source of the chain, root first: its origin (`builtin:NAME`) and the SHA-256 (hex)
    /// of the text the snapshot was made from.
    pub sources: Vec<(String, String)>,
    /// `profile.digest()`, so that a run need not serialise the profile again to get it.
    pub digest: String,
    pub profile: ResolvedProfile,
}

/// The resolved profile and its digest for `leaf` when `leaf` is a built-in (as
/// `ProfileSource::builtin` makes it) whose snapshot matches the TOML embedded in this binary;
/// `None` otherwise (the caller resolves the TOML).
pub fn lookup(leaf: &ProfileSource) -> Option<(ResolvedProfile, String)> {
    let name = leaf.origin.strip_prefix("builtin:")?;
    // A file is always given a directory, a built-in never: a file named `builtin:x` is a file.
    if leaf.dir.is_some() || leaf.default_name != name {
        return None;
    }
    let (_, text) = SNAPSHOTS.iter().find(|(n, _)| *n == name)?;
    let snap: Snapshot = serde_json::from_str(text).ok()?;
    let leaf_hash = sha256_hex(&leaf.text);
    let current = snap.sources.iter().all(|(origin, hash)| {
        if *origin == leaf.origin {
            return *hash == leaf_hash;
        }
        let builtin = origin.strip_prefix("builtin:");
        BUILTINS
            .iter()
            .find(|(n, _)| Some(*n) == builtin)
            .is_some_and(|(_, t)| sha256_hex(t) == *hash)
    });
    // The chain the snapshot was resolved through is the one it names, leaf last.
    let chain_matches = snap.profile.chain.len() == snap.sources.len()
        && snap
            .profile
            .chain
            .iter()
            .zip(&snap.sources)
            .all(|(c, (o, _))| c == o)
        && snap.profile.chain.last() == Some(&leaf.origin);
    (current && chain_matches).then_some((snap.profile, snap.digest))
}

/// The snapshot of a profile resolved from its TOML (what `LASSO_REGENERATE=1` writes).
pub fn make(profile: &ResolvedProfile) -> Snapshot {
    let sources = profile
        .chain
        .iter()
        .map(|origin| {
            let name = origin.strip_prefix("builtin:").unwrap_or(origin);
            let text = BUILTINS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| *t)
                .unwrap_or_default();
            (origin.clone(), sha256_hex(text))
        })
        .collect();
    Snapshot {
        sources,
        digest: profile.digest(),
        profile: profile.clone(),
    }
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}
