//! Transactions over the working set: every change to objects goes through a `Txn`, which keeps
//! bound fields consistent, and is committed to the store before it becomes visible.

use std::collections::HashMap;
use std::sync::Arc;

use drover_model::{Schema, Type, Value, NULL_REF};

use crate::db::{Db, Obj, Ref, View};
use crate::error::{CoreError, Result};
use crate::relations;

/// An object's class and reference.
pub(crate) type Key = (Arc<str>, Ref);

/// A set of changes, applied atomically on commit.
pub struct Txn<'a> {
    db: &'a Db,
    pending: HashMap<(Arc<str>, Ref), Option<Obj>>,
    order: Vec<(Arc<str>, Ref)>,
}

impl View for Txn<'_> {
    fn obj(&self, class: &str, r: &str) -> Option<&Obj> {
        self.get(class, r)
    }
}

/// A new reference.
pub fn new_ref() -> Ref {
    format!("OpaqueRef:{}", uuid::Uuid::new_v4()).into()
}

/// A new uuid.
pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl<'a> Txn<'a> {
    pub(crate) fn new(db: &'a Db) -> Txn<'a> {
        Txn {
            db,
            pending: HashMap::new(),
            order: Vec::new(),
        }
    }

    /// The committed working set this transaction reads beneath its own changes.
    pub fn db(&self) -> &Db {
        self.db
    }

    /// An object as this transaction sees it.
    pub fn get(&self, class: &str, r: &str) -> Option<&Obj> {
        match self.pending.get(&(Arc::from(class), Ref::from(r))) {
            Some(v) => v.as_ref(),
            None => self.db.get(class, r).map(|o| o.as_ref()),
        }
    }

    /// An object, or `HANDLE_INVALID`.
    pub fn must(&self, class: &str, r: &str) -> Result<&Obj> {
        self.get(class, r)
            .ok_or_else(|| CoreError::handle(class, r))
    }

    fn slot(&mut self, class: &str, r: &str) -> Result<&mut Obj> {
        let key = (Arc::<str>::from(class), Ref::from(r));
        if !self.pending.contains_key(&key) {
            let obj = self
                .db
                .get(class, r)
                .map(|o| (**o).clone())
                .ok_or_else(|| CoreError::handle(class, r))?;
            self.order.push(key.clone());
            self.pending.insert(key.clone(), Some(obj));
        }
        self.pending
            .get_mut(&key)
            .and_then(|o| o.as_mut())
            .ok_or_else(|| CoreError::handle(class, r))
    }

    /// Creates an object of `class` with the given fields (the rest initial); returns its ref.
    pub fn create(&mut self, class: &str, values: Vec<(&str, Value)>) -> Result<Ref> {
        self.create_with_ref(class, new_ref(), values)
    }

    /// Creates an object under a reference chosen by the caller.
    pub fn create_with_ref(
        &mut self,
        class: &str,
        r: Ref,
        values: Vec<(&str, Value)>,
    ) -> Result<Ref> {
        let schema = Schema::get();
        let k = schema
            .class(class)
            .ok_or_else(|| CoreError::Internal(format!("no class {class}")))?;
        let mut obj = Obj::new(k, r.clone());
        obj.put("uuid", Value::str(new_uuid()));
        let key = (k.name.clone(), r.clone());
        self.order.push(key.clone());
        self.pending.insert(key, Some(obj));
        for (f, v) in values {
            self.set(class, &r, f, v)?;
        }
        Ok(r)
    }

    /// Sets a field, keeping bound fields consistent and checking referenced objects exist.
    pub fn set(&mut self, class: &str, r: &str, field: &str, v: Value) -> Result<()> {
        let obj = self.must(class, r)?;
        let f = obj
            .class
            .field(field)
            .ok_or_else(|| CoreError::NoSuchField {
                class: class.into(),
                field: field.into(),
            })?;
        if let Type::Ref(target) = &f.ty {
            let new = v
                .as_str()
                .ok_or_else(|| CoreError::FieldType(field.into()))?;
            if new != NULL_REF && self.get(target, new).is_none() {
                return Err(CoreError::handle(target, new));
            }
            if let Some((tc, tf)) = relations::mirror_of(class, field) {
                let old = obj.str(field).to_string();
                if old != new {
                    if old != NULL_REF && self.get(tc, &old).is_some() {
                        let o = self.slot(tc, &old)?;
                        let mut set = o.get(tf).clone();
                        set.set_remove(&Value::str(r));
                        o.put(tf, set);
                    }
                    if new != NULL_REF {
                        let o = self.slot(tc, new)?;
                        let mut set = o.get(tf).clone();
                        set.set_add(Value::str(r));
                        o.put(tf, set);
                    }
                }
            }
        }
        self.slot(class, r)?.put(field, v);
        Ok(())
    }

    /// Changes a field with a function of its current value.
    pub fn update(
        &mut self,
        class: &str,
        r: &str,
        field: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<()> {
        let mut v = self.must(class, r)?.get(field).clone();
        f(&mut v);
        self.set(class, r, field, v)
    }

    /// Deletes an object, unbinding it from the objects it references.
    pub fn destroy(&mut self, class: &str, r: &str) -> Result<()> {
        let referrers: Vec<(&str, &str, Ref)> = {
            let obj = self.must(class, r)?;
            relations::BOUND
                .iter()
                .filter(|(_, _, tc, _)| *tc == class)
                .flat_map(|(c, f, _, tf)| obj.refs(tf).into_iter().map(move |m| (*c, *f, m)))
                .collect()
        };
        for (c, f, m) in referrers {
            if self.get(c, &m).is_some() {
                self.set(c, &m, f, Value::str(NULL_REF))?;
            }
        }
        for field in relations::bound_fields(class) {
            self.set(class, r, field, Value::str(NULL_REF))?;
        }
        let key = (Arc::<str>::from(class), Ref::from(r));
        if !self.pending.contains_key(&key) {
            self.order.push(key.clone());
        }
        self.pending.insert(key, None);
        Ok(())
    }

    pub(crate) fn into_changes(self) -> Vec<(Key, Option<Obj>)> {
        let mut pending = self.pending;
        self.order
            .into_iter()
            .filter_map(|k| pending.remove(&k).map(|v| (k, v)))
            .collect()
    }
}
