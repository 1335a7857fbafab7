//! The server's secret: derives the default shared token of each native UDF (so a fresh data
//! folder and a restart give the same URLs) and signs download and upload URLs.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::Error;

/// 32 random bytes kept in `server.key`, used through HMAC-SHA256 only.
#[derive(Clone)]
pub struct ServerSecret {
    secret: [u8; 32],
}

impl std::fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerSecret(..)")
    }
}

impl ServerSecret {
    /// A secret from its bytes.
    pub fn new(secret: [u8; 32]) -> Self {
        Self { secret }
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

    fn mac(&self, domain: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).expect("any key length");
        mac.update(domain);
        for p in parts {
            mac.update(&(p.len() as u64).to_le_bytes());
            mac.update(p);
        }
        mac
    }

    /// The default shared token of a native UDF: `fsh_` + 40 hex digits (160 bits) of
    /// HMAC-SHA256(secret, name) — stable across restarts, unguessable without the secret.
    pub fn token_for(&self, udf_name: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).expect("any key length");
        mac.update(b"fused-rs shared token\0");
        mac.update(udf_name.as_bytes());
        format!("fsh_{}", hex::encode(&mac.finalize().into_bytes()[..20]))
    }

    /// A signature (64 hex digits) over `parts`.
    pub fn sign(&self, parts: &[&[u8]]) -> String {
        hex::encode(self.mac(b"fused-rs url\0", parts).finalize().into_bytes())
    }

    /// Checks a signature made by [`sign`](Self::sign), in constant time.
    pub fn verify(&self, parts: &[&[u8]], signature: &str) -> bool {
        match hex::decode(signature) {
            Ok(sig) => self
                .mac(b"fused-rs url\0", parts)
                .verify_slice(&sig)
                .is_ok(),
            Err(_) => false,
        }
    }
}

/// Writes a file readable only by its owner (on Unix), via a temporary name.
pub(crate) fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    // A stale temporary file (or a symlink planted there) is removed, never written through.
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
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
        let a = ServerSecret::from_data_dir(dir.path()).unwrap();
        let b = ServerSecret::from_data_dir(dir.path()).unwrap();
        assert_eq!(a.token_for("hello"), b.token_for("hello"));
        assert_ne!(a.token_for("hello"), a.token_for("hello2"));
        let t = a.token_for("hello");
        assert!(t.starts_with("fsh_") && t.len() == 44, "{t}");
        let other = ServerSecret::new([7; 32]);
        assert_ne!(other.token_for("hello"), t);
        std::fs::write(dir.path().join("server.key"), "garbage").unwrap();
        assert!(ServerSecret::from_data_dir(dir.path()).is_err());
    }

    #[test]
    fn signatures_verify_and_bind_every_part() {
        let s = ServerSecret::new([1; 32]);
        let sig = s.sign(&[b"GET", b"a/b", b"123"]);
        assert!(s.verify(&[b"GET", b"a/b", b"123"], &sig));
        assert!(!s.verify(&[b"GET", b"a/b", b"124"], &sig));
        assert!(
            !s.verify(&[b"GET", b"a/b1", b"23"], &sig),
            "parts are length-framed"
        );
        assert!(!s.verify(&[b"GET", b"a/b", b"123"], "zz"));
        assert!(!ServerSecret::new([2; 32]).verify(&[b"GET", b"a/b", b"123"], &sig));
    }
}
