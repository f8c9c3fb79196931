//! lasso's confinement beyond OCI, carried inside the Spec so the engine keeps one contract:
//! the planner's Landlock rules travel in the `run.lasso.landlock` annotation (container paths,
//! JSON) and are enforced by init (and by every `exec`'d process) after `start`, just before the
//! shared hardening tail. A Spec without the annotation runs exactly as runc would run it.
//! Also says which IDs init takes in its user namespace: lasso's sandboxes map only the agent
//! (1000 -> the user), so init cannot become uid 0 there.
//! Owns only the translation of the annotation; the ruleset itself is `engine::landlock`'s.

use super::landlock::{self, LandlockRules};
use oci_spec::runtime::Spec;
use std::path::PathBuf;

/// The annotation holding the Landlock rules.
pub const LANDLOCK_ANNOTATION: &str = "run.lasso.landlock";

#[derive(serde::Serialize, serde::Deserialize)]
struct Wire {
    read: Vec<PathBuf>,
    read_write: Vec<PathBuf>,
    execute: Vec<PathBuf>,
}

/// The annotation asking for lasso's seccomp baseline on top of the Spec's own policy
/// (value `baseline`); set by `lasso-runc` for a `run.lasso.profile` container.
pub const SECCOMP_ANNOTATION: &str = "run.lasso.seccomp";

/// Whether the Spec asks for the seccomp baseline beside its own policy.
pub fn wants_baseline(spec: &Spec) -> bool {
    spec.annotations()
        .as_ref()
        .and_then(|a| a.get(SECCOMP_ANNOTATION))
        .is_some_and(|v| v == "baseline")
}

/// Encodes rules for the annotation.
pub fn encode_landlock(rules: &LandlockRules) -> String {
    serde_json::to_string(&Wire {
        read: rules.read.clone(),
        read_write: rules.read_write.clone(),
        execute: rules.execute.clone(),
    })
    .unwrap_or_default()
}

/// The rules the Spec asks for, if any.
pub fn landlock_rules(spec: &Spec) -> Result<Option<LandlockRules>, String> {
    let Some(text) = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(LANDLOCK_ANNOTATION))
    else {
        return Ok(None);
    };
    let w: Wire =
        serde_json::from_str(text).map_err(|e| format!("annotation {LANDLOCK_ANNOTATION}: {e}"))?;
    Ok(Some(LandlockRules {
        read: w.read,
        read_write: w.read_write,
        execute: w.execute,
    }))
}

/// The Spec's ruleset built (its paths opened in the calling process's current root) but not
/// enforced: nothing is restricted until `enforce_prepared`. Lets init do this work while it
/// waits for `start` instead of after it.
pub fn prepare(spec: &Spec) -> Result<Option<landlock::PreparedLandlock>, String> {
    match landlock_rules(spec)? {
        Some(r) => landlock::prepare(&r).map(Some).map_err(|e| e.to_string()),
        None => Ok(None),
    }
}

/// Enforces a ruleset from `prepare` on the calling thread (sets no_new_privs). Runs after
/// the exec fifo was written: the fifo lives outside every rule and would be refused.
pub fn enforce_prepared(prepared: Option<landlock::PreparedLandlock>) -> Result<(), String> {
    if let Some(p) = prepared {
        p.restrict_self().map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The IDs init takes in its new user namespace while it builds the root: 0 when the Spec maps
/// container root, else the first mapped IDs. Files and mounts made by an unmapped ID fail with
/// EOVERFLOW, and since container root is not mapped the capability-clearing rule of
/// setuid(2) (leaving uid 0) does not apply: init keeps the namespace's capabilities until the
/// hardening tail drops them.
pub fn init_ids(spec: &Spec) -> (u32, u32) {
    let first = |m: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| -> u32 {
        match m {
            None => 0,
            Some(m) if m.is_empty() || m.iter().any(|e| e.container_id() == 0) => 0,
            Some(m) => m[0].container_id(),
        }
    };
    let linux = spec.linux().as_ref();
    (
        first(linux.and_then(|l| l.uid_mappings().as_ref())),
        first(linux.and_then(|l| l.gid_mappings().as_ref())),
    )
}
