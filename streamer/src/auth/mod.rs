//! Access control: every content has a security level (`STORE/access.json`, written by
//! `install-content add --level` and `set-level`); every request gets a clearance from its
//! credentials; a content is served only when the clearance reaches its level. Level 0 is
//! public and needs no credentials at all.
//!
//! Credentials, by protocol:
//! - RTSP: Digest (RFC 2069 and RFC 7616 `qop=auth`, MD5, what ffmpeg, GStreamer and VLC
//!   speak), Basic only when the `basic` setting allows it (it sends the password in clear),
//!   and bearer tokens.
//! - HTTP: bearer tokens (`Authorization: Bearer`, from `POST /api/v1/tokens`), Basic under
//!   the same setting, and signed, expiring URLs (`/s/EXPIRY/MAC/content/…`, from
//!   `GET /api/v1/sign/ID`) that also cover every playlist and segment of an HLS stream, for
//!   players that cannot send headers. RTSP accepts signed URLs the same way.
//!
//! Answers: no or wrong credentials → 401 with challenges (never closing the connection: VLC
//! first tries without credentials, then asks its user); a stale Digest nonce → 401 with
//! `stale=true`; a user below the content's level or without the protocol's right → 403; a
//! forged or expired signed URL → 403. Every refusal is counted in `/metrics`.
//!
//! The users file and the levels are re-read when they change (checked every second by
//! [`Auth::watch`]); a file that no longer parses is reported and the last good one stays in
//! force. A levels file that cannot be read at start stops the server: contents must never
//! be served as public by mistake.

pub mod keys;
pub mod users;

use http_proto::auth::{Credentials, Digest};
use keys::{Keys, Rejected, SignedPrefix};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};
use users::{Right, User, Users};

/// Settings (the `[auth]` table of the configuration).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The users file; none means no one can log in (public contents and signed URLs still
    /// work).
    pub users_file: Option<PathBuf>,
    /// The HMAC key file (64 hex digits); default `STORE/auth.key`, created when missing.
    pub key_file: Option<PathBuf>,
    /// The Digest realm (users' HA1 is computed with it).
    pub realm: String,
    /// Accept Basic credentials on content requests (they carry the password in clear).
    pub basic: bool,
    /// Lifetime of tokens from `POST /api/v1/tokens`, seconds.
    pub token_ttl_secs: u64,
    /// Longest lifetime a signed URL may be asked for, seconds.
    pub max_signed_ttl_secs: u64,
    /// Failed logins from one address within a minute before it is refused for the rest
    /// of that minute (credential guessing).
    pub max_failed_logins: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            users_file: None,
            key_file: None,
            realm: "Sluice".into(),
            basic: false,
            token_ttl_secs: 3600,
            max_signed_ttl_secs: 86_400,
            max_failed_logins: 10,
        }
    }
}

/// Which face a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Rtsp,
    Http,
}

/// What a request is allowed as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Level 0: anyone.
    Public,
    /// A logged-in user with this clearance.
    User { name: String, clearance: u32 },
    /// A valid signed URL for this content.
    Signed,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// 401: log in (again). `stale`: only the Digest nonce expired.
    Unauthenticated { reason: &'static str, stale: bool },
    /// 403: logged in (or signed) but not allowed.
    Forbidden(String),
    /// Too many failed logins from this address lately: refused without checking
    /// (HTTP 429, RTSP 403) for `retry_after` seconds.
    Throttled { retry_after: u64 },
}

impl Denied {
    pub fn status(&self) -> u16 {
        match self {
            Denied::Unauthenticated { .. } => 401,
            Denied::Forbidden(_) => 403,
            Denied::Throttled { .. } => 429,
        }
    }

    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Denied::Unauthenticated { .. } => "unauthenticated",
            Denied::Forbidden(_) => "forbidden",
            Denied::Throttled { .. } => "login_throttled",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Denied::Unauthenticated { reason, .. } => format!("authentication required: {reason}"),
            Denied::Forbidden(m) => m.clone(),
            Denied::Throttled { retry_after } => {
                format!("too many failed logins from this address: retry in {retry_after} s")
            }
        }
    }
}

/// One request to check.
pub struct Access<'a> {
    pub proto: Proto,
    /// The client's address (failed logins are counted per address).
    pub peer: IpAddr,
    pub id: &'a str,
    /// The request method and URI (Digest hashes them; the URI must be the one the
    /// client's Digest response names).
    pub method: &'a str,
    pub uri: &'a str,
    pub authorization: Option<&'a str>,
    pub signed: Option<&'a SignedPrefix>,
}

/// A file re-read when its modification time, size or inode changes.
struct Watched<T> {
    path: PathBuf,
    stamp: Option<(SystemTime, u64, u64)>,
    value: Arc<T>,
}

fn stamp(p: &Path) -> Option<(SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// Basic logins verified recently (argon2 is slow on purpose; a player repeating its
/// credentials on every request must not pay it each time): key → (user, when).
type BasicCache = HashMap<[u8; 32], (String, Instant)>;
const BASIC_CACHE_TTL: Duration = Duration::from_secs(60);
const BASIC_CACHE_MAX: usize = 4096;

pub struct Auth {
    cfg: AuthConfig,
    keys: Keys,
    users: RwLock<Option<Watched<Users>>>,
    levels: RwLock<Watched<installer::access::Levels>>,
    basic_cache: Mutex<BasicCache>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

/// Failed logins from one address within the current window.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

/// Credential guessing: after `max_failed_logins` failed logins within [`FAILURE_WINDOW`] an
/// address is refused without any check until the window ends. A request without credentials
/// is not a failure (VLC and others always try without first).
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most (a flood of addresses must not grow memory without bound).
const MAX_TRACKED: usize = 65_536;

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("cfg", &self.cfg).finish()
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Auth {
    /// Read the key, the users file (if configured) and the store's levels. Any of them
    /// unreadable is an error: the server must not start with access control half loaded.
    pub fn open(store: &Path, cfg: AuthConfig) -> Result<Auth, String> {
        let key_path = cfg
            .key_file
            .clone()
            .unwrap_or_else(|| store.join("auth.key"));
        let keys = Keys::load_or_create(&key_path)
            .map_err(|e| format!("auth key {}: {e}", key_path.display()))?;
        let users = match &cfg.users_file {
            Some(p) => {
                warn_if_readable_by_others(p);
                Some(Watched {
                    path: p.clone(),
                    stamp: stamp(p),
                    value: Arc::new(Users::load(p)?),
                })
            }
            None => None,
        };
        let lpath = installer::access::path(store);
        let levels = Watched {
            stamp: stamp(&lpath),
            value: Arc::new(installer::access::read(store).map_err(|e| e.to_string())?),
            path: lpath,
        };
        Ok(Auth {
            cfg,
            keys,
            users: RwLock::new(users),
            levels: RwLock::new(levels),
            basic_cache: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &AuthConfig {
        &self.cfg
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The security level of content `id`.
    pub fn level(&self, id: &str) -> u32 {
        self.levels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .value
            .level(id)
    }

    fn users(&self) -> Option<Arc<Users>> {
        self.users
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|w| w.value.clone())
    }

    /// Re-read the users file and the levels if they changed.
    pub fn reload(&self) {
        {
            let mut g = self.users.write().unwrap_or_else(|e| e.into_inner());
            if let Some(w) = g.as_mut() {
                let now = stamp(&w.path);
                if now != w.stamp {
                    w.stamp = now;
                    match Users::load(&w.path) {
                        Ok(u) => {
                            tracing::info!(path = %w.path.display(), users = u.users.len(), "users file reloaded");
                            w.value = Arc::new(u);
                            self.basic_cache
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .clear();
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "users file not reloaded: the previous users stay in force")
                        }
                    }
                }
            }
        }
        let mut g = self.levels.write().unwrap_or_else(|e| e.into_inner());
        let now = stamp(&g.path);
        if now != g.stamp {
            g.stamp = now;
            let store = g.path.parent().unwrap_or(Path::new("."));
            match installer::access::read(store) {
                Ok(l) => g.value = Arc::new(l),
                Err(e) => {
                    tracing::error!(error = %e, "security levels not reloaded: the previous levels stay in force")
                }
            }
        }
    }

    /// Reload every second while the server runs.
    pub async fn watch(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.reload()).await;
        }
    }

    /// May this request have this content?
    pub fn authorize(&self, a: &Access<'_>) -> Result<Grant, Denied> {
        let now = now_secs();
        if let Some(p) = a.signed {
            return match self.keys.check_signed(a.id, p, now) {
                Ok(()) => Ok(Grant::Signed),
                Err(r) => Err(Denied::Forbidden(format!("signed URL {}", r.as_str()))),
            };
        }
        let level = self.level(a.id);
        if level == 0 {
            return Ok(Grant::Public);
        }
        let (name, user) = self.counted(a.peer, a.authorization.is_some(), || {
            self.authenticate(a, now)
        })?;
        let right = match a.proto {
            Proto::Rtsp => Right::Rtsp,
            Proto::Http => Right::Http,
        };
        if !user.may(right) {
            return Err(Denied::Forbidden(format!(
                "user {name} may not use {}",
                if right == Right::Rtsp { "RTSP" } else { "HTTP" }
            )));
        }
        if user.clearance < level {
            return Err(Denied::Forbidden(format!(
                "content {} needs clearance {level}; user {name} has {}",
                a.id, user.clearance
            )));
        }
        Ok(Grant::User {
            name,
            clearance: user.clearance,
        })
    }

    /// Run a credential check for `peer`, unless it failed too often lately; count a failure
    /// when credentials were given and refused.
    fn counted<T>(
        &self,
        peer: IpAddr,
        gave_credentials: bool,
        check: impl FnOnce() -> Result<T, Denied>,
    ) -> Result<T, Denied> {
        {
            let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(w) = f.get(&peer).copied() {
                let age = w.since.elapsed();
                if age >= FAILURE_WINDOW {
                    f.remove(&peer);
                } else if w.count >= self.cfg.max_failed_logins.max(1) {
                    return Err(Denied::Throttled {
                        retry_after: (FAILURE_WINDOW - age).as_secs().max(1),
                    });
                }
            }
        }
        let res = check();
        if gave_credentials && matches!(res, Err(Denied::Unauthenticated { stale: false, .. })) {
            let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            if f.len() >= MAX_TRACKED {
                f.retain(|_, w| w.since.elapsed() < FAILURE_WINDOW);
            }
            if f.len() < MAX_TRACKED {
                let w = f.entry(peer).or_insert(Failures {
                    count: 0,
                    since: Instant::now(),
                });
                w.count += 1;
                if w.count >= self.cfg.max_failed_logins.max(1) {
                    tracing::warn!(%peer, failures = w.count, "too many failed logins: address refused for a while");
                }
            }
        }
        res
    }

    /// Who the credentials name, or why they name no one.
    fn authenticate(&self, a: &Access<'_>, now: u64) -> Result<(String, User), Denied> {
        let unauth = |reason| Denied::Unauthenticated {
            reason,
            stale: false,
        };
        let Some(value) = a.authorization else {
            return Err(unauth("no credentials"));
        };
        let creds = http_proto::auth::parse(value).map_err(|_| unauth("malformed credentials"))?;
        let users = self.users().unwrap_or_default();
        let known = |name: &str| users.get(name).cloned();
        match creds {
            Credentials::Bearer(t) => {
                let name = self.keys.check_token(&t, now).map_err(|r| match r {
                    Rejected::Expired => unauth("token expired"),
                    _ => unauth("invalid token"),
                })?;
                let user = known(name).ok_or(unauth("invalid token"))?;
                Ok((name.to_string(), user))
            }
            Credentials::Basic { user, password } => {
                if !self.cfg.basic {
                    return Err(unauth("Basic is not accepted here"));
                }
                let u = self
                    .check_basic(&users, &user, &password)
                    .ok_or(unauth("wrong user or password"))?;
                Ok((user, u))
            }
            Credentials::Digest(d) if a.proto == Proto::Rtsp => {
                let u = self.check_digest(&users, &d, a.method, a.uri, now)?;
                Ok((d.username, u))
            }
            Credentials::Digest(_) => Err(unauth("Digest is for RTSP")),
        }
    }

    /// A Basic login: argon2, with recent successes remembered (keyed by a MAC of the pair,
    /// so the cache never holds a password).
    fn check_basic(&self, users: &Users, name: &str, password: &str) -> Option<User> {
        let user = users.get(name)?.clone();
        let key: [u8; 32] = {
            use sha2::Digest as _;
            let mut h = sha2::Sha256::new();
            h.update(self.keys.token(name, 0).as_bytes());
            h.update(password.as_bytes());
            h.finalize().into()
        };
        {
            let c = self.basic_cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((n, at)) = c.get(&key)
                && n == name
                && at.elapsed() < BASIC_CACHE_TTL
            {
                return Some(user);
            }
        }
        if !user.password_matches(password) {
            return None;
        }
        let mut c = self.basic_cache.lock().unwrap_or_else(|e| e.into_inner());
        if c.len() >= BASIC_CACHE_MAX {
            c.retain(|_, (_, at)| at.elapsed() < BASIC_CACHE_TTL);
            if c.len() >= BASIC_CACHE_MAX {
                c.clear();
            }
        }
        c.insert(key, (name.to_string(), Instant::now()));
        Some(user)
    }

    fn check_digest(
        &self,
        users: &Users,
        d: &Digest,
        method: &str,
        uri: &str,
        now: u64,
    ) -> Result<User, Denied> {
        let unauth = |reason| Denied::Unauthenticated {
            reason,
            stale: false,
        };
        if d.uri != uri {
            return Err(unauth("digest for another URI"));
        }
        if d.realm != self.cfg.realm {
            return Err(unauth("wrong realm"));
        }
        if d.algorithm
            .as_deref()
            .is_some_and(|a| !a.eq_ignore_ascii_case("MD5"))
        {
            return Err(unauth("unsupported digest algorithm"));
        }
        let user = users
            .get(&d.username)
            .ok_or(unauth("wrong user or password"))?;
        let ha1 = user
            .digest
            .as_deref()
            .ok_or(unauth("user has no Digest secret"))?;
        let ha2 = users::md5_hex(&format!("{method}:{}", d.uri));
        let expected = match (&d.qop, &d.nc, &d.cnonce) {
            (Some(q), Some(nc), Some(cn)) if q.eq_ignore_ascii_case("auth") => {
                users::md5_hex(&format!("{ha1}:{}:{nc}:{cn}:{q}:{ha2}", d.nonce))
            }
            (Some(_), ..) => return Err(unauth("unsupported qop")),
            _ => users::md5_hex(&format!("{ha1}:{}:{ha2}", d.nonce)),
        };
        use subtle::ConstantTimeEq;
        let ok: bool = expected
            .as_bytes()
            .ct_eq(d.response.to_ascii_lowercase().as_bytes())
            .into();
        // The nonce is checked after the response, so that a stale nonce with the right
        // password gets `stale=true` (retry silently) and a wrong password never does.
        match self.keys.check_nonce(&d.nonce, now) {
            Ok(()) if ok => Ok(user.clone()),
            Err(Rejected::Expired) if ok => Err(Denied::Unauthenticated {
                reason: "nonce expired",
                stale: true,
            }),
            _ => Err(unauth("wrong user or password")),
        }
    }

    /// `WWW-Authenticate` values for a 401 on `proto`.
    pub fn challenges(&self, proto: Proto, denied: &Denied) -> Vec<String> {
        let realm = &self.cfg.realm;
        let stale = matches!(denied, Denied::Unauthenticated { stale: true, .. });
        let mut v = Vec::new();
        match proto {
            Proto::Rtsp => {
                let nonce = self.keys.nonce(now_secs());
                let stale = if stale { ", stale=TRUE" } else { "" };
                v.push(format!(
                    "Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm=MD5{stale}"
                ));
            }
            Proto::Http => {
                let err = match denied {
                    Denied::Unauthenticated {
                        reason: "token expired" | "invalid token",
                        ..
                    } => ", error=\"invalid_token\"",
                    _ => "",
                };
                v.push(format!("Bearer realm=\"{realm}\"{err}"));
            }
        }
        if self.cfg.basic {
            v.push(format!("Basic realm=\"{realm}\""));
        }
        v
    }

    /// The login of the token and signing endpoints: Basic (always accepted there: it is the
    /// login itself) or a bearer token. The user, or why not.
    pub fn login(
        &self,
        peer: IpAddr,
        authorization: Option<&str>,
    ) -> Result<(String, User), Denied> {
        self.counted(peer, authorization.is_some(), || {
            self.login_check(authorization)
        })
    }

    fn login_check(&self, authorization: Option<&str>) -> Result<(String, User), Denied> {
        let unauth = |reason| Denied::Unauthenticated {
            reason,
            stale: false,
        };
        let value = authorization.ok_or(unauth("no credentials"))?;
        let users = self.users().unwrap_or_default();
        match http_proto::auth::parse(value).map_err(|_| unauth("malformed credentials"))? {
            Credentials::Basic { user, password } => {
                let u = self
                    .check_basic(&users, &user, &password)
                    .ok_or(unauth("wrong user or password"))?;
                Ok((user, u))
            }
            Credentials::Bearer(t) => {
                let name = self
                    .keys
                    .check_token(&t, now_secs())
                    .map_err(|_| unauth("invalid token"))?;
                let u = users.get(name).cloned().ok_or(unauth("invalid token"))?;
                Ok((name.to_string(), u))
            }
            Credentials::Digest(_) => Err(unauth("use Basic or a bearer token")),
        }
    }
}

fn warn_if_readable_by_others(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(p)
        && m.permissions().mode() & 0o044 != 0
    {
        tracing::warn!(path = %p.display(), "the users file is readable by others: its Digest secrets are password equivalents (chmod 600)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth_with_alice() -> (Auth, tempfile_dir::Dir) {
        let dir = tempfile_dir::Dir::new("sluice-auth");
        let users = dir.0.join("users.toml");
        users::add(
            &users,
            "alice",
            "pw",
            "Sluice",
            2,
            vec![Right::Rtsp, Right::Http],
        )
        .unwrap();
        installer::access::set_level(&dir.0, "secret", 2).unwrap();
        let cfg = AuthConfig {
            users_file: Some(users),
            ..AuthConfig::default()
        };
        (Auth::open(&dir.0, cfg).unwrap(), dir)
    }

    mod tempfile_dir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new(prefix: &str) -> Dir {
                let p = std::env::temp_dir().join(format!(
                    "{prefix}-{}-{:?}",
                    std::process::id(),
                    std::thread::current().id()
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn rtsp<'a>(authorization: Option<&'a str>, uri: &'a str) -> Access<'a> {
        Access {
            proto: Proto::Rtsp,
            peer: IpAddr::from([127, 0, 0, 1]),
            id: "secret",
            method: "DESCRIBE",
            uri,
            authorization,
            signed: None,
        }
    }

    #[test]
    fn digest_with_qop_and_stale_nonces() {
        let (auth, _dir) = auth_with_alice();
        let uri = "rtsp://h/secret";
        let ha1 = users::ha1("alice", "Sluice", "pw");
        let ha2 = users::md5_hex(&format!("DESCRIBE:{uri}"));
        let answer = |nonce: &str, password_ha1: &str| {
            let resp = users::md5_hex(&format!("{password_ha1}:{nonce}:00000001:abc:auth:{ha2}"));
            format!(
                "Digest username=\"alice\", realm=\"Sluice\", nonce=\"{nonce}\", uri=\"{uri}\", \
                 response=\"{resp}\", qop=auth, nc=00000001, cnonce=\"abc\""
            )
        };
        let fresh = auth.keys.nonce(now_secs());
        let h = answer(&fresh, &ha1);
        assert!(matches!(
            auth.authorize(&rtsp(Some(&h), uri)),
            Ok(Grant::User { clearance: 2, .. })
        ));
        // The same answer for another URI is refused.
        assert!(
            auth.authorize(&rtsp(Some(&h), "rtsp://h/secret/track1"))
                .is_err()
        );
        // An old nonce with the right password: stale (the client retries silently) ...
        let old = auth.keys.nonce(now_secs() - keys::NONCE_TTL_SECS - 5);
        let h = answer(&old, &ha1);
        assert_eq!(
            auth.authorize(&rtsp(Some(&h), uri)),
            Err(Denied::Unauthenticated {
                reason: "nonce expired",
                stale: true
            })
        );
        let c = auth.challenges(
            Proto::Rtsp,
            &auth.authorize(&rtsp(Some(&h), uri)).unwrap_err(),
        );
        assert!(c[0].contains("stale=TRUE"), "{c:?}");
        // ... with the wrong password, never stale.
        let wrong = users::ha1("alice", "Sluice", "nope");
        let h = answer(&old, &wrong);
        assert!(matches!(
            auth.authorize(&rtsp(Some(&h), uri)),
            Err(Denied::Unauthenticated { stale: false, .. })
        ));
        // Public content needs nothing; HTTP does not take Digest.
        let open = Access {
            id: "open",
            ..rtsp(None, uri)
        };
        assert_eq!(auth.authorize(&open), Ok(Grant::Public));
        let h = answer(&fresh, &ha1);
        let http = Access {
            proto: Proto::Http,
            ..rtsp(Some(&h), uri)
        };
        assert!(auth.authorize(&http).is_err());
    }

    #[test]
    fn guessing_is_throttled_per_address() {
        let (auth, _dir) = auth_with_alice();
        let uri = "rtsp://h/secret";
        let guesser = IpAddr::from([10, 0, 0, 1]);
        let wrong = http_proto::auth::basic_value("alice", "guess");
        let basic_auth = Auth {
            cfg: AuthConfig {
                basic: true,
                ..auth.cfg.clone()
            },
            ..auth
        };
        let try_as = |peer, h: Option<&str>| {
            basic_auth.authorize(&Access {
                peer,
                ..rtsp(h, uri)
            })
        };
        // Requests without credentials are not failures.
        for _ in 0..20 {
            assert!(matches!(
                try_as(guesser, None),
                Err(Denied::Unauthenticated { .. })
            ));
        }
        for _ in 0..basic_auth.cfg.max_failed_logins {
            assert!(matches!(
                try_as(guesser, Some(&wrong)),
                Err(Denied::Unauthenticated { .. })
            ));
        }
        let right = http_proto::auth::basic_value("alice", "pw");
        assert!(matches!(
            try_as(guesser, Some(&right)),
            Err(Denied::Throttled { .. })
        ));
        // Another address is not affected.
        assert!(try_as(IpAddr::from([10, 0, 0, 2]), Some(&right)).is_ok());
    }
}
