//! The users file: who may log in, with what clearance and over which protocols.
//!
//! ```toml
//! [users.alice]
//! password = "$argon2id$v=19$m=19456,t=2,p=1$…"   # argon2 PHC string
//! digest = "5f4dcc3b5aa765d61d8327deb882cf99"       # MD5(alice:REALM:password), for RTSP Digest
//! clearance = 2                                     # serves contents of level 0, 1 and 2
//! rights = ["rtsp", "http"]                         # default: both
//! ```
//!
//! Passwords are stored as argon2id hashes (checked for HTTP/RTSP Basic and for the token
//! endpoint). RTSP Digest cannot work from an argon2 hash: the server must compute
//! `MD5(HA1:nonce:MD5(method:uri))`, so HA1 — `MD5(user:realm:password)`, what Apache's
//! `htdigest` stores — is kept too, for users who play over RTSP. HA1 is bound to the realm
//! but is a password equivalent for it: keep the file private (the server warns when others
//! can read it). `streamer users add FILE NAME` writes both from a password read on stdin.
//!
//! The server re-reads the file when it changes (checked every second); a file that no longer
//! parses is reported and the previous users stay in force.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use md5::{Digest as _, Md5};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Protocols a user may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Right {
    Rtsp,
    Http,
}

fn default_rights() -> Vec<Right> {
    vec![Right::Rtsp, Right::Http]
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// argon2 PHC string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// HA1 for Digest, lowercase hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default)]
    pub clearance: u32,
    #[serde(default = "default_rights")]
    pub rights: Vec<Right>,
}

impl User {
    pub fn may(&self, r: Right) -> bool {
        self.rights.contains(&r)
    }

    /// Whether `password` is this user's (argon2; slow on purpose).
    pub fn password_matches(&self, password: &str) -> bool {
        let Some(phc) = &self.password else {
            return false;
        };
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    #[serde(default)]
    pub users: BTreeMap<String, User>,
}

/// A user name: what tokens and Digest can carry unambiguously.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Users {
    pub fn parse(text: &str) -> Result<Users, String> {
        let u: Users = toml::from_str(text).map_err(|e| e.to_string())?;
        for (name, user) in &u.users {
            if !valid_name(name) {
                return Err(format!(
                    "user name {name:?}: use letters, digits, '_' and '-' (at most 64)"
                ));
            }
            if let Some(p) = &user.password
                && PasswordHash::new(p).is_err()
            {
                return Err(format!("user {name}: password is not an argon2 PHC string"));
            }
            if let Some(d) = &user.digest
                && (d.len() != 32 || !d.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(format!("user {name}: digest is not 32 hex digits"));
            }
            if user.clearance > installer::access::MAX_LEVEL {
                return Err(format!(
                    "user {name}: clearance above {}",
                    installer::access::MAX_LEVEL
                ));
            }
        }
        Ok(u)
    }

    pub fn load(path: &Path) -> Result<Users, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Users::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn get(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }
}

/// `MD5(user:realm:password)`, hex: Digest's HA1.
pub fn ha1(user: &str, realm: &str, password: &str) -> String {
    super::keys::hex(&Md5::digest(
        format!("{user}:{realm}:{password}").as_bytes(),
    ))
}

pub fn md5_hex(s: &str) -> String {
    super::keys::hex(&Md5::digest(s.as_bytes()))
}

/// Add or replace `name` in the users file at `path` (created if missing), atomically.
pub fn add(
    path: &Path,
    name: &str,
    password: &str,
    realm: &str,
    clearance: u32,
    rights: Vec<Right>,
) -> Result<(), String> {
    if !valid_name(name) {
        return Err(format!(
            "user name {name:?}: use letters, digits, '_' and '-' (at most 64)"
        ));
    }
    if password.is_empty() {
        return Err("empty password".into());
    }
    let mut users = match std::fs::read_to_string(path) {
        Ok(t) => Users::parse(&t).map_err(|e| format!("{}: {e}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Users::default(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let phc = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| format!("hashing: {e}"))?
        .to_string();
    users.users.insert(
        name.to_string(),
        User {
            password: Some(phc),
            digest: Some(ha1(name, realm, password)),
            clearance,
            rights,
        },
    );
    let text = toml::to_string_pretty(&users).map_err(|e| e.to_string())?;
    write_private(path, &text).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_then_check_passwords_and_digest() {
        let dir = std::env::temp_dir().join(format!("sluice-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("users.toml");
        add(&p, "alice", "s3cret", "Sluice", 2, default_rights()).unwrap();
        add(&p, "bob", "hunter2", "Sluice", 0, vec![Right::Http]).unwrap();
        let u = Users::load(&p).unwrap();
        let alice = u.get("alice").unwrap();
        assert!(alice.password_matches("s3cret"));
        assert!(!alice.password_matches("s3cret "));
        assert_eq!(alice.clearance, 2);
        // RFC 2617's example: Mufasa / testrealm@host.com / Circle Of Life.
        assert_eq!(
            ha1("Mufasa", "testrealm@host.com", "Circle Of Life"),
            "939e7578ed9e3c518a452acee763bce9"
        );
        assert_eq!(
            alice.digest.as_deref(),
            Some(ha1("alice", "Sluice", "s3cret").as_str())
        );
        let bob = u.get("bob").unwrap();
        assert!(bob.may(Right::Http) && !bob.may(Right::Rtsp));
        assert!(add(&p, "bad name", "x", "R", 0, default_rights()).is_err());
        assert!(Users::parse("[users.x]\nclearance = 1\nrole = 3\n").is_err());
        assert!(Users::parse("[users.x]\npassword = \"plain\"\n").is_err());
        assert!(Users::parse("[users.\"a.b\"]\nclearance = 1\n").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
