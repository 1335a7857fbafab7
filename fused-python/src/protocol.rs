//! The messages between the host and `worker.py`: length-prefixed JSON, a reply optionally
//! followed by a byte payload.

use serde::Deserialize;
use serde_json::Value;

/// A UDF's code: the source, its entrypoint (`None`: the one `@fused.udf` function, or `udf`),
/// and its header modules (name, source).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Source {
    /// The code.
    pub code: String,
    /// The function to call.
    pub entrypoint: Option<String>,
    /// Modules the code may import: (module name, source).
    pub headers: Vec<(String, String)>,
}

impl Source {
    /// Code whose entrypoint is found in it.
    pub fn new(code: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            ..Self::default()
        }
    }

    /// Sets the entrypoint.
    #[must_use]
    pub fn with_entrypoint(mut self, e: Option<&str>) -> Self {
        self.entrypoint = e.map(str::to_owned);
        self
    }
}

/// What a UDF asks its host while it runs (`fused.run("name")` inside it), answered with reply
/// fields (`ok`, `kind`, `value` …, as a call's reply) and an optional payload.
#[async_trait::async_trait]
pub trait Host: Send + Sync {
    /// Answers one request (and the bytes it came with).
    async fn call(
        &self,
        request: Value,
        payload: Vec<u8>,
    ) -> (serde_json::Map<String, Value>, Vec<u8>);
}

/// A Python exception, as the caller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PyError {
    /// Its class (`ValueError`).
    pub class: String,
    /// Its message.
    pub message: String,
    /// The line of the UDF's code it was raised at, when it was.
    #[serde(default)]
    pub line: Option<u32>,
    /// The formatted traceback.
    #[serde(default)]
    pub traceback: String,
}

impl std::fmt::Display for PyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.class, self.message)?;
        if let Some(l) = self.line {
            write!(f, " (line {l})")?;
        }
        Ok(())
    }
}

/// One parameter of a compiled UDF's entrypoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Param {
    /// Its name.
    pub name: String,
    /// Its annotation (`int`, `str`, …), if any.
    pub annotation: Option<String>,
    /// Its default, when it has one that JSON can carry.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    /// Whether it has a default at all.
    #[serde(default)]
    pub has_default: bool,
    /// Whether a call must give it.
    pub required: bool,
    /// `POSITIONAL_OR_KEYWORD`, `KEYWORD_ONLY`, `VAR_KEYWORD` …
    pub kind: String,
}

/// A UDF compiled in a worker.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Compiled {
    /// Its handle in that worker.
    pub udf: String,
    /// The function called.
    pub entrypoint: String,
    /// Its parameters.
    pub params: Vec<Param>,
}

/// What a call returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Returned {
    /// A simple value.
    Json(Value),
    /// A table as an Arrow IPC stream; for a GeoDataFrame, its geometry column (WKB) and CRS.
    Arrow {
        /// The IPC stream.
        ipc: Vec<u8>,
        /// The geometry column.
        geometry: Option<String>,
        /// The CRS (`EPSG:4326`).
        crs: Option<String>,
    },
    /// A numpy array, C order.
    Array {
        /// numpy's dtype string (`<f4`, `|u1`).
        dtype: String,
        /// Its shape.
        shape: Vec<usize>,
        /// Its bounds when the UDF returned `(array, bounds)`.
        bounds: Option<[f64; 4]>,
        /// Its bytes.
        data: Vec<u8>,
    },
}

/// A call's reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The value, or the exception the UDF raised.
    pub result: Result<Returned, PyError>,
    /// What the UDF printed.
    pub stdout: String,
    /// What it wrote to stderr.
    pub stderr: String,
}

/// A raw reply header.
#[derive(Debug, Deserialize)]
pub(crate) struct Header {
    #[serde(default)]
    pub(crate) ok: bool,
    #[serde(default)]
    pub(crate) error: Option<PyError>,
    #[serde(default)]
    pub(crate) payload: Option<usize>,
    #[serde(flatten)]
    pub(crate) rest: serde_json::Map<String, Value>,
}

impl Header {
    fn str(&self, key: &str) -> Option<String> {
        self.rest
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// The call reply this header (and payload) make.
    pub(crate) fn into_reply(self, payload: Vec<u8>) -> Result<Reply, String> {
        let stdout = self.str("stdout").unwrap_or_default();
        let stderr = self.str("stderr").unwrap_or_default();
        if !self.ok {
            let e = self.error.ok_or("a failed reply without an error")?;
            return Ok(Reply {
                result: Err(e),
                stdout,
                stderr,
            });
        }
        let returned = match self.rest.get("kind").and_then(Value::as_str) {
            Some("json") => Returned::Json(self.rest.get("value").cloned().unwrap_or(Value::Null)),
            Some("arrow") => Returned::Arrow {
                ipc: payload,
                geometry: self.str("geometry"),
                crs: self.str("crs"),
            },
            Some("array") => Returned::Array {
                dtype: self.str("dtype").ok_or("an array without dtype")?,
                shape: serde_json::from_value(self.rest.get("shape").cloned().unwrap_or_default())
                    .map_err(|e| format!("an array shape: {e}"))?,
                bounds: self
                    .rest
                    .get("bounds")
                    .and_then(|b| serde_json::from_value(b.clone()).ok()),
                data: payload,
            },
            other => return Err(format!("an unknown reply kind {other:?}")),
        };
        Ok(Reply {
            result: Ok(returned),
            stdout,
            stderr,
        })
    }
}
