//! Sees through programs that run other programs, so that `env -S 'rm -rf x'`, `timeout 5 rm`,
//! `busybox rm`, `find . -exec rm {} ;`, `bash -c 'rm x'` and `git -c alias.x='!rm' x` are
//! decided by what they finally run. Owns each wrapper's option syntax; it never decides.

use super::words::Arg;

/// What a program does with the rest of its argv.
#[derive(Debug, Clone)]
pub enum Step {
    /// Runs nothing else that we know of: decide the program itself.
    Plain,
    /// Runs these argvs. `pure` wrappers add no power of their own (env, nice, timeout...), so in
    /// an allowlist only the inner program needs to be allowed.
    Runs { inner: Vec<Vec<Arg>>, pure: bool },
    /// Runs this shell code (`sh -c`, `env -S`, `eval`, git `!` aliases).
    Shell { code: String, pure: bool },
    /// What it runs is not knowable statically (a script file, inline Python, `$CMD`).
    Unknown(String),
}

const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "yash", "rbash", "fish", "pdksh", "oksh",
];

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

fn lit(a: &Arg) -> Option<&str> {
    a.lit()
}

/// Skips options of a wrapper: `with_value` options consume the next word unless written
/// `-xVALUE` / `--opt=VALUE`; returns the index of the first non-option word.
fn skip_options(args: &[Arg], with_value: &[&str], plus_digits: bool) -> usize {
    let mut i = 0;
    while i < args.len() {
        let Some(t) = lit(&args[i]) else { return i };
        if t == "--" {
            return i + 1;
        }
        if !t.starts_with('-') || t == "-" {
            return i;
        }
        if plus_digits && t[1..].bytes().all(|b| b.is_ascii_digit()) {
            i += 1;
            continue;
        }
        let takes = with_value.contains(&t);
        i += if takes { 2 } else { 1 };
    }
    i
}

fn rest(args: &[Arg], from: usize) -> Vec<Vec<Arg>> {
    if from < args.len() {
        vec![args[from..].to_vec()]
    } else {
        Vec::new()
    }
}

fn join_lit(args: &[Arg]) -> Option<String> {
    args.iter()
        .map(|a| a.lit().map(str::to_string))
        .collect::<Option<Vec<_>>>()
        .map(|v| v.join(" "))
}

/// `name` is the program's file name; `args` the words after it.
pub fn step(name: &str, args: &[Arg], stdin: Option<&Arg>) -> Step {
    let runs = |inner: Vec<Vec<Arg>>| Step::Runs { inner, pure: true };
    match name {
        "env" => env(args),
        "command" => {
            if args
                .iter()
                .any(|a| matches!(a.lit(), Some("-v" | "-V" | "-pv" | "-vp")))
            {
                return Step::Plain; // only prints where the command is
            }
            runs(rest(args, skip_options(args, &[], false)))
        }
        "exec" => runs(rest(args, skip_options(args, &["-a"], false))),
        "builtin" | "nohup" | "unbuffer" => runs(rest(args, skip_options(args, &[], false))),
        "nice" => runs(rest(
            args,
            skip_options(args, &["-n", "--adjustment"], true),
        )),
        "timeout" => {
            let i = skip_options(args, &["-s", "--signal", "-k", "--kill-after"], false);
            runs(rest(args, i + 1)) // the duration comes first
        }
        "stdbuf" => runs(rest(
            args,
            skip_options(
                args,
                &["-i", "-o", "-e", "--input", "--output", "--error"],
                false,
            ),
        )),
        "setsid" => runs(rest(args, skip_options(args, &[], false))),
        "ionice" => {
            if args
                .iter()
                .any(|a| matches!(a.lit(), Some("-p" | "-P" | "-u")))
            {
                return Step::Plain;
            }
            runs(rest(
                args,
                skip_options(args, &["-c", "-n", "--class", "--classdata"], false),
            ))
        }
        "time" => runs(rest(
            args,
            skip_options(args, &["-f", "-o", "--format", "--output"], false),
        )),
        "taskset" => {
            if args.iter().any(|a| matches!(a.lit(), Some("-p" | "--pid"))) {
                return Step::Plain;
            }
            let i = skip_options(args, &[], false);
            runs(rest(args, i + 1)) // the CPU mask or list comes first
        }
        "chrt" => {
            let i = skip_options(args, &["-T", "-P", "-D"], false);
            runs(rest(args, i + 1)) // the priority comes first
        }
        "strace" | "ltrace" => runs(rest(
            args,
            skip_options(
                args,
                &[
                    "-e", "-o", "-p", "-s", "-u", "-E", "-a", "-b", "-I", "-O", "-S", "-X", "-P",
                    "-U",
                ],
                false,
            ),
        )),
        "flock" => {
            let i = skip_options(
                args,
                &["-w", "-E", "--timeout", "--conflict-exit-code"],
                false,
            );
            match args.get(i + 1).and_then(lit) {
                Some("-c" | "--command") => shell_arg(args.get(i + 2), true),
                _ => runs(rest(args, i + 1)),
            }
        }
        "watch" => {
            let i = skip_options(args, &["-n", "--interval", "-q", "--equexit"], false);
            match join_lit(&args[i.min(args.len())..]) {
                Some(code) => Step::Shell { code, pure: true },
                None => Step::Unknown("watch runs a command built from run-time values".into()),
            }
        }
        "script" => {
            let pos = args
                .iter()
                .position(|a| matches!(a.lit(), Some("-c" | "--command")));
            match pos {
                Some(p) => shell_arg(args.get(p + 1), true),
                None => Step::Plain,
            }
        }
        "xargs" => xargs(args),
        "busybox" | "toybox" => match args.first().and_then(lit) {
            Some(a) if !a.starts_with('-') => runs(vec![args.to_vec()]),
            _ => Step::Plain,
        },
        "find" => find(args),
        "git" => git(args),
        "eval" => match join_lit(args) {
            Some(code) => Step::Shell { code, pure: true },
            None => Step::Unknown("eval runs code built from run-time values".into()),
        },
        "source" | "." => Step::Unknown(format!(
            "`{name}` runs the commands of a file, read at run time"
        )),
        "su" | "runuser" => match args
            .iter()
            .position(|a| matches!(a.lit(), Some("-c" | "--command")))
        {
            Some(p) => shell_arg(args.get(p + 1), false),
            None => Step::Plain,
        },
        "sudo" | "doas" => {
            let i = skip_options(
                args,
                &["-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T"],
                false,
            );
            Step::Runs {
                inner: rest(args, i),
                pure: false,
            }
        }
        "trap" => match args.first().and_then(lit) {
            // `trap CODE SIGNAL...` runs CODE later; `trap - SIG` and `trap '' SIG` run nothing.
            Some(code) if !code.starts_with('-') && args.len() > 1 => Step::Shell {
                code: code.to_string(),
                pure: true,
            },
            Some(_) | None if args.first().is_some_and(|a| a.lit().is_none()) => {
                Step::Unknown("trap installs code known only at run time".into())
            }
            _ => Step::Plain,
        },
        "alias" => {
            // An alias body runs wherever the alias is used later; decide it as if it ran now.
            let bodies: Vec<String> = args
                .iter()
                .filter_map(|a| a.text().split_once('=').map(|(_, v)| v.to_string()))
                .collect();
            if args.iter().any(|a| a.lit().is_none()) {
                Step::Unknown("alias defines code known only at run time".into())
            } else if bodies.is_empty() {
                Step::Plain
            } else {
                Step::Shell {
                    code: bodies.join("\n"),
                    pure: true,
                }
            }
        }
        _ if SHELLS.contains(&name) => shell(name, args, stdin),
        _ => interpreter(name, args),
    }
}

fn shell_arg(a: Option<&Arg>, pure: bool) -> Step {
    match a {
        Some(Arg::Lit(code)) => Step::Shell {
            code: code.clone(),
            pure,
        },
        Some(Arg::Dyn(w)) => {
            Step::Unknown(format!("the shell code `{w}` is known only at run time"))
        }
        None => Step::Plain,
    }
}

fn shell(name: &str, args: &[Arg], stdin: Option<&Arg>) -> Step {
    let mut i = 0;
    let mut dash_c = false;
    while i < args.len() {
        let Some(t) = lit(&args[i]) else { break };
        if t == "--" || !(t.starts_with('-') || t.starts_with('+')) || t == "-" {
            break;
        }
        if t.starts_with("--") {
            // --norc, --login, --posix ...; --rcfile and --init-file take a file.
            i += if t == "--rcfile" || t == "--init-file" {
                2
            } else {
                1
            };
            continue;
        }
        if t[1..].contains('c') && t.starts_with('-') {
            dash_c = true;
        }
        // -o OPTION / +O OPTION take a value.
        i += if t[1..].contains(['o', 'O']) { 2 } else { 1 };
    }
    if i < args.len() && lit(&args[i]) == Some("--") {
        i += 1;
    }
    if dash_c {
        return shell_arg(args.get(i), true);
    }
    match (args.get(i), stdin) {
        (Some(script), _) => Step::Unknown(format!(
            "{name} runs the script `{}`, read at run time",
            script.text()
        )),
        // `bash <<EOF ... EOF` and `bash <<< 'cmd'`: the code is right there.
        (None, Some(Arg::Lit(code))) => Step::Shell {
            code: code.clone(),
            pure: true,
        },
        (None, _) => Step::Unknown(format!("{name} reads commands from its input at run time")),
    }
}

fn env(args: &[Arg]) -> Step {
    let mut i = 0;
    while i < args.len() {
        let Some(t) = lit(&args[i]) else {
            return Step::Unknown(format!(
                "env runs `{}`, known only at run time",
                args[i].text()
            ));
        };
        if t == "--" {
            i += 1;
            break;
        }
        if let Some(s) = t.strip_prefix("--split-string=") {
            return split_string(s, &args[i + 1..]);
        }
        if t == "--split-string" {
            return split_string(
                args.get(i + 1).and_then(lit).unwrap_or(""),
                args.get(i + 2..).unwrap_or(&[]),
            );
        }
        if t.starts_with("--") {
            i += if matches!(t, "--unset" | "--chdir" | "--argv0") {
                2
            } else {
                1
            };
            continue;
        }
        if t.starts_with('-') && t.len() > 1 {
            let body = &t[1..];
            // In a cluster like -iS'cmd', the first value-taking letter ends the options.
            if let Some(p) = body.find(['u', 'C', 'P', 'a', 'S']) {
                let letter = body.as_bytes()[p];
                let attached = &body[p + 1..];
                if letter == b'S' {
                    return if attached.is_empty() {
                        split_string(
                            args.get(i + 1).and_then(lit).unwrap_or(""),
                            args.get(i + 2..).unwrap_or(&[]),
                        )
                    } else {
                        split_string(attached, &args[i + 1..])
                    };
                }
                i += if attached.is_empty() { 2 } else { 1 };
            } else {
                i += 1;
            }
            continue;
        }
        if t.contains('=') && !t.starts_with('=') {
            i += 1; // NAME=VALUE
            continue;
        }
        break;
    }
    Step::Runs {
        inner: rest(args, i),
        pure: true,
    }
}

/// `env -S` splits its string into words much like a shell does; parsing it as shell code sees
/// at least every word env would produce.
fn split_string(s: &str, more: &[Arg]) -> Step {
    match join_lit(more) {
        Some(m) if m.is_empty() => Step::Shell {
            code: s.to_string(),
            pure: true,
        },
        Some(m) => Step::Shell {
            code: format!("{s} {m}"),
            pure: true,
        },
        None => Step::Unknown("env -S with arguments known only at run time".into()),
    }
}

fn xargs(args: &[Arg]) -> Step {
    let with_value = [
        "-a",
        "-d",
        "-E",
        "-I",
        "-L",
        "-n",
        "-P",
        "-s",
        "--arg-file",
        "--delimiter",
        "--max-lines",
        "--max-args",
        "--max-procs",
        "--max-chars",
        "--process-slot-var",
    ];
    let i = skip_options(args, &with_value, false);
    let mut inner: Vec<Arg> = if i < args.len() {
        args[i..].to_vec()
    } else {
        vec![Arg::Lit("echo".into())]
    };
    // xargs appends words read from its input: they may be any flag.
    inner.push(Arg::Dyn("<words from xargs input>".into()));
    Step::Runs {
        inner: vec![inner],
        pure: true,
    }
}

fn find(args: &[Arg]) -> Step {
    let mut inner = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if matches!(args[i].lit(), Some("-exec" | "-execdir" | "-ok" | "-okdir")) {
            let start = i + 1;
            let mut end = start;
            while end < args.len() && !matches!(args[end].lit(), Some(";" | "+")) {
                end += 1;
            }
            if start < end {
                inner.push(args[start..end].to_vec());
            }
            i = end;
        }
        i += 1;
    }
    if inner.is_empty() {
        Step::Plain
    } else {
        Step::Runs { inner, pure: false }
    }
}

fn git(args: &[Arg]) -> Step {
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

/// Interpreters given code on the command line: the code may start anything.
fn interpreter(name: &str, args: &[Arg]) -> Step {
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    let flags: &[&str] = match base {
        "python" | "pypy" => &["-c"],
        "perl" => &["-e", "-E"],
        "ruby" => &["-e"],
        "node" | "nodejs" | "bun" => &["-e", "--eval", "-p", "--print"],
        "deno" => &["eval"],
        "php" => &["-r"],
        "lua" | "luajit" => &["-e"],
        "Rscript" => &["-e"],
        "tclsh" | "wish" => &[],
        "awk" | "gawk" | "mawk" | "nawk" => {
            // awk programs start commands through system(), pipes and getline.
            let code = args
                .iter()
                .filter_map(Arg::lit)
                .find(|a| !a.starts_with('-'));
            return match code {
                Some(c) if c.contains("system") || c.contains('|') => Step::Unknown(format!(
                    "{name} program may start commands (system() or a pipe)"
                )),
                _ => Step::Plain,
            };
        }
        _ => return Step::Plain,
    };
    if args.iter().any(|a| {
        a.lit().is_some_and(|t| {
            flags
                .iter()
                .any(|f| t == *f || (f.len() == 2 && t.starts_with(f) && !t.starts_with("--")))
        })
    }) {
        return Step::Unknown(format!("inline {name} code may start any program"));
    }
    Step::Plain
}
