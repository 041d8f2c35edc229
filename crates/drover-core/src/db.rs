//! The in-memory working set: every object, indexed by class, reference and uuid, with a
//! generation counter that orders changes for the event system.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use drover_model::{Class, Schema, Value};

/// An object reference (`OpaqueRef:<uuid>`).
pub type Ref = Arc<str>;

/// One object: its class, reference, field values in schema order, and generations.
#[derive(Debug, Clone)]
pub struct Obj {
    /// The object's class.
    pub class: &'static Class,
    /// Its reference.
    pub r: Ref,
    /// Field values, in the order of `class.fields`.
    pub fields: Vec<Value>,
    /// Generation at which it was created.
    pub created: u64,
    /// Generation of its last change.
    pub modified: u64,
}

impl Obj {
    /// A new object of `class` with every field at its initial value.
    pub fn new(class: &'static Class, r: Ref) -> Obj {
        let schema = Schema::get();
        Obj {
            class,
            r,
            fields: class.fields.iter().map(|f| f.initial(schema)).collect(),
            created: 0,
            modified: 0,
        }
    }

    /// A field's value. Panics on a field the class does not have: callers name fields of the
    /// schema, and a typo is a programming error caught by tests.
    pub fn get(&self, field: &str) -> &Value {
        let i = self
            .class
            .field_index(field)
            .unwrap_or_else(|| panic!("{} has no field {field}", self.class.name));
        &self.fields[i]
    }

    /// A string field's text ("" for non-strings).
    pub fn str(&self, field: &str) -> &str {
        self.get(field).as_str().unwrap_or("")
    }

    /// An int field's value (0 for non-ints).
    pub fn int(&self, field: &str) -> i64 {
        self.get(field).as_int().unwrap_or(0)
    }

    /// A bool field's value.
    pub fn bool(&self, field: &str) -> bool {
        self.get(field).as_bool().unwrap_or(false)
    }

    /// The members of a set field, as strings.
    pub fn refs(&self, field: &str) -> Vec<Ref> {
        self.get(field)
            .as_set()
            .unwrap_or(&[])
            .iter()
            .filter_map(|v| v.as_str())
            .map(Ref::from)
            .collect()
    }

    /// The object's uuid.
    pub fn uuid(&self) -> &str {
        self.str("uuid")
    }

    /// A value of the object's `other_config`, where facades and the core keep facts of their
    /// own under prefixed keys.
    pub fn other(&self, key: &str) -> Option<&str> {
        self.get("other_config")
            .map_get(key)
            .and_then(|v| v.as_str())
    }

    /// A string map field with `changes` applied: `Some` sets a key, `None` removes it;
    /// `None` when that changes nothing.
    pub fn map_with(&self, field: &str, changes: &[(&str, Option<&str>)]) -> Option<Value> {
        let old = self.get(field);
        let mut map = old.clone();
        for (key, value) in changes {
            map.map_remove(&Value::str(*key));
            if let Some(v) = value {
                map.map_insert(Value::str(*key), Value::str(*v));
            }
        }
        (map != *old).then_some(map)
    }

    /// Sets a field; the caller keeps bound fields consistent (see `Txn`).
    pub(crate) fn put(&mut self, field: &str, v: Value) {
        let i = self
            .class
            .field_index(field)
            .unwrap_or_else(|| panic!("{} has no field {field}", self.class.name));
        self.fields[i] = v;
    }
}

/// Read access to objects, committed ([`Db`]) or as a transaction sees them
/// ([`crate::txn::Txn`]).
pub trait View {
    /// An object by class and reference.
    fn obj(&self, class: &str, r: &str) -> Option<&Obj>;

    /// The objects a set field of `o` refers to, those that exist.
    fn members<'s>(&'s self, o: &Obj, field: &str, class: &str) -> Vec<&'s Obj> {
        o.refs(field)
            .iter()
            .filter_map(|r| self.obj(class, r))
            .collect()
    }
}

impl View for Db {
    fn obj(&self, class: &str, r: &str) -> Option<&Obj> {
        self.get(class, r).map(|o| &**o)
    }
}

/// All objects of one class.
#[derive(Debug, Default)]
pub struct Table {
    /// Objects by reference.
    pub objs: HashMap<Ref, Arc<Obj>>,
    by_uuid: HashMap<String, Ref>,
}

impl Table {
    /// The reference of the object with `uuid`.
    pub fn by_uuid(&self, uuid: &str) -> Option<&Ref> {
        self.by_uuid.get(uuid)
    }
}

/// A deleted object, kept for a while so event readers see the deletion.
#[derive(Debug, Clone)]
pub struct Tombstone {
    /// The object as it was.
    pub obj: Arc<Obj>,
    /// Generation of the deletion.
    pub deleted: u64,
}

/// How many deletions event readers can catch up on.
const TOMBSTONES_KEPT: usize = 100_000;

/// The working set.
#[derive(Debug, Default)]
pub struct Db {
    tables: HashMap<Arc<str>, Table>,
    /// The newest generation.
    pub gen: u64,
    changed: BTreeMap<u64, (Arc<str>, Ref)>,
    tombstones: BTreeMap<u64, Tombstone>,
}

/// A change seen by an event reader.
#[derive(Debug, Clone)]
pub enum Change {
    /// An object created or modified since the token; `created` says which.
    Live(Arc<Obj>),
    /// An object deleted since the token.
    Deleted(Tombstone),
}

impl Db {
    /// The table of a class (empty if none yet).
    pub fn table(&self, class: &str) -> Option<&Table> {
        self.tables.get(class)
    }

    /// An object by class and reference.
    pub fn get(&self, class: &str, r: &str) -> Option<&Arc<Obj>> {
        self.tables.get(class)?.objs.get(r)
    }

    /// An object by class and uuid.
    pub fn by_uuid(&self, class: &str, uuid: &str) -> Option<&Arc<Obj>> {
        let table = self.tables.get(class)?;
        table.objs.get(table.by_uuid(uuid)?)
    }

    /// Every object of a class.
    pub fn all(&self, class: &str) -> impl Iterator<Item = &Arc<Obj>> {
        self.tables
            .get(class)
            .into_iter()
            .flat_map(|t| t.objs.values())
    }

    /// Inserts or replaces an object at a new generation.
    pub(crate) fn upsert(&mut self, mut obj: Obj) {
        self.gen += 1;
        let class: Arc<str> = obj.class.name.clone();
        let table = self.tables.entry(class.clone()).or_default();
        if let Some(old) = table.objs.get(&obj.r) {
            self.changed.remove(&old.modified);
            obj.created = old.created;
            if old.uuid() != obj.uuid()
                && table.by_uuid.get(old.uuid()).is_some_and(|o| *o == obj.r)
            {
                table.by_uuid.remove(old.uuid());
            }
        } else {
            obj.created = self.gen;
        }
        obj.modified = self.gen;
        table.by_uuid.insert(obj.uuid().to_string(), obj.r.clone());
        self.changed.insert(self.gen, (class, obj.r.clone()));
        table.objs.insert(obj.r.clone(), Arc::new(obj));
    }

    /// Loads an object from the store without recording a change.
    pub(crate) fn load(&mut self, mut obj: Obj) {
        self.gen += 1;
        obj.created = self.gen;
        obj.modified = self.gen;
        let class: Arc<str> = obj.class.name.clone();
        let table = self.tables.entry(class.clone()).or_default();
        table.by_uuid.insert(obj.uuid().to_string(), obj.r.clone());
        self.changed.insert(self.gen, (class, obj.r.clone()));
        table.objs.insert(obj.r.clone(), Arc::new(obj));
    }

    /// Removes an object, leaving a tombstone.
    pub(crate) fn remove(&mut self, class: &str, r: &str) {
        let Some(table) = self.tables.get_mut(class) else {
            return;
        };
        let Some(old) = table.objs.remove(r) else {
            return;
        };
        // A uuid that moved to another object in the same change stays that object's.
        if table.by_uuid.get(old.uuid()).is_some_and(|o| **o == *r) {
            table.by_uuid.remove(old.uuid());
        }
        self.changed.remove(&old.modified);
        self.gen += 1;
        self.tombstones.insert(
            self.gen,
            Tombstone {
                obj: old,
                deleted: self.gen,
            },
        );
        while self.tombstones.len() > TOMBSTONES_KEPT {
            self.tombstones.pop_first();
        }
    }

    /// The oldest generation whose deletions are still known.
    pub fn horizon(&self) -> u64 {
        if self.tombstones.len() < TOMBSTONES_KEPT {
            0
        } else {
            self.tombstones.keys().next().copied().unwrap_or(0)
        }
    }

    /// Changes after generation `since` to objects whose class passes `want`, oldest first.
    pub fn changes_since(&self, since: u64, want: &dyn Fn(&str, &str) -> bool) -> Vec<Change> {
        let mut out: Vec<(u64, Change)> = Vec::new();
        for (g, (class, r)) in self.changed.range(since + 1..) {
            if want(class, r) {
                if let Some(o) = self.get(class, r) {
                    out.push((*g, Change::Live(o.clone())));
                }
            }
        }
        for (g, t) in self.tombstones.range(since + 1..) {
            if want(&t.obj.class.name, &t.obj.r) {
                out.push((*g, Change::Deleted(t.clone())));
            }
        }
        out.sort_by_key(|(g, _)| *g);
        out.into_iter().map(|(_, c)| c).collect()
    }
}
