//! The error type of `fused-ingest`, folded into [`fused_core::Error`] at the crate boundary.

use std::path::Path;

/// Why an ingestion (or a read of an ingested table) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option is invalid (named in the message).
    #[error("invalid ingest option: {0}")]
    Options(String),
    /// An input could not be read; names the file and, when known, the row.
    #[error("{file}{}: {reason}", row.map(|r| format!(", row {r}")).unwrap_or_default())]
    Input {
        /// The input file.
        file: String,
        /// The 0-based row of that file, when one row is at fault.
        row: Option<u64>,
        /// What is wrong.
        reason: String,
    },
    /// The input holds no rows to ingest.
    #[error("nothing to ingest: {0}")]
    Empty(String),
    /// An ingested table is missing or malformed.
    #[error("table {table}: {reason}")]
    Table {
        /// The table's URL or path.
        table: String,
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
    /// Storage (object store, `fd://`) refused an operation.
    #[error(transparent)]
    Storage(#[from] fused_core::Error),
    /// Arrow or Parquet failed while encoding our own output.
    #[error("encoding the output: {0}")]
    Encode(String),
    /// The run was cancelled.
    #[error("ingestion cancelled")]
    Cancelled,
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error reading `file` (at `row`, when given).
    pub(crate) fn input(file: &Path, row: Option<u64>, reason: impl std::fmt::Display) -> Self {
        Error::Input {
            file: file.display().to_string(),
            row,
            reason: reason.to_string(),
        }
    }

    /// An I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

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
            Error::Storage(e) => e,
            Error::Options(m) => fused_core::Error::Options(m),
            other => fused_core::Error::Format(other.to_string()),
        }
    }
}
