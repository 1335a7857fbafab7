//! The error type of `fused-core`.

use std::fmt;

/// A parameter that could not be bound to a UDF's declared type.
///
/// The message always names the parameter, the value received and the type expected, so that a
/// caller (a person reading an HTTP 422, or a script) can fix the call without reading the UDF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// The parameter's name.
    pub name: String,
    /// The value received, rendered for display (long values are shortened).
    pub value: Option<String>,
    /// What the UDF declares, in words ("an integer", "a list of numbers", …).
    pub expected: String,
    /// Extra detail, such as the reason a value was out of range.
    pub detail: Option<String>,
}

impl ParamError {
    /// A value of the wrong type (or out of range) for `name`.
    pub fn invalid(
        name: impl Into<String>,
        value: &serde_json::Value,
        expected: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            value: Some(render_value(value)),
            expected: expected.into(),
            detail: None,
        }
    }

    /// A required parameter that the call did not supply.
    pub fn missing(name: impl Into<String>, expected: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: None,
            expected: expected.into(),
            detail: None,
        }
    }

    /// Attaches a detail (for example "must be at least 0").
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(
                f,
                "parameter `{}`: expected {}, got {}",
                self.name, self.expected, v
            )?,
            None => write!(
                f,
                "parameter `{}` is required ({})",
                self.name, self.expected
            )?,
        }
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParamError {}

/// Renders a JSON value for an error message, shortened to at most 80 characters.
pub(crate) fn render_value(v: &serde_json::Value) -> String {
    const MAX: usize = 80;
    let s = v.to_string();
    if s.chars().count() <= MAX {
        s
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

/// Everything that can go wrong in `fused-core`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A parameter could not be bound to the UDF's declared type.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// A `cache_max_age` that is not `<digits>[smhd]` or integer seconds.
    #[error("invalid cache_max_age {value:?}: {reason}")]
    InvalidMaxAge {
        /// The text received.
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A tile outside the zoom's range, or a zoom above 30.
    #[error("invalid tile z={z} x={x} y={y}: {reason}")]
    InvalidTile {
        /// Zoom.
        z: u64,
        /// Column.
        x: u64,
        /// Row.
        y: u64,
        /// Why it was refused.
        reason: String,
    },
    /// Bounds that are not a valid lon/lat box.
    #[error("invalid bounds: {0}")]
    InvalidBounds(String),
    /// A UDF that is not known by that name.
    #[error("no UDF named {0:?}")]
    UnknownUdf(String),
    /// A chain of UDFs calling UDFs that went deeper than allowed.
    #[error("recursion depth {depth} exceeds the limit of {limit} (UDFs calling UDFs)")]
    RecursionLimit {
        /// The depth of the refused call.
        depth: u32,
        /// The limit.
        limit: u32,
    },
    /// A UDF definition that is not valid.
    #[error("invalid UDF: {0}")]
    InvalidUdf(String),
    /// An output that cannot be encoded in any of the requested formats.
    #[error("{0}")]
    Format(String),
    /// An output that could not be encoded or decoded.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// A settings file or environment variable that could not be read.
    #[error("options: {0}")]
    Options(String),
    /// A server answered with an error status.
    #[error("the server answered {status}: {message}")]
    Http {
        /// The HTTP status.
        status: u16,
        /// The server's message (its `detail`).
        message: String,
    },
    /// A failure in a Transport.
    #[error("transport: {0}")]
    Transport(String),
    /// A failure in a Cache backend.
    #[error("cache: {0}")]
    Cache(String),
    /// A storage path that is malformed or tries to leave its root.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path received.
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// An object, UDF or record that does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A failure in a Storage backend.
    #[error("storage: {0}")]
    Storage(String),
    /// An operation this backend cannot do.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// An Arrow error.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// A Parquet error.
    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A JSON error.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// A copy of this error for a second receiver (errors of shared computations reach every
    /// waiter): the same variant where its payload can be copied, otherwise the same message.
    pub fn duplicate(&self) -> Error {
        match self {
            Error::Param(p) => Error::Param(p.clone()),
            Error::InvalidMaxAge { value, reason } => Error::InvalidMaxAge {
                value: value.clone(),
                reason,
            },
            Error::InvalidTile { z, x, y, reason } => Error::InvalidTile {
                z: *z,
                x: *x,
                y: *y,
                reason: reason.clone(),
            },
            Error::InvalidBounds(m) => Error::InvalidBounds(m.clone()),
            Error::UnknownUdf(m) => Error::UnknownUdf(m.clone()),
            Error::RecursionLimit { depth, limit } => Error::RecursionLimit {
                depth: *depth,
                limit: *limit,
            },
            Error::InvalidUdf(m) => Error::InvalidUdf(m.clone()),
            Error::Format(m) => Error::Format(m.clone()),
            Error::Encode(m) => Error::Encode(m.clone()),
            Error::Options(m) => Error::Options(m.clone()),
            Error::Transport(m) => Error::Transport(m.clone()),
            Error::Http { status, message } => Error::Http {
                status: *status,
                message: message.clone(),
            },
            Error::Cache(m) => Error::Cache(m.clone()),
            Error::InvalidPath { path, reason } => Error::InvalidPath {
                path: path.clone(),
                reason: reason.clone(),
            },
            Error::NotFound(m) => Error::NotFound(m.clone()),
            Error::Storage(m) => Error::Storage(m.clone()),
            Error::Unsupported(m) => Error::Unsupported(m.clone()),
            Error::Io(e) => Error::Io(std::io::Error::new(e.kind(), e.to_string())),
            Error::Arrow(e) => Error::Encode(format!("arrow: {e}")),
            Error::Parquet(e) => Error::Encode(format!("parquet: {e}")),
            Error::Json(e) => Error::Encode(format!("json: {e}")),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
