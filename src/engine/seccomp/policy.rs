//! lasso's built-in seccomp policy for agent sandboxes (`seccomp/default.json`, embedded in the
//! binary), parsed once per process and then shared; its program comes from the checked-in
//! build where the architecture has one (`builtin`), else it is compiled once per process.

use std::sync::OnceLock;

use oci_spec::runtime::LinuxSeccomp;

use super::{builtin, compile, Filters, SeccompError};

pub(super) const DEFAULT_JSON: &str = include_str!("../../../seccomp/default.json");

static POLICY: OnceLock<LinuxSeccomp> = OnceLock::new();

/// The built-in policy as an OCI `LinuxSeccomp`, for a planned Spec.
pub fn default_policy() -> &'static LinuxSeccomp {
    POLICY.get_or_init(|| {
        // The file is part of the source tree and covered by tests: a parse error is a bug.
        serde_json::from_str(DEFAULT_JSON).expect("seccomp/default.json is valid OCI seccomp JSON")
    })
}

/// The built-in policy compiled for this architecture: the checked-in program when it was
/// generated from this very policy text, else compiled on first use.
pub fn default_filters() -> Result<&'static Filters, SeccompError> {
    static FILTERS: OnceLock<Filters> = OnceLock::new();
    if let Some(f) = FILTERS.get() {
        return Ok(f);
    }
    let f = match builtin::checked_in(DEFAULT_JSON) {
        Some(f) => f,
        None => compile(default_policy())?,
    };
    Ok(FILTERS.get_or_init(|| f))
}

/// `compile`, answered by `default_filters` when `spec` is the built-in policy as this process
/// parsed it (a Spec planned by lasso in this process carries a copy of it). Compared field by
/// field, so any change to the rules is compiled from them. A process that never parsed the
/// built-in policy (`lasso-runc` with a client's bundle) compiles as before, without parsing
/// it just to compare.
pub fn compile_or_builtin(spec: &LinuxSeccomp) -> Result<Filters, SeccompError> {
    match POLICY.get() {
        Some(builtin) if builtin == spec => default_filters().cloned(),
        _ => compile(spec),
    }
}
