//! Parameter schemas: what a UDF declares, derived from its parameter type with `schemars`.

use serde::Serialize;
use serde_json::{Map, Value};

/// The extension key that marks special kinds (such as bounds) inside a JSON Schema.
pub const KIND_KEY: &str = "x-fused-kind";

/// The type of one parameter, as coercion understands it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ParamKind {
    /// A whole number, with optional inclusive limits.
    Int {
        /// Smallest accepted value.
        #[serde(skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        /// Largest accepted value.
        #[serde(skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
    },
    /// A floating point number.
    Float,
    /// `true` / `false`.
    Bool,
    /// Text, optionally one of a fixed set of values.
    Str {
        /// The accepted values, when the type is an enumeration.
        #[serde(skip_serializing_if = "Option::is_none")]
        choices: Option<Vec<String>>,
    },
    /// A list whose items have the given kind.
    List {
        /// Kind of each item.
        items: Box<ParamKind>,
    },
    /// A JSON object.
    Object,
    /// A lon/lat box `[west, south, east, north]`.
    Bounds,
    /// Anything: passed through unchanged.
    Any,
}

impl ParamKind {
    /// The kind in words, for error messages ("an integer", "a list of numbers", …).
    pub fn describe(&self) -> String {
        match self {
            ParamKind::Int {
                min: Some(lo),
                max: Some(hi),
            } => format!("an integer in {lo}..={hi}"),
            ParamKind::Int {
                min: Some(lo),
                max: None,
            } => format!("an integer ≥ {lo}"),
            ParamKind::Int { .. } => "an integer".into(),
            ParamKind::Float => "a number".into(),
            ParamKind::Bool => "a boolean (true/false)".into(),
            ParamKind::Str { choices: Some(c) } => format!("one of {}", c.join(", ")),
            ParamKind::Str { choices: None } => "a string".into(),
            ParamKind::List { items } => match items.as_ref() {
                ParamKind::Any => "a list".into(),
                k => format!("a list of {}", plural(&k.describe())),
            },
            ParamKind::Object => "a JSON object".into(),
            ParamKind::Bounds => "bounds [west, south, east, north]".into(),
            ParamKind::Any => "any value".into(),
        }
    }

    /// The Python annotation that corresponds to this kind (used to describe native UDFs).
    pub fn python_annotation(&self) -> String {
        match self {
            ParamKind::Int { .. } => "int".into(),
            ParamKind::Float => "float".into(),
            ParamKind::Bool => "bool".into(),
            ParamKind::Str { .. } => "str".into(),
            ParamKind::List { items } => match items.as_ref() {
                ParamKind::Any => "list".into(),
                k => format!("list[{}]", k.python_annotation()),
            },
            ParamKind::Object => "dict".into(),
            ParamKind::Bounds => "fused.types.Bounds".into(),
            ParamKind::Any => "typing.Any".into(),
        }
    }
}

fn plural(s: &str) -> String {
    let s = s.trim_start_matches("an ").trim_start_matches("a ");
    match s {
        "integer" => "integers".into(),
        "number" => "numbers".into(),
        "string" => "strings".into(),
        "boolean (true/false)" => "booleans".into(),
        other => other.to_owned(),
    }
}

/// One declared parameter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamSpec {
    /// Name, as callers pass it.
    pub name: String,
    /// Its kind.
    pub kind: ParamKind,
    /// `null` is accepted (an `Option`).
    pub nullable: bool,
    /// The call must supply it (no default, not optional).
    pub required: bool,
    /// Default value, when the type declares one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// The field's doc comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The parameters of a UDF, in declaration order.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ParamSchema {
    /// The parameters.
    pub params: Vec<ParamSpec>,
    /// Parameters not in the list are accepted and passed through (a `**kwargs` UDF).
    pub open: bool,
}

impl ParamSchema {
    /// A schema that accepts any parameters and passes them through unchanged.
    pub fn open() -> Self {
        Self {
            params: Vec::new(),
            open: true,
        }
    }

    /// The schema of a parameter struct, read from its `schemars` JSON Schema.
    ///
    /// Field doc comments become descriptions; `#[serde(default)]` values become defaults.
    pub fn of<P: schemars::JsonSchema>() -> Self {
        Self::from_json_schema(schemars::schema_for!(P).as_value())
    }

    /// The schema described by a JSON Schema object (`properties`, `required`, `$defs`).
    pub fn from_json_schema(root: &Value) -> Self {
        let defs = root.get("$defs").and_then(Value::as_object);
        let Some(props) = root.get("properties").and_then(Value::as_object) else {
            // Not an object with known fields (for example `serde_json::Map`): accept anything.
            return Self::open();
        };
        let required: Vec<&str> = root
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let params = props
            .iter()
            .map(|(name, s)| {
                let (kind, nullable) = kind_of(s, defs);
                let default = s.get("default").cloned();
                ParamSpec {
                    name: name.clone(),
                    required: required.contains(&name.as_str()) && default.is_none() && !nullable,
                    kind,
                    nullable,
                    default,
                    description: s
                        .get("description")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                }
            })
            .collect();
        let open = !matches!(root.get("additionalProperties"), Some(Value::Bool(false)))
            && root
                .get("additionalProperties")
                .is_some_and(|v| !v.is_null());
        Self { params, open }
    }

    /// The parameter named `name`.
    pub fn get(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }

    /// True when a parameter of that name is declared.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Reads the kind of a property schema; returns `(kind, nullable)`.
fn kind_of(s: &Value, defs: Option<&Map<String, Value>>) -> (ParamKind, bool) {
    let Some(obj) = s.as_object() else {
        return (ParamKind::Any, false);
    };
    if obj.get(KIND_KEY).and_then(Value::as_str) == Some("bounds") {
        let nullable = obj
            .get("type")
            .and_then(Value::as_array)
            .is_some_and(|ts| ts.iter().any(|t| t == "null"));
        return (ParamKind::Bounds, nullable);
    }
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        let target = r
            .strip_prefix("#/$defs/")
            .and_then(|n| defs.and_then(|d| d.get(n)));
        return match target {
            Some(t) => kind_of(t, defs),
            None => (ParamKind::Any, false),
        };
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = obj.get(key).and_then(Value::as_array) {
            let non_null: Vec<&Value> = alts.iter().filter(|a| !is_null_schema(a)).collect();
            let nullable = non_null.len() < alts.len();
            // An enum of plain strings (serde unit variants) is split in `oneOf` by schemars.
            if let Some(choices) = string_choices(&non_null) {
                return (
                    ParamKind::Str {
                        choices: Some(choices),
                    },
                    nullable,
                );
            }
            return match non_null.as_slice() {
                [one] => (kind_of(one, defs).0, nullable),
                _ => (ParamKind::Any, nullable),
            };
        }
    }
    if let Some(choices) = obj.get("enum").and_then(Value::as_array) {
        let strings: Option<Vec<String>> = choices
            .iter()
            .filter(|c| !c.is_null())
            .map(|c| c.as_str().map(str::to_owned))
            .collect();
        let nullable = choices.iter().any(Value::is_null);
        if let Some(strings) = strings {
            return (
                ParamKind::Str {
                    choices: Some(strings),
                },
                nullable,
            );
        }
    }
    let (ty, nullable) = match obj.get("type") {
        Some(Value::String(t)) => (Some(t.as_str()), false),
        Some(Value::Array(ts)) => {
            let non_null: Vec<&str> = ts
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect();
            let nullable = non_null.len() < ts.len();
            (
                if non_null.len() == 1 {
                    Some(non_null[0])
                } else {
                    None
                },
                nullable,
            )
        }
        _ => (None, false),
    };
    let kind = match ty {
        Some("integer") => ParamKind::Int {
            min: obj.get("minimum").and_then(Value::as_f64),
            max: obj.get("maximum").and_then(Value::as_f64),
        },
        Some("number") => ParamKind::Float,
        Some("boolean") => ParamKind::Bool,
        Some("string") => ParamKind::Str { choices: None },
        Some("array") => {
            let items = obj
                .get("items")
                .map(|i| kind_of(i, defs).0)
                .unwrap_or(ParamKind::Any);
            ParamKind::List {
                items: Box::new(items),
            }
        }
        Some("object") => ParamKind::Object,
        _ => ParamKind::Any,
    };
    (kind, nullable)
}

fn is_null_schema(s: &Value) -> bool {
    s.get("type").and_then(Value::as_str) == Some("null")
        || s.get("const").is_some_and(Value::is_null)
}

fn string_choices(alts: &[&Value]) -> Option<Vec<String>> {
    if alts.len() < 2 {
        return None;
    }
    let mut out = Vec::new();
    for a in alts {
        if let Some(c) = a.get("const").and_then(Value::as_str) {
            out.push(c.to_owned());
        } else if let Some(e) = a.get("enum").and_then(Value::as_array) {
            for v in e {
                out.push(v.as_str()?.to_owned());
            }
        } else {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tile::Bounds;
    use schemars::JsonSchema;
    use serde::Deserialize;

    #[allow(dead_code)]
    #[derive(Deserialize, Serialize, JsonSchema)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        Fast,
        Slow,
    }

    /// Parameters of a test UDF.
    #[allow(dead_code)]
    #[derive(Deserialize, Serialize, JsonSchema)]
    #[serde(default)]
    struct P {
        /// Who to greet.
        name: String,
        count: u32,
        ratio: f64,
        flag: bool,
        tags: Vec<String>,
        ids: Vec<i64>,
        limit: Option<i32>,
        mode: Mode,
        bounds: Option<Bounds>,
        extra: serde_json::Map<String, Value>,
    }

    impl Default for P {
        fn default() -> Self {
            Self {
                name: "world".into(),
                count: 3,
                ratio: 0.5,
                flag: false,
                tags: vec![],
                ids: vec![],
                limit: None,
                mode: Mode::Fast,
                bounds: None,
                extra: Default::default(),
            }
        }
    }

    #[test]
    fn reads_kinds_defaults_and_docs() {
        let s = ParamSchema::of::<P>();
        let names: Vec<&str> = s.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "name", "count", "ratio", "flag", "tags", "ids", "limit", "mode", "bounds", "extra"
            ]
        );
        let get = |n| s.get(n).unwrap();
        assert_eq!(get("name").kind, ParamKind::Str { choices: None });
        assert_eq!(get("name").default, Some(Value::from("world")));
        assert_eq!(get("name").description.as_deref(), Some("Who to greet."));
        assert!(matches!(get("count").kind, ParamKind::Int { min: Some(m), .. } if m == 0.0));
        assert_eq!(get("ratio").kind, ParamKind::Float);
        assert_eq!(get("flag").kind, ParamKind::Bool);
        assert_eq!(
            get("ids").kind,
            ParamKind::List {
                items: Box::new(ParamKind::Int {
                    min: None,
                    max: None
                })
            }
        );
        assert!(get("limit").nullable);
        assert!(matches!(get("limit").kind, ParamKind::Int { .. }));
        assert_eq!(
            get("mode").kind,
            ParamKind::Str {
                choices: Some(vec!["fast".into(), "slow".into()])
            }
        );
        assert_eq!(get("bounds").kind, ParamKind::Bounds);
        assert!(get("bounds").nullable);
        assert_eq!(get("extra").kind, ParamKind::Object);
        assert!(s.params.iter().all(|p| !p.required));
    }

    #[test]
    fn required_without_default() {
        #[allow(dead_code)]
        #[derive(Deserialize, JsonSchema)]
        struct Q {
            n: i64,
            o: Option<String>,
        }
        let s = ParamSchema::of::<Q>();
        assert!(s.get("n").unwrap().required);
        assert!(!s.get("o").unwrap().required);
        assert_eq!(s.get("n").unwrap().kind.python_annotation(), "int");
    }
}
