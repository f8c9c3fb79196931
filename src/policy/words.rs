//! Turns one shell word into what the program will receive, as far as that is known before it
//! runs: quotes removed (`r''m`, `"rm"`, `\rm`, `$'\x72m'` are all `rm`), brace lists expanded
//! (`{rm,-rf,x}` is three words), and anything that depends on run time (variables, command
//! substitutions, globs) marked dynamic. Command substitutions found inside a word are handed back
//! so their commands are decided too.

use brush_parser::word::{
    self, BraceExpressionMember, BraceExpressionOrText, WordPiece, WordPieceWithSource,
};
use brush_parser::ParserOptions;

/// One argument as far as static analysis knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// The exact text the program receives.
    Lit(String),
    /// Known only at run time; holds the word as written.
    Dyn(String),
}

impl Arg {
    pub fn lit(&self) -> Option<&str> {
        match self {
            Arg::Lit(s) => Some(s),
            Arg::Dyn(_) => None,
        }
    }
    pub fn text(&self) -> &str {
        match self {
            Arg::Lit(s) | Arg::Dyn(s) => s,
        }
    }
}

/// A word's expansion, and the shell code nested in it (`$(...)`, backticks, `${x:-$(...)}`).
#[derive(Debug, Default)]
pub struct Expanded {
    pub args: Vec<Arg>,
    pub nested: Vec<String>,
}

/// Deepest `${x:-${y:-$(...)}}` nesting searched for code inside one word.
const MAX_WORD_DEPTH: usize = 8;

/// Brace lists larger than this are not expanded (the command is then undecidable, not slow).
const MAX_BRACE_WORDS: usize = 256;

pub fn expand(raw: &str, options: &ParserOptions) -> Expanded {
    let mut out = Expanded::default();
    if huge_tilde_number(raw) {
        out.args.push(Arg::Dyn(raw.to_string()));
        return out;
    }
    let pieces = match super::shell::guarded(|| word::parse(raw, options)) {
        Some(Ok(p)) => p,
        _ => {
            out.args.push(Arg::Dyn(raw.to_string()));
            return out;
        }
    };
    let only_plain_text = pieces.iter().all(|p| matches!(p.piece, WordPiece::Text(_)));
    let mut acc = Acc {
        text: String::new(),
        dynamic: false,
        specials: false,
        nested: &mut out.nested,
    };
    collect(&pieces, raw, &mut acc, false, 0);
    let Acc {
        text,
        dynamic,
        specials: unquoted_specials,
        ..
    } = acc;
    if dynamic {
        out.args.push(Arg::Dyn(raw.to_string()));
    } else if unquoted_specials && only_plain_text && raw.contains('{') {
        match brace_words(raw, options) {
            Some(words) if words.iter().all(|w| !has_glob(w)) => {
                out.args.extend(words.into_iter().map(Arg::Lit))
            }
            _ => out.args.push(Arg::Dyn(raw.to_string())),
        }
    } else if unquoted_specials {
        out.args.push(Arg::Dyn(raw.to_string()));
    } else {
        out.args.push(Arg::Lit(text));
    }
    out
}

/// `~N` / `~+N` / `~-N` (directory-stack entries) with a number too large for brush-parser,
/// which unwraps it and panics (found by fuzzing). No directory stack is that deep.
fn huge_tilde_number(s: &str) -> bool {
    s.match_indices('~').any(|(i, _)| {
        let rest = s[i + 1..].trim_start_matches(['+', '-']);
        rest.bytes().take_while(u8::is_ascii_digit).count() > 18
    })
}

/// `*`, `?` or a `[...]` class: the shell may replace the word with file names.
fn has_glob(s: &str) -> bool {
    s.contains(['*', '?']) || s.find('[').is_some_and(|i| s[i + 1..].contains(']'))
}

/// What `collect` gathers from a word's pieces.
struct Acc<'a> {
    text: String,
    dynamic: bool,
    /// Unquoted glob or brace characters: the shell may change the word.
    specials: bool,
    nested: &'a mut Vec<String>,
}

fn collect(pieces: &[WordPieceWithSource], raw: &str, acc: &mut Acc, quoted: bool, depth: usize) {
    for p in pieces {
        match &p.piece {
            WordPiece::Text(s) => {
                // Unquoted glob or brace characters change the word at run time.
                if !quoted && (has_glob(s) || (s.contains('{') && s.contains('}'))) {
                    acc.specials = true;
                }
                acc.text.push_str(s);
            }
            WordPiece::SingleQuotedText(s) => acc.text.push_str(s),
            WordPiece::AnsiCQuotedText(s) => acc.text.push_str(&ansi_c(s)),
            WordPiece::DoubleQuotedSequence(inner)
            | WordPiece::GettextDoubleQuotedSequence(inner) => {
                collect(inner, raw, acc, true, depth)
            }
            WordPiece::EscapeSequence(s) => {
                let s = s.strip_prefix('\\').unwrap_or(s);
                if s != "\n" {
                    acc.text.push_str(s);
                }
            }
            WordPiece::TildeExpansion(_) => {
                acc.text.push('~');
                acc.dynamic = true;
            }
            WordPiece::ParameterExpansion(_) | WordPiece::ArithmeticExpression(_) => {
                acc.dynamic = true;
                // `${x:-$(cmd)}` and `$(( $(cmd) ))` run cmd: find it in the piece's own text.
                let src = raw.get(p.start_index..p.end_index).unwrap_or("");
                if src.contains("$(") || src.contains('`') {
                    let inner = if let Some(x) = src.strip_prefix("${") {
                        x.strip_suffix('}').unwrap_or(x)
                    } else if let Some(x) = src.strip_prefix("$((") {
                        x.strip_suffix("))").unwrap_or(x)
                    } else {
                        src
                    };
                    if inner.len() < src.len() && depth < MAX_WORD_DEPTH {
                        scan_nested(inner, acc.nested, depth + 1);
                    } else {
                        // No progress or too deep: hand the text over as shell code, which has
                        // its own depth limit, rather than recurse here without end.
                        acc.nested.push(inner.to_string());
                    }
                }
            }
            WordPiece::CommandSubstitution(s) | WordPiece::BackquotedCommandSubstitution(s) => {
                acc.dynamic = true;
                acc.nested.push(s.clone());
            }
        }
    }
}

/// Finds `$(...)` and backticks inside text that is not a plain word (a parameter default, an
/// arithmetic expression) by parsing it as a word of its own.
fn scan_nested(src: &str, nested: &mut Vec<String>, depth: usize) {
    if huge_tilde_number(src) {
        nested.push(src.to_string());
        return;
    }
    if let Some(Ok(pieces)) = super::shell::guarded(|| word::parse(src, &ParserOptions::default()))
    {
        let mut acc = Acc {
            text: String::new(),
            dynamic: false,
            specials: false,
            nested,
        };
        collect(&pieces, src, &mut acc, false, depth);
    } else {
        // Unparseable nested code is still code: let the caller treat it as a command string.
        nested.push(src.to_string());
    }
}

/// Decodes ANSI-C quoting (`$'...'`), so `$'\x72\x6d'` is seen as `rm`.
pub fn ansi_c(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = it.next() else {
            out.push('\\');
            break;
        };
        let mut num = |radix: u32, max: usize, first: Option<char>| {
            let mut digits: String = first.into_iter().collect();
            while digits.len() < max {
                match it.peek() {
                    Some(d) if d.is_digit(radix) => digits.push(it.next().unwrap_or('0')),
                    _ => break,
                }
            }
            u32::from_str_radix(&digits, radix)
                .ok()
                .and_then(char::from_u32)
        };
        let decoded = match e {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'e' | 'E' => Some('\x1b'),
            'f' => Some('\x0c'),
            'v' => Some('\x0b'),
            '\\' | '\'' | '"' | '?' => Some(e),
            'x' => num(16, 2, None),
            'u' => num(16, 4, None),
            'U' => num(16, 8, None),
            '0'..='7' => num(8, 3, Some(e)),
            'c' => it.next().map(|c| char::from((c as u8) & 0x1f)),
            other => {
                out.push('\\');
                Some(other)
            }
        };
        if let Some(d) = decoded {
            out.push(d);
        }
    }
    out
}

/// Most `{` in one word that brace expansion is attempted for. brush-parser's brace grammar
/// backtracks exponentially on unclosed `{` (found by fuzzing: 20 took 18 s); past this the
/// word is left dynamic, i.e. undecidable, instead.
const MAX_BRACES: usize = 8;

fn brace_words(raw: &str, options: &ParserOptions) -> Option<Vec<String>> {
    if raw.matches('{').count() > MAX_BRACES {
        return None;
    }
    // brush-parser unwraps sequence bounds (`{1..N}`) as i64 and panics past that (found by
    // fuzzing); such a word is left dynamic rather than handed to it.
    let longest_digits = raw
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    if longest_digits > 18 {
        return None;
    }
    let parts = super::shell::guarded(|| word::parse_brace_expansions(raw, options))?.ok()??;
    let words = expand_seq(&parts)?;
    (words.len() <= MAX_BRACE_WORDS).then_some(words)
}

fn expand_seq(parts: &[BraceExpressionOrText]) -> Option<Vec<String>> {
    let mut acc = vec![String::new()];
    for part in parts {
        let options = match part {
            BraceExpressionOrText::Text(t) => vec![t.clone()],
            BraceExpressionOrText::Expr(members) => {
                let mut v = Vec::new();
                for m in members {
                    match m {
                        BraceExpressionMember::Child(c) => v.extend(expand_seq(c)?),
                        // Sequences ({1..9}) never spell a command name; leave them dynamic.
                        _ => return None,
                    }
                }
                v
            }
        };
        let mut next = Vec::new();
        for a in &acc {
            for o in &options {
                next.push(format!("{a}{o}"));
                if next.len() > MAX_BRACE_WORDS {
                    return None;
                }
            }
        }
        acc = next;
    }
    Some(acc)
}
