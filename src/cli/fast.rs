//! A short way through argument parsing for the plain forms of `lasso run`, the command whose
//! start-up time matters most (an agent's tool calls, `benches/sandbox.sh`): building clap's
//! `run` command and matching against it took ~0.18 ms of every start, more than planning the
//! sandbox's identity. It owns only the recognition of those few forms; what they mean is
//! clap's: the result must equal what `Cli::parse` gives for the same words (tested, word for
//! word, over generated command lines), and every other command line (another subcommand, any
//! flag not listed here, a repeated flag, `-v`, `--log-level` or `LASSO_LOG`, a value that
//! starts with `-`, words that are not UTF-8, a missing `--`) goes to clap, with its help and
//! its error messages.
//!
//! Recognised: `lasso run [FLAG VALUE]... -- [CMD]...` where FLAG is `--profile`/`-p` or
//! `--dir`/`-d`, each at most once, as `--flag VALUE`, `--flag=VALUE` or `-f VALUE`.

use super::sandbox::{RunArgs, SandboxArgs};
use super::{Cli, Command};
use std::ffi::OsString;
use std::path::PathBuf;

/// The `Cli` for `args` (program name first) when it is one of the plain forms of `run`;
/// `None` for everything clap must see.
pub fn parse_run(args: &[OsString]) -> Option<Cli> {
    if std::env::var_os("LASSO_LOG").is_some() {
        return None;
    }
    let words: Vec<&str> = args
        .iter()
        .skip(1)
        .map(|a| a.to_str())
        .collect::<Option<_>>()?;
    let (first, rest) = words.split_first()?;
    if *first != "run" {
        return None;
    }
    let mut profile: Option<&str> = None;
    let mut dir: Option<&str> = None;
    let mut i = 0;
    loop {
        let word = *rest.get(i)?;
        if word == "--" {
            i += 1;
            break;
        }
        let (name, value, used) = match word.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, value, 1),
            _ => (word, *rest.get(i + 1)?, 2),
        };
        if value.is_empty() || value.starts_with('-') {
            return None;
        }
        let slot = match name {
            "--profile" | "-p" => &mut profile,
            "--dir" | "-d" => &mut dir,
            _ => return None,
        };
        if slot.replace(value).is_some() {
            return None;
        }
        i += used;
    }
    let command = rest[i..].iter().map(|w| w.to_string()).collect();
    Some(Cli {
        verbose: 0,
        log_level: None,
        command: Command::Run(RunArgs {
            sandbox: SandboxArgs {
                dir: PathBuf::from(dir.unwrap_or(".")),
                profile: profile.unwrap_or("standard").to_string(),
                profile_file: None,
                agent: None,
                mounts: Vec::new(),
                allow_sensitive: false,
                force_dir: false,
                env: Vec::new(),
                pass_env: Vec::new(),
                env_files: Vec::new(),
                ssh_agent: false,
                memory_mib: None,
                pids: None,
                cpus: None,
                tmp_mib: None,
                image: None,
            },
            command,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use proptest::prelude::*;

    fn os(words: &[&str]) -> Vec<OsString> {
        std::iter::once("lasso")
            .chain(words.iter().copied())
            .map(OsString::from)
            .collect()
    }

    /// The fast path's answer must be clap's, to the last field.
    fn same_as_clap(words: &[&str]) -> bool {
        let args = os(words);
        let Some(fast) = parse_run(&args) else {
            return false;
        };
        let slow = Cli::try_parse_from(&args)
            .unwrap_or_else(|e| panic!("fast path took {words:?}, which clap refuses: {e}"));
        assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{words:?}");
        true
    }

    #[test]
    fn the_benchmarked_command_line_takes_the_fast_path_with_claps_result() {
        for words in [
            &["run", "--profile", "offline", "--", "/bin/true"][..],
            &["run", "--", "/bin/true"],
            &["run", "--"],
            &[
                "run",
                "-p",
                "strict",
                "-d",
                "/tmp",
                "--",
                "sh",
                "-c",
                "echo --help",
            ],
            &["run", "--profile=open", "--dir=.", "--", "--version"],
            &["run", "--dir", "a=b", "--", "x", "--", "-v"],
        ] {
            assert!(same_as_clap(words), "{words:?} should take the fast path");
        }
    }

    #[test]
    fn everything_else_goes_to_clap() {
        for words in [
            &["run", "/bin/true"][..],
            &["run", "--help"],
            &["run", "-v", "--", "true"],
            &["-v", "run", "--", "true"],
            &["run", "--log-level", "debug", "--", "true"],
            &["run", "--profile", "a", "--profile", "b", "--", "true"],
            &["run", "--profile", "-x", "--", "true"],
            &["run", "--profile=", "--", "true"],
            &["run", "--profile"],
            &["run", "-pstrict", "--", "true"],
            &["run", "--agent", "shell", "--", "true"],
            &["run", "--memory-mib", "64", "--", "true"],
            &["up", "--", "true"],
            &["--version"],
            &[],
        ] {
            assert!(parse_run(&os(words)).is_none(), "{words:?}");
        }
    }

    #[test]
    fn words_that_are_not_utf8_go_to_clap() {
        use std::os::unix::ffi::OsStringExt;
        let mut args = os(&["run", "--"]);
        args.push(OsString::from_vec(vec![0xff, b'x']));
        assert!(parse_run(&args).is_none());
    }

    proptest! {
        #[test]
        fn any_command_line_it_takes_parses_the_same_with_clap(
            words in proptest::collection::vec(
                proptest::sample::select(vec![
                    "run", "--", "-p", "-d", "--profile", "--dir", "--profile=x", "--dir=y",
                    "offline", "/bin/true", "-v", "-x", "=", "a=b", "--agent", "shell",
                    "--help", "up", "", "-", "--dir=", "-p=x",
                ]),
                0..9,
            )
        ) {
            // Either clap's answer, or no answer at all.
            same_as_clap(&words);
        }
    }
}
