//! Any bytes as a shell command string (`lasso why`, `lasso exec`): no panic, no stack overflow,
//! and a verdict that is never `Undecidable` at the top level.
#![no_main]

use lasso::policy::{self, Outcome};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn profiles() -> &'static [policy::ResolvedProfile] {
    static P: OnceLock<Vec<policy::ResolvedProfile>> = OnceLock::new();
    P.get_or_init(|| {
        let dirs = lasso::paths::Dirs::system();
        ["standard", "strict"].iter().map(|n| policy::load(n, &dirs).expect("built-in")).collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    for p in profiles() {
        let v = policy::decide_shell(p, s);
        assert_ne!(v.outcome, Outcome::Undecidable);
    }
});
