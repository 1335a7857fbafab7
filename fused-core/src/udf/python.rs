//! Native UDFs described as Python: the signature the Python SDK reads from a UDF's `code`.
//!
//! The SDK derives a UDF's parameter list from its code (to bind `submit`'s scalars to the
//! first parameter, to refuse unknown names, to coerce types). A native UDF has no Python, so
//! its UDF JSON carries a generated stub: the decorator, the signature with annotations and
//! defaults from the parameter schema, the description as a docstring, and a body that says the
//! function is native. [`NATIVE_MARKER`] in the code plus `fused:native` in the metadata is how
//! a server recognizes a definition it can run natively.

use serde_json::Value;

use super::Udf;
use crate::schema::ParamKind;
use crate::udf::meta::UdfMeta;

/// The metadata key naming the native UDF a definition stands for.
pub const NATIVE_KEY: &str = "fused:native";

/// Text every generated stub contains.
pub const NATIVE_MARKER: &str = "is a native fused-rs UDF";

impl Udf {
    /// The UDF JSON a client sees for this UDF: for a native one, its metadata with `code` set
    /// to the generated Python signature and `fused:native` naming it; a code UDF (its
    /// metadata has code) as it is.
    pub fn sdk_meta(&self) -> UdfMeta {
        let mut meta = self.meta().clone();
        if !meta.code.trim().is_empty() {
            return meta;
        }
        meta.code = python_stub(self);
        meta.set_metadata(NATIVE_KEY, Value::String(self.name().to_owned()));
        meta
    }
}

/// The native UDF a definition stands for, when it is an unmodified stub.
pub fn native_name(meta: &UdfMeta) -> Option<&str> {
    let name = meta.metadata_str(NATIVE_KEY)?;
    meta.code.contains(NATIVE_MARKER).then_some(name)
}

/// The Python stub of a native UDF.
pub fn python_stub(udf: &Udf) -> String {
    let mut params = Vec::new();
    let mut seen_default = false;
    for p in &udf.schema().params {
        let mut s = p.name.clone();
        if !matches!(p.kind, ParamKind::Any) {
            let ann = p.kind.python_annotation();
            s.push_str(": ");
            if p.nullable && p.kind != ParamKind::Bounds {
                s.push_str(&format!("{ann} | None"));
            } else {
                s.push_str(&ann);
            }
        }
        let default = udf
            .meta()
            .parameters
            .get(&p.name)
            .or(p.default.as_ref())
            .map(py_literal)
            .or_else(|| (!p.required || seen_default).then(|| "None".to_owned()));
        if let Some(d) = default {
            seen_default = true;
            s.push_str(" = ");
            s.push_str(&d);
        }
        params.push(s);
    }
    if udf.schema().open {
        params.push("**kwargs".into());
    }
    let name = &udf.meta().entrypoint;
    let mut doc = udf.description().unwrap_or_default().trim().to_owned();
    if !doc.is_empty() {
        doc.push_str("\n\n    ");
    }
    doc.push_str("Native UDF: compiled into the fused-rs server that serves it.");
    let doc = doc.replace('\\', "\\\\").replace("\"\"\"", "\\\"\\\"\\\"");
    format!(
        "@fused.udf\ndef {name}({}):\n    \"\"\"{doc}\n    \"\"\"\n    raise NotImplementedError(\"{} {NATIVE_MARKER}; run it on the server that serves it\")\n",
        params.join(", "),
        py_escape(udf.name()),
    )
}

/// A JSON value as a Python literal.
fn py_literal(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("\"{}\"", py_escape(s)),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(py_literal).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("\"{}\": {}", py_escape(k), py_literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn py_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Output, RunContext};
    use serde::Deserialize;

    #[derive(Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct P {
        /// Who to greet.
        name: String,
        #[serde(default = "three")]
        n: i64,
        flag: Option<bool>,
        tags: Vec<String>,
        bounds: Option<crate::Bounds>,
    }
    fn three() -> i64 {
        3
    }

    #[test]
    fn stub_has_the_signature_and_is_recognized() {
        let udf = Udf::native("greet", |_c: RunContext, _p: P| async {
            Ok::<_, std::convert::Infallible>(Output::Empty)
        })
        .with_description("Says \"hi\".");
        let meta = udf.sdk_meta();
        assert!(
            meta.code.starts_with(
                "@fused.udf\ndef greet(name: str, n: int = 3, flag: bool | None = None, tags: list[str] = None, bounds: fused.types.Bounds = None):"
            ),
            "{}",
            meta.code
        );
        assert!(meta.code.contains("Says \"hi\"."));
        assert_eq!(native_name(&meta), Some("greet"));
        let mut edited = meta.clone();
        edited.code = "def greet(): return 1".into();
        assert_eq!(native_name(&edited), None);
        assert_eq!(
            py_literal(&serde_json::json!({"a": [true, null, "x\"y"]})),
            r#"{"a": [True, None, "x\"y"]}"#
        );
    }
}
