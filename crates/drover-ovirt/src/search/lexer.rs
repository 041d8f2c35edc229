//! Splits a query into tokens, each with its character span.

use super::error::SearchError;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    /// Every operator, in the order autocompletion offers them.
    pub(super) const ALL: [Op; 6] = [Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge];

    pub(super) fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum TokenKind {
    /// `Name:` at the very start of the query; holds the name.
    Prefix(String),
    /// A bare word.
    Word(String),
    /// A double-quoted string, without its quotes and escapes.
    Quoted(String),
    Op(Op),
    /// A `!` not followed by `=`.
    Bang,
    Open,
    Close,
}

/// A token and its span `[pos, end)` in characters.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    pub(super) kind: TokenKind,
    pub(super) pos: usize,
    pub(super) end: usize,
}

/// Splits `text` into tokens; fails only on an unclosed double quote.
pub(super) fn lex(text: &str) -> Result<Vec<Token>, SearchError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = chars.iter().take_while(|c| c.is_whitespace()).count();
    if let Some(colon) = prefix_colon(&chars, i) {
        tokens.push(Token {
            kind: TokenKind::Prefix(chars[i..colon].iter().collect()),
            pos: i,
            end: colon + 1,
        });
        i = colon + 1;
    }
    while let Some(&c) = chars.get(i) {
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let pos = i;
        let followed_by_eq = chars.get(i + 1) == Some(&'=');
        let (kind, len) = match c {
            '(' => (TokenKind::Open, 1),
            ')' => (TokenKind::Close, 1),
            '=' => (TokenKind::Op(Op::Eq), 1),
            '!' if followed_by_eq => (TokenKind::Op(Op::Ne), 2),
            '!' => (TokenKind::Bang, 1),
            '<' if followed_by_eq => (TokenKind::Op(Op::Le), 2),
            '<' => (TokenKind::Op(Op::Lt), 1),
            '>' if followed_by_eq => (TokenKind::Op(Op::Ge), 2),
            '>' => (TokenKind::Op(Op::Gt), 1),
            '"' => {
                let (value, len) =
                    quoted(&chars[i..]).ok_or(SearchError::UnbalancedQuote { pos })?;
                (TokenKind::Quoted(value), len)
            }
            _ => {
                let len = chars[i..].iter().take_while(|&&c| !ends_word(c)).count();
                (TokenKind::Word(chars[i..i + len].iter().collect()), len)
            }
        };
        i += len;
        tokens.push(Token { kind, pos, end: i });
    }
    Ok(tokens)
}

/// The index of the colon of a `Name:` prefix starting at `start`, if any.
fn prefix_colon(chars: &[char], start: usize) -> Option<usize> {
    let rest = chars.get(start..)?;
    let len = rest
        .iter()
        .take_while(|c| c.is_ascii_alphabetic() || **c == '_')
        .count();
    (len > 0 && rest.get(len) == Some(&':')).then_some(start + len)
}

/// The unescaped content of the quoted string opening `chars`, and its
/// length including both quotes; `None` when it is never closed.
fn quoted(chars: &[char]) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut i = 1;
    loop {
        match (*chars.get(i)?, chars.get(i + 1)) {
            ('"', _) => return Some((value, i + 1)),
            ('\\', Some(&escaped @ ('"' | '\\'))) => {
                value.push(escaped);
                i += 2;
            }
            (c, _) => {
                value.push(c);
                i += 1;
            }
        }
    }
}

fn ends_word(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '=' | '!' | '<' | '>' | '"')
}
