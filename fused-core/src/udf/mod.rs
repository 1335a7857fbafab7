//! UDFs: metadata that round-trips the Fused UDF JSON, plus a native Rust handler.

mod folder;
mod meta;
pub mod python;
mod registry;
mod runtime;

pub use meta::{Header, UDF_TYPE, UdfMeta};
pub use registry::UdfRegistry;
pub use runtime::CodeRuntime;

use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::args::{Args, Bound};
use crate::context::RunContext;
use crate::error::{Error, ParamError, Result};
use crate::max_age::MaxAge;
use crate::output::Output;
use crate::run::UdfFailure;
use crate::schema::ParamSchema;
use crate::tile::Tile;

/// The part of a UDF that runs: receives the context and the coerced parameters.
pub trait Handler: Send + Sync + 'static {
    /// Runs the UDF. `params` are already coerced to the declared kinds.
    fn call(
        &self,
        ctx: RunContext,
        params: Map<String, Value>,
    ) -> BoxFuture<'static, Result<Output, UdfFailure>>;

    /// The handler's Rust type, part of the UDF's identity (a closure's type names the place
    /// it was written).
    fn type_name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
}

/// An error a native UDF returns to choose the exception class the caller sees.
///
/// Any other error type becomes class `Error` with its `Display` text (including sources).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UdfError {
    /// Class shown to callers (`ValueError`, …).
    pub class: String,
    /// Message.
    pub message: String,
}

impl UdfError {
    /// An error of class `class`.
    pub fn new(class: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            class: class.into(),
            message: message.into(),
        }
    }

    /// A `ValueError`, the class Python users expect for bad values.
    pub fn value(message: impl Into<String>) -> Self {
        Self::new("ValueError", message)
    }
}

/// Turns any boxed error into the failure callers see.
fn failure_of(e: Box<dyn std::error::Error + Send + Sync>) -> UdfFailure {
    match e.downcast::<UdfError>() {
        Ok(u) => UdfFailure::runtime(u.class, u.message),
        Err(e) => {
            let mut msg = e.to_string();
            let mut src = e.source();
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            UdfFailure::runtime("Error", msg)
        }
    }
}

struct FnHandler<F, P> {
    f: F,
    _p: std::marker::PhantomData<fn() -> P>,
}

impl<F, P, Fut, O, E> Handler for FnHandler<F, P>
where
    F: Fn(RunContext, P) -> Fut + Send + Sync + 'static,
    P: DeserializeOwned + 'static,
    Fut: Future<Output = std::result::Result<O, E>> + Send + 'static,
    O: Into<Output>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn call(
        &self,
        ctx: RunContext,
        params: Map<String, Value>,
    ) -> BoxFuture<'static, Result<Output, UdfFailure>> {
        let p: P = match serde_json::from_value(Value::Object(params)) {
            Ok(p) => p,
            Err(e) => {
                let f = UdfFailure::runtime("ValueError", format!("parameters: {e}"));
                return Box::pin(async move { Err(f) });
            }
        };
        let fut = (self.f)(ctx, p);
        Box::pin(async move { fut.await.map(Into::into).map_err(|e| failure_of(e.into())) })
    }
}

/// A UDF: metadata (the Fused UDF JSON), a parameter schema, and a handler.
///
/// ```
/// use fused_core::{Udf, RunContext, Output};
/// use serde::Deserialize;
///
/// #[derive(Deserialize, schemars::JsonSchema)]
/// struct Params { n: i64 }
///
/// let udf = Udf::native("double", |_ctx: RunContext, p: Params| async move {
///     Ok::<_, std::convert::Infallible>(Output::Json((p.n * 2).into()))
/// });
/// assert_eq!(udf.schema().params[0].name, "n");
/// ```
#[derive(Clone)]
pub struct Udf {
    meta: UdfMeta,
    schema: ParamSchema,
    handler: Arc<dyn Handler>,
    version: String,
    identity: Arc<OnceLock<String>>,
}

impl fmt::Debug for Udf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Udf")
            .field("name", &self.name())
            .field("params", &self.schema.params.len())
            .finish()
    }
}

impl Udf {
    /// A native UDF named `name` running `f`; its parameters are the fields of `P`, whose
    /// `schemars` schema supplies kinds, defaults and descriptions.
    pub fn native<P, F, Fut, O, E>(name: impl Into<String>, f: F) -> Self
    where
        P: DeserializeOwned + schemars::JsonSchema + 'static,
        F: Fn(RunContext, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<O, E>> + Send + 'static,
        O: Into<Output>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let schema = ParamSchema::of::<P>();
        Self::from_parts(
            UdfMeta::new(name),
            schema,
            Arc::new(FnHandler {
                f,
                _p: std::marker::PhantomData,
            }),
        )
    }

    /// A UDF from its parts.
    pub fn from_parts(meta: UdfMeta, schema: ParamSchema, handler: Arc<dyn Handler>) -> Self {
        Self {
            meta,
            schema,
            handler,
            version: String::new(),
            identity: Arc::default(),
        }
    }

    /// Sets the description (`fused:description` in the metadata).
    #[must_use]
    pub fn with_description(mut self, text: impl Into<String>) -> Self {
        self.meta
            .set_metadata("fused:description", Value::String(text.into()));
        self.reset_identity();
        self
    }

    /// Sets the default cache max age.
    #[must_use]
    pub fn with_cache_max_age(mut self, max_age: MaxAge) -> Self {
        self.meta.cache_max_age = Some(max_age);
        self.reset_identity();
        self
    }

    /// Sets a version string that is part of the UDF's identity: change it when the handler's
    /// behaviour changes, so persistent caches do not serve results of the old code.
    #[must_use]
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self.reset_identity();
        self
    }

    /// Sets a default parameter value (stored in the UDF JSON's `parameters`).
    #[must_use]
    pub fn with_default(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.meta.parameters.insert(name.into(), value.into());
        self.reset_identity();
        self
    }

    /// Replaces the metadata.
    #[must_use]
    pub fn with_meta(mut self, meta: UdfMeta) -> Self {
        self.meta = meta;
        self.reset_identity();
        self
    }

    fn reset_identity(&mut self) {
        self.identity = Arc::default();
    }

    /// The name.
    pub fn name(&self) -> &str {
        self.meta.display_name()
    }

    /// The metadata.
    pub fn meta(&self) -> &UdfMeta {
        &self.meta
    }

    /// The parameter schema.
    pub fn schema(&self) -> &ParamSchema {
        &self.schema
    }

    /// The description, if any.
    pub fn description(&self) -> Option<&str> {
        self.meta.metadata_str("fused:description")
    }

    /// True when tile calls hand this UDF the tile's box (it declares `bounds` or `bbox`).
    pub fn takes_bounds(&self) -> bool {
        self.schema.has("bounds") || self.schema.has("bbox")
    }

    /// A stable hash of what this UDF is, for cache keys: its metadata, its version, its
    /// parameter schema and the type of its handler (for a native UDF, the closure's own type,
    /// so two UDFs that share a name but not their code never share cache entries).
    pub fn identity(&self) -> &str {
        self.identity.get_or_init(|| {
            let mut h = Sha256::new();
            for part in [
                self.version.as_bytes(),
                self.meta.to_json().as_bytes(),
                self.handler.type_name().as_bytes(),
                serde_json::to_string(&self.schema)
                    .unwrap_or_default()
                    .as_bytes(),
            ] {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part);
            }
            hex::encode(&h.finalize()[..16])
        })
    }

    /// Binds call arguments: default parameters from the metadata, then `args`, then — for
    /// tile calls — the tile's box as `bounds` (or as `bbox` when only that is declared and not
    /// given); all coerced to the declared kinds.
    pub fn bind(&self, args: &Args, tile: Option<Tile>) -> std::result::Result<Bound, ParamError> {
        let mut merged = Args::from_iter(
            self.meta
                .parameters
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        for (k, v) in args.iter() {
            merged.insert(k.clone(), v.clone());
        }
        if let Some(t) = tile {
            let b = Value::from(t.bounds().to_array().to_vec());
            if self.schema.has("bounds") {
                merged.insert("bounds", b);
            } else if self.schema.has("bbox") && !args.contains("bbox") {
                merged.insert("bbox", b);
            }
        }
        merged.coerce(&self.schema)
    }

    /// The cache key of a bound call: identity, canonical arguments, tile.
    pub fn cache_key(&self, bound: &Bound, tile: Option<Tile>) -> String {
        let mut h = Sha256::new();
        h.update(self.identity().as_bytes());
        h.update([0]);
        h.update(bound.canonical_bytes());
        if let Some(t) = tile {
            h.update([0, t.z]);
            h.update(t.x.to_le_bytes());
            h.update(t.y.to_le_bytes());
        }
        hex::encode(&h.finalize()[..20])
    }

    /// Starts the handler on bound arguments.
    pub fn invoke(
        &self,
        ctx: RunContext,
        bound: Bound,
    ) -> BoxFuture<'static, Result<Output, UdfFailure>> {
        self.handler.call(ctx, bound.values)
    }
}

/// Checks that a UDF name is usable in URLs and file names.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidUdf(format!(
            "name {name:?} must start with a letter or _ and hold only letters, digits, _ and -"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tile::Bounds;
    use serde::Deserialize;

    #[derive(Deserialize, schemars::JsonSchema)]
    #[serde(default)]
    struct P {
        n: i64,
        bounds: Option<Bounds>,
    }

    impl Default for P {
        fn default() -> Self {
            Self { n: 1, bounds: None }
        }
    }

    fn udf() -> Udf {
        Udf::native("t", |_c: RunContext, p: P| async move {
            if p.n < 0 {
                return Err(UdfError::value("n must not be negative"));
            }
            Ok(Output::Json(
                serde_json::json!({"n": p.n, "bounds": p.bounds}),
            ))
        })
    }

    #[tokio::test]
    async fn binds_coerces_and_injects_bounds() {
        let u = udf();
        let tile = Tile::new(1, 2, 3).unwrap();
        let b = u
            .bind(&Args::from_pairs([("n", "5"), ("zzz", "1")]), Some(tile))
            .unwrap();
        assert_eq!(b.values["n"], Value::from(5));
        assert_eq!(
            b.values["bounds"],
            serde_json::json!(tile.bounds().to_array())
        );
        assert_eq!(b.ignored, vec!["zzz".to_owned()]);
        let out = u
            .invoke(RunContext::new("r", "t", Some(tile), 1), b)
            .await
            .unwrap();
        assert_eq!(out.as_table(), None);
        let e = u.bind(&Args::new().with("n", "x"), None).unwrap_err();
        assert!(e.to_string().contains("`n`"));
    }

    #[tokio::test]
    async fn errors_keep_their_class() {
        let u = udf();
        let b = u.bind(&Args::new().with("n", -1), None).unwrap();
        let f = u
            .invoke(RunContext::new("r", "t", None, 1), b)
            .await
            .unwrap_err();
        assert_eq!(
            (f.class.as_str(), f.message.as_str()),
            ("ValueError", "n must not be negative")
        );
    }

    #[test]
    fn keys_follow_arguments_identity_and_tile() {
        let u = udf();
        let k = |a: Args, t| {
            let b = u.bind(&a, t).unwrap();
            u.cache_key(&b, t)
        };
        let tile = Tile::new(0, 0, 1).ok();
        assert_eq!(
            k(Args::new().with("n", "2"), None),
            k(Args::new().with("n", 2), None)
        );
        assert_ne!(
            k(Args::new().with("n", 2), None),
            k(Args::new().with("n", 3), None)
        );
        assert_ne!(k(Args::new(), None), k(Args::new(), tile));
        let v2 = udf().with_version("2");
        assert_ne!(u.identity(), v2.identity());
        // Same name and parameters, other code: other identity.
        let twin = Udf::native("t", |_c: RunContext, _p: P| async move {
            Ok::<_, UdfError>(Output::Empty)
        });
        assert_ne!(u.identity(), twin.identity());
        assert_eq!(u.identity(), udf().identity(), "stable for the same code");
    }

    #[test]
    fn names() {
        assert!(validate_name("hello_world-2").is_ok());
        for bad in ["", "1abc", "a b", "../x", "a/b"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
