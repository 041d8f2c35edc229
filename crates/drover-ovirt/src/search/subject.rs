//! What a query is evaluated against.

/// A value an object has for a field.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// Text; enum fields carry their lower-case value, e.g. "up".
    Text(String),
    /// A number.
    Number(f64),
    /// A point in time, in unix seconds.
    Date(i64),
    /// A boolean.
    Bool(bool),
}

/// An object being searched; the facade implements it for VMs, hosts, ...
pub trait Subject {
    /// The values of a field (lower-case name as in [`ObjectType::fields`]);
    /// empty when the object has none (e.g. no IP yet). Several values for
    /// multi-valued fields (tags, ips); a condition matches if any value
    /// matches (`!=` matches if no value equals).
    ///
    /// [`ObjectType::fields`]: super::ObjectType::fields
    fn values(&self, field: &str) -> Vec<FieldValue>;

    /// The related objects of another object type (canonical name, e.g.
    /// "Hosts"), for cross-object conditions; none unless the object has some.
    fn related(&self, _object: &str) -> Vec<Box<dyn Subject + '_>> {
        Vec::new()
    }
}

impl<S: Subject + ?Sized> Subject for &S {
    fn values(&self, field: &str) -> Vec<FieldValue> {
        (**self).values(field)
    }

    fn related(&self, object: &str) -> Vec<Box<dyn Subject + '_>> {
        (**self).related(object)
    }
}

impl<S: Subject + ?Sized> Subject for Box<S> {
    fn values(&self, field: &str) -> Vec<FieldValue> {
        (**self).values(field)
    }

    fn related(&self, object: &str) -> Vec<Box<dyn Subject + '_>> {
        (**self).related(object)
    }
}
