//! The compiled condition tree and its evaluation against subjects.

use super::lexer::Op;
use super::literal::Literal;
use super::pattern::Pattern;
use super::schema::{FieldDef, FieldRef};
use super::subject::{FieldValue, Subject};

/// A boolean combination of conditions.
#[derive(Debug, Clone)]
pub(super) enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Condition(Condition),
    FreeText(FreeText),
}

impl Expr {
    pub(super) fn matches(&self, subject: &dyn Subject) -> bool {
        match self {
            Expr::Or(items) => items.iter().any(|e| e.matches(subject)),
            Expr::And(items) => items.iter().all(|e| e.matches(subject)),
            Expr::Condition(condition) => condition.matches(subject),
            Expr::FreeText(free) => free.matches(subject),
        }
    }
}

/// `field op value`, on the subject itself or on its related objects.
#[derive(Debug, Clone)]
pub(super) struct Condition {
    field: FieldRef,
    op: Op,
    literal: Literal,
}

impl Condition {
    pub(super) fn new(field: FieldRef, op: Op, literal: Literal) -> Self {
        Self { field, op, literal }
    }

    fn matches(&self, subject: &dyn Subject) -> bool {
        match self.field.join {
            None => self.holds_on(subject),
            Some(object) => subject
                .related(object)
                .iter()
                .any(|other| self.holds_on(other.as_ref())),
        }
    }

    /// Whether the condition holds on the values `subject` itself has.
    fn holds_on(&self, subject: &dyn Subject) -> bool {
        let values = subject.values(self.field.def.name);
        match self.op {
            Op::Eq => values.iter().any(|v| self.literal.equals(v)),
            Op::Ne => !values.iter().any(|v| self.literal.equals(v)),
            op => values.iter().any(|v| self.literal.orders(op, v)),
        }
    }
}

/// A bare term: some textual field of the subject contains it.
#[derive(Debug, Clone)]
pub(super) struct FreeText {
    fields: &'static [FieldDef],
    pattern: Pattern,
}

impl FreeText {
    pub(super) fn new(fields: &'static [FieldDef], term: &str, case_sensitive: bool) -> Self {
        Self {
            fields,
            pattern: Pattern::containing(term, case_sensitive),
        }
    }

    fn matches(&self, subject: &dyn Subject) -> bool {
        self.fields.iter().filter(|f| f.kind.is_textual()).any(|f| {
            subject
                .values(f.name)
                .iter()
                .any(|v| matches!(v, FieldValue::Text(text) if self.pattern.matches(text)))
        })
    }
}
