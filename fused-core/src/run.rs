//! One UDF call and its result: [`UdfCall`], [`RunResult`], failures, and the
//! `x-fused-metadata` form of them that travels with HTTP responses.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::args::Args;
use crate::context::Logs;
use crate::max_age::MaxAge;
use crate::output::Output;
use crate::tile::Tile;
use crate::udf::Udf;

/// Which UDF to run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum UdfRef {
    /// A UDF object in this process.
    Native(Arc<Udf>),
    /// A UDF registered under this name (or saved under it on a server).
    Name(String),
    /// A shared token (`fsh_…`) of a server.
    Token(String),
}

impl UdfRef {
    /// A short description for messages.
    pub fn describe(&self) -> String {
        match self {
            UdfRef::Native(u) => format!("UDF {:?}", u.name()),
            UdfRef::Name(n) => format!("UDF {n:?}"),
            UdfRef::Token(t) => format!("shared token {}…", t.chars().take(8).collect::<String>()),
        }
    }
}

impl From<Arc<Udf>> for UdfRef {
    fn from(u: Arc<Udf>) -> Self {
        UdfRef::Native(u)
    }
}

impl From<Udf> for UdfRef {
    fn from(u: Udf) -> Self {
        UdfRef::Native(Arc::new(u))
    }
}

impl From<&str> for UdfRef {
    /// Text that looks like a shared token (`fsh_`, `UDF_`, `fc_` prefixes or 64 hex digits, as
    /// the SDK decides) is a token; anything else a name.
    fn from(s: &str) -> Self {
        if is_token(s) {
            UdfRef::Token(s.to_owned())
        } else {
            UdfRef::Name(s.to_owned())
        }
    }
}

/// True for text the Python SDK treats as a shared token.
pub fn is_token(s: &str) -> bool {
    s.starts_with("fsh_")
        || s.starts_with("UDF_")
        || s.starts_with("fc_")
        || (s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// One call of a UDF.
#[derive(Debug, Clone)]
pub struct UdfCall {
    /// What to run.
    pub udf: UdfRef,
    /// Arguments (coerced to the UDF's types by the executor).
    pub args: Args,
    /// The tile, for tile calls (the UDF receives its `bounds`).
    pub tile: Option<Tile>,
    /// How long the call may take before it is abandoned.
    pub timeout: Option<Duration>,
    /// How old a cached result may be; zero disables the cache; `None` uses the UDF's default.
    pub cache_max_age: Option<MaxAge>,
    /// Depth in a chain of UDFs calling UDFs (1 at the top).
    pub recursion: u32,
}

impl UdfCall {
    /// A call of `udf` with `args`, no tile, default timeout and caching.
    pub fn new(udf: impl Into<UdfRef>, args: Args) -> Self {
        Self {
            udf: udf.into(),
            args,
            tile: None,
            timeout: None,
            cache_max_age: None,
            recursion: 1,
        }
    }

    /// Makes this a tile call.
    #[must_use]
    pub fn with_tile(mut self, tile: Tile) -> Self {
        self.tile = Some(tile);
        self
    }

    /// Sets the timeout.
    #[must_use]
    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }

    /// Sets the cache max age (zero disables the cache).
    #[must_use]
    pub fn with_cache_max_age(mut self, m: MaxAge) -> Self {
        self.cache_max_age = Some(m);
        self
    }
}

/// How a UDF failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The UDF returned an error.
    Runtime,
    /// The UDF panicked.
    Panic,
    /// The call took longer than its timeout.
    Timeout,
    /// The result could not be serialized.
    Serialization,
}

/// A UDF that did not produce an output: what the caller sees instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{class}: {message}")]
pub struct UdfFailure {
    /// How it failed.
    pub kind: FailureKind,
    /// Exception class, as the Python SDK shows it (`ValueError`, `Panic`, `TimeoutError` …).
    pub class: String,
    /// The message.
    pub message: String,
    /// Line in the UDF's code, when known.
    pub lineno: Option<u32>,
}

impl UdfFailure {
    /// A runtime error of class `class`.
    pub fn runtime(class: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Runtime,
            class: class.into(),
            message: message.into(),
            lineno: None,
        }
    }

    /// A timeout after `after`.
    pub fn timeout(after: Duration) -> Self {
        Self {
            kind: FailureKind::Timeout,
            class: "TimeoutError".into(),
            message: format!("the UDF did not finish within {:.1} s", after.as_secs_f64()),
            lineno: None,
        }
    }

    /// A panic with its message.
    pub fn panic(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Panic,
            class: "Panic".into(),
            message: message.into(),
            lineno: None,
        }
    }
}

/// Where a result came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheStatus {
    /// Computed by this call.
    Miss,
    /// Served from a cache; the entry was this old.
    Hit {
        /// Age of the cached entry.
        age: Duration,
    },
    /// The cache was not consulted.
    Disabled,
}

/// The outcome of a call: the output or the failure, with logs and timing.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The output, or how the UDF failed.
    pub output: Result<Output, UdfFailure>,
    /// What the UDF printed.
    pub logs: Logs,
    /// Wall time of the call.
    pub elapsed: Duration,
    /// Whether a cache answered.
    pub cache: CacheStatus,
}

impl RunResult {
    /// True when the UDF produced an output.
    pub fn is_ok(&self) -> bool {
        self.output.is_ok()
    }

    /// The output, or the failure as an error.
    pub fn into_output(self) -> Result<Output, UdfFailure> {
        self.output
    }
}

/// The `x-fused-metadata` JSON object the Python SDK reads from run responses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunMetadata {
    /// What the UDF printed.
    #[serde(default)]
    pub stdout: Option<String>,
    /// What the UDF printed to stderr.
    #[serde(default)]
    pub stderr: Option<String>,
    /// True when the UDF failed.
    #[serde(default)]
    pub has_exception: bool,
    /// Exception class name.
    #[serde(default)]
    pub exception_class: Option<String>,
    /// `"<class>: <message>"`.
    #[serde(default)]
    pub errormsg: Option<String>,
    /// Line number in the UDF's code.
    #[serde(default)]
    pub lineno: Option<u32>,
    /// Fallback message.
    #[serde(default)]
    pub exception: Option<String>,
    /// `timeout_error`, `serialization_error`, or `runtime_error`.
    #[serde(default)]
    pub error_type: Option<String>,
    /// Profiler output (not produced here).
    #[serde(default)]
    pub profile: Option<serde_json::Value>,
}

/// Largest `x-fused-metadata` header sent (the SDK's async client refuses headers over 12 000
/// bytes); logs are shortened from the front to fit.
pub const MAX_METADATA_BYTES: usize = 8_000;

impl RunMetadata {
    /// The metadata of a result.
    pub fn from_result(logs: &Logs, output: Result<(), &UdfFailure>) -> Self {
        let mut m = Self {
            stdout: Some(logs.stdout.clone()),
            stderr: Some(logs.stderr.clone()),
            ..Self::default()
        };
        if let Err(f) = output {
            m.set_failure(f);
        }
        m
    }

    /// Records a failure.
    pub fn set_failure(&mut self, f: &UdfFailure) {
        self.has_exception = true;
        self.exception_class = Some(f.class.clone());
        self.errormsg = Some(format!("{}: {}", f.class, f.message));
        self.exception = Some(f.message.clone());
        self.lineno = f.lineno;
        self.error_type = Some(
            match f.kind {
                FailureKind::Timeout => "timeout_error",
                FailureKind::Serialization => "serialization_error",
                _ => "runtime_error",
            }
            .to_owned(),
        );
    }

    /// The failure this metadata describes, if any.
    pub fn failure(&self) -> Option<UdfFailure> {
        if !self.has_exception {
            return None;
        }
        let class = self
            .exception_class
            .clone()
            .unwrap_or_else(|| "Exception".into());
        let message = self
            .exception
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| self.errormsg.clone())
            .unwrap_or_default();
        let kind = match self.error_type.as_deref() {
            Some("timeout_error") => FailureKind::Timeout,
            Some("serialization_error") => FailureKind::Serialization,
            _ if class == "Panic" => FailureKind::Panic,
            _ => FailureKind::Runtime,
        };
        Some(UdfFailure {
            kind,
            class,
            message,
            lineno: self.lineno,
        })
    }

    /// The logs this metadata carries.
    pub fn logs(&self) -> Logs {
        Logs {
            stdout: self.stdout.clone().unwrap_or_default(),
            stderr: self.stderr.clone().unwrap_or_default(),
        }
    }

    /// The header value: ASCII-only JSON (non-ASCII escaped as `\uXXXX`) of at most
    /// [`MAX_METADATA_BYTES`], keeping the end of long logs.
    pub fn to_header_value(&self) -> String {
        let mut m = self.clone();
        let mut text = ascii_json(&m);
        while text.len() > MAX_METADATA_BYTES {
            let (out_len, err_len) = (
                m.stdout.as_ref().map_or(0, String::len),
                m.stderr.as_ref().map_or(0, String::len),
            );
            let field = if out_len >= err_len {
                &mut m.stdout
            } else {
                &mut m.stderr
            };
            match field.as_mut().filter(|s| s.len() > 64) {
                Some(s) => {
                    // Keep the same share of the log as the header budget is of the text, with
                    // a margin; escaping makes bytes and JSON length differ.
                    let share = MAX_METADATA_BYTES as f64 / text.len() as f64 * 0.9;
                    let keep = ((s.len() as f64) * share) as usize;
                    let mut start = s.len() - keep.min(s.len());
                    while !s.is_char_boundary(start) {
                        start += 1;
                    }
                    *s = format!("[… truncated]\n{}", &s[start..]);
                }
                None => {
                    // The logs are spent: halve the messages (and the class) until it fits.
                    m.stdout = None;
                    m.stderr = None;
                    m.profile = None;
                    let mut shortened = false;
                    for f in [&mut m.errormsg, &mut m.exception, &mut m.exception_class]
                        .into_iter()
                        .flatten()
                    {
                        let n = f.chars().count();
                        if n > 16 {
                            *f = format!("{}…", f.chars().take(n / 2).collect::<String>());
                            shortened = true;
                        }
                    }
                    if !shortened {
                        // Nothing left to shorten: the fixed keys alone always fit.
                        m.errormsg = None;
                        m.exception = None;
                        m.exception_class = None;
                    }
                }
            }
            text = ascii_json(&m);
        }
        text
    }
}

/// JSON with every non-ASCII character escaped, safe for an HTTP header.
fn ascii_json<T: Serialize>(v: &T) -> String {
    let raw = serde_json::to_string(v).unwrap_or_else(|_| "{}".into());
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c == '\u{7f}' {
            // DEL is ASCII but not allowed in a header value.
            out.push_str("\\u007f");
        } else if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_roundtrips_through_metadata() {
        let f = UdfFailure::runtime("ValueError", "bad — value");
        let m = RunMetadata::from_result(
            &Logs {
                stdout: "hi\n".into(),
                stderr: String::new(),
            },
            Err(&f),
        );
        let h = m.to_header_value();
        assert!(h.is_ascii());
        assert!(
            h.contains(r#""errormsg":"ValueError: bad \u2014 value""#),
            "{h}"
        );
        let back: RunMetadata = serde_json::from_str(&h).unwrap();
        assert_eq!(back.failure(), Some(f));
        assert_eq!(back.logs().stdout, "hi\n");
        let t = UdfFailure::timeout(Duration::from_secs(2));
        let mut m = RunMetadata::default();
        m.set_failure(&t);
        assert_eq!(m.error_type.as_deref(), Some("timeout_error"));
        assert_eq!(m.failure().unwrap().kind, FailureKind::Timeout);
    }

    #[test]
    fn long_messages_and_control_characters_still_make_a_valid_header() {
        let f = UdfFailure::runtime("Ünïcode".repeat(500), "ü\u{7f}\u{1}".repeat(5_000));
        let m = RunMetadata::from_result(&Logs::default(), Err(&f));
        let h = m.to_header_value();
        assert!(h.len() <= MAX_METADATA_BYTES, "{}", h.len());
        assert!(h.bytes().all(|b| (0x20..0x7f).contains(&b)), "{h}");
        let back: RunMetadata = serde_json::from_str(&h).unwrap();
        assert!(back.has_exception);
        assert!(back.errormsg.unwrap().starts_with("Ü"));
    }

    #[test]
    fn long_logs_are_shortened_to_fit_a_header() {
        let logs = Logs {
            stdout: "é".repeat(50_000),
            stderr: "e".repeat(30_000),
        };
        let h = RunMetadata::from_result(&logs, Ok(())).to_header_value();
        assert!(h.len() <= MAX_METADATA_BYTES, "{}", h.len());
        let m: RunMetadata = serde_json::from_str(&h).unwrap();
        assert!(m.stdout.unwrap().starts_with("[… truncated]"));
    }

    #[test]
    fn tokens_are_recognised_as_the_sdk_does() {
        assert!(is_token("fsh_abc"));
        assert!(is_token(&"a".repeat(64)));
        assert!(!is_token("hello"));
        assert!(matches!(UdfRef::from("fsh_x"), UdfRef::Token(_)));
        assert!(matches!(UdfRef::from("hello"), UdfRef::Name(_)));
    }
}
