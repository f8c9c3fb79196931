//! lasso's built-in seccomp policy for agent sandboxes (`seccomp/default.json`, embedded in the
//! binary), parsed and compiled once per process and then shared.

use std::sync::OnceLock;

use oci_spec::runtime::LinuxSeccomp;

use super::{compile, Filters, SeccompError};

const DEFAULT_JSON: &str = include_str!("../../../seccomp/default.json");

/// The built-in policy as an OCI `LinuxSeccomp`, for a planned Spec.
pub fn default_policy() -> &'static LinuxSeccomp {
    static POLICY: OnceLock<LinuxSeccomp> = OnceLock::new();
    POLICY.get_or_init(|| {
        // The file is part of the source tree and covered by tests: a parse error is a bug.
        serde_json::from_str(DEFAULT_JSON).expect("seccomp/default.json is valid OCI seccomp JSON")
    })
}

/// The built-in policy compiled for this architecture, compiled on first use.
pub fn default_filters() -> Result<&'static Filters, SeccompError> {
    static FILTERS: OnceLock<Filters> = OnceLock::new();
    if let Some(f) = FILTERS.get() {
        return Ok(f);
    }
    let f = compile(default_policy())?;
    Ok(FILTERS.get_or_init(|| f))
}
