//! Options: the settings of the Python SDK that make sense here, from
//! `~/.fused/settings.toml` and `FUSED_*` environment variables, with `save()`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The server this project runs by default, on the port the SDK's `dev` environment assumes.
pub const DEFAULT_BASE_URL: &str = "http://localhost:8783/v1";

/// Settings, with the SDK's names and defaults.
///
/// Precedence: built-in defaults, then the settings file, then `FUSED_<NAME>` environment
/// variables (for example `FUSED_BASE_URL`, `FUSED_MAX_WORKERS`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Options {
    /// Base URL of the Fused API.
    pub base_url: String,
    /// Base URL of shared-token runs (`{base_url}/realtime-shared` for a self-hosted server).
    pub shared_udf_base_url: String,
    /// Where cached results are kept on disk (default: `<data_directory>/cache`).
    pub cache_directory: Option<PathBuf>,
    /// Where UDFs keep files (`file_path`, downloads).
    pub data_directory: PathBuf,
    /// Temporary files.
    pub temp_directory: PathBuf,
    /// Seconds to wait for a management request.
    pub request_timeout: f64,
    /// Seconds a UDF run may take.
    pub run_timeout: f64,
    /// Retries of a request that met a 502/503 or a connection error.
    pub request_max_retries: u32,
    /// Base of the exponential retry delay, in seconds.
    pub request_retry_base_delay: f64,
    /// Parallel tasks of `submit`.
    pub max_workers: usize,
    /// `local` or `remote`; `None` means remote, as in the SDK.
    pub default_udf_run_engine: Option<String>,
    /// Formats tried for table outputs.
    pub default_dtype_out_vector: String,
    /// Formats tried for raster outputs.
    pub default_dtype_out_raster: String,
    /// Formats tried for simple values.
    pub default_dtype_out_simple: String,
    /// Deepest chain of UDFs calling UDFs.
    pub max_recursion_factor: u32,
    /// Realtime client id; discovered from the server when unset.
    pub realtime_client_id: Option<String>,
    /// Cache local runs.
    pub local_engine_cache: bool,
    /// Default max age of `cached()` values, in seconds.
    pub cache_decorator_max_age: u64,
    /// Headers sent with every run.
    pub default_run_headers: BTreeMap<String, String>,
    /// Settings this version does not know (for example the SDK's `[auth]`), kept on save.
    #[serde(flatten)]
    pub extra: toml::Table,
}

impl Default for Options {
    fn default() -> Self {
        let tmp = std::env::temp_dir();
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            shared_udf_base_url: format!("{DEFAULT_BASE_URL}/realtime-shared"),
            cache_directory: None,
            data_directory: tmp.join("fused"),
            temp_directory: tmp,
            request_timeout: 5.0,
            run_timeout: 130.0,
            request_max_retries: 5,
            request_retry_base_delay: 1.0,
            max_workers: 16,
            default_udf_run_engine: None,
            default_dtype_out_vector: "parquet".to_owned(),
            default_dtype_out_raster: "npy,tiff".to_owned(),
            default_dtype_out_simple: "json".to_owned(),
            max_recursion_factor: 5,
            realtime_client_id: None,
            local_engine_cache: true,
            cache_decorator_max_age: 172_800,
            default_run_headers: BTreeMap::new(),
            extra: toml::Table::new(),
        }
    }
}

impl Options {
    /// The settings file: `$FUSED_SETTINGS_PATH`, else `~/.fused/settings.toml`.
    pub fn settings_path() -> PathBuf {
        if let Some(p) = std::env::var_os("FUSED_SETTINGS_PATH") {
            return PathBuf::from(p);
        }
        dirs::home_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join(".fused")
            .join("settings.toml")
    }

    /// Defaults, then the settings file (if present), then `FUSED_*` variables.
    pub fn load() -> Result<Self> {
        let mut o = Self::from_file(&Self::settings_path())?;
        o.apply_env(std::env::vars())?;
        Ok(o)
    }

    /// Defaults overlaid with the settings file at `path`; a missing file gives the defaults.
    pub fn from_file(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| Error::Options(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::Options(format!("{}: {e}", path.display()))),
        }
    }

    /// Applies `FUSED_<NAME>` variables; a value that does not parse is an error naming it.
    pub fn apply_env(&mut self, vars: impl IntoIterator<Item = (String, String)>) -> Result<()> {
        fn parse<T: std::str::FromStr>(k: &str, v: &str) -> Result<T> {
            v.trim()
                .parse()
                .map_err(|_| Error::Options(format!("{k}={v:?} is not a valid value")))
        }
        fn opt(v: &str) -> Option<String> {
            let t = v.trim();
            (!t.is_empty() && !t.eq_ignore_ascii_case("none")).then(|| t.to_owned())
        }
        for (k, v) in vars {
            let Some(name) = k.strip_prefix("FUSED_") else {
                continue;
            };
            match name {
                "BASE_URL" => {
                    self.base_url = v.trim_end_matches('/').to_owned();
                    if std::env::var_os("FUSED_SHARED_UDF_BASE_URL").is_none() {
                        self.shared_udf_base_url = format!("{}/realtime-shared", self.base_url);
                    }
                }
                "SHARED_UDF_BASE_URL" => {
                    self.shared_udf_base_url = v.trim_end_matches('/').to_owned()
                }
                "CACHE_DIRECTORY" => self.cache_directory = opt(&v).map(PathBuf::from),
                "DATA_DIRECTORY" => self.data_directory = PathBuf::from(v),
                "TEMP_DIRECTORY" => self.temp_directory = PathBuf::from(v),
                "REQUEST_TIMEOUT" => self.request_timeout = parse(&k, &v)?,
                "RUN_TIMEOUT" => self.run_timeout = parse(&k, &v)?,
                "REQUEST_MAX_RETRIES" => self.request_max_retries = parse(&k, &v)?,
                "REQUEST_RETRY_BASE_DELAY" => self.request_retry_base_delay = parse(&k, &v)?,
                "MAX_WORKERS" => self.max_workers = parse(&k, &v)?,
                "DEFAULT_UDF_RUN_ENGINE" => self.default_udf_run_engine = opt(&v),
                "DEFAULT_DTYPE_OUT_VECTOR" => self.default_dtype_out_vector = v,
                "DEFAULT_DTYPE_OUT_RASTER" => self.default_dtype_out_raster = v,
                "DEFAULT_DTYPE_OUT_SIMPLE" => self.default_dtype_out_simple = v,
                "MAX_RECURSION_FACTOR" => self.max_recursion_factor = parse(&k, &v)?,
                "REALTIME_CLIENT_ID" => self.realtime_client_id = opt(&v),
                "LOCAL_ENGINE_CACHE" => self.local_engine_cache = parse_bool(&k, &v)?,
                "CACHE_DECORATOR_MAX_AGE" => {
                    self.cache_decorator_max_age = crate::MaxAge::parse(&v)?.as_secs();
                }
                _ => {}
            }
        }
        self.validate()
    }

    /// Checks values that would make no sense (negative timeouts, zero workers, …).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Options(m));
        for (name, v) in [
            ("request_timeout", self.request_timeout),
            ("run_timeout", self.run_timeout),
        ] {
            if !(v > 0.0 && v <= MAX_SECONDS) {
                return bad(format!(
                    "{name} must be a number of seconds in (0, {MAX_SECONDS}], got {v}"
                ));
            }
        }
        let delay = self.request_retry_base_delay;
        if !(0.0..=3_600.0).contains(&delay) {
            return bad(format!(
                "request_retry_base_delay must be in [0, 3600] seconds, got {delay}"
            ));
        }
        if self.max_workers == 0 {
            return bad("max_workers must be at least 1".into());
        }
        if let Some(e) = &self.default_udf_run_engine
            && !matches!(e.as_str(), "local" | "remote" | "realtime")
        {
            return bad(format!(
                "default_udf_run_engine must be local or remote, got {e:?}"
            ));
        }
        Ok(())
    }

    /// Writes the settings that differ from the defaults to the settings file (as the SDK's
    /// `options.save()` does), creating its folder.
    pub fn save(&self) -> Result<PathBuf> {
        let path = Self::settings_path();
        self.save_to(&path)?;
        Ok(path)
    }

    /// Writes the settings that differ from the defaults to `path`.
    pub fn save_to(&self, path: &Path) -> Result<()> {
        let ours = toml::Table::try_from(self).map_err(|e| Error::Options(e.to_string()))?;
        let defaults =
            toml::Table::try_from(Self::default()).map_err(|e| Error::Options(e.to_string()))?;
        let changed: toml::Table = ours
            .into_iter()
            .filter(|(k, v)| defaults.get(k) != Some(v))
            .collect();
        let text = toml::to_string(&changed).map_err(|e| Error::Options(e.to_string()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// The run timeout as a duration.
    pub fn run_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.run_timeout)
    }
}

/// The longest timeout accepted, in seconds (about four months): anything longer is a typo.
pub const MAX_SECONDS: f64 = 1e7;

fn parse_bool(k: &str, v: &str) -> Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::Options(format!("{k}={v:?} is not a boolean"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_env_and_save_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.toml");
        std::fs::write(
            &path,
            "max_workers = 4\nrun_timeout = 30.0\n[auth]\nclient_id = \"abc\"\n[default_run_headers]\nX-A = \"1\"\n",
        )
        .unwrap();
        let mut o = Options::from_file(&path).unwrap();
        assert_eq!(o.max_workers, 4);
        assert_eq!(o.run_timeout, 30.0);
        assert_eq!(
            o.default_run_headers.get("X-A").map(String::as_str),
            Some("1")
        );
        o.apply_env([
            ("FUSED_BASE_URL".to_owned(), "http://h:1/v1/".to_owned()),
            ("FUSED_REQUEST_TIMEOUT".to_owned(), "9".to_owned()),
            ("OTHER".to_owned(), "x".to_owned()),
        ])
        .unwrap();
        assert_eq!(o.base_url, "http://h:1/v1");
        assert_eq!(o.request_timeout, 9.0);
        let out = dir.path().join("saved.toml");
        o.save_to(&out).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(
            text.contains("max_workers = 4") && text.contains("client_id = \"abc\""),
            "{text}"
        );
        assert!(
            !text.contains("max_recursion_factor"),
            "defaults are not written: {text}"
        );
        assert_eq!(Options::from_file(&out).unwrap(), o);
    }

    #[test]
    fn bad_values_are_named() {
        let mut o = Options::default();
        let e = o
            .apply_env([("FUSED_MAX_WORKERS".to_owned(), "lots".to_owned())])
            .unwrap_err();
        assert!(e.to_string().contains("FUSED_MAX_WORKERS"), "{e}");
        for bad in ["1e20", "inf", "NaN"] {
            let e = o
                .apply_env([("FUSED_RUN_TIMEOUT".to_owned(), bad.to_owned())])
                .unwrap_err();
            assert!(e.to_string().contains("run_timeout"), "{bad}: {e}");
        }
        let e = o
            .apply_env([("FUSED_RUN_TIMEOUT".to_owned(), "-1".to_owned())])
            .unwrap_err();
        assert!(e.to_string().contains("run_timeout"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        std::fs::write(&p, "max_workers = \"x\"").unwrap();
        assert!(
            Options::from_file(&p)
                .unwrap_err()
                .to_string()
                .contains("s.toml")
        );
        assert_eq!(
            Options::from_file(&dir.path().join("none.toml")).unwrap(),
            Options::default()
        );
    }
}
