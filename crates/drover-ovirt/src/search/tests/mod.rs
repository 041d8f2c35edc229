//! Unit tests of the search language, with a small fake [`Subject`].

mod completion;
mod errors;
mod matching;
mod robustness;
mod schema;
mod sorting;

use super::{FieldValue, Query, SearchError, Subject, VMS};

/// An object with explicit field values and related objects.
#[derive(Debug, Clone, Default)]
struct Fake {
    fields: Vec<(&'static str, FieldValue)>,
    related: Vec<(&'static str, Fake)>,
}

impl Fake {
    fn named(name: &str) -> Self {
        Self::default().text("name", name)
    }

    fn text(mut self, field: &'static str, value: &str) -> Self {
        self.fields
            .push((field, FieldValue::Text(value.to_string())));
        self
    }

    fn number(mut self, field: &'static str, value: f64) -> Self {
        self.fields.push((field, FieldValue::Number(value)));
        self
    }

    fn date(mut self, field: &'static str, secs: i64) -> Self {
        self.fields.push((field, FieldValue::Date(secs)));
        self
    }

    fn flag(mut self, field: &'static str, value: bool) -> Self {
        self.fields.push((field, FieldValue::Bool(value)));
        self
    }

    fn with(mut self, object: &'static str, other: Fake) -> Self {
        self.related.push((object, other));
        self
    }

    fn name(&self) -> String {
        match self.values("name").first() {
            Some(FieldValue::Text(name)) => name.clone(),
            other => format!("{other:?}"),
        }
    }
}

impl Subject for Fake {
    fn values(&self, field: &str) -> Vec<FieldValue> {
        self.fields
            .iter()
            .filter(|(name, _)| *name == field)
            .map(|(_, value)| value.clone())
            .collect()
    }

    fn related(&self, object: &str) -> Vec<Box<dyn Subject + '_>> {
        self.related
            .iter()
            .filter(|(name, _)| *name == object)
            .map(|(_, other)| Box::new(other) as Box<dyn Subject + '_>)
            .collect()
    }
}

/// Parses a VM query that must be valid.
fn vms_query(text: &str) -> Query {
    Query::parse(text, &VMS, false).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// The error of a VM query that must be invalid.
fn vms_error(text: &str) -> SearchError {
    match Query::parse(text, &VMS, false) {
        Ok(query) => panic!("{text:?} parsed as {query:?}"),
        Err(e) => e,
    }
}

/// The names of the items `query` matches, in order.
fn names_matching(query: &Query, items: &[Fake]) -> Vec<String> {
    items
        .iter()
        .filter(|item| query.matches(*item))
        .map(Fake::name)
        .collect()
}

/// The names of the items the VM query `text` matches.
fn select(text: &str, items: &[Fake]) -> Vec<String> {
    names_matching(&vms_query(text), items)
}
