//! Input that brush-parser 0.4 cannot take safely is refused here, before it parses: shapes that
//! send it into exponential backtracking, endless loops or panics (each found by `cargo fuzz`,
//! each with a regression test in `tests/policy_props.rs`), plus the nesting bound.

/// Runs a brush-parser call, turning a panic inside it into `None`. The parser is a dependency
/// we do not control and has panicked on odd input (an `unwrap` of a file descriptor number);
/// a refusal is the right answer to input that crashes the grammar, a crash of the gate is not.
pub fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
}

/// `7777727777<x`: brush-parser 0.4 unwraps the descriptor number as an i32 and panics on larger
/// ones (found by fuzzing); no shell accepts such a descriptor either.
pub(super) fn oversized_fd(tokens: &[brush_parser::Token]) -> Option<&str> {
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
pub(super) fn heredoc_without_delimiter(src: &str) -> Option<usize> {
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
pub(super) fn nesting(src: &str) -> usize {
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

/// The first parenthesis that cannot pair up, as (line, column, what). Unpaired parentheses
/// never parse, and around `((` they send the grammar's backtracking exponential (found by
/// fuzzing), so they are refused after the linear tokenizer. A `)` with no open `(` is accepted
/// only where it closes a `case` pattern (`in a)`, `;; b)`, `a|b)`).
pub(super) fn unpaired_paren(
    tokens: &[brush_parser::Token],
) -> Option<(usize, usize, &'static str)> {
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
