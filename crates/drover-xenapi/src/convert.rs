//! Typed conversion between the core's values and the wire's, per XenAPI's rules: ints travel
//! as decimal strings on XML-RPC and as numbers on JSON-RPC; maps are structs with string keys.

use drover_core::{Event, EventBatch, Obj};
use drover_model::{Schema, Type, Value};
use std::sync::Arc;

use drover_rpcwire::xmlrpc::ValueWriter;
use drover_rpcwire::WireValue;

use drover_model::time;

/// Which encoding a call came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enc {
    /// XML-RPC.
    Xml,
    /// JSON-RPC.
    Json,
}

/// A core value as the wire shows it.
pub fn to_wire(v: &Value, enc: Enc) -> WireValue {
    match v {
        Value::Str(s) => WireValue::Str(s.clone()),
        Value::Int(i) => match enc {
            Enc::Xml => WireValue::Str(i.to_string()),
            Enc::Json => WireValue::Int(*i),
        },
        Value::Float(f) => WireValue::Double(*f),
        Value::Bool(b) => WireValue::Bool(*b),
        Value::DateTime(t) => WireValue::DateTime(time::format(*t)),
        Value::Set(items) => WireValue::Array(items.iter().map(|x| to_wire(x, enc)).collect()),
        Value::Map(pairs) => WireValue::Struct(
            pairs
                .iter()
                .map(|(k, x)| (key_text(k), to_wire(x, enc)))
                .collect(),
        ),
    }
}

fn key_text(k: &Value) -> String {
    match k {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::DateTime(t) => time::format(*t),
        other => format!("{other:?}"),
    }
}

/// A whole record as a struct of every field.
pub fn record(o: &Obj, enc: Enc) -> WireValue {
    WireValue::Struct(
        o.class
            .fields
            .iter()
            .zip(&o.fields)
            .map(|(f, v)| (f.name.to_string(), to_wire(v, enc)))
            .collect(),
    )
}

/// Why a wire value did not fit.
pub struct Mismatch;

/// A wire value read as a core value of type `ty`.
pub fn from_wire(w: &WireValue, ty: &Type) -> Result<Value, Mismatch> {
    Ok(match ty {
        Type::String | Type::Ref(_) | Type::Enum(_) => match w {
            WireValue::Str(s) => Value::Str(s.clone()),
            _ => return Err(Mismatch),
        },
        Type::Int => match w {
            WireValue::Int(i) => Value::Int(*i),
            WireValue::Str(s) => Value::Int(s.trim().parse().map_err(|_| Mismatch)?),
            _ => return Err(Mismatch),
        },
        Type::Float => match w {
            WireValue::Double(f) => Value::Float(*f),
            WireValue::Int(i) => Value::Float(*i as f64),
            WireValue::Str(s) => Value::Float(s.trim().parse().map_err(|_| Mismatch)?),
            _ => return Err(Mismatch),
        },
        Type::Bool => match w {
            WireValue::Bool(b) => Value::Bool(*b),
            _ => return Err(Mismatch),
        },
        Type::DateTime => match w {
            WireValue::DateTime(s) | WireValue::Str(s) => {
                Value::DateTime(time::parse(s).ok_or(Mismatch)?)
            }
            _ => return Err(Mismatch),
        },
        Type::Set(inner) => match w {
            WireValue::Array(items) => {
                let mut out: Vec<Value> = Vec::with_capacity(items.len());
                for i in items {
                    let v = from_wire(i, inner)?;
                    if !out.contains(&v) {
                        out.push(v);
                    }
                }
                Value::Set(out)
            }
            _ => return Err(Mismatch),
        },
        Type::Map(k, v) => match w {
            WireValue::Struct(members) => Value::Map(
                members
                    .iter()
                    .map(|(key, val)| {
                        Ok((
                            from_wire(&WireValue::Str(key.clone()), k)?,
                            from_wire(val, v)?,
                        ))
                    })
                    .collect::<Result<_, Mismatch>>()?,
            ),
            _ => return Err(Mismatch),
        },
        _ => return Err(Mismatch),
    })
}

/// A record given to a constructor, as field values; fields the class lacks are refused.
pub fn record_from_wire(w: &WireValue, class: &str) -> Result<Vec<(String, Value)>, String> {
    let WireValue::Struct(members) = w else {
        return Err("args".into());
    };
    let k = Schema::get()
        .class(class)
        .ok_or_else(|| "args".to_string())?;
    let mut out = Vec::new();
    for (name, val) in members {
        let Some(f) = k.field(name) else { continue };
        out.push((
            name.clone(),
            from_wire(val, &f.ty).map_err(|_| name.clone())?,
        ));
    }
    Ok(out)
}

fn event(e: &Event, enc: Enc) -> WireValue {
    let id = match enc {
        Enc::Xml => WireValue::Str(e.id.to_string()),
        Enc::Json => WireValue::Int(e.id as i64),
    };
    WireValue::Struct(vec![
        ("id".into(), id),
        ("timestamp".into(), WireValue::Str(e.timestamp.to_string())),
        ("class".into(), WireValue::Str(e.class.clone())),
        ("operation".into(), WireValue::Str(e.operation.into())),
        ("ref".into(), WireValue::Str(e.r.to_string())),
        (
            "obj_uuid".into(),
            WireValue::Str(e.snapshot.uuid().to_string()),
        ),
        ("snapshot".into(), record(&e.snapshot, enc)),
    ])
}

/// An `event.from` batch.
pub fn batch(b: &EventBatch, enc: Enc) -> WireValue {
    WireValue::Struct(vec![
        ("events".into(), events(b, enc)),
        (
            "valid_ref_counts".into(),
            WireValue::Struct(
                b.valid_ref_counts
                    .iter()
                    .map(|(c, n)| (c.to_lowercase(), to_wire(&Value::Int(*n), enc)))
                    .collect(),
            ),
        ),
        ("token".into(), WireValue::Str(b.token.clone())),
    ])
}

/// The events of a batch as an array (`event.next`).
pub fn events(b: &EventBatch, enc: Enc) -> WireValue {
    WireValue::Array(b.events.iter().map(|e| event(e, enc)).collect())
}

/// Every record of `objs`, keyed by reference.
pub fn records(objs: &[Arc<Obj>], enc: Enc) -> WireValue {
    WireValue::Struct(
        objs.iter()
            .map(|o| (o.r.to_string(), record(o, enc)))
            .collect(),
    )
}

/// Writes every record of `objs` as XML-RPC without building a tree: the inventory's largest
/// answers (`get_all_records`) go straight from the working set to the wire.
pub fn stream_records(w: &mut ValueWriter<'_>, objs: &[Arc<Obj>]) {
    w.begin_struct();
    for o in objs {
        w.member(&o.r);
        w.begin_struct();
        for (f, v) in o.class.fields.iter().zip(&o.fields) {
            w.member(&f.name);
            stream_value(w, v);
            w.end_member();
        }
        w.end_struct();
        w.end_member();
    }
    w.end_struct();
}

fn stream_value(w: &mut ValueWriter<'_>, v: &Value) {
    match v {
        Value::Str(s) => w.str(s),
        Value::Int(i) => w.str(&i.to_string()),
        Value::Set(items) => {
            w.begin_array();
            for i in items {
                stream_value(w, i);
            }
            w.end_array();
        }
        Value::Map(pairs) => {
            w.begin_struct();
            for (k, x) in pairs {
                w.member(&key_text(k));
                stream_value(w, x);
                w.end_member();
            }
            w.end_struct();
        }
        other => w.value(&to_wire(other, Enc::Xml)),
    }
}
