//! `cache_max_age` durations: `"<digits><s|m|h|d>"` (case-insensitive) or integer seconds.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// How old a cached result may be and still be served; zero disables the cache.
///
/// Parsed from `"30s"`, `"10m"`, `" 48H "`, `"2d"` or integer seconds (`3600`, `"3600"`), and
/// always written as integer seconds, the form the Fused wire and UDF JSON use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MaxAge(Duration);

impl MaxAge {
    /// Zero: do not use the cache.
    pub const ZERO: MaxAge = MaxAge(Duration::ZERO);

    /// From whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// The duration.
    pub const fn duration(self) -> Duration {
        self.0
    }

    /// Whole seconds.
    pub const fn as_secs(self) -> u64 {
        self.0.as_secs()
    }

    /// True when the cache is disabled.
    pub const fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// Parses `"<digits>[smhd]"` (case-insensitive, surrounding spaces ignored) or bare integer
    /// seconds. Decimals, negative numbers, other units and empty text are errors.
    pub fn parse(text: &str) -> Result<Self> {
        let err = |reason| Error::InvalidMaxAge {
            value: text.to_owned(),
            reason,
        };
        let t = text.trim();
        if t.is_empty() {
            return Err(err(
                "empty; use e.g. \"30s\", \"10m\", \"12h\", \"2d\" or integer seconds",
            ));
        }
        let (digits, unit) = match t.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], Some(c.to_ascii_lowercase())),
            _ => (t, None),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(
                "expected <digits> followed by one of s, m, h, d (e.g. \"48h\") or integer seconds",
            ));
        }
        let n: u64 = digits.parse().map_err(|_| err("number too large"))?;
        let mult = match unit {
            None | Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3_600,
            Some('d') => 86_400,
            Some(_) => return Err(err("unknown unit; use s, m, h or d")),
        };
        n.checked_mul(mult)
            .map(Self::from_secs)
            .ok_or_else(|| err("duration too large"))
    }
}

impl From<Duration> for MaxAge {
    fn from(d: Duration) -> Self {
        Self(d)
    }
}

impl std::str::FromStr for MaxAge {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for MaxAge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.as_secs())
    }
}

impl Serialize for MaxAge {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u64(self.as_secs())
    }
}

impl<'de> Deserialize<'de> for MaxAge {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(Self::from_secs(n)),
            Raw::Text(t) => Self::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_seconds() {
        for (text, secs) in [
            ("48h", 172_800),
            ("10m", 600),
            (" 5M ", 300),
            ("2d", 172_800),
            ("30s", 30),
            ("0", 0),
            ("0s", 0),
            ("3600", 3600),
            ("90D", 7_776_000),
        ] {
            assert_eq!(MaxAge::parse(text).unwrap().as_secs(), secs, "{text}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for text in [
            "",
            " ",
            "1.5h",
            "1w",
            "h",
            "-5",
            "-5s",
            "10 m",
            "1e3",
            "s10",
            "99999999999999999999d",
        ] {
            let e = MaxAge::parse(text).unwrap_err();
            assert!(matches!(e, Error::InvalidMaxAge { .. }), "{text}: {e}");
            assert!(e.to_string().contains("cache_max_age"), "{e}");
        }
    }

    #[test]
    fn serde_reads_int_or_text_and_writes_int() {
        let a: MaxAge = serde_json::from_str("\"12h\"").unwrap();
        let b: MaxAge = serde_json::from_str("43200").unwrap();
        assert_eq!(a, b);
        assert_eq!(serde_json::to_string(&a).unwrap(), "43200");
        assert!(serde_json::from_str::<MaxAge>("\"soon\"").is_err());
        assert!(serde_json::from_str::<MaxAge>("-1").is_err());
    }
}
