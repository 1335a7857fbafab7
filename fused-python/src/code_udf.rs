//! A Fused-format code UDF as a fused-rs [`Udf`]: its parameters read from the entrypoint's
//! signature (annotations become kinds, so callers' strings are coerced as for native UDFs),
//! its calls run on a [`PythonPool`], its prints in the run's logs, its exceptions as the
//! caller's `UdfFailure` with the line.

use std::sync::Arc;
use std::time::Duration;

use arrow::ipc::reader::StreamReader;
use fused_core::schema::{ParamKind, ParamSchema, ParamSpec};
use fused_core::udf::Handler;
use fused_core::{
    Args, Bounds, Cache, Crs, Executor, Output, Raster, RasterData, RunContext, Table, Udf,
    UdfCall, UdfFailure, UdfMeta, UdfRef,
};
use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::pool::PythonPool;
use crate::protocol::{Compiled, Host, Param, Returned, Source};
use crate::{Error, Result};

/// The kind of a parameter from its annotation (and the name `bounds`, which tile calls set).
fn kind_of(p: &Param) -> ParamKind {
    if p.name == "bounds" {
        return ParamKind::Bounds;
    }
    let ann = p.annotation.as_deref().unwrap_or("");
    let base = ann
        .split('[')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match base.as_str() {
        "int" => ParamKind::Int {
            min: None,
            max: None,
        },
        "float" => ParamKind::Float,
        "bool" => ParamKind::Bool,
        "str" => ParamKind::Str { choices: None },
        "list" | "typing.list" | "tuple" => ParamKind::List {
            items: Box::new(ParamKind::Any),
        },
        "dict" | "typing.dict" => ParamKind::Object,
        _ => ParamKind::Any,
    }
}

/// The parameter schema of a compiled UDF.
pub fn schema_of(c: &Compiled) -> ParamSchema {
    let params = c
        .params
        .iter()
        .filter(|p| !matches!(p.kind.as_str(), "VAR_POSITIONAL" | "VAR_KEYWORD"))
        .map(|p| ParamSpec {
            name: p.name.clone(),
            kind: kind_of(p),
            nullable: p.has_default && p.default.as_ref().is_none_or(Value::is_null),
            required: p.required,
            default: p.default.clone().filter(|v| !v.is_null()),
            description: None,
        })
        .collect();
    ParamSchema {
        params,
        open: c.params.iter().any(|p| p.kind == "VAR_KEYWORD"),
    }
}

/// What a code UDF may use of its host while it runs.
#[derive(Clone, Default)]
pub struct Services {
    /// Runs what the UDF calls (`fused.run("name")`); without it such calls fail.
    pub executor: Option<Arc<dyn Executor>>,
    /// Keeps `@fused.cache` results; without it they are computed every time.
    pub cache: Option<Arc<dyn Cache>>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("executor", &self.executor.is_some())
            .field("cache", &self.cache.is_some())
            .finish()
    }
}

/// Runs one code UDF on a pool.
struct PythonHandler {
    pool: Arc<PythonPool>,
    source: Source,
    timeout: Duration,
    services: Services,
}

/// Answers a running UDF: `fused.run(name_or_token, **params)` through the executor, one level
/// deeper in the chain of UDFs calling UDFs (the executor applies the limit); `@fused.cache`
/// lookups and writes in the cache.
struct ServerHost {
    services: Services,
    recursion: u32,
    timeout: Duration,
}

type HostReply = (Map<String, Value>, Vec<u8>);

/// Keys of `@fused.cache` entries in the host's cache.
const CACHE_PREFIX: &str = "py-cache:";

#[async_trait::async_trait]
impl Host for ServerHost {
    async fn call(&self, request: Value, payload: Vec<u8>) -> HostReply {
        let answer = match request["op"].as_str() {
            Some("run") => self.run(&request).await,
            Some("cache_get") => self.cache_get(&request).await,
            Some("cache_put") => self.cache_put(&request, payload).await,
            _ => Err((
                "ValueError".to_owned(),
                "an unknown request to the host".to_owned(),
            )),
        };
        answer.unwrap_or_else(|(class, message)| {
            let mut m = Map::new();
            m.insert("ok".into(), false.into());
            m.insert(
                "error".into(),
                serde_json::json!({"class": class, "message": message}),
            );
            (m, Vec::new())
        })
    }
}

fn json_reply(v: Value) -> HostReply {
    let mut m = Map::new();
    m.insert("ok".into(), true.into());
    m.insert("kind".into(), "json".into());
    m.insert("value".into(), v);
    (m, Vec::new())
}

impl ServerHost {
    async fn cache_get(&self, request: &Value) -> std::result::Result<HostReply, (String, String)> {
        let (Some(cache), Some(key)) = (&self.services.cache, request["key"].as_str()) else {
            return Ok(json_reply(Value::Null));
        };
        match cache.get(&format!("{CACHE_PREFIX}{key}")).await {
            Ok(Some(e)) => {
                let mut m = Map::new();
                m.insert("ok".into(), true.into());
                m.insert("kind".into(), "bytes".into());
                Ok((m, e.value.to_vec()))
            }
            // A cache that fails is a miss: the function runs.
            _ => Ok(json_reply(Value::Null)),
        }
    }

    async fn cache_put(
        &self,
        request: &Value,
        payload: Vec<u8>,
    ) -> std::result::Result<HostReply, (String, String)> {
        if let (Some(cache), Some(key)) = (&self.services.cache, request["key"].as_str()) {
            let ttl = request["max_age"]
                .as_str()
                .and_then(|t| fused_core::MaxAge::parse(t).ok())
                .map_or(Duration::from_secs(12 * 3600), |m| m.duration());
            if let Err(e) = cache
                .put(&format!("{CACHE_PREFIX}{key}"), payload.into(), ttl)
                .await
            {
                tracing::warn!("@fused.cache could not keep a result: {e}");
            }
        }
        Ok(json_reply(Value::Null))
    }

    async fn run(&self, request: &Value) -> std::result::Result<HostReply, (String, String)> {
        let bad = |m: &str| ("ValueError".to_owned(), m.to_owned());
        let executor = self
            .services
            .executor
            .as_ref()
            .ok_or_else(|| bad("fused.run inside this UDF has no host to run UDFs"))?;
        let name = request["udf"]
            .as_str()
            .ok_or_else(|| bad("fused.run needs a UDF name"))?;
        let args = Args::from_iter(
            request["params"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        let target = if fused_core::run::is_token(name) {
            UdfRef::Token(name.to_owned())
        } else {
            UdfRef::Name(name.to_owned())
        };
        let mut call = UdfCall::new(target, args).with_timeout(self.timeout);
        call.recursion = self.recursion;
        let out = executor
            .execute(call)
            .await
            .map_err(|e| ("RuntimeError".to_owned(), e.to_string()))?
            .into_output()
            .map_err(|f| (f.class, f.message))?;
        let mut m = Map::new();
        m.insert("ok".into(), true.into());
        match out {
            Output::Empty => {
                m.insert("kind".into(), "json".into());
                m.insert("value".into(), Value::Null);
                Ok((m, Vec::new()))
            }
            Output::Json(v) => {
                m.insert("kind".into(), "json".into());
                m.insert("value".into(), v);
                Ok((m, Vec::new()))
            }
            Output::Table(t) => {
                let mut buf = Vec::new();
                let ipc = |e: arrow::error::ArrowError| ("ArrowError".to_owned(), e.to_string());
                let mut w =
                    arrow::ipc::writer::StreamWriter::try_new(&mut buf, t.schema()).map_err(ipc)?;
                for b in t.batches() {
                    w.write(b).map_err(ipc)?;
                }
                w.finish().map_err(ipc)?;
                drop(w);
                m.insert("kind".into(), "arrow".into());
                if let Some(g) = t.geometry() {
                    m.insert("geometry".into(), g.name.clone().into());
                    m.insert("crs".into(), g.crs.to_string().into());
                }
                Ok((m, buf))
            }
            other => Err((
                "TypeError".to_owned(),
                format!(
                    "fused.run inside a code UDF returns tables and values; {name} gave {}",
                    other.kind()
                ),
            )),
        }
    }
}

impl Handler for PythonHandler {
    fn call(
        &self,
        ctx: RunContext,
        params: Map<String, Value>,
    ) -> BoxFuture<'static, std::result::Result<Output, UdfFailure>> {
        let (pool, source, timeout) = (Arc::clone(&self.pool), self.source.clone(), self.timeout);
        let nested = ctx.recursion() > 1;
        let host = ServerHost {
            services: self.services.clone(),
            recursion: ctx.recursion() + 1,
            timeout,
        };
        Box::pin(async move {
            let reply = pool
                .call(&source, &params, timeout, Some(&host as &dyn Host), nested)
                .await
                .map_err(|e| match e {
                    Error::Timeout { .. } => UdfFailure::timeout(timeout),
                    Error::Udf(p) => failure(&p.class, &p.message, p.line),
                    e => UdfFailure::runtime("RuntimeError", e.to_string()),
                })?;
            for line in reply.stdout.lines() {
                ctx.print(line);
            }
            for line in reply.stderr.lines() {
                ctx.eprint(line);
            }
            let returned = reply
                .result
                .map_err(|p| failure(&p.class, &p.message, p.line))?;
            output_of(returned).map_err(|m| UdfFailure::runtime("TypeError", m))
        })
    }
}

fn failure(class: &str, message: &str, line: Option<u32>) -> UdfFailure {
    let mut f = UdfFailure::runtime(class, message);
    f.lineno = line;
    f
}

/// The output of what the worker sent back.
fn output_of(r: Returned) -> std::result::Result<Output, String> {
    match r {
        Returned::Json(Value::Null) => Ok(Output::Empty),
        Returned::Json(v) => Ok(Output::Json(v)),
        Returned::Arrow { ipc, geometry, crs } => {
            let reader = StreamReader::try_new(std::io::Cursor::new(ipc), None)
                .map_err(|e| format!("the table sent back: {e}"))?;
            let schema = reader.schema();
            let batches = reader
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| format!("the table sent back: {e}"))?;
            let table = Table::try_new(schema, batches).map_err(|e| e.to_string())?;
            let table = match geometry {
                Some(g) => {
                    let crs = crs.as_deref().map_or(Crs::WGS84, Crs::parse);
                    table.with_geometry(&g, crs).map_err(|e| e.to_string())?
                }
                None => table,
            };
            Ok(Output::Table(table))
        }
        Returned::Array {
            dtype,
            shape,
            bounds,
            data,
        } => {
            let (bands, height, width) = match shape[..] {
                [h, w] => (1, h, w),
                [b, h, w] => (b, h, w),
                _ => return Err(format!("an array of shape {shape:?} is not an image")),
            };
            let le = |n: usize| data.chunks_exact(n);
            let samples = match dtype.as_str() {
                "|u1" | "|b1" => RasterData::U8(data.clone()),
                "<u2" => RasterData::U16(le(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect()),
                "<i2" => RasterData::I16(le(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()),
                "<i4" => RasterData::I32(
                    le(4)
                        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                ),
                "<f4" => RasterData::F32(
                    le(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                ),
                "<f8" => RasterData::F64(
                    le(8)
                        .map(|b| {
                            f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                        })
                        .collect(),
                ),
                d => return Err(format!("arrays of dtype {d} are not supported")),
            };
            let mut raster =
                Raster::new(bands, height, width, samples).map_err(|e| e.to_string())?;
            if let Some(b) = bounds {
                raster = raster.with_bounds(Bounds::try_from(b).map_err(|e| e.to_string())?);
            }
            Ok(Output::Raster(raster))
        }
    }
}

/// The UDF of `meta` (its `code`, `entrypoint` and headers), compiled once on `pool` to read
/// its signature; each call runs there within `timeout`.
pub async fn code_udf(pool: &Arc<PythonPool>, meta: UdfMeta, timeout: Duration) -> Result<Udf> {
    code_udf_calling(pool, meta, timeout, Services::default()).await
}

/// [`code_udf`] using `services` of its host while it runs.
pub async fn code_udf_calling(
    pool: &Arc<PythonPool>,
    meta: UdfMeta,
    timeout: Duration,
    services: Services,
) -> Result<Udf> {
    let source = Source {
        code: meta.code.clone(),
        entrypoint: Some(meta.entrypoint.clone()).filter(|e| !e.is_empty()),
        headers: meta
            .headers
            .iter()
            .map(|h| {
                (
                    h.module_name.clone(),
                    h.source_code.clone().unwrap_or_default(),
                )
            })
            .collect(),
    };
    let compiled = pool.signature(&source).await?;
    let schema = schema_of(&compiled);
    let handler = PythonHandler {
        pool: Arc::clone(pool),
        source,
        timeout,
        services,
    };
    Ok(Udf::from_parts(meta, schema, Arc::new(handler)))
}
