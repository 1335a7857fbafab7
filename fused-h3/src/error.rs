//! The error type of `fused-h3`, folded into [`fused_core::Error`] at the crate boundary.

/// Why a raster ingestion (or an H3 dataset read) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option is invalid (named in the message).
    #[error("invalid H3 ingest option: {0}")]
    Options(String),
    /// A raster cannot be read or used; names the file.
    #[error("{file}: {reason}")]
    Raster {
        /// The raster file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A file system error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Writing the table (through the vector table writer).
    #[error(transparent)]
    Table(#[from] fused_ingest::Error),
    /// Arrow or Parquet failed while encoding our own output.
    #[error("encoding the output: {0}")]
    Encode(String),
    /// The run was cancelled.
    #[error("H3 ingestion cancelled")]
    Cancelled,
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<parquet::errors::ParquetError> for Error {
    fn from(e: parquet::errors::ParquetError) -> Self {
        Error::Encode(e.to_string())
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::Encode(e.to_string())
    }
}

impl From<Error> for fused_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Options(m) => fused_core::Error::Options(m),
            other => fused_core::Error::Format(other.to_string()),
        }
    }
}
