//! Any argv the kernel could exec (NUL-separated bytes, not necessarily UTF-8): no panic.
#![no_main]

use lasso::policy;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn profile() -> &'static policy::ResolvedProfile {
    static P: OnceLock<policy::ResolvedProfile> = OnceLock::new();
    P.get_or_init(|| policy::load("standard", &lasso::paths::Dirs::system()).expect("built-in"))
}

fuzz_target!(|data: &[u8]| {
    let argv: Vec<Vec<u8>> = data.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
    let _ = policy::decide_argv(profile(), &argv);
});
