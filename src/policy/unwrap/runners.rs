//! Programs that rebuild an argv before running it: `env` (options, `NAME=VALUE`, `-S` string
//! splitting), `xargs` (which appends words from its input) and `find -exec/-execdir/-ok`.

use super::{join_lit, lit, rest, skip_options, Step};
use crate::policy::words::Arg;

pub(super) fn env(args: &[Arg]) -> Step {
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

pub(super) fn xargs(args: &[Arg]) -> Step {
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

pub(super) fn find(args: &[Arg]) -> Step {
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
