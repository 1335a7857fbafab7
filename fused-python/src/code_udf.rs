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
    Bounds, Crs, Output, Raster, RasterData, RunContext, Table, Udf, UdfFailure, UdfMeta,
};
use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::pool::PythonPool;
use crate::protocol::{Compiled, Param, Returned, Source};
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

/// Runs one code UDF on a pool.
struct PythonHandler {
    pool: Arc<PythonPool>,
    source: Source,
    timeout: Duration,
}

impl Handler for PythonHandler {
    fn call(
        &self,
        ctx: RunContext,
        params: Map<String, Value>,
    ) -> BoxFuture<'static, std::result::Result<Output, UdfFailure>> {
        let (pool, source, timeout) = (Arc::clone(&self.pool), self.source.clone(), self.timeout);
        Box::pin(async move {
            let reply = pool
                .call(&source, &params, timeout)
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
    };
    Ok(Udf::from_parts(meta, schema, Arc::new(handler)))
}
