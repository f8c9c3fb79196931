//! Any bytes as a profile file: an error naming a line and column, or a resolved profile; never a
//! panic. `extends` may name built-ins; user profiles resolve in a directory that does not exist.
#![no_main]

use lasso::paths::Dirs;
use lasso::policy::{self, ProfileError, ProfileSource};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let none = PathBuf::from("/nonexistent/lasso-fuzz");
    let dirs = Dirs { config: none.clone(), state: none.clone(), data: none.clone(), runtime: none.clone(), audit_logs: none };
    let src = ProfileSource { origin: "fuzz.toml".into(), text: text.to_string(), dir: None, default_name: "fuzz".into() };
    match policy::resolve(src, &dirs) {
        Ok(p) => {
            let _ = p.digest();
        }
        Err(ProfileError::Invalid { line, column, .. }) => assert!(line >= 1 && column >= 1),
        Err(_) => {}
    }
});
