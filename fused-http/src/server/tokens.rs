//! Shared tokens (`fsh_…`): one per UDF, derived from a server secret so they survive restarts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::Error;

/// Maps shared tokens to UDF names.
///
/// A token is `fsh_` + 40 hex digits (160 bits) of HMAC-SHA256(secret, UDF name): the same UDF
/// gets the same token after a restart, and nobody without the secret can guess one.
#[derive(Debug)]
pub struct SharedTokens {
    secret: [u8; 32],
    by_token: RwLock<HashMap<String, String>>,
}

impl SharedTokens {
    /// Tokens derived from `secret`.
    pub fn new(secret: [u8; 32]) -> Self {
        Self {
            secret,
            by_token: RwLock::default(),
        }
    }

    /// Tokens derived from the secret kept in `dir/server.key` (created, readable by the owner
    /// only, on first use).
    pub fn from_data_dir(dir: &Path) -> Result<Self, Error> {
        let io = |context: String| move |source| Error::Io { context, source };
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let path = dir.join("server.key");
        let secret = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok());
                bytes.ok_or_else(|| Error::Io {
                    context: format!(
                        "{} is not 64 hex digits; delete it to make a new one",
                        path.display()
                    ),
                    source: std::io::Error::from(std::io::ErrorKind::InvalidData),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret: [u8; 32] = rand::random();
                write_private(&path, hex::encode(secret).as_bytes())
                    .map_err(io(format!("writing {}", path.display())))?;
                secret
            }
            Err(e) => {
                return Err(Error::Io {
                    context: format!("reading {}", path.display()),
                    source: e,
                });
            }
        };
        Ok(Self::new(secret))
    }

    /// The token of a UDF name.
    pub fn token_for(&self, udf_name: &str) -> String {
        // HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).expect("any key length");
        mac.update(b"fused-rs shared token\0");
        mac.update(udf_name.as_bytes());
        format!("fsh_{}", hex::encode(&mac.finalize().into_bytes()[..20]))
    }

    /// Shares `udf_name`, returning its token.
    pub fn share(&self, udf_name: &str) -> String {
        let t = self.token_for(udf_name);
        self.by_token
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(t.clone(), udf_name.to_owned());
        t
    }

    /// The UDF name a token runs.
    pub fn lookup(&self, token: &str) -> Option<String> {
        self.by_token
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned()
    }
}

/// Writes a file readable only by its owner (on Unix), via a temporary name.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stable_per_secret_and_distinct_per_udf() {
        let dir = tempfile::tempdir().unwrap();
        let a = SharedTokens::from_data_dir(dir.path()).unwrap();
        let b = SharedTokens::from_data_dir(dir.path()).unwrap();
        assert_eq!(a.token_for("hello"), b.token_for("hello"));
        assert_ne!(a.token_for("hello"), a.token_for("hello2"));
        let t = a.share("hello");
        assert!(t.starts_with("fsh_") && t.len() == 44, "{t}");
        assert_eq!(a.lookup(&t).as_deref(), Some("hello"));
        assert_eq!(a.lookup("fsh_0000"), None);
        let other = SharedTokens::new([7; 32]);
        assert_ne!(other.token_for("hello"), t);
        std::fs::write(dir.path().join("server.key"), "garbage").unwrap();
        assert!(SharedTokens::from_data_dir(dir.path()).is_err());
    }
}
