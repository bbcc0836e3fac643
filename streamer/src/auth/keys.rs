//! What the server signs with its secret key (HMAC-SHA256), all stateless so that any
//! streamer sharing the key accepts them and nothing needs to be stored or expired:
//!
//! - Digest nonces: `TIME.MAC` (hex). A nonce older than [`NONCE_TTL_SECS`] is *stale*: the
//!   client is challenged again with `stale=true` and retries without asking its user.
//! - Bearer tokens: `USER.EXPIRY.MAC`. The token names a user, not a clearance: the users
//!   file is consulted on every request, so removing a user or lowering a clearance takes
//!   effect at the next reload, not when the token expires.
//! - Signed URLs: a path prefix `/s/EXPIRY/MAC/` in front of a content path, for one content
//!   id. A prefix (rather than query parameters) is what makes them work for HLS: the
//!   playlists' URIs are relative, so every segment and playlist a player resolves from a
//!   signed playlist URL carries the same prefix, with no playlist rewriting.
//!
//! Every input of a MAC starts with a label, so a MAC made for one purpose is never valid for
//! another. MACs are compared in constant time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::path::Path;

type HmacSha256 = Hmac<Sha256>;

/// How long a Digest nonce stays fresh.
pub const NONCE_TTL_SECS: u64 = 300;
/// Bytes of MAC kept in a signed URL (128 bits).
const URL_MAC_BYTES: usize = 16;

/// The server's secret key.
#[derive(Clone)]
pub struct Keys {
    secret: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

/// Why a token or signed URL was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    Malformed,
    Forged,
    Expired,
}

impl Rejected {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejected::Malformed => "malformed",
            Rejected::Forged => "bad signature",
            Rejected::Expired => "expired",
        }
    }
}

/// A signed-URL prefix taken off a request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPrefix {
    pub expires: u64,
    pub mac: String,
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

impl Keys {
    pub fn new(secret: [u8; 32]) -> Keys {
        Keys { secret }
    }

    /// The key in `path`, created (random, mode 0600) when the file does not exist. Servers
    /// that share a store share the file, so each accepts what the others signed.
    pub fn load_or_create(path: &Path) -> std::io::Result<Keys> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::read(path) {
            Ok(b) => {
                let hexed = String::from_utf8_lossy(&b);
                let raw = unhex(hexed.trim())
                    .filter(|v| v.len() == 32)
                    .ok_or_else(|| {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("{}: not 64 hex digits", path.display()),
                        )
                    })?;
                let mut secret = [0u8; 32];
                secret.copy_from_slice(&raw);
                Ok(Keys { secret })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut secret = [0u8; 32];
                rand::fill(&mut secret);
                let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)?;
                f.write_all(format!("{}\n", hex(&secret)).as_bytes())?;
                f.sync_all()?;
                // Two servers starting at once: the first rename wins and both use its key.
                if std::fs::hard_link(&tmp, path).is_err() {
                    let _ = std::fs::remove_file(&tmp);
                    return Keys::load_or_create(path);
                }
                let _ = std::fs::remove_file(&tmp);
                Ok(Keys { secret })
            }
            Err(e) => Err(e),
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut m = HmacSha256::new_from_slice(&self.secret).expect("any key length");
        for p in parts {
            m.update(&(p.len() as u32).to_be_bytes());
            m.update(p);
        }
        m
    }

    fn check(&self, parts: &[&[u8]], mac_hex: &str, len: usize) -> bool {
        let Some(given) = unhex(mac_hex).filter(|g| g.len() == len) else {
            return false;
        };
        self.mac(parts).verify_truncated_left(&given).is_ok()
    }

    fn tag(&self, parts: &[&[u8]], len: usize) -> String {
        hex(&self.mac(parts).finalize().into_bytes()[..len])
    }

    /// A fresh Digest nonce.
    pub fn nonce(&self, now: u64) -> String {
        let t = now.to_string();
        format!("{t}.{}", self.tag(&[b"nonce", t.as_bytes()], 16))
    }

    /// Whether `nonce` is ours, and whether it is still fresh.
    pub fn check_nonce(&self, nonce: &str, now: u64) -> Result<(), Rejected> {
        let (t, mac) = nonce.split_once('.').ok_or(Rejected::Malformed)?;
        let issued: u64 = t.parse().map_err(|_| Rejected::Malformed)?;
        if !self.check(&[b"nonce", t.as_bytes()], mac, 16) {
            return Err(Rejected::Forged);
        }
        if now.saturating_sub(issued) > NONCE_TTL_SECS || issued > now + 60 {
            return Err(Rejected::Expired);
        }
        Ok(())
    }

    /// A bearer token for `user` until `expires` (Unix seconds).
    pub fn token(&self, user: &str, expires: u64) -> String {
        let e = expires.to_string();
        let mac = self.tag(&[b"token", user.as_bytes(), e.as_bytes()], 32);
        format!("{user}.{e}.{mac}")
    }

    /// The user a token names, if it is ours and unexpired.
    pub fn check_token<'a>(&self, token: &'a str, now: u64) -> Result<&'a str, Rejected> {
        let mut it = token.rsplitn(3, '.');
        let (Some(mac), Some(e), Some(user)) = (it.next(), it.next(), it.next()) else {
            return Err(Rejected::Malformed);
        };
        let expires: u64 = e.parse().map_err(|_| Rejected::Malformed)?;
        if !self.check(&[b"token", user.as_bytes(), e.as_bytes()], mac, 32) {
            return Err(Rejected::Forged);
        }
        if expires <= now {
            return Err(Rejected::Expired);
        }
        Ok(user)
    }

    /// The signed-URL prefix (`/s/EXPIRY/MAC`) for content `id`.
    pub fn sign(&self, id: &str, expires: u64) -> String {
        let e = expires.to_string();
        let mac = self.tag(&[b"url", id.as_bytes(), e.as_bytes()], URL_MAC_BYTES);
        format!("/s/{e}/{mac}")
    }

    /// Whether a signed prefix grants content `id` now.
    pub fn check_signed(&self, id: &str, p: &SignedPrefix, now: u64) -> Result<(), Rejected> {
        let e = p.expires.to_string();
        if !self.check(
            &[b"url", id.as_bytes(), e.as_bytes()],
            &p.mac,
            URL_MAC_BYTES,
        ) {
            return Err(Rejected::Forged);
        }
        if p.expires <= now {
            return Err(Rejected::Expired);
        }
        Ok(())
    }
}

/// Split a signed-URL prefix off a (normalised) path: `/s/EXPIRY/MAC/rest` →
/// (`Some(prefix)`, `/rest`). A path that starts with `/s/` but is not a well-formed prefix
/// gives `Err` (refuse it: 403), any other path `Ok((None, path))`.
pub fn split_signed(path: &str) -> Result<(Option<SignedPrefix>, &str), Rejected> {
    let Some(rest) = path.strip_prefix("/s/") else {
        return Ok((None, path));
    };
    let mut it = rest.splitn(3, '/');
    let (Some(e), Some(mac), Some(tail)) = (it.next(), it.next(), it.next()) else {
        return Err(Rejected::Malformed);
    };
    let expires = e.parse().map_err(|_| Rejected::Malformed)?;
    if mac.len() != URL_MAC_BYTES * 2 || !mac.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Rejected::Malformed);
    }
    let tail_at = path.len() - tail.len() - 1;
    Ok((
        Some(SignedPrefix {
            expires,
            mac: mac.to_string(),
        }),
        &path[tail_at..],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_tokens_and_urls() {
        let k = Keys::new([7; 32]);
        let other = Keys::new([8; 32]);
        let n = k.nonce(1000);
        assert_eq!(k.check_nonce(&n, 1000), Ok(()));
        assert_eq!(
            k.check_nonce(&n, 1000 + NONCE_TTL_SECS + 1),
            Err(Rejected::Expired)
        );
        assert_eq!(other.check_nonce(&n, 1000), Err(Rejected::Forged));
        assert_eq!(k.check_nonce("1000.zz", 1000), Err(Rejected::Forged));
        assert_eq!(k.check_nonce("x", 1000), Err(Rejected::Malformed));

        let t = k.token("alice", 2000);
        assert_eq!(k.check_token(&t, 1999), Ok("alice"));
        assert_eq!(k.check_token(&t, 2000), Err(Rejected::Expired));
        assert_eq!(other.check_token(&t, 1000), Err(Rejected::Forged));
        // Changing the user or the expiry breaks the MAC.
        let forged = t.replacen("alice", "bob", 1);
        assert_eq!(k.check_token(&forged, 1000), Err(Rejected::Forged));
        let forged = t.replacen("2000", "9000", 1);
        assert_eq!(k.check_token(&forged, 1000), Err(Rejected::Forged));
        assert_eq!(k.check_token("nodots", 1000), Err(Rejected::Malformed));

        let prefix = k.sign("movie", 5000);
        let path = format!("{prefix}/content/movie/index.m3u8");
        let (p, rest) = split_signed(&path).unwrap();
        let p = p.unwrap();
        assert_eq!(rest, "/content/movie/index.m3u8");
        assert_eq!(k.check_signed("movie", &p, 4999), Ok(()));
        assert_eq!(k.check_signed("movie", &p, 5000), Err(Rejected::Expired));
        assert_eq!(k.check_signed("other", &p, 10), Err(Rejected::Forged));
        // A token's MAC is not a URL's MAC: labels differ.
        assert_ne!(k.tag(&[b"url", b"a"], 16), k.tag(&[b"token", b"a"], 16));
        assert_eq!(
            split_signed("/content/x.ts").unwrap(),
            (None, "/content/x.ts")
        );
        assert!(split_signed("/s/12/abc/content/x.ts").is_err());
        assert!(split_signed("/s/xx/00000000000000000000000000000000/a").is_err());
        assert!(split_signed("/s/12").is_err());
    }

    #[test]
    fn the_key_file_is_created_once_and_reread() {
        let dir = std::env::temp_dir().join(format!("sluice-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("auth.key");
        let a = Keys::load_or_create(&p).unwrap();
        let b = Keys::load_or_create(&p).unwrap();
        assert_eq!(a.secret, b.secret);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&p, "short").unwrap();
        assert!(Keys::load_or_create(&p).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
