//! Call arguments and their coercion to the declared parameter types.
//!
//! Arguments arrive as text (query strings), as JSON (request bodies), or from Rust. Coercion
//! turns them into the JSON form of the declared types, so `?n=5` and `{"n": 5}` bind to the same
//! value, while a string `"1"` and a number `1` stay distinct wherever the declared type is loose.

use serde::Serialize;
use serde_json::{Map, Number, Value};

use crate::error::ParamError;
use crate::schema::{ParamKind, ParamSchema};
use crate::tile::Bounds;

/// Arguments of one UDF call: parameter names to values, in the order given.
///
/// Text from a query string is kept as JSON strings and coerced later by the schema.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Args(Map<String, Value>);

impl Args {
    /// No arguments.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) one argument; chainable.
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.0.insert(name.into(), value.into());
        self
    }

    /// Sets one argument.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        self.0.insert(name.into(), value.into());
    }

    /// Adds one text argument as a query string does: a repeated name becomes a list.
    pub fn push_text(&mut self, name: &str, value: &str) {
        match self.0.get_mut(name) {
            Some(Value::Array(items)) => items.push(Value::from(value)),
            Some(prev) => {
                let first = prev.take();
                *prev = Value::Array(vec![first, Value::from(value)]);
            }
            None => {
                self.0.insert(name.to_owned(), Value::from(value));
            }
        }
    }

    /// Arguments from `key=value` text pairs (repeated keys become lists).
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut a = Self::new();
        for (k, v) in pairs {
            a.push_text(k.as_ref(), v.as_ref());
        }
        a
    }

    /// Arguments from a JSON object.
    pub fn from_json(value: Value) -> Result<Self, crate::Error> {
        match value {
            Value::Object(m) => Ok(Self(m)),
            Value::Null => Ok(Self::new()),
            other => Err(crate::Error::InvalidUdf(format!(
                "arguments must be a JSON object, got {}",
                crate::error::render_value(&other)
            ))),
        }
    }

    /// Arguments from any serializable value that serializes to a JSON object (a struct or map).
    pub fn from_serialize<T: Serialize>(value: &T) -> Result<Self, crate::Error> {
        Self::from_json(serde_json::to_value(value)?)
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// Removes and returns `name`.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.0.shift_remove(name)
    }

    /// True when `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Number of arguments.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over `(name, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.0.iter()
    }

    /// The underlying JSON map.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The underlying JSON map, owned.
    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }

    /// Coerces every argument to its declared kind, fills defaults, and checks required ones.
    ///
    /// Names the schema does not declare are dropped (and listed in `ignored`), as the Python
    /// SDK drops arguments a UDF's signature lacks — unless the schema is open.
    pub fn coerce(&self, schema: &ParamSchema) -> Result<Bound, ParamError> {
        let mut values = Map::new();
        for spec in &schema.params {
            match self.0.get(&spec.name) {
                Some(Value::Null) if spec.nullable || !spec.required => {
                    values.insert(spec.name.clone(), Value::Null);
                }
                Some(v) => {
                    values.insert(spec.name.clone(), coerce_value(&spec.name, v, &spec.kind)?);
                }
                None => {
                    if let Some(d) = &spec.default {
                        values.insert(spec.name.clone(), d.clone());
                    } else if spec.required {
                        return Err(ParamError::missing(&spec.name, spec.kind.describe()));
                    }
                }
            }
        }
        let mut ignored = Vec::new();
        for (k, v) in &self.0 {
            if !schema.has(k) {
                if schema.open {
                    values.insert(k.clone(), v.clone());
                } else {
                    ignored.push(k.clone());
                }
            }
        }
        Ok(Bound { values, ignored })
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Args {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// Arguments after coercion: values of the declared kinds, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    /// Coerced values by name, in declaration order.
    pub values: Map<String, Value>,
    /// Argument names the UDF does not declare (dropped).
    pub ignored: Vec<String>,
}

impl Bound {
    /// A canonical byte form for cache keys: keys sorted, JSON types kept (so `1` ≠ `"1"`).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        write_canonical_map(&self.values, &mut out);
        out
    }
}

/// Writes `v` as JSON with object keys sorted, recursively.
pub fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => write_canonical_map(m, out),
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(x, out);
            }
            out.push(b']');
        }
        // Writing a scalar to a Vec cannot fail.
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

fn write_canonical_map(m: &Map<String, Value>, out: &mut Vec<u8>) {
    let mut entries: Vec<(&String, &Value)> = m.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut *out, k);
        out.push(b':');
        write_canonical(v, out);
    }
    out.push(b'}');
}

/// Coerces one value to `kind`; the error names `name`, the value and the expected kind.
pub fn coerce_value(name: &str, v: &Value, kind: &ParamKind) -> Result<Value, ParamError> {
    let bad = || ParamError::invalid(name, v, kind.describe());
    match kind {
        ParamKind::Any => Ok(v.clone()),
        ParamKind::Int { min, max } => {
            let n = match v {
                Value::Number(n) => n
                    .as_i64()
                    .or_else(|| {
                        n.as_f64()
                            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                            .map(|f| f as i64)
                    })
                    .map(Value::from)
                    .or_else(|| n.as_u64().map(Value::from)),
                Value::String(s) => {
                    let t = s.trim();
                    t.parse::<i64>()
                        .map(Value::from)
                        .ok()
                        .or_else(|| t.parse::<u64>().map(Value::from).ok())
                }
                _ => None,
            }
            .ok_or_else(bad)?;
            let f = n.as_f64().unwrap_or(0.0);
            if let Some(lo) = min.filter(|lo| f < *lo) {
                return Err(bad().with_detail(format!("must be at least {lo}")));
            }
            if let Some(hi) = max.filter(|hi| f > *hi) {
                return Err(bad().with_detail(format!("must be at most {hi}")));
            }
            Ok(n)
        }
        ParamKind::Float => {
            let f = match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            }
            .filter(|f| f.is_finite())
            .ok_or_else(bad)?;
            Number::from_f64(f).map(Value::Number).ok_or_else(bad)
        }
        ParamKind::Bool => match v {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            Value::Number(n) if n.as_i64() == Some(0) => Ok(Value::Bool(false)),
            Value::Number(n) if n.as_i64() == Some(1) => Ok(Value::Bool(true)),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" | "t" | "y" => Ok(Value::Bool(true)),
                "false" | "0" | "no" | "off" | "f" | "n" => Ok(Value::Bool(false)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        },
        ParamKind::Str { choices } => {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err(bad()),
            };
            match choices {
                Some(c) if !c.contains(&s) => Err(bad()),
                _ => Ok(Value::String(s)),
            }
        }
        ParamKind::List { items } => {
            let list = match v {
                Value::Array(a) => a.clone(),
                Value::String(s) => parse_text_list(s).ok_or_else(bad)?,
                // A single scalar where a list is expected: a one-item list, as a repeated
                // query key with one occurrence would give.
                Value::Number(_) | Value::Bool(_) => vec![v.clone()],
                _ => return Err(bad()),
            };
            list.iter()
                .enumerate()
                .map(|(i, item)| {
                    coerce_value(name, item, items).map_err(|e| {
                        ParamError::invalid(name, v, kind.describe())
                            .with_detail(format!("item {i}: expected {}", e.expected))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        ParamKind::Object => match v {
            Value::Object(_) => Ok(v.clone()),
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(o @ Value::Object(_)) => Ok(o),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        },
        ParamKind::Bounds => {
            let nums: Vec<f64> = match v {
                Value::Array(a) => a
                    .iter()
                    .map(|x| match x {
                        Value::Number(n) => n.as_f64(),
                        Value::String(s) => s.trim().parse().ok(),
                        _ => None,
                    })
                    .collect::<Option<_>>()
                    .ok_or_else(bad)?,
                Value::String(s) => parse_text_list(s)
                    .and_then(|l| {
                        l.iter()
                            .map(|x| x.as_f64().or_else(|| x.as_str()?.trim().parse().ok()))
                            .collect()
                    })
                    .ok_or_else(bad)?,
                _ => return Err(bad()),
            };
            let [w, s, e, n] = nums[..] else {
                return Err(bad().with_detail("needs exactly four numbers"));
            };
            let b = Bounds::new(w, s, e, n).map_err(|e| bad().with_detail(e.to_string()))?;
            Ok(serde_json::to_value(b.to_array()).map_err(|_| bad())?)
        }
    }
}

/// A list from text: a JSON array (`[1, 2]`), or comma-separated items (`1,2`).
fn parse_text_list(s: &str) -> Option<Vec<Value>> {
    let t = s.trim();
    if t.starts_with('[') {
        return match serde_json::from_str(t) {
            Ok(Value::Array(a)) => Some(a),
            _ => None,
        };
    }
    if t.is_empty() {
        return Some(Vec::new());
    }
    Some(t.split(',').map(|p| Value::from(p.trim())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn int() -> ParamKind {
        ParamKind::Int {
            min: None,
            max: None,
        }
    }

    #[test]
    fn scalars_from_text_and_json() {
        assert_eq!(coerce_value("n", &json!("42"), &int()).unwrap(), json!(42));
        assert_eq!(coerce_value("n", &json!(42), &int()).unwrap(), json!(42));
        assert_eq!(coerce_value("n", &json!(4.0), &int()).unwrap(), json!(4));
        assert_eq!(
            coerce_value("x", &json!(" 2.5 "), &ParamKind::Float).unwrap(),
            json!(2.5)
        );
        assert_eq!(
            coerce_value("x", &json!(2), &ParamKind::Float).unwrap(),
            json!(2.0)
        );
        for (t, b) in [
            ("true", true),
            ("False", false),
            ("0", false),
            ("1", true),
            ("yes", true),
        ] {
            assert_eq!(
                coerce_value("b", &json!(t), &ParamKind::Bool).unwrap(),
                json!(b),
                "{t}"
            );
        }
        assert_eq!(
            coerce_value("s", &json!(5), &ParamKind::Str { choices: None }).unwrap(),
            json!("5")
        );
    }

    #[test]
    fn errors_name_parameter_value_and_type() {
        let e = coerce_value("count", &json!("abc"), &int()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "parameter `count`: expected an integer, got \"abc\""
        );
        let e = coerce_value("r", &json!("nan"), &ParamKind::Float).unwrap_err();
        assert!(e.to_string().contains("expected a number"), "{e}");
        let e = coerce_value("b", &json!("maybe"), &ParamKind::Bool).unwrap_err();
        assert!(
            e.to_string().contains("`b`") && e.to_string().contains("maybe"),
            "{e}"
        );
        let e = coerce_value(
            "n",
            &json!(-1),
            &ParamKind::Int {
                min: Some(0.0),
                max: None,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("must be at least 0"), "{e}");
        let e = coerce_value("n", &json!(2.5), &int()).unwrap_err();
        assert!(e.to_string().contains("2.5"), "{e}");
        let mode = ParamKind::Str {
            choices: Some(vec!["a".into(), "b".into()]),
        };
        let e = coerce_value("mode", &json!("c"), &mode).unwrap_err();
        assert!(e.to_string().contains("one of a, b"), "{e}");
    }

    #[test]
    fn lists_objects_and_bounds() {
        let li = ParamKind::List {
            items: Box::new(int()),
        };
        assert_eq!(
            coerce_value("l", &json!("[1, 2]"), &li).unwrap(),
            json!([1, 2])
        );
        assert_eq!(
            coerce_value("l", &json!("1,2,3"), &li).unwrap(),
            json!([1, 2, 3])
        );
        assert_eq!(
            coerce_value("l", &json!(["4", "5"]), &li).unwrap(),
            json!([4, 5])
        );
        assert_eq!(coerce_value("l", &json!(7), &li).unwrap(), json!([7]));
        let e = coerce_value("l", &json!("[1, \"x\"]"), &li).unwrap_err();
        assert!(
            e.to_string().contains("a list of integers") && e.to_string().contains("item 1"),
            "{e}"
        );
        assert_eq!(
            coerce_value("o", &json!("{\"a\": 1}"), &ParamKind::Object).unwrap(),
            json!({"a": 1})
        );
        assert!(coerce_value("o", &json!("[1]"), &ParamKind::Object).is_err());
        for v in [
            json!([-1, -2, 3, 4]),
            json!("[-1,-2,3,4]"),
            json!("-1,-2,3,4"),
            json!(["-1", "-2", "3", "4"]),
        ] {
            assert_eq!(
                coerce_value("bounds", &v, &ParamKind::Bounds).unwrap(),
                json!([-1.0, -2.0, 3.0, 4.0])
            );
        }
        let e = coerce_value("bounds", &json!([1, 2, 3]), &ParamKind::Bounds).unwrap_err();
        assert!(e.to_string().contains("four numbers"), "{e}");
        assert!(coerce_value("bounds", &json!([0, 10, 1, 5]), &ParamKind::Bounds).is_err());
    }

    #[test]
    fn repeated_query_keys_become_lists() {
        let a = Args::from_pairs([("a", "1"), ("b", "x"), ("a", "2"), ("a", "3")]);
        assert_eq!(a.get("a"), Some(&json!(["1", "2", "3"])));
        assert_eq!(a.get("b"), Some(&json!("x")));
    }

    #[test]
    fn canonical_form_sorts_keys_and_keeps_types() {
        let b1 = Bound {
            values: serde_json::from_value(json!({"b": 1, "a": "1"})).unwrap(),
            ignored: vec![],
        };
        let b2 = Bound {
            values: serde_json::from_value(json!({"a": "1", "b": 1})).unwrap(),
            ignored: vec![],
        };
        let b3 = Bound {
            values: serde_json::from_value(json!({"a": 1, "b": 1})).unwrap(),
            ignored: vec![],
        };
        assert_eq!(b1.canonical_bytes(), b2.canonical_bytes());
        assert_ne!(b1.canonical_bytes(), b3.canonical_bytes());
        assert_eq!(
            String::from_utf8(b1.canonical_bytes()).unwrap(),
            r#"{"a":"1","b":1}"#
        );
    }
}
