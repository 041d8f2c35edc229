//! Binding a call's positional and keyword arguments to its parameters, as Python binds
//! `api_func(*args, **kwargs)`, with the original's argument errors.

use serde_json::{Map, Value as Json};

use crate::error::{ZvmError, ZvmResult};

/// A parameter of a call: its name and, when optional, its default.
pub type Param = (&'static str, Option<fn() -> Json>);

/// A required parameter.
pub const fn req(name: &'static str) -> Param {
    (name, None)
}

/// An optional parameter defaulting to `null`.
pub const fn opt(name: &'static str) -> Param {
    (name, Some(|| Json::Null))
}

/// A call's arguments, bound to its parameters.
#[derive(Debug)]
pub struct Args {
    api: &'static str,
    values: Vec<(&'static str, Json)>,
}

impl Args {
    /// Binds `args` and `kwargs` to `params`, refusing missing, surplus or unknown arguments.
    pub fn bind(
        api: &'static str,
        params: &[Param],
        args: Vec<Json>,
        mut kwargs: Map<String, Json>,
    ) -> ZvmResult<Args> {
        let count_error = |provided: usize| ZvmError::ArgCount {
            api: api.into(),
            expected: params.iter().filter(|p| p.1.is_none()).count(),
            provided,
        };
        let provided = args.len() + kwargs.len();
        if args.len() > params.len() {
            return Err(count_error(provided));
        }
        let mut positional = args.into_iter();
        let mut values = Vec::with_capacity(params.len());
        for (name, default) in params {
            let v = match positional.next() {
                Some(v) if kwargs.contains_key(*name) => {
                    let _ = v;
                    return Err(count_error(provided));
                }
                Some(v) => v,
                None => match (kwargs.remove(*name), default) {
                    (Some(v), _) => v,
                    (None, Some(d)) => d(),
                    (None, None) => return Err(count_error(provided)),
                },
            };
            values.push((*name, v));
        }
        if !kwargs.is_empty() {
            return Err(count_error(provided));
        }
        Ok(Args { api, values })
    }

    /// The call's name.
    pub fn api(&self) -> &'static str {
        self.api
    }

    /// A bound value (`null` when not given and optional).
    pub fn get(&self, name: &str) -> &Json {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .unwrap_or(&Json::Null)
    }

    fn type_error(&self, name: &str, expected: &str) -> ZvmError {
        ZvmError::ArgType {
            api: self.api.into(),
            expected: expected.into(),
            given: format!("{name}: {}", py_type(self.get(name))),
        }
    }

    /// A string argument.
    pub fn str(&self, name: &str) -> ZvmResult<String> {
        match self.get(name) {
            Json::String(s) => Ok(s.clone()),
            _ => Err(self.type_error(name, "str")),
        }
    }

    /// A string argument that may be `null`.
    pub fn opt_str(&self, name: &str) -> ZvmResult<Option<String>> {
        match self.get(name) {
            Json::Null => Ok(None),
            Json::String(s) => Ok(Some(s.clone())),
            _ => Err(self.type_error(name, "str")),
        }
    }

    /// A userid argument: a string of 1 to 8 characters, answered upper-case.
    pub fn userid(&self, name: &str) -> ZvmResult<String> {
        let s = self.str(name)?;
        if s.is_empty() || s.len() > 8 || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(ZvmError::ArgFormat(format!(
                "{name} {s:?} should be a string of 1 to 8 letters, digits or _"
            )));
        }
        Ok(s.to_uppercase())
    }

    /// An integer argument; digit strings count, as the REST layer lets them through.
    pub fn int(&self, name: &str) -> ZvmResult<i64> {
        match self.get(name) {
            Json::Number(n) if n.is_i64() => Ok(n.as_i64().unwrap_or_default()),
            Json::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s
                .parse()
                .map_err(|_| ZvmError::ArgFormat(format!("{name} {s} is out of range"))),
            _ => Err(self.type_error(name, "int")),
        }
    }

    /// An integer argument that may be `null`.
    pub fn opt_int(&self, name: &str) -> ZvmResult<Option<i64>> {
        match self.get(name) {
            Json::Null => Ok(None),
            _ => self.int(name).map(Some),
        }
    }

    /// A boolean argument (`null` is false).
    pub fn bool(&self, name: &str) -> ZvmResult<bool> {
        let v = self.get(name);
        match (py_bool(v), v) {
            (Some(b), _) => Ok(b),
            (None, Json::Number(n)) => Ok(n.as_f64().unwrap_or_default() != 0.0),
            (None, Json::String(s)) => Err(ZvmError::ArgFormat(format!(
                "{name} {s:?} is not a boolean"
            ))),
            (None, _) => Err(self.type_error(name, "bool")),
        }
    }

    /// A list of userids: a list of strings or one string, each holding comma-separated
    /// userids; answered upper-case.
    pub fn userid_list(&self, name: &str) -> ZvmResult<Vec<String>> {
        let items: Vec<&Json> = match self.get(name) {
            Json::Array(items) => items.iter().collect(),
            v => vec![v],
        };
        let mut out = Vec::new();
        for item in items {
            let s = item.as_str().ok_or_else(|| ZvmError::ArgType {
                api: self.api.into(),
                expected: "list".into(),
                given: py_type(item).into(),
            })?;
            for u in s.split(',').map(str::trim).filter(|u| !u.is_empty()) {
                if u.len() > 8 || !u.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(ZvmError::ArgFormat(format!("{u} is not a userid")));
                }
                out.push(u.to_uppercase());
            }
        }
        Ok(out)
    }

    /// A list argument (`null` is empty).
    pub fn list(&self, name: &str) -> ZvmResult<Vec<Json>> {
        match self.get(name) {
            Json::Null => Ok(Vec::new()),
            Json::Array(a) => Ok(a.clone()),
            _ => Err(self.type_error(name, "list")),
        }
    }
}

/// The original's `bool_from_string(strict=True)`: `null` is false, integers are true unless
/// 0, and the usual words count; `None` for a value it refuses.
pub fn py_bool(v: &Json) -> Option<bool> {
    match v {
        Json::Bool(b) => Some(*b),
        Json::Null => Some(false),
        Json::Number(n) => n.as_i64().map(|n| n != 0),
        Json::String(s) => match s.to_ascii_lowercase().as_str() {
            "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
            "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Python's name of a JSON value's type.
pub fn py_type(v: &Json) -> &'static str {
    match v {
        Json::Null => "NoneType",
        Json::Bool(_) => "bool",
        Json::Number(n) if n.is_f64() => "float",
        Json::Number(_) => "int",
        Json::String(_) => "str",
        Json::Array(_) => "list",
        Json::Object(_) => "dict",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PARAMS: &[Param] = &[req("userid"), opt("timeout")];

    fn kw(v: Json) -> Map<String, Json> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn binds_positional_then_keywords_then_defaults() {
        let a = Args::bind("guest_stop", PARAMS, vec![json!("u1")], kw(json!({}))).unwrap();
        assert_eq!(a.userid("userid").unwrap(), "U1");
        assert_eq!(a.opt_int("timeout").unwrap(), None);
        let a = Args::bind(
            "guest_stop",
            PARAMS,
            vec![],
            kw(json!({"userid": "x", "timeout": 5})),
        )
        .unwrap();
        assert_eq!(a.int("timeout").unwrap(), 5);
    }

    #[test]
    fn refuses_wrong_counts_and_types() {
        let e = Args::bind("guest_stop", PARAMS, vec![], kw(json!({}))).unwrap_err();
        assert_eq!(
            e.message(),
            "Invalid API arg count, API: guest_stop, 1 expected while 0 provided."
        );
        assert!(Args::bind("guest_stop", PARAMS, vec![json!(1)], kw(json!({"nope": 1}))).is_err());
        let a = Args::bind("guest_stop", PARAMS, vec![json!(7)], kw(json!({}))).unwrap();
        assert_eq!(a.str("userid").unwrap_err().codes().3, 2);
        assert!(a.userid("userid").is_err());
    }
}
