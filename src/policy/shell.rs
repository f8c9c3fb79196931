//! Finds every simple command in a shell string with a real shell grammar (brush-parser):
//! pipelines, `&&`, `||`, `;`, `&`, subshells, groups, loops, functions, `$(...)`, backticks,
//! `<(...)`, here-documents, redirections and `VAR=x cmd` prefixes. Owns the limits that keep
//! hostile input bounded (length, nesting, count); it does not decide anything.

use super::words::{self, Arg};
use brush_parser::ast::*;
use brush_parser::ParserOptions;

/// Longest command string analysed; longer is blocked unread.
pub const MAX_INPUT: usize = 4 << 20;
/// Deepest bracket nesting analysed. The grammar is recursive descent, so this bounds its stack.
pub const MAX_NESTING: usize = 64;
/// Deepest chain of code inside code (`sh -c "$(bash -c '...')"`).
pub const MAX_DEPTH: usize = 12;
/// Most simple commands reported for one string.
pub const MAX_COMMANDS: usize = 10_000;

/// What the walk found: a command with its words, or a piece it could not read.
#[derive(Debug, Clone)]
pub enum Found {
    Command {
        args: Vec<Arg>,
        text: String,
        /// What a here-document or here-string feeds the command (a shell reads it as code).
        stdin: Option<Arg>,
    },
    Unreadable {
        text: String,
        reason: String,
    },
}

pub fn options() -> ParserOptions {
    ParserOptions {
        enable_extended_globbing: false,
        ..ParserOptions::default()
    }
}

/// Parses `src` and appends each simple command found (including those nested in words).
pub fn find_commands(src: &str, depth: usize, out: &mut Vec<Found>) {
    if out.len() >= MAX_COMMANDS {
        return;
    }
    let unreadable = |reason: String| Found::Unreadable {
        text: excerpt(src),
        reason,
    };
    if depth > MAX_DEPTH {
        out.push(unreadable(format!(
            "shell code nested more than {MAX_DEPTH} levels deep"
        )));
        return;
    }
    if src.len() > MAX_INPUT {
        out.push(unreadable(format!(
            "command string longer than {MAX_INPUT} bytes"
        )));
        return;
    }
    if nesting(src) > MAX_NESTING {
        out.push(unreadable(format!(
            "brackets nested more than {MAX_NESTING} deep"
        )));
        return;
    }
    if let Some(at) = heredoc_without_delimiter(src) {
        out.push(unreadable(format!(
            "not valid shell syntax: here-document `<<` at byte {at} has no delimiter word"
        )));
        return;
    }
    // Tokenize first (linear, and aware of quotes, comments and here-documents), so that input
    // which can never parse is refused before the grammar's backtracking sees it: unclosed `(`
    // on both sides of a `)` makes the PEG parser take exponential time (found by fuzzing).
    let opts = options();
    let tokens =
        match guarded(|| brush_parser::uncached_tokenize_str(src, &opts.tokenizer_options())) {
            Some(Ok(t)) => t,
            Some(Err(e)) => {
                out.push(unreadable(format!("not valid shell syntax: {e}")));
                return;
            }
            None => {
                out.push(unreadable(
                    "the shell tokenizer failed on this input".into(),
                ));
                return;
            }
        };
    if let Some(fd) = oversized_fd(&tokens) {
        out.push(unreadable(format!(
            "not valid shell syntax: file descriptor {fd} is too large"
        )));
        return;
    }
    if let Some((line, column, what)) = unpaired_paren(&tokens) {
        out.push(unreadable(format!(
            "not valid shell syntax: {what} (line {line}, column {column})"
        )));
        return;
    }
    match guarded(|| brush_parser::parse_tokens(&tokens, &opts)) {
        None => out.push(unreadable("the shell parser failed on this input".into())),
        Some(Ok(program)) => {
            let mut w = Walker { out, depth };
            for list in &program.complete_commands {
                w.list(list);
            }
        }
        Some(Err(e)) => out.push(unreadable(format!("not valid shell syntax: {e}"))),
    }
}

/// Runs a brush-parser call, turning a panic inside it into `None`. The parser is a dependency
/// we do not control and has panicked on odd input (an `unwrap` of a file descriptor number);
/// a refusal is the right answer to input that crashes the grammar, a crash of the gate is not.
pub fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
}

/// `7777727777<x`: brush-parser 0.4 unwraps the descriptor number as an i32 and panics on larger
/// ones (found by fuzzing); no shell accepts such a descriptor either.
fn oversized_fd(tokens: &[brush_parser::Token]) -> Option<&str> {
    use brush_parser::Token;
    tokens.windows(2).find_map(|w| match (&w[0], &w[1]) {
        (Token::Word(n, _), Token::Operator(op, _))
            if !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && n.parse::<i32>().is_err()
                && (op.starts_with('<') || op.starts_with('>')) =>
        {
            Some(n.as_str())
        }
        _ => None,
    })
}

/// A `<<` followed by an operator instead of its delimiter word is always a syntax error, and
/// inside `$(...)` followed by a comment it sends brush-parser 0.4's tokenizer into an endless,
/// memory-hungry loop (found by fuzzing: `echo $(<< <#`). Refuse it before tokenizing. Quotes are
/// tracked roughly (single quotes hide it, double quotes do not, since `"$(...)"` holds code), so
/// this can only over-refuse literal text such as `echo "a << |"`.
fn heredoc_without_delimiter(src: &str) -> Option<usize> {
    let b = src.as_bytes();
    let (mut i, mut single, mut double) = (0, false, false);
    while i < b.len() {
        match b[i] {
            b'\\' if !single => i += 1,
            b'\'' if !double => single = !single,
            b'"' if !single => double = !double,
            b'<' if !single => {
                // Operators are matched greedily: a run of `<` is `<<<` here-strings, then a
                // `<<` here-document when two are left over.
                let run = b[i..].iter().take_while(|c| **c == b'<').count();
                let mut j = i + run;
                if run % 3 == 2 {
                    if b.get(j) == Some(&b'-') {
                        j += 1;
                    }
                    while matches!(b.get(j), Some(b' ' | b'\t')) {
                        j += 1;
                    }
                    if matches!(
                        b.get(j),
                        None | Some(b'<' | b'>' | b'|' | b'&' | b';' | b'(' | b')' | b'\n')
                    ) {
                        return Some(i + run - 2);
                    }
                    // An empty quoted delimiter (`<<''`) followed by a blank or the end loops
                    // brush-parser's tokenizer forever (found by fuzzing).
                    let quoted_empty = matches!(b.get(j..j + 2), Some(b"''") | Some(b"\"\""));
                    if quoted_empty
                        && !matches!(b.get(j + 2), Some(c) if c.is_ascii_alphanumeric() || *c == b'_')
                    {
                        return Some(i + run - 2);
                    }
                }
                i += run;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// An upper bound of bracket nesting, ignoring quotes (so it can only over-count).
fn nesting(src: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for b in src.bytes() {
        match b {
            b'(' | b'{' | b'[' | b'`' => {
                depth += 1;
                max = max.max(depth);
            }
            b')' | b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    // Backticks open and close with the same byte; count pairs as one level each.
    max.min(src.len())
}

fn excerpt(s: &str) -> String {
    if s.len() <= 200 {
        return s.to_string();
    }
    let mut end = 200;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The first parenthesis that cannot pair up, as (line, column, what). Unpaired parentheses
/// never parse, and around `((` they send the grammar's backtracking exponential (found by
/// fuzzing), so they are refused after the linear tokenizer. A `)` with no open `(` is accepted
/// only where it closes a `case` pattern (`in a)`, `;; b)`, `a|b)`).
fn unpaired_paren(tokens: &[brush_parser::Token]) -> Option<(usize, usize, &'static str)> {
    use brush_parser::Token;
    let mut open = Vec::new();
    let mut cases = 0usize;
    for (n, t) in tokens.iter().enumerate() {
        match t {
            Token::Word(w, _) if w == "case" => cases += 1,
            Token::Word(w, _) if w == "esac" => cases = cases.saturating_sub(1),
            Token::Operator(op, span) if op == "(" => {
                open.push((span.start.line, span.start.column))
            }
            Token::Operator(op, span) if op == ")" => {
                if open.pop().is_some() {
                    continue;
                }
                let pattern_end = cases > 0
                    && n >= 2
                    && matches!(tokens[n - 1], Token::Word(..))
                    && match &tokens[n - 2] {
                        Token::Word(w, _) => w == "in",
                        Token::Operator(o, _) => {
                            matches!(o.as_str(), ";;" | ";&" | ";;&" | "|" | "\n")
                        }
                    };
                if !pattern_end {
                    return Some((span.start.line, span.start.column, "`)` closes nothing"));
                }
            }
            _ => {}
        }
    }
    open.first().map(|(l, c)| (*l, *c, "`(` is never closed"))
}

/// The text a here-document or here-string gives the command on its standard input, if static.
fn here_input(s: &SimpleCommand) -> Option<Arg> {
    let prefix = s.prefix.iter().flat_map(|p| p.0.iter());
    let suffix = s.suffix.iter().flat_map(|p| p.0.iter());
    let mut input = None;
    for item in prefix.chain(suffix) {
        match item {
            CommandPrefixOrSuffixItem::IoRedirect(IoRedirect::HereDocument(
                None | Some(0),
                doc,
            )) => {
                let body = &doc.doc.value;
                input = Some(
                    if doc.requires_expansion && (body.contains('$') || body.contains('`')) {
                        Arg::Dyn(body.clone())
                    } else {
                        Arg::Lit(body.clone())
                    },
                );
            }
            CommandPrefixOrSuffixItem::IoRedirect(IoRedirect::HereString(None | Some(0), w)) => {
                let e = words::expand(&w.value, &options());
                input = Some(match e.args.as_slice() {
                    [Arg::Lit(s)] => Arg::Lit(s.clone()),
                    _ => Arg::Dyn(w.value.clone()),
                });
            }
            _ => {}
        }
    }
    input
}

struct Walker<'a> {
    out: &'a mut Vec<Found>,
    depth: usize,
}

impl Walker<'_> {
    fn list(&mut self, list: &CompoundList) {
        for CompoundListItem(and_or, _) in &list.0 {
            self.pipeline(&and_or.first);
            for next in &and_or.additional {
                match next {
                    AndOr::And(p) | AndOr::Or(p) => self.pipeline(p),
                }
            }
        }
    }

    fn pipeline(&mut self, p: &Pipeline) {
        for c in &p.seq {
            self.command(c);
        }
    }

    fn command(&mut self, c: &Command) {
        if self.out.len() >= MAX_COMMANDS {
            return;
        }
        match c {
            Command::Simple(s) => self.simple(s),
            Command::Compound(cc, redirects) => {
                self.compound(cc);
                self.redirects(redirects.as_ref());
            }
            Command::Function(f) => {
                self.compound(&f.body.0);
                self.redirects(f.body.1.as_ref());
            }
            Command::ExtendedTest(t, redirects) => {
                self.test_expr(&t.expr);
                self.redirects(redirects.as_ref());
            }
        }
    }

    fn compound(&mut self, cc: &CompoundCommand) {
        match cc {
            CompoundCommand::Arithmetic(a) => self.code_in_text(&a.expr.value),
            CompoundCommand::ArithmeticForClause(a) => {
                for e in [&a.initializer, &a.condition, &a.updater]
                    .into_iter()
                    .flatten()
                {
                    self.code_in_text(&e.value);
                }
                self.list(&a.body.list);
            }
            CompoundCommand::BraceGroup(b) => self.list(&b.list),
            CompoundCommand::Subshell(s) => self.list(&s.list),
            CompoundCommand::ForClause(f) => {
                for w in f.values.iter().flatten() {
                    self.word(w);
                }
                self.list(&f.body.list);
            }
            CompoundCommand::CaseClause(c) => {
                self.word(&c.value);
                for item in &c.cases {
                    for p in &item.patterns {
                        self.word(p);
                    }
                    if let Some(l) = &item.cmd {
                        self.list(l);
                    }
                }
            }
            CompoundCommand::IfClause(i) => {
                self.list(&i.condition);
                self.list(&i.then);
                for e in i.elses.iter().flatten() {
                    if let Some(c) = &e.condition {
                        self.list(c);
                    }
                    self.list(&e.body);
                }
            }
            CompoundCommand::WhileClause(w) | CompoundCommand::UntilClause(w) => {
                self.list(&w.0);
                self.list(&w.1.list);
            }
            CompoundCommand::Coprocess(c) => self.command(&c.body),
        }
    }

    fn test_expr(&mut self, e: &ExtendedTestExpr) {
        match e {
            ExtendedTestExpr::And(a, b) | ExtendedTestExpr::Or(a, b) => {
                self.test_expr(a);
                self.test_expr(b);
            }
            ExtendedTestExpr::Not(a) | ExtendedTestExpr::Parenthesized(a) => self.test_expr(a),
            ExtendedTestExpr::UnaryTest(_, w) => {
                self.word(w);
            }
            ExtendedTestExpr::BinaryTest(_, a, b) => {
                self.word(a);
                self.word(b);
            }
        }
    }

    /// Words outside command position still run their substitutions.
    fn word(&mut self, w: &Word) -> Vec<Arg> {
        let e = words::expand(&w.value, &options());
        for code in e.nested {
            find_commands(&code, self.depth + 1, self.out);
        }
        e.args
    }

    fn code_in_text(&mut self, text: &str) {
        if text.contains("$(") || text.contains('`') {
            self.word(&Word {
                value: format!("\"{}\"", text.replace('"', "\\\"")),
                loc: None,
            });
        }
    }

    fn redirects(&mut self, r: Option<&RedirectList>) {
        for io in r.iter().flat_map(|r| r.0.iter()) {
            self.redirect(io);
        }
    }

    fn redirect(&mut self, io: &IoRedirect) {
        match io {
            IoRedirect::File(_, _, target) => match target {
                IoFileRedirectTarget::Filename(w) | IoFileRedirectTarget::Duplicate(w) => {
                    self.word(w);
                }
                IoFileRedirectTarget::ProcessSubstitution(_, s) => self.list(&s.list),
                IoFileRedirectTarget::Fd(_) => {}
            },
            IoRedirect::HereDocument(_, doc) => {
                // An unquoted here-doc delimiter means the body is expanded: `$(cmd)` in it runs.
                if doc.requires_expansion {
                    self.code_in_text(&doc.doc.value);
                }
            }
            IoRedirect::HereString(_, w) | IoRedirect::OutputAndError(w, _) => {
                self.word(w);
            }
        }
    }

    fn simple(&mut self, s: &SimpleCommand) {
        let mut args = Vec::new();
        let mut text = Vec::new();
        let items = |x: &Option<_>| -> Vec<CommandPrefixOrSuffixItem> {
            match x {
                Some(CommandPrefix(v)) => v.clone(),
                None => Vec::new(),
            }
        };
        for item in items(&s.prefix) {
            self.item(&item, None, &mut text);
        }
        if let Some(w) = &s.word_or_name {
            text.push(w.value.clone());
            args.extend(self.word(w));
        }
        if let Some(CommandSuffix(v)) = &s.suffix {
            for item in v {
                self.item(item, Some(&mut args), &mut text);
            }
        }
        if !args.is_empty() && self.out.len() < MAX_COMMANDS {
            let stdin = here_input(s);
            self.out.push(Found::Command {
                args,
                text: excerpt(&text.join(" ")),
                stdin,
            });
        }
    }

    fn item(
        &mut self,
        item: &CommandPrefixOrSuffixItem,
        args: Option<&mut Vec<Arg>>,
        text: &mut Vec<String>,
    ) {
        match item {
            CommandPrefixOrSuffixItem::IoRedirect(io) => self.redirect(io),
            CommandPrefixOrSuffixItem::Word(w)
            | CommandPrefixOrSuffixItem::AssignmentWord(_, w) => {
                let expanded = self.word(w);
                if let Some(args) = args {
                    text.push(w.value.clone());
                    args.extend(expanded);
                }
            }
            CommandPrefixOrSuffixItem::ProcessSubstitution(_, s) => self.list(&s.list),
        }
    }
}
