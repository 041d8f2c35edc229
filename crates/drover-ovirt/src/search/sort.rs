//! Sort keys for the `sortby` clause.

use std::cmp::Ordering;

use super::subject::{FieldValue, Subject};

/// The value a subject is sorted by: the first value of the `sortby` field
/// (lower-cased text when comparing case-insensitively). Keys order
/// ascending or descending as the query asks, with missing values last
/// either way.
#[derive(Debug, Clone)]
pub struct SortKey {
    value: Option<FieldValue>,
    descending: bool,
}

impl SortKey {
    /// The key of `subject` by `field`.
    pub(super) fn of(
        subject: &dyn Subject,
        field: &str,
        descending: bool,
        case_sensitive: bool,
    ) -> Self {
        let value = subject.values(field).into_iter().next().map(|v| match v {
            FieldValue::Text(text) if !case_sensitive => FieldValue::Text(text.to_lowercase()),
            other => other,
        });
        Self { value, descending }
    }

    /// The key of every subject when the query has no `sortby` clause.
    pub(super) fn unsorted() -> Self {
        Self {
            value: None,
            descending: false,
        }
    }
}

impl Ord for SortKey {
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.value, &other.value) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(a), Some(b)) if self.descending => compare(b, a),
            (Some(a), Some(b)) => compare(a, b),
        }
    }
}

impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for SortKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for SortKey {}

/// A total order on values: by kind (booleans, numbers, dates, text),
/// then by value.
fn compare(a: &FieldValue, b: &FieldValue) -> Ordering {
    match (a, b) {
        (FieldValue::Bool(x), FieldValue::Bool(y)) => x.cmp(y),
        (FieldValue::Number(x), FieldValue::Number(y)) => x.total_cmp(y),
        (FieldValue::Date(x), FieldValue::Date(y)) => x.cmp(y),
        (FieldValue::Text(x), FieldValue::Text(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

fn rank(value: &FieldValue) -> u8 {
    match value {
        FieldValue::Bool(_) => 0,
        FieldValue::Number(_) => 1,
        FieldValue::Date(_) => 2,
        FieldValue::Text(_) => 3,
    }
}
