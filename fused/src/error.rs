//! The facade's error: every crate's error, folded.

/// Everything that can go wrong through the `fused` facade.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// From the core (parameters, formats, options, …).
    #[error(transparent)]
    Core(#[from] fused_core::Error),
    /// From the HTTP layer (binding, serving).
    #[error(transparent)]
    Http(#[from] fused_http::Error),
    /// An ingestion failed.
    #[error(transparent)]
    Ingest(#[from] fused_ingest::Error),
    /// A UDF failed.
    #[error("the UDF failed: {0}")]
    Udf(#[from] fused_core::UdfFailure),
    /// An I/O error in the CLI.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A command-line usage error.
    #[error("{0}")]
    Usage(String),
}

impl From<fused_core::ParamError> for Error {
    fn from(e: fused_core::ParamError) -> Self {
        Error::Core(e.into())
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
