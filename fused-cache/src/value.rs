//! [`CacheValue`]: what `cached` can keep — bytes, text, JSON, Arrow tables (as Arrow IPC in
//! the core's checked codec), UDF outputs, and any serde type through [`Json`].

use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use fused_core::encode::{decode_output, encode_output};
use fused_core::{Error, Output, Result, Table};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value `cached` can store and read back.
pub trait CacheValue: Sized {
    /// The value as bytes.
    fn to_cache_bytes(&self) -> Result<Bytes>;
    /// The value from bytes `to_cache_bytes` made.
    fn from_cache_bytes(bytes: Bytes) -> Result<Self>;
}

impl CacheValue for Bytes {
    fn to_cache_bytes(&self) -> Result<Bytes> {
        Ok(self.clone())
    }
    fn from_cache_bytes(bytes: Bytes) -> Result<Self> {
        Ok(bytes)
    }
}

impl CacheValue for Vec<u8> {
    fn to_cache_bytes(&self) -> Result<Bytes> {
        Ok(Bytes::copy_from_slice(self))
    }
    fn from_cache_bytes(bytes: Bytes) -> Result<Self> {
        Ok(bytes.to_vec())
    }
}

impl CacheValue for String {
    fn to_cache_bytes(&self) -> Result<Bytes> {
        Ok(Bytes::copy_from_slice(self.as_bytes()))
    }
    fn from_cache_bytes(bytes: Bytes) -> Result<Self> {
        String::from_utf8(bytes.to_vec()).map_err(|e| Error::Cache(e.to_string()))
    }
}

impl CacheValue for Output {
    fn to_cache_bytes(&self) -> Result<Bytes> {
        encode_output(self)
    }
    fn from_cache_bytes(bytes: Bytes) -> Result<Self> {
        decode_output(&bytes)
    }
}

impl CacheValue for Table {
    fn to_cache_bytes(&self) -> Result<Bytes> {
        encode_output(&Output::Table(self.clone()))
    }
    fn from_cache_bytes(bytes: Bytes) -> Result<Self> {
        match decode_output(&bytes)? {
            Output::Table(t) => Ok(t),
            _ => Err(Error::Cache("the entry is not a table".into())),
        }
    }
}

/// Record batches are kept as an Arrow IPC stream and read back without copying their
/// buffers (the storage tier checks the bytes; memory does not corrupt them).
impl CacheValue for RecordBatch {
    fn to_cache_bytes(&self) -> Result<Bytes> {
        let mut out = Vec::with_capacity(self.get_array_memory_size() + 1024);
        {
            let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut out, &self.schema())?;
            w.write(self)?;
            w.finish()?;
        }
        Ok(out.into())
    }
    fn from_cache_bytes(bytes: Bytes) -> Result<Self> {
        let mut buffer = arrow::buffer::Buffer::from(bytes);
        let mut decoder = arrow::ipc::reader::StreamDecoder::new();
        let mut batch = None;
        while !buffer.is_empty() {
            if let Some(b) = decoder.decode(&mut buffer)? {
                batch = Some(b);
                break;
            }
        }
        decoder.finish()?;
        batch.ok_or_else(|| Error::Cache("the entry holds no record batch".into()))
    }
}

/// Any serde value, kept as JSON: `cached(key, &opts, || async { Ok(Json(my_struct)) })`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: Serialize + DeserializeOwned> CacheValue for Json<T> {
    fn to_cache_bytes(&self) -> Result<Bytes> {
        Ok(serde_json::to_vec(&self.0)?.into())
    }
    fn from_cache_bytes(bytes: Bytes) -> Result<Self> {
        Ok(Json(serde_json::from_slice(&bytes)?))
    }
}

macro_rules! json_values {
    ($($t:ty),*) => {$(
        impl CacheValue for $t {
            fn to_cache_bytes(&self) -> Result<Bytes> {
                Ok(serde_json::to_vec(self)?.into())
            }
            fn from_cache_bytes(bytes: Bytes) -> Result<Self> {
                Ok(serde_json::from_slice(&bytes)?)
            }
        }
    )*};
}

json_values!(serde_json::Value, bool, i32, i64, u32, u64, f32, f64);
