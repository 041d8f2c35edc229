//! A recursive-descent parser from tokens to a condition tree and the
//! `sortby` and `page` clauses.
//!
//! ```text
//! query     := prefix? or-expr? clause*
//! or-expr   := and-expr ("or" and-expr)*
//! and-expr  := unary ("and"? unary)*
//! unary     := "(" or-expr ")" | field op value | term
//! clause    := "sortby" field ("asc" | "desc")? | "page" number
//! ```

use super::error::SearchError;
use super::eval::{Condition, Expr, FreeText};
use super::lexer::{lex, Op, Token, TokenKind};
use super::literal::Literal;
use super::schema::{object_type, resolve_field, ObjectType};

/// The deepest nesting of parentheses accepted.
const MAX_DEPTH: usize = 64;

/// A word with a meaning of its own outside values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keyword {
    And,
    Or,
    SortBy,
    Page,
}

/// The keyword `word` is, case-insensitive.
pub(super) fn keyword(word: &str) -> Option<Keyword> {
    [
        ("and", Keyword::And),
        ("or", Keyword::Or),
        ("sortby", Keyword::SortBy),
        ("page", Keyword::Page),
    ]
    .into_iter()
    .find_map(|(name, k)| word.eq_ignore_ascii_case(name).then_some(k))
}

/// A parsed query: its conditions (none means everything matches), the
/// `sortby` field and direction (descending when true), and the page.
#[derive(Debug)]
pub(super) struct Parsed {
    pub(super) expr: Option<Expr>,
    pub(super) sort: Option<(&'static str, bool)>,
    pub(super) page: Option<u32>,
}

/// Parses `text` as a search of `target`.
pub(super) fn parse(
    text: &str,
    target: &'static ObjectType,
    case_sensitive: bool,
) -> Result<Parsed, SearchError> {
    let tokens = lex(text)?;
    if let Some(bang) = tokens.iter().find(|t| t.kind == TokenKind::Bang) {
        return Err(SearchError::IncompleteOperator { pos: bang.pos });
    }
    Parser {
        tokens: &tokens,
        next: 0,
        end: text.chars().count(),
        target,
        case_sensitive,
    }
    .query()
}

struct Parser<'a> {
    tokens: &'a [Token],
    next: usize,
    /// The character length of the query, where "the end" is.
    end: usize,
    target: &'static ObjectType,
    case_sensitive: bool,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a Token> {
        self.tokens.get(self.next)
    }

    fn peek_keyword(&self) -> Option<Keyword> {
        self.peek().and_then(word_keyword)
    }

    fn advance(&mut self) -> Option<&'a Token> {
        let token = self.peek()?;
        self.next += 1;
        Some(token)
    }

    fn query(mut self) -> Result<Parsed, SearchError> {
        self.prefix()?;
        let expr = match self.peek_keyword() {
            Some(Keyword::SortBy | Keyword::Page) => None,
            _ if self.peek().is_none() => None,
            _ => Some(self.any(0)?),
        };
        let mut parsed = Parsed {
            expr,
            sort: None,
            page: None,
        };
        while let Some(token) = self.advance() {
            match word_keyword(token) {
                Some(Keyword::SortBy) if parsed.sort.is_none() => {
                    parsed.sort = Some(self.sort_clause(token)?);
                }
                Some(Keyword::Page) if parsed.page.is_none() => {
                    parsed.page = Some(self.page_clause(token)?);
                }
                Some(Keyword::SortBy) => return Err(duplicate("sortby", token)),
                Some(Keyword::Page) => return Err(duplicate("page", token)),
                _ => {
                    let after_clause = parsed.sort.is_some() || parsed.page.is_some();
                    return Err(stray(token, after_clause));
                }
            }
        }
        Ok(parsed)
    }

    /// Checks and skips the `Name:` prefix, if any.
    fn prefix(&mut self) -> Result<(), SearchError> {
        let Some(Token {
            kind: TokenKind::Prefix(name),
            pos,
            ..
        }) = self.peek()
        else {
            return Ok(());
        };
        let found = object_type(name).ok_or_else(|| SearchError::UnknownObjectType {
            name: name.clone(),
            pos: *pos,
        })?;
        if found.name != self.target.name {
            return Err(SearchError::WrongObjectType {
                found: found.name,
                expected: self.target.name,
                pos: *pos,
            });
        }
        self.next += 1;
        Ok(())
    }

    /// `and-expr ("or" and-expr)*`
    fn any(&mut self, depth: usize) -> Result<Expr, SearchError> {
        let mut items = vec![self.all(depth)?];
        while self.peek_keyword() == Some(Keyword::Or) {
            self.next += 1;
            items.push(self.all(depth)?);
        }
        Ok(collapse(items, Expr::Or))
    }

    /// `unary ("and"? unary)*`
    fn all(&mut self, depth: usize) -> Result<Expr, SearchError> {
        let mut items = vec![self.unary(depth)?];
        loop {
            match self.peek().map(|t| &t.kind) {
                Some(TokenKind::Word(word)) => match keyword(word) {
                    Some(Keyword::And) => {
                        self.next += 1;
                        items.push(self.unary(depth)?);
                    }
                    Some(_) => break,
                    None => items.push(self.unary(depth)?),
                },
                Some(TokenKind::Quoted(_) | TokenKind::Open) => items.push(self.unary(depth)?),
                _ => break,
            }
        }
        Ok(collapse(items, Expr::And))
    }

    /// A parenthesized expression, a condition or a free-text term.
    fn unary(&mut self, depth: usize) -> Result<Expr, SearchError> {
        let Some(token) = self.peek() else {
            return Err(SearchError::ExpectedCondition {
                found: "the end of the query".to_string(),
                pos: self.end,
            });
        };
        match &token.kind {
            TokenKind::Open if depth >= MAX_DEPTH => Err(SearchError::TooDeep {
                limit: MAX_DEPTH,
                pos: token.pos,
            }),
            TokenKind::Open => {
                self.next += 1;
                let inner = self.any(depth + 1)?;
                self.close(token.pos)?;
                Ok(inner)
            }
            TokenKind::Word(word) if keyword(word).is_none() => {
                self.next += 1;
                match self.peek() {
                    Some(Token {
                        kind: TokenKind::Op(op),
                        pos,
                        ..
                    }) => {
                        self.next += 1;
                        self.condition(word, token.pos, *op, *pos)
                    }
                    _ => Ok(self.free_text(word)),
                }
            }
            TokenKind::Quoted(term) => {
                self.next += 1;
                Ok(self.free_text(term))
            }
            TokenKind::Op(op) => Err(dangling(*op, token)),
            _ => Err(SearchError::ExpectedCondition {
                found: describe(token),
                pos: token.pos,
            }),
        }
    }

    /// Skips the `)` closing the `(` at `open`.
    fn close(&mut self, open: usize) -> Result<(), SearchError> {
        let token = self
            .advance()
            .ok_or(SearchError::UnclosedParen { pos: open })?;
        match token.kind {
            TokenKind::Close => Ok(()),
            TokenKind::Op(op) => Err(dangling(op, token)),
            _ => Err(SearchError::UnexpectedToken {
                found: describe(token),
                expected: "')'",
                pos: token.pos,
            }),
        }
    }

    /// The rest of `field op value`, the field and operator being read.
    fn condition(
        &mut self,
        field: &str,
        field_pos: usize,
        op: Op,
        op_pos: usize,
    ) -> Result<Expr, SearchError> {
        let resolved = resolve_field(self.target, field, field_pos)?;
        let value = self.peek().and_then(|t| match &t.kind {
            TokenKind::Word(w) if keyword(w).is_none() => Some((w, t.pos)),
            TokenKind::Quoted(q) => Some((q, t.pos)),
            _ => None,
        });
        let Some((raw, pos)) = value else {
            return Err(SearchError::MissingValue {
                field: field.to_string(),
                op: op.symbol(),
                pos: op_pos,
            });
        };
        self.next += 1;
        let literal = Literal::new(raw, self.case_sensitive);
        literal
            .fits(resolved.def.kind, op)
            .map_err(|expected| SearchError::InvalidValue {
                field: field.to_string(),
                value: raw.clone(),
                expected,
                pos,
            })?;
        Ok(Expr::Condition(Condition::new(resolved, op, literal)))
    }

    fn free_text(&self, term: &str) -> Expr {
        Expr::FreeText(FreeText::new(self.target.fields, term, self.case_sensitive))
    }

    /// The field and direction after `sortby`.
    fn sort_clause(&mut self, sortby: &Token) -> Result<(&'static str, bool), SearchError> {
        let missing = SearchError::MissingSortField { pos: sortby.pos };
        let Some(Token {
            kind: TokenKind::Word(name),
            pos,
            ..
        }) = self.peek()
        else {
            return Err(missing);
        };
        if keyword(name).is_some() {
            return Err(missing);
        }
        let def = self
            .target
            .field(name)
            .ok_or_else(|| SearchError::UnknownSortField {
                field: name.clone(),
                object: self.target.name,
                pos: *pos,
            })?;
        self.next += 1;
        let direction = match self.peek().map(|t| &t.kind) {
            Some(TokenKind::Word(w)) if w.eq_ignore_ascii_case("asc") => Some(false),
            Some(TokenKind::Word(w)) if w.eq_ignore_ascii_case("desc") => Some(true),
            _ => None,
        };
        if direction.is_some() {
            self.next += 1;
        }
        Ok((def.name, direction.unwrap_or(false)))
    }

    /// The page number after `page`.
    fn page_clause(&mut self, page: &Token) -> Result<u32, SearchError> {
        let token = match self.peek() {
            Some(token) if word_keyword(token).is_none() => token,
            _ => return Err(SearchError::MissingPage { pos: page.pos }),
        };
        self.next += 1;
        let number = match &token.kind {
            TokenKind::Word(word) => word.parse::<u32>().ok().filter(|n| *n >= 1),
            _ => None,
        };
        number.ok_or_else(|| SearchError::InvalidPage {
            value: source_text(token),
            pos: token.pos,
        })
    }
}

/// One expression for `items`, combined by `combine` when there are several.
fn collapse(mut items: Vec<Expr>, combine: fn(Vec<Expr>) -> Expr) -> Expr {
    if items.len() == 1 {
        if let Some(only) = items.pop() {
            return only;
        }
    }
    combine(items)
}

fn word_keyword(token: &Token) -> Option<Keyword> {
    match &token.kind {
        TokenKind::Word(word) => keyword(word),
        _ => None,
    }
}

fn duplicate(clause: &'static str, token: &Token) -> SearchError {
    SearchError::DuplicateClause {
        clause,
        pos: token.pos,
    }
}

fn dangling(op: Op, token: &Token) -> SearchError {
    SearchError::DanglingOperator {
        op: op.symbol(),
        pos: token.pos,
    }
}

/// The error for a token left over after the conditions.
fn stray(token: &Token, after_clause: bool) -> SearchError {
    match token.kind {
        TokenKind::Close => SearchError::UnmatchedParen { pos: token.pos },
        TokenKind::Op(op) if !after_clause => dangling(op, token),
        _ => SearchError::UnexpectedToken {
            found: describe(token),
            expected: "'sortby', 'page' or the end of the query",
            pos: token.pos,
        },
    }
}

/// The token quoted for messages.
fn describe(token: &Token) -> String {
    format!("'{}'", source_text(token))
}

/// The token as it could be written.
fn source_text(token: &Token) -> String {
    match &token.kind {
        TokenKind::Prefix(name) => format!("{name}:"),
        TokenKind::Word(word) => word.clone(),
        TokenKind::Quoted(text) => format!("\"{text}\""),
        TokenKind::Op(op) => op.symbol().to_string(),
        TokenKind::Bang => "!".to_string(),
        TokenKind::Open => "(".to_string(),
        TokenKind::Close => ")".to_string(),
    }
}
