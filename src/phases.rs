//! Start-up phase marks for `benches/phases.py`: with `LASSO_PHASES` set in the environment,
//! each mark writes `PHASE <µs on CLOCK_MONOTONIC> <pid> <name>` to stderr, from the runtime, its
//! threads and init alike (one `write(2)` per line, so lines do not interleave). Without the
//! variable a mark is one load of a flag. The bench turns the marks of many runs into medians
//! per phase: where a sandbox's start-up time goes on the wall clock, not only on the CPUs.

use std::sync::OnceLock;

/// Writes the mark `name` when `LASSO_PHASES` is set.
pub fn mark(name: &str) {
    static ON: OnceLock<bool> = OnceLock::new();
    if !*ON.get_or_init(|| std::env::var_os("LASSO_PHASES").is_some()) {
        return;
    }
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000)
        .unwrap_or(0);
    let line = format!("PHASE {now} {} {name}\n", std::process::id());
    // Best effort: a closed stderr loses the mark, nothing else.
    let _ = nix::unistd::write(std::io::stderr(), line.as_bytes());
}
