//! The Fused UDF JSON (`Udf.model_dump_json()` of the Python SDK), field for field.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::max_age::MaxAge;

/// The UDF type tag the SDK requires on input.
pub const UDF_TYPE: &str = "geopandas_v2";

/// A header module ("shared module") of a code UDF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The module name (`import <module_name>`).
    pub module_name: String,
    /// Its source, when inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_code: Option<String>,
    /// The file holding its source, in a UDF folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_file: Option<String>,
}

/// UDF metadata, in the key order the Python SDK emits; unknown keys are kept for round trips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UdfMeta {
    /// Name (the decorator's `name=` or the function name).
    #[serde(default)]
    pub name: Option<String>,
    /// Type tag; always `geopandas_v2`.
    #[serde(rename = "type")]
    pub udf_type: String,
    /// Source code (for native UDFs: a Python signature that describes them).
    #[serde(default)]
    pub code: String,
    /// Header modules.
    #[serde(default)]
    pub headers: Vec<Header>,
    /// Free-form metadata (`fused:description`, `fused:id`, …).
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    /// Collection id.
    #[serde(default)]
    pub collection_id: Option<String>,
    /// Collection name.
    #[serde(default)]
    pub collection_name: Option<String>,
    /// The function to call.
    pub entrypoint: String,
    /// Default cache max age, in seconds on the wire.
    #[serde(default)]
    pub cache_max_age: Option<MaxAge>,
    /// Default engine / instance type.
    #[serde(default)]
    pub engine: Option<String>,
    /// Disk size for batch instances.
    #[serde(default)]
    pub disk_size_gb: Option<u64>,
    /// Region for batch instances.
    #[serde(default)]
    pub region: Option<String>,
    /// Default parameters; call arguments are merged on top.
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// Deprecated: source text of the decorator's `headers=`.
    #[serde(default)]
    pub original_headers: Option<String>,
    /// Keys this version does not know, kept so that saving does not lose them.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl UdfMeta {
    /// Minimal metadata for a UDF called `name` whose entrypoint is `name`.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            name: Some(name.clone()),
            udf_type: UDF_TYPE.to_owned(),
            code: String::new(),
            headers: Vec::new(),
            metadata: None,
            collection_id: None,
            collection_name: None,
            entrypoint: name,
            cache_max_age: None,
            engine: None,
            disk_size_gb: None,
            region: None,
            parameters: Map::new(),
            original_headers: None,
            extra: Map::new(),
        }
    }

    /// Parses UDF JSON; `type` and `entrypoint` are required, as in the SDK.
    pub fn from_json(text: &str) -> crate::Result<Self> {
        let m: Self =
            serde_json::from_str(text).map_err(|e| crate::Error::InvalidUdf(e.to_string()))?;
        if m.udf_type != UDF_TYPE {
            return Err(crate::Error::InvalidUdf(format!(
                "type must be {UDF_TYPE:?}, got {:?}",
                m.udf_type
            )));
        }
        Ok(m)
    }

    /// The UDF JSON, compact.
    pub fn to_json(&self) -> String {
        // Serializing plain data to a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The display name: `name`, else the entrypoint.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.entrypoint)
    }

    /// A metadata value (`fused:description`, …).
    pub fn metadata_str(&self, key: &str) -> Option<&str> {
        self.metadata.as_ref()?.get(key)?.as_str()
    }

    /// Sets a metadata value.
    pub fn set_metadata(&mut self, key: &str, value: Value) {
        self.metadata
            .get_or_insert_with(Map::new)
            .insert(key.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Emitted by the Python SDK 2.9.5 for
    /// `@fused.udf(cache_max_age="1h", default_parameters={"n": 2}) def hello(name: str = "x", n: int = 1)`.
    const SDK_JSON: &str = include_str!("../../tests/fixtures/sdk_udf.json");

    #[test]
    fn roundtrips_sdk_json_byte_for_byte() {
        let m = UdfMeta::from_json(SDK_JSON.trim()).unwrap();
        assert_eq!(m.name.as_deref(), Some("hello"));
        assert_eq!(m.entrypoint, "hello");
        assert_eq!(m.cache_max_age, Some(MaxAge::from_secs(3600)));
        assert_eq!(m.parameters.get("n"), Some(&Value::from(2)));
        assert_eq!(m.to_json(), SDK_JSON.trim());
    }

    #[test]
    fn keeps_unknown_keys_and_requires_type() {
        let m = UdfMeta::from_json(r#"{"type":"geopandas_v2","entrypoint":"f","future_key":[1]}"#)
            .unwrap();
        assert!(m.to_json().contains(r#""future_key":[1]"#));
        let e = UdfMeta::from_json(r#"{"entrypoint":"f"}"#).unwrap_err();
        assert!(e.to_string().contains("type"), "{e}");
    }
}
