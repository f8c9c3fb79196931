//! Security profiles and the command policy: which commands may run, and why. Pure code: it reads
//! profile files and nothing else (no processes, no kernel), so `lasso why`, the run-time exec
//! gate and the dashboard all get the same answer from the same functions.
//!
//! - `load` finds profiles (built-in, user, file) and resolves `extends`; `merge` applies one
//!   profile over its parent; `raw` is the file format and `check` the value checks.
//! - `decide` answers for an argv or a shell string, using `shell` (the grammar), `words`
//!   (quote removal and expansion), `unwrap` (programs that run programs) and `args` (flags).

mod args;
/// The profiles' command-name match (`*`, `?`), also used for the Landlock execute floor.
pub use args::glob as command_glob;
mod check;
mod decide;
mod load;
mod merge;
pub mod net;
mod profile;
mod raw;
mod shell;
pub mod snapshot;
mod unwrap;
mod words;

pub use check::ECOSYSTEMS;
pub use decide::{decide_argv, decide_shell, Decision, Outcome, Verdict};
pub use load::{
    load, load_digested, resolve, resolve_digested, resolve_toml, user_profile_names, ProfileError,
    ProfileSource, BUILTINS,
};
pub use profile::*;

/// Limits on hostile shell input, for callers that report them.
pub mod limits {
    pub use super::shell::{MAX_COMMANDS, MAX_DEPTH, MAX_INPUT, MAX_NESTING};
}
