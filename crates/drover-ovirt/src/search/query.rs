//! The parsed query and what it offers: matching, sorting and paging.

use super::error::SearchError;
use super::eval::Expr;
use super::parser::parse;
use super::schema::ObjectType;
use super::sort::SortKey;
use super::subject::Subject;

/// A parsed query, ready to evaluate many times.
#[derive(Debug, Clone)]
pub struct Query {
    expr: Option<Expr>,
    sort: Option<(&'static str, bool)>,
    page: Option<u32>,
    case_sensitive: bool,
}

impl Query {
    /// Parses `text` as a search of the `target` collection; text compares
    /// case-sensitively when `case_sensitive`, else case-insensitively.
    pub fn parse(
        text: &str,
        target: &'static ObjectType,
        case_sensitive: bool,
    ) -> Result<Query, SearchError> {
        let parsed = parse(text, target, case_sensitive)?;
        Ok(Query {
            expr: parsed.expr,
            sort: parsed.sort,
            page: parsed.page,
            case_sensitive,
        })
    }

    /// Whether `subject` satisfies the query's conditions; a query without
    /// conditions matches everything.
    pub fn matches(&self, subject: &dyn Subject) -> bool {
        self.expr.as_ref().is_none_or(|e| e.matches(subject))
    }

    /// Sorting requested: the field and whether descending.
    pub fn sort(&self) -> Option<(&str, bool)> {
        self.sort
    }

    /// The page requested (1 is the first).
    pub fn page(&self) -> Option<u32> {
        self.page
    }

    /// The key `subject` sorts by; all keys are equal without `sortby`.
    /// Sorting by it with a stable sort (e.g. `sort_by_cached_key`) gives the
    /// order the query asks for.
    pub fn sort_key(&self, subject: &dyn Subject) -> SortKey {
        match self.sort {
            Some((field, descending)) => {
                SortKey::of(subject, field, descending, self.case_sensitive)
            }
            None => SortKey::unsorted(),
        }
    }

    /// Orders subjects by the `sortby` clause (stable; missing values last);
    /// no-op without one. Each subject's key is computed once.
    pub fn sort_subjects<T: Subject>(&self, items: &mut [T]) {
        if self.sort.is_some() {
            items.sort_by_cached_key(|item| self.sort_key(item));
        }
    }
}
