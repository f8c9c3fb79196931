//! Matches argument patterns (`push --force`, `clean -f`, `-exec`) against an argv the way the
//! tool itself reads its flags: in any order, short flags clustered (`-xdf` holds `-f`),
//! `--opt=value` and `--opt value`, unique abbreviations of long options (`--forc`), and `--`
//! ending the options. Owns the little per-tool knowledge this needs (which options take a
//! separate value, which tools spell long options with one dash).

use super::words::Arg;

/// Whether a pattern matches, or cannot be known because an argument is only known at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    Yes,
    No,
    Unknown,
}

/// Tools whose long options start with a single dash (`find -exec`, `go test -run`): there a
/// token like `-exec` is one option, not a cluster of `-e -x -e -c`.
const SINGLE_DASH_LONG: &[&str] = &["find", "go", "java", "javac", "gcc", "cc", "clang", "tree"];

/// Options that consume the next argument as their value (so it is not a positional word).
fn value_options(tool: &str) -> &'static [&'static str] {
    match tool {
        "git" => &[
            "-C",
            "-c",
            "--git-dir",
            "--work-tree",
            "--namespace",
            "--config-env",
            "--super-prefix",
        ],
        _ => &[],
    }
}

/// Glob match with `*` and `?`, as used for command names (`mkfs*`) and positional patterns.
pub fn glob(pattern: &str, text: &str) -> bool {
    // Most rules are plain names; comparing them directly keeps a decision allocation-free.
    if !pattern.contains(['*', '?']) {
        return pattern == text;
    }
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// An argv (without the program name) split into flags and positional words.
struct Split<'a> {
    flags: Vec<&'a str>,
    positionals: Vec<&'a str>,
    dynamic: bool,
    /// A run-time word came before the first positional, so even the subcommand is unknown.
    dynamic_first: bool,
}

fn split<'a>(tool: &str, args: &'a [Arg]) -> Split<'a> {
    let values = value_options(tool);
    let mut s = Split {
        flags: Vec::new(),
        positionals: Vec::new(),
        dynamic: false,
        dynamic_first: false,
    };
    let mut options_end = false;
    let mut skip_value = false;
    for a in args {
        let Some(t) = a.lit() else {
            s.dynamic = true;
            s.dynamic_first |= s.positionals.is_empty();
            skip_value = false;
            continue;
        };
        if skip_value {
            skip_value = false;
            continue;
        }
        if !options_end && t == "--" {
            options_end = true;
        } else if !options_end && t.len() > 1 && t.starts_with('-') {
            s.flags.push(t);
            // git's global options come before the subcommand only.
            if values.contains(&t) && s.positionals.is_empty() {
                skip_value = true;
            }
        } else {
            s.positionals.push(t);
        }
    }
    s
}

fn flag_matches(tool: &str, pattern: &str, token: &str) -> bool {
    if let Some(long) = pattern.strip_prefix("--") {
        let Some(name) = token.strip_prefix("--") else {
            return false;
        };
        let name = name.split_once('=').map_or(name, |(n, _)| n);
        // GNU getopt_long, git and argparse accept any unique prefix; a prefix that is also
        // ambiguous makes the tool fail, so treating every prefix as a match only over-blocks.
        return !name.is_empty() && long.starts_with(name);
    }
    let Some(short) = pattern.strip_prefix('-') else {
        return false;
    };
    if token.starts_with("--") {
        return false;
    }
    let Some(body) = token.strip_prefix('-') else {
        return false;
    };
    let single_dash_long = SINGLE_DASH_LONG.contains(&tool);
    if short.chars().count() == 1 && !single_dash_long {
        // A cluster: `-xdf` holds `-f`. Without knowing which letters take a value, a letter
        // after a value-taking one is also counted: that can only over-block.
        return body.contains(short);
    }
    body == short
        || body
            .strip_prefix(short)
            .is_some_and(|rest| rest.starts_with('='))
}

/// Does `pattern` (e.g. `push --force`) match this argv (without the program name)?
pub fn matches(tool: &str, pattern: &str, args: &[Arg]) -> Match {
    let s = split(tool, args);
    let mut want_pos = Vec::new();
    let mut want_flags = Vec::new();
    for tok in pattern.split_whitespace() {
        if tok.len() > 1 && tok.starts_with('-') {
            want_flags.push(tok);
        } else {
            want_pos.push(tok);
        }
    }
    let flags_ok = want_flags
        .iter()
        .all(|f| s.flags.iter().any(|t| flag_matches(tool, f, t)));
    let first_ok = match want_pos.first() {
        None => true,
        Some(first) => s.positionals.first().is_some_and(|p| glob(first, p)),
    };
    let pos_ok = first_ok
        && want_pos
            .iter()
            .skip(1)
            .all(|w| s.positionals.iter().skip(1).any(|p| glob(w, p)));
    if flags_ok && pos_ok {
        Match::Yes
    } else if !first_ok && !s.positionals.is_empty() && !s.dynamic_first {
        // The subcommand is written out and is another one: run-time words cannot change that.
        Match::No
    } else if s.dynamic {
        Match::Unknown
    } else {
        Match::No
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<Arg> {
        s.split_whitespace()
            .map(|w| Arg::Lit(w.to_string()))
            .collect()
    }

    #[test]
    fn force_push_matches_in_every_spelling() {
        for (pattern, a) in [
            ("push --force", "push --force"),
            ("push --force", "push origin main --force"),
            ("push -f", "--no-pager push -f origin"),
            ("push --force", "push --forc"),
            ("push --force", "push --force=yes"),
            ("push -f", "-C /x push -uf origin"),
        ] {
            assert_eq!(matches("git", pattern, &argv(a)), Match::Yes, "{a}");
        }
        assert_eq!(
            matches("git", "push --force", &argv("pull --force")),
            Match::No
        );
        assert_eq!(
            matches("git", "push --force", &argv("push -- --force")),
            Match::No
        );
        assert_eq!(
            matches("git", "push +*", &argv("push origin +main")),
            Match::Yes
        );
    }

    #[test]
    fn single_dash_long_options_are_whole_words() {
        assert_eq!(
            matches("find", "-exec", &argv(". -name x -exec rm {} ;")),
            Match::Yes
        );
        assert_eq!(matches("find", "-exec", &argv(". -executable")), Match::No);
    }

    #[test]
    fn globs() {
        assert!(glob("mkfs*", "mkfs.ext4"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("mkfs*", "xmkfs"));
    }
}
