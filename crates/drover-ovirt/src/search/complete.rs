//! Autocompletion of partial queries.

use super::lexer::{lex, Op, Token, TokenKind};
use super::parser::{keyword, Keyword};
use super::schema::{object_type, resolve_field, FieldDef, FieldKind, ObjectType};

/// Autocompletion: for a partial query typed against a collection, the
/// possible continuations (whole next tokens: the object prefix like "Vms:",
/// field names, "Hosts." cross-refs and "Hosts.name" once the dot is typed,
/// operators, enum values for enum fields, "true"/"false" for boolean fields,
/// "and", "or", "sortby", "page", "asc", "desc"), filtered by the partial word
/// being typed (case-insensitive prefix). The prefix comes first, then
/// operators (`= != < <= > >=`, only `=` and `!=` for text, enum and boolean
/// fields), keywords, field names in table order and cross-references.
/// Inside an unclosed quote or after a malformed part nothing is offered.
pub fn complete(partial: &str, target: &'static ObjectType) -> Vec<String> {
    let Ok(tokens) = lex(partial) else {
        return Vec::new();
    };
    let length = partial.chars().count();
    let (done, typing) = match tokens.split_last() {
        Some((last, done)) if last.end == length => match typed_word(last) {
            Some(word) => (done, word),
            None => (tokens.as_slice(), ""),
        },
        _ => (tokens.as_slice(), ""),
    };
    let mut walk = Walk {
        target,
        state: State::Start,
        depth: 0,
        sorted: false,
        paged: false,
    };
    for token in done {
        walk.step(&token.kind);
    }
    let lower = typing.to_lowercase();
    walk.candidates(typing)
        .into_iter()
        .filter(|c| c.to_lowercase().starts_with(&lower))
        .collect()
}

/// The text of a last token that may still grow as the user types.
fn typed_word(token: &Token) -> Option<&str> {
    match &token.kind {
        TokenKind::Word(word) => Some(word),
        TokenKind::Op(Op::Lt) => Some("<"),
        TokenKind::Op(Op::Gt) => Some(">"),
        TokenKind::Bang => Some("!"),
        _ => None,
    }
}

/// Where in the grammar the completed tokens leave the query.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Nothing typed yet: the prefix or a condition.
    Start,
    /// After the prefix, `(`, `and` or `or`.
    Condition,
    /// After a word naming a field: an operator, or the word was free text.
    Operator(&'static FieldDef),
    /// After `field op`.
    Value(&'static FieldDef),
    /// After a whole condition, free-text term or `)`.
    AfterCondition,
    /// After `sortby`.
    SortField,
    /// After `sortby field`.
    Direction,
    /// After `sortby field asc|desc` or `page N`.
    Clauses,
    /// After `page`.
    PageNumber,
    /// The query is already malformed.
    Invalid,
}

struct Walk {
    target: &'static ObjectType,
    state: State,
    /// Open parentheses.
    depth: usize,
    sorted: bool,
    paged: bool,
}

impl Walk {
    fn step(&mut self, token: &TokenKind) {
        self.state = match (self.state, token) {
            (State::Start, TokenKind::Prefix(name)) => {
                match object_type(name).filter(|t| t.name == self.target.name) {
                    Some(_) => State::Condition,
                    None => State::Invalid,
                }
            }
            (State::Operator(def), TokenKind::Op(_)) => State::Value(def),
            (State::Operator(_), token) => self.condition_token(State::AfterCondition, token),
            (state @ (State::Start | State::Condition | State::AfterCondition), token) => {
                self.condition_token(state, token)
            }
            (State::Value(_), TokenKind::Word(w)) if keyword(w).is_none() => State::AfterCondition,
            (State::Value(_), TokenKind::Quoted(_)) => State::AfterCondition,
            (State::SortField, TokenKind::Word(w)) if self.target.field(w).is_some() => {
                State::Direction
            }
            (State::Direction, TokenKind::Word(w))
                if w.eq_ignore_ascii_case("asc") || w.eq_ignore_ascii_case("desc") =>
            {
                State::Clauses
            }
            (State::Direction | State::Clauses, TokenKind::Word(w)) => self.clause(w),
            (State::PageNumber, TokenKind::Word(_)) => State::Clauses,
            _ => State::Invalid,
        };
    }

    /// The state after `token` where a condition may start.
    fn condition_token(&mut self, state: State, token: &TokenKind) -> State {
        match token {
            TokenKind::Open => {
                self.depth += 1;
                State::Condition
            }
            TokenKind::Close if self.depth > 0 && matches!(state, State::AfterCondition) => {
                self.depth -= 1;
                State::AfterCondition
            }
            TokenKind::Quoted(_) => State::AfterCondition,
            TokenKind::Word(word) => match keyword(word) {
                Some(Keyword::And | Keyword::Or) if matches!(state, State::AfterCondition) => {
                    State::Condition
                }
                Some(Keyword::SortBy | Keyword::Page) if self.depth == 0 => self.clause(word),
                Some(_) => State::Invalid,
                None => match resolve_field(self.target, word, 0) {
                    Ok(field) => State::Operator(field.def),
                    Err(_) => State::AfterCondition,
                },
            },
            _ => State::Invalid,
        }
    }

    /// The state after the clause keyword `word`.
    fn clause(&mut self, word: &str) -> State {
        match keyword(word) {
            Some(Keyword::SortBy) if !self.sorted => {
                self.sorted = true;
                State::SortField
            }
            Some(Keyword::Page) if !self.paged => {
                self.paged = true;
                State::PageNumber
            }
            _ => State::Invalid,
        }
    }

    /// Every continuation of the current state, before filtering by `typing`.
    fn candidates(&self, typing: &str) -> Vec<String> {
        match self.state {
            State::Start => {
                let mut all = vec![format!("{}:", self.target.name)];
                all.extend(self.conditions(typing));
                all
            }
            State::Condition => self.conditions(typing),
            State::Operator(def) => {
                let mut all: Vec<String> = operators(def.kind)
                    .iter()
                    .map(|op| op.symbol().to_string())
                    .collect();
                all.extend(self.after_condition(typing));
                all
            }
            State::Value(def) => values(def.kind),
            State::AfterCondition => self.after_condition(typing),
            State::SortField => names(self.target.fields),
            State::Direction => {
                let mut all = vec!["asc".to_string(), "desc".to_string()];
                all.extend(self.clauses());
                all
            }
            State::Clauses => self.clauses(),
            State::PageNumber | State::Invalid => Vec::new(),
        }
    }

    /// Field names and cross-references; the joined object's fields once
    /// `typing` holds a dot.
    fn conditions(&self, typing: &str) -> Vec<String> {
        if let Some((object, _)) = typing.split_once('.') {
            return match object_type(object) {
                Some(other) if self.target.joins_with(other.name) || other == self.target => other
                    .fields
                    .iter()
                    .map(|f| format!("{object}.{}", f.name))
                    .collect(),
                _ => Vec::new(),
            };
        }
        let mut all = names(self.target.fields);
        all.extend(self.target.joins.iter().map(|j| format!("{j}.")));
        all
    }

    /// Keywords after a condition; also conditions (joined by juxtaposition)
    /// once a word is being typed.
    fn after_condition(&self, typing: &str) -> Vec<String> {
        let mut all = vec!["and".to_string(), "or".to_string()];
        if self.depth == 0 {
            all.extend(self.clauses());
        }
        if !typing.is_empty() {
            all.extend(self.conditions(typing));
        }
        all
    }

    /// The clause keywords not used yet.
    fn clauses(&self) -> Vec<String> {
        [("sortby", self.sorted), ("page", self.paged)]
            .into_iter()
            .filter(|(_, used)| !used)
            .map(|(name, _)| name.to_string())
            .collect()
    }
}

fn names(fields: &[FieldDef]) -> Vec<String> {
    fields.iter().map(|f| f.name.to_string()).collect()
}

/// The operators offered for a kind of field.
fn operators(kind: FieldKind) -> &'static [Op] {
    match kind {
        FieldKind::Number | FieldKind::Date => &Op::ALL,
        FieldKind::Text | FieldKind::Bool | FieldKind::Enum(_) => &[Op::Eq, Op::Ne],
    }
}

/// The values offered for a kind of field.
fn values(kind: FieldKind) -> Vec<String> {
    match kind {
        FieldKind::Enum(values) => values.iter().map(|v| v.to_string()).collect(),
        FieldKind::Bool => vec!["false".to_string(), "true".to_string()],
        FieldKind::Text | FieldKind::Number | FieldKind::Date => Vec::new(),
    }
}
