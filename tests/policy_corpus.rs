//! The table-driven corpus: every command string in `tests/corpus/commands.txt` with the verdict
//! each built-in profile must give, including bypass attempts (wrappers, interpreters' `-c`,
//! quoting tricks, multi-call binaries, reordered and clustered flags).

use lasso::paths::Dirs;
use lasso::policy::{self, ResolvedProfile};

const PROFILES: [&str; 5] = ["standard", "open", "offline", "strict", "evaluation"];

fn profiles() -> Vec<ResolvedProfile> {
    let dirs = Dirs::system();
    PROFILES
        .iter()
        .map(|p| policy::load(p, &dirs).expect("built-in loads"))
        .collect()
}

#[test]
fn corpus_verdicts_match_for_every_builtin_profile() {
    let text = include_str!("corpus/commands.txt");
    let profiles = profiles();
    let mut failures = Vec::new();
    let mut cases = 0;
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (expect, command) = line.split_at(5);
        let command = command
            .strip_prefix("  ")
            .expect("two spaces after the verdicts")
            .replace("<NL>", "\n");
        cases += 1;
        for (i, p) in profiles.iter().enumerate() {
            let want = match expect.as_bytes()[i] {
                b'A' => true,
                b'B' => false,
                other => panic!("line {}: bad verdict letter {:?}", n + 1, other as char),
            };
            let v = policy::decide_shell(p, &command);
            if v.allowed() != want {
                let why: Vec<String> = v
                    .decisions
                    .iter()
                    .map(|d| format!("{:?} {}: {}", d.outcome, d.program, d.reason))
                    .collect();
                failures.push(format!(
                    "line {}: {:?} under {}: expected {}, got {}\n    {}",
                    n + 1,
                    command,
                    PROFILES[i],
                    if want { "allowed" } else { "blocked" },
                    if want { "blocked" } else { "allowed" },
                    why.join("\n    ")
                ));
            }
        }
    }
    assert!(
        cases >= 300,
        "the corpus must hold at least 300 command strings, has {cases}"
    );
    assert!(
        failures.is_empty(),
        "{} corpus mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
