//! The typed error of a malformed query.

use std::fmt;

/// Why a query could not be parsed. Every `pos` is the 0-based character
/// offset into the query text where the problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchError {
    /// A double quote is never closed.
    UnbalancedQuote {
        /// Where the opening quote is.
        pos: usize,
    },
    /// A `(` is never closed.
    UnclosedParen {
        /// Where the `(` is.
        pos: usize,
    },
    /// A `)` has no matching `(`.
    UnmatchedParen {
        /// Where the `)` is.
        pos: usize,
    },
    /// A lone `!` that is not the operator `!=`.
    IncompleteOperator {
        /// Where the `!` is.
        pos: usize,
    },
    /// An object-type prefix or cross-reference names no known object type.
    UnknownObjectType {
        /// The name as written.
        name: String,
        /// Where the name starts.
        pos: usize,
    },
    /// The object-type prefix names another collection than the one searched.
    WrongObjectType {
        /// The object type the prefix names.
        found: &'static str,
        /// The object type being searched.
        expected: &'static str,
        /// Where the prefix starts.
        pos: usize,
    },
    /// A cross-reference names an object type the searched one cannot be joined with.
    NotJoinable {
        /// The object type of the cross-reference.
        object: &'static str,
        /// The object type being searched.
        target: &'static str,
        /// Where the cross-reference starts.
        pos: usize,
    },
    /// A condition names a field its object type does not have.
    UnknownField {
        /// The field as written.
        field: String,
        /// The object type that lacks it.
        object: &'static str,
        /// Where the field name starts.
        pos: usize,
    },
    /// An operator has no field before it.
    DanglingOperator {
        /// The operator.
        op: &'static str,
        /// Where the operator is.
        pos: usize,
    },
    /// An operator has no value after it.
    MissingValue {
        /// The field of the condition.
        field: String,
        /// The operator.
        op: &'static str,
        /// Where the operator is.
        pos: usize,
    },
    /// A value does not fit the kind of its field.
    InvalidValue {
        /// The field of the condition.
        field: String,
        /// The value as written.
        value: String,
        /// What the field accepts.
        expected: String,
        /// Where the value starts.
        pos: usize,
    },
    /// A condition was expected but something else was found.
    ExpectedCondition {
        /// What was found instead, quoted, or "the end of the query".
        found: String,
        /// Where it was found.
        pos: usize,
    },
    /// Parentheses nest deeper than the parser accepts.
    TooDeep {
        /// The deepest nesting accepted.
        limit: usize,
        /// Where the first `(` beyond the limit is.
        pos: usize,
    },
    /// `sortby` has no field after it.
    MissingSortField {
        /// Where `sortby` is.
        pos: usize,
    },
    /// `sortby` names a field the searched object type does not have.
    UnknownSortField {
        /// The field as written.
        field: String,
        /// The object type being searched.
        object: &'static str,
        /// Where the field name starts.
        pos: usize,
    },
    /// `page` has no number after it.
    MissingPage {
        /// Where `page` is.
        pos: usize,
    },
    /// `page` is followed by something other than an integer of at least 1.
    InvalidPage {
        /// What follows `page`.
        value: String,
        /// Where it starts.
        pos: usize,
    },
    /// A `sortby` or `page` clause is given twice.
    DuplicateClause {
        /// The clause keyword.
        clause: &'static str,
        /// Where the second one is.
        pos: usize,
    },
    /// Something appears where only a few things may.
    UnexpectedToken {
        /// What was found, quoted.
        found: String,
        /// What may appear there.
        expected: &'static str,
        /// Where it was found.
        pos: usize,
    },
}

impl SearchError {
    /// The 0-based character offset of the problem in the query.
    pub fn pos(&self) -> usize {
        match self {
            Self::UnbalancedQuote { pos }
            | Self::UnclosedParen { pos }
            | Self::UnmatchedParen { pos }
            | Self::IncompleteOperator { pos }
            | Self::UnknownObjectType { pos, .. }
            | Self::WrongObjectType { pos, .. }
            | Self::NotJoinable { pos, .. }
            | Self::UnknownField { pos, .. }
            | Self::DanglingOperator { pos, .. }
            | Self::MissingValue { pos, .. }
            | Self::InvalidValue { pos, .. }
            | Self::ExpectedCondition { pos, .. }
            | Self::TooDeep { pos, .. }
            | Self::MissingSortField { pos }
            | Self::UnknownSortField { pos, .. }
            | Self::MissingPage { pos }
            | Self::InvalidPage { pos, .. }
            | Self::DuplicateClause { pos, .. }
            | Self::UnexpectedToken { pos, .. } => *pos,
        }
    }
}

impl fmt::Display for SearchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnbalancedQuote { pos } => {
                write!(f, "unbalanced quote: the '\"' at position {pos} is never closed")
            }
            Self::UnclosedParen { pos } => {
                write!(f, "unbalanced parenthesis: the '(' at position {pos} is never closed")
            }
            Self::UnmatchedParen { pos } => write!(
                f,
                "unbalanced parenthesis: the ')' at position {pos} has no matching '('"
            ),
            Self::IncompleteOperator { pos } => {
                write!(f, "incomplete operator '!' at position {pos}: expected '!='")
            }
            Self::UnknownObjectType { name, pos } => {
                write!(f, "unknown object type '{name}' at position {pos}")
            }
            Self::WrongObjectType {
                found,
                expected,
                pos,
            } => write!(
                f,
                "object type '{found}' at position {pos} does not match the searched collection '{expected}'"
            ),
            Self::NotJoinable {
                object,
                target,
                pos,
            } => write!(
                f,
                "'{object}' at position {pos} cannot be joined with '{target}'"
            ),
            Self::UnknownField { field, object, pos } => {
                write!(f, "unknown field '{field}' for {object} at position {pos}")
            }
            Self::DanglingOperator { op, pos } => {
                write!(f, "dangling operator '{op}' at position {pos}: no field before it")
            }
            Self::MissingValue { field, op, pos } => write!(
                f,
                "missing value for field '{field}' after operator '{op}' at position {pos}"
            ),
            Self::InvalidValue {
                field,
                value,
                expected,
                pos,
            } => write!(
                f,
                "invalid value '{value}' for field '{field}' at position {pos}: expected {expected}"
            ),
            Self::ExpectedCondition { found, pos } => {
                write!(f, "expected a condition at position {pos}, found {found}")
            }
            Self::TooDeep { limit, pos } => write!(
                f,
                "parentheses nest deeper than {limit} levels at position {pos}"
            ),
            Self::MissingSortField { pos } => {
                write!(f, "missing field after 'sortby' at position {pos}")
            }
            Self::UnknownSortField { field, object, pos } => write!(
                f,
                "unknown sortby field '{field}' for {object} at position {pos}"
            ),
            Self::MissingPage { pos } => {
                write!(f, "missing page number after 'page' at position {pos}")
            }
            Self::InvalidPage { value, pos } => write!(
                f,
                "invalid page number '{value}' at position {pos}: expected an integer of at least 1"
            ),
            Self::DuplicateClause { clause, pos } => {
                write!(f, "duplicate '{clause}' clause at position {pos}")
            }
            Self::UnexpectedToken {
                found,
                expected,
                pos,
            } => write!(
                f,
                "unexpected {found} at position {pos}: expected {expected}"
            ),
        }
    }
}

impl std::error::Error for SearchError {}
