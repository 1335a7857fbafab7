//! Object keys: the checked, root-relative part of a storage URL.

use fused_core::{Error, Result};

/// Longest key accepted, in bytes.
const MAX_KEY: usize = 1024;
/// Longest path segment accepted, in bytes.
const MAX_SEGMENT: usize = 255;

/// A key below a storage root: segments that cannot leave the root.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Key {
    segments: Vec<String>,
    dir: bool,
}

impl Key {
    /// Checks a key as a client sent it (already URL-decoded once by the query parser).
    ///
    /// Refused: absolute paths, empty / `.` / `..` segments, backslashes, control characters
    /// (NUL included), names of partial uploads (`x#12`), and any remaining percent-escape — so
    /// a traversal cannot hide behind one or more layers of encoding.
    pub fn parse(raw: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidPath {
            path: raw.chars().take(200).collect(),
            reason: reason.to_owned(),
        };
        if raw.len() > MAX_KEY {
            return Err(bad("longer than 1024 bytes"));
        }
        if raw.is_empty() || raw == "/" {
            return Ok(Self {
                segments: Vec::new(),
                dir: true,
            });
        }
        if raw.chars().any(char::is_control) {
            return Err(bad("control characters are not allowed"));
        }
        if raw.contains('\\') {
            return Err(bad("backslashes are not allowed"));
        }
        if raw.starts_with('/') {
            return Err(bad("absolute paths are not allowed"));
        }
        let dir = raw.ends_with('/');
        let body = raw.strip_suffix('/').unwrap_or(raw);
        let mut segments = Vec::new();
        for seg in body.split('/') {
            match seg {
                "" => return Err(bad("empty path segment")),
                "." | ".." => return Err(bad("`.` and `..` segments are not allowed")),
                s if s.len() > MAX_SEGMENT => {
                    return Err(bad("a segment is longer than 255 bytes"));
                }
                s if is_staging_name(s) => {
                    return Err(bad(
                        "names ending in #<digits> are reserved for partial uploads",
                    ));
                }
                s if hides_traversal(s) => {
                    return Err(bad(
                        "percent-escapes are not allowed in a decoded path (was it encoded twice?)",
                    ));
                }
                s => segments.push(s.to_owned()),
            }
        }
        Ok(Self { segments, dir })
    }

    /// Key made of already-checked segments (from a listing).
    pub(crate) fn from_segments(segments: Vec<String>, dir: bool) -> Self {
        Self { segments, dir }
    }

    /// The segments.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// True for the root itself.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// True when the key was written with a trailing `/`.
    pub fn is_dir(&self) -> bool {
        self.dir
    }

    /// The key as text (`a/b/c`, with a trailing `/` for directories other than the root).
    pub fn as_string(&self) -> String {
        let mut s = self.segments.join("/");
        if self.dir && !s.is_empty() {
            s.push('/');
        }
        s
    }
}

/// True for `name#123`: the form of partial uploads in local roots.
fn is_staging_name(seg: &str) -> bool {
    seg.rsplit_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// True when a segment carries a percent-escape of something that could steer a path.
///
/// Keys arrive decoded once (by the query string), so any escape left is a second layer: all of
/// them are refused, overlong UTF-8 forms of `.` (`%c0%ae`) included.
fn hides_traversal(seg: &str) -> bool {
    let b = seg.as_bytes();
    (0..b.len()).any(|i| {
        b[i] == b'%'
            && b.get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_keys() {
        assert!(Key::parse("").unwrap().is_root());
        assert!(Key::parse("/").unwrap().is_root());
        let k = Key::parse("a/b.parquet").unwrap();
        assert_eq!(k.segments(), ["a", "b.parquet"]);
        assert!(!k.is_dir());
        let d = Key::parse("a/b/").unwrap();
        assert!(d.is_dir());
        assert_eq!(d.as_string(), "a/b/");
        assert!(Key::parse("100%/x").is_ok(), "a bare % is a character");
        assert!(Key::parse("a..b/c.d").is_ok(), "dots inside names are fine");
        assert!(Key::parse("résumé/файл.txt").is_ok());
    }

    #[test]
    fn bad_keys() {
        for k in [
            "..",
            "../x",
            "a/../../x",
            "a/./b",
            "/etc/passwd",
            "a//b",
            "a\\..\\b",
            "a/\0b",
            "%2e%2e/x",
            "%c0%ae%c0%ae/x",
            "a%20b",
            "a#1",
            "x/b.parquet#22/c",
            "a/%2E%2E/b",
            "%252e%252e/x",
            "a%2fb",
            "a%5c..",
            "x/%00",
            "a\nb",
        ] {
            assert!(Key::parse(k).is_err(), "{k:?} should be refused");
        }
        assert!(Key::parse(&"a".repeat(300)).is_err());
        assert!(Key::parse(&"a/".repeat(600)).is_err());
    }
}
