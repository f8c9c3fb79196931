//! The decision: may this argv, or every command in this shell string, run under a profile, and
//! why. Pure: no I/O, no clock, so the exec gate, `lasso why` and the dashboard agree. Owns the
//! order of checks (blocked names, wrappers, allowlist, argument rules); the syntax of shell,
//! wrappers and flags lives in `shell`, `unwrap` and `args`.

use super::args::{self, Match};
use super::profile::{CommandMode, ResolvedProfile, RuleRef};
use super::shell::{self, Found};
use super::unwrap::{self, Step};
use super::words::Arg;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Allowed,
    Blocked,
    /// Not knowable before run time (`$CMD`, `eval "$x"`, a script file). Blocked in allowlist
    /// mode; allowed in blocklist mode, where the run-time exec gate decides what really runs.
    Undecidable,
}

/// One decision about one program, with the rule and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub outcome: Outcome,
    /// The command as written (shell text, or the argv joined).
    pub command: String,
    /// The program decided, after unwrapping and path normalisation (`rm` for `/usr/bin/rm`).
    pub program: String,
    /// Wrappers seen on the way in, outermost first (`["env", "sh"]`).
    pub via: Vec<String>,
    pub category: Option<String>,
    pub rule: Option<RuleRef>,
    pub reason: String,
}

impl Decision {
    /// Whether the program may run under a profile in `mode`.
    pub fn permits(&self, mode: CommandMode) -> bool {
        match self.outcome {
            Outcome::Allowed => true,
            Outcome::Blocked => false,
            Outcome::Undecidable => mode == CommandMode::Blocklist,
        }
    }
}

/// The verdict on a shell string: overall allowed or blocked, and one decision per program.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// `Allowed` or `Blocked`, never `Undecidable`.
    pub outcome: Outcome,
    pub mode: CommandMode,
    pub decisions: Vec<Decision>,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        self.outcome == Outcome::Allowed
    }
}

/// Decides a shell command string: every simple command in it, wrappers unwrapped.
pub fn decide_shell(profile: &ResolvedProfile, command: &str) -> Verdict {
    let mut d = Decider {
        p: profile,
        out: Vec::new(),
    };
    d.shell(command, &[], 0);
    let mode = profile.commands.mode;
    let outcome = if d.out.iter().all(|x| x.permits(mode)) {
        Outcome::Allowed
    } else {
        Outcome::Blocked
    };
    Verdict {
        outcome,
        mode,
        decisions: d.out,
    }
}

/// Decides the argv the kernel is about to exec (bytes, perhaps not UTF-8). Returns the decisive
/// decision: the first blocked one, else the first undecidable one, else the innermost allowed.
///
/// `argv[0]` must be the path the kernel executes (execve's filename), not the process's chosen
/// `argv[0]`: `exec -a ls /bin/rm` runs rm with an argv[0] of `ls`.
pub fn decide_argv(profile: &ResolvedProfile, argv: &[Vec<u8>]) -> Decision {
    let args: Vec<Arg> = argv
        .iter()
        .map(|a| Arg::Lit(String::from_utf8_lossy(a).into_owned()))
        .collect();
    let mut d = Decider {
        p: profile,
        out: Vec::new(),
    };
    d.argv(&args, &args_text(&args), None, &[], 0);
    let pick = d
        .out
        .iter()
        .position(|x| x.outcome == Outcome::Blocked)
        .or_else(|| d.out.iter().position(|x| x.outcome == Outcome::Undecidable));
    match pick {
        Some(i) => d.out.swap_remove(i),
        None => d.out.pop().unwrap_or_else(|| Decision {
            outcome: Outcome::Blocked,
            command: String::new(),
            program: String::new(),
            via: Vec::new(),
            category: None,
            rule: None,
            reason: "empty argv: there is no program to run".into(),
        }),
    }
}

fn args_text(args: &[Arg]) -> String {
    let s: Vec<&str> = args.iter().map(Arg::text).collect();
    let mut t = s.join(" ");
    if t.len() > 200 {
        let mut end = 200;
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        t.truncate(end);
        t.push('…');
    }
    t
}

/// Where a decision applies: the command as written, the program, the wrappers around it.
struct At<'a> {
    command: &'a str,
    program: &'a str,
    via: &'a [String],
}

struct Decider<'a> {
    p: &'a ResolvedProfile,
    out: Vec<Decision>,
}

impl Decider<'_> {
    fn push(
        &mut self,
        outcome: Outcome,
        at: At,
        rule: Option<RuleRef>,
        category: Option<String>,
        reason: String,
    ) {
        let reason = if outcome == Outcome::Undecidable {
            match self.p.commands.mode {
                CommandMode::Allowlist => {
                    format!("{reason}; blocked: an allowlist admits only what it can name")
                }
                CommandMode::Blocklist => {
                    format!("{reason}; allowed here, the run-time exec gate decides")
                }
            }
        } else {
            reason
        };
        self.out.push(Decision {
            outcome,
            command: at.command.to_string(),
            program: at.program.to_string(),
            via: at.via.to_vec(),
            category,
            rule,
            reason,
        });
    }

    fn shell(&mut self, code: &str, via: &[String], depth: usize) {
        let mut found = Vec::new();
        shell::find_commands(code, depth, &mut found);
        for f in found {
            match f {
                Found::Command { args, text, stdin } => {
                    self.argv(&args, &text, stdin.as_ref(), via, depth)
                }
                Found::Unreadable { text, reason } => self.push(
                    Outcome::Blocked,
                    At {
                        command: &text,
                        program: "",
                        via,
                    },
                    None,
                    Some("unreadable".into()),
                    format!("{reason}; lasso does not run what it cannot read"),
                ),
            }
        }
    }

    fn argv(
        &mut self,
        args: &[Arg],
        text: &str,
        stdin: Option<&Arg>,
        via: &[String],
        depth: usize,
    ) {
        if depth > shell::MAX_DEPTH {
            self.push(
                Outcome::Blocked,
                At {
                    command: text,
                    program: "",
                    via,
                },
                None,
                Some("unreadable".into()),
                format!("wrappers nested more than {} deep", shell::MAX_DEPTH),
            );
            return;
        }
        let Some(first) = args.first() else { return };
        let Some(path) = first.lit() else {
            let why = format!(
                "the program name `{}` is known only at run time",
                first.text()
            );
            self.push(
                Outcome::Undecidable,
                At {
                    command: text,
                    program: first.text(),
                    via,
                },
                None,
                Some("dynamic".into()),
                why,
            );
            return;
        };
        // The kernel runs a file; rules name programs, so `/usr/bin/rm`, `./rm` and `rm` are one.
        let name = path.rsplit('/').next().unwrap_or(path);
        let rest = &args[1..];
        let cmds = &self.p.commands;

        if let Some(rule) = cmds.blocked.iter().find(|r| args::glob(&r.name, name)) {
            let (src, cat, reason) = (
                rule.source.clone(),
                rule.category.clone(),
                format!("{name}: {}", rule.reason),
            );
            self.push(
                Outcome::Blocked,
                At {
                    command: text,
                    program: name,
                    via,
                },
                Some(src),
                Some(cat),
                reason,
            );
            return;
        }

        let step = unwrap::step(name, rest, stdin);
        let pure = match &step {
            Step::Runs { pure, .. } | Step::Shell { pure, .. } => *pure,
            _ => false,
        };
        let mut inner_via = via.to_vec();
        inner_via.push(name.to_string());
        match step {
            Step::Plain => {}
            Step::Unknown(why) => {
                self.push(
                    Outcome::Undecidable,
                    At {
                        command: text,
                        program: name,
                        via,
                    },
                    None,
                    Some("dynamic".into()),
                    why,
                );
                return;
            }
            Step::Runs { inner, .. } => {
                for argv in inner {
                    self.argv(&argv, text, stdin, &inner_via, depth + 1);
                }
            }
            Step::Shell { code, .. } => self.shell(&code, &inner_via, depth + 1),
        }
        if pure && !cmds.blocked_args.contains_key(name) {
            return;
        }
        self.own_rules(name, rest, text, via);
    }

    /// The allowlist and the argument rules for the program itself.
    fn own_rules(&mut self, name: &str, rest: &[Arg], text: &str, via: &[String]) {
        let cmds = &self.p.commands;
        let mut allowed_by = None;
        if cmds.mode == CommandMode::Allowlist {
            match cmds.allowed.iter().find(|r| args::glob(&r.name, name)) {
                Some(r) => allowed_by = Some(r.clone()),
                None => {
                    let why = format!(
                        "{name} is not in commands.allowed of profile {}",
                        self.p.name
                    );
                    self.push(
                        Outcome::Blocked,
                        At {
                            command: text,
                            program: name,
                            via,
                        },
                        cmds.mode_source.clone(),
                        Some("not-allowed".into()),
                        why,
                    );
                    return;
                }
            }
            if let Some(patterns) = cmds.allowed_args.get(name) {
                let results: Vec<Match> = patterns
                    .iter()
                    .map(|p| args::matches(name, &p.pattern, rest))
                    .collect();
                if !results.contains(&Match::Yes) {
                    let list: Vec<&str> = patterns.iter().map(|p| p.pattern.as_str()).collect();
                    let src = patterns.first().map(|p| p.source.clone());
                    let (outcome, why) = if results.contains(&Match::Unknown) {
                        (
                            Outcome::Undecidable,
                            format!(
                                "{name} arguments known only at run time; allowed forms: {}",
                                list.join(", ")
                            ),
                        )
                    } else {
                        (
                            Outcome::Blocked,
                            format!("{name} is allowed only as: {}", list.join(", ")),
                        )
                    };
                    self.push(
                        outcome,
                        At {
                            command: text,
                            program: name,
                            via,
                        },
                        src,
                        Some("not-allowed".into()),
                        why,
                    );
                    return;
                }
            }
        }
        if let Some(patterns) = cmds.blocked_args.get(name) {
            let mut unknown = None;
            for p in patterns {
                match args::matches(name, &p.pattern, rest) {
                    Match::Yes => {
                        let why = format!("{name} {}: {}", p.pattern, p.reason);
                        self.push(
                            Outcome::Blocked,
                            At {
                                command: text,
                                program: name,
                                via,
                            },
                            Some(p.source.clone()),
                            Some("arguments".into()),
                            why,
                        );
                        return;
                    }
                    Match::Unknown => unknown = unknown.or(Some(p)),
                    Match::No => {}
                }
            }
            if let Some(p) = unknown {
                let why = format!(
                    "{name} has arguments known only at run time that could spell `{}`",
                    p.pattern
                );
                self.push(
                    Outcome::Undecidable,
                    At {
                        command: text,
                        program: name,
                        via,
                    },
                    Some(p.source.clone()),
                    Some("arguments".into()),
                    why,
                );
                return;
            }
        }
        let (rule, category, why) = match allowed_by {
            Some(r) => (
                Some(r.source.clone()),
                Some(r.category.clone()),
                format!("{name} is in commands.allowed of profile {}", self.p.name),
            ),
            None => (
                None,
                None,
                format!("{name} is not blocked by profile {}", self.p.name),
            ),
        };
        self.push(
            Outcome::Allowed,
            At {
                command: text,
                program: name,
                via,
            },
            rule,
            category,
            why,
        );
    }
}
