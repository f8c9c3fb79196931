//! Git runs commands from its configuration and arguments: `-c alias.x='!cmd'`, `core.pager`,
//! `core.sshCommand`, `submodule foreach`, `rebase --exec`, `bisect run`. Finds them; the caller
//! decides them.

use super::{join_lit, lit, rest, shell_arg, skip_options, Step};
use crate::policy::words::Arg;

/// Git configuration keys whose values git runs as commands.
const GIT_EXEC_KEYS: &[&str] = &[
    "core.sshcommand",
    "core.pager",
    "core.editor",
    "core.fsmonitor",
    "sequence.editor",
    "diff.external",
    "pager.",
    "gpg.program",
    "credential.helper",
    "core.askpass",
    "uploadpack.packobjectshook",
];

pub(super) fn git(args: &[Arg]) -> Step {
    let mut i = 0;
    let mut aliases: Vec<(String, String)> = Vec::new();
    let mut shell_code = Vec::new();
    while i < args.len() {
        let Some(t) = lit(&args[i]) else { break };
        if !t.starts_with('-') {
            break;
        }
        if t.starts_with("--exec-path=") {
            return Step::Unknown(
                "git --exec-path runs git commands from a directory chosen at run time".into(),
            );
        }
        let value = match t {
            "-c" => args.get(i + 1).map(|a| a.text().to_string()),
            _ => None,
        };
        if let Some(kv) = value {
            if let Some((k, v)) = kv.split_once('=') {
                let key = k.to_ascii_lowercase();
                if let Some(alias) = key.strip_prefix("alias.") {
                    aliases.push((alias.to_string(), v.to_string()));
                } else if GIT_EXEC_KEYS
                    .iter()
                    .any(|e| key == *e || (e.ends_with('.') && key.starts_with(e)))
                {
                    shell_code.push(v.trim_start_matches('!').to_string());
                } else if key == "core.hookspath" {
                    return Step::Unknown(
                        "git -c core.hooksPath runs hooks from a directory chosen at run time"
                            .into(),
                    );
                }
            }
        }
        i += if matches!(
            t,
            "-c" | "-C" | "--git-dir" | "--work-tree" | "--namespace" | "--config-env"
        ) {
            2
        } else {
            1
        };
    }
    let sub = args.get(i).and_then(lit).unwrap_or("");
    if let Some((_, v)) = aliases.iter().find(|(a, _)| a == sub) {
        let tail = join_lit(&args[i + 1..]).unwrap_or_default();
        return Step::Shell {
            code: match v.strip_prefix('!') {
                Some(sh) => format!("{sh} {tail}"),
                None => format!("git {v} {tail}"),
            },
            pure: true,
        };
    }
    if sub == "submodule" && args.get(i + 1).and_then(lit) == Some("foreach") {
        let j = skip_options(&args[i + 2..], &[], false) + i + 2;
        return shell_arg(args.get(j), false);
    }
    if sub == "rebase" {
        let mut j = i + 1;
        while j < args.len() {
            match args[j].lit() {
                Some("-x" | "--exec") => shell_code.push(
                    args.get(j + 1)
                        .map(|a| a.text().to_string())
                        .unwrap_or_default(),
                ),
                Some(t) if t.starts_with("--exec=") => {
                    shell_code.push(t["--exec=".len()..].to_string())
                }
                _ => {}
            }
            j += 1;
        }
    }
    if sub == "bisect" && args.get(i + 1).and_then(lit) == Some("run") {
        return Step::Runs {
            inner: rest(args, i + 2),
            pure: false,
        };
    }
    if shell_code.is_empty() {
        Step::Plain
    } else {
        Step::Shell {
            code: shell_code.join("\n"),
            pure: false,
        }
    }
}
