//! The `Authorization` header, as HTTP and RTSP clients send it: `Basic` (RFC 7617), `Digest`
//! (RFC 7616, and the RFC 2069 form without `qop` that live555-based clients such as VLC
//! send), and `Bearer` (RFC 6750). Parsing only: checking a password, a digest or a token is
//! the streamer's `auth` module, which knows the users and the keys.
//!
//! Liberal in what it reads (scheme names in any case, spaces around `=` and `,`, quoted or
//! bare parameter values, backslash escapes in quoted strings), strict in what it accepts:
//! every Digest parameter the check needs must be present exactly once, and nothing here
//! allocates more than the header's own length.

use crate::Error;

/// Parsed credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic { user: String, password: String },
    Digest(Digest),
    Bearer(String),
}

/// The parameters of a `Digest` response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digest {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
}

fn bad(why: &str) -> Error {
    Error::BadCredentials(why.to_string())
}

/// Parse an `Authorization` header value.
pub fn parse(value: &str) -> Result<Credentials, Error> {
    let value = value.trim();
    let (scheme, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        basic(rest)
    } else if scheme.eq_ignore_ascii_case("digest") {
        digest(rest).map(Credentials::Digest)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        let ok = !rest.is_empty()
            && rest.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
            } || b == b'=');
        if !ok {
            return Err(bad("bearer token is not a token68"));
        }
        Ok(Credentials::Bearer(rest.to_string()))
    } else {
        Err(bad("unknown authorization scheme"))
    }
}

fn basic(b64: &str) -> Result<Credentials, Error> {
    let raw = decode_base64(b64).ok_or_else(|| bad("basic credentials are not base64"))?;
    let text = String::from_utf8(raw).map_err(|_| bad("basic credentials are not UTF-8"))?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| bad("basic credentials without ':'"))?;
    Ok(Credentials::Basic {
        user: user.to_string(),
        password: password.to_string(),
    })
}

/// The `Authorization` value a client sends for Basic: `Basic base64(user:password)`.
pub fn basic_value(user: &str, password: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{user}:{password}").into_bytes();
    let mut s = String::from("Basic ");
    for c in raw.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            s.push(if k <= c.len() {
                T[(n >> (18 - 6 * k)) as usize & 63] as char
            } else {
                '='
            });
        }
    }
    s
}

/// Standard base64 with padding (what Basic uses). Written here rather than taken from a
/// crate: it is twenty lines, and the exact strictness (padding required, no whitespace)
/// matters more than speed.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let b = s.as_bytes();
    if b.is_empty() || !b.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    for (i, q) in b.chunks(4).enumerate() {
        let last = i == b.len() / 4 - 1;
        let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        // Canonical only (RFC 4648 §3.5): the bits padding drops must be zero.
        if n & ((1u32 << (8 * pad)) - 1) != 0 {
            return None;
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// `name=value` pairs separated by commas; values bare tokens or quoted strings.
fn params(s: &str) -> Result<Vec<(String, String)>, Error> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && matches!(b[*i], b' ' | b'\t') {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        while i < b.len() && b[i] == b',' {
            i += 1;
            skip_ws(&mut i);
        }
        if i >= b.len() {
            return Ok(out);
        }
        let start = i;
        while i < b.len() && !matches!(b[i], b'=' | b',' | b' ' | b'\t') {
            i += 1;
        }
        let name = s[start..i].to_ascii_lowercase();
        if name.is_empty() {
            return Err(bad("digest parameter without a name"));
        }
        skip_ws(&mut i);
        if i >= b.len() || b[i] != b'=' {
            return Err(bad("digest parameter without '='"));
        }
        i += 1;
        skip_ws(&mut i);
        let value = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut v = String::new();
            loop {
                let Some(&c) = b.get(i) else {
                    return Err(bad("unterminated quoted string"));
                };
                i += 1;
                match c {
                    b'"' => break,
                    b'\\' => {
                        let Some(&e) = b.get(i) else {
                            return Err(bad("unterminated quoted string"));
                        };
                        let end = (i + utf8_len(e)).min(b.len());
                        v.push_str(s.get(i..end).ok_or_else(|| bad("bad UTF-8"))?);
                        i = end;
                    }
                    _ => {
                        // Multi-byte UTF-8 is copied through whole.
                        let len = utf8_len(c);
                        let end = (i - 1 + len).min(b.len());
                        v.push_str(s.get(i - 1..end).ok_or_else(|| bad("bad UTF-8"))?);
                        i = end;
                    }
                }
            }
            if v.chars().any(|c| c.is_control() && c != '\t') {
                return Err(bad("control character in a quoted string"));
            }
            v
        } else {
            let start = i;
            while i < b.len() && !matches!(b[i], b',' | b' ' | b'\t') {
                i += 1;
            }
            s[start..i].to_string()
        };
        out.push((name, value));
        skip_ws(&mut i);
        if i < b.len() && b[i] != b',' {
            return Err(bad("digest parameters not separated by ','"));
        }
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xF7 => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

fn digest(s: &str) -> Result<Digest, Error> {
    let mut d = Digest::default();
    let mut seen = [false; 10];
    for (name, value) in params(s)? {
        let (k, slot): (usize, &mut String) = match name.as_str() {
            "username" => (0, &mut d.username),
            "realm" => (1, &mut d.realm),
            "nonce" => (2, &mut d.nonce),
            "uri" => (3, &mut d.uri),
            "response" => (4, &mut d.response),
            "algorithm" => (5, d.algorithm.get_or_insert_default()),
            "qop" => (6, d.qop.get_or_insert_default()),
            "nc" => (7, d.nc.get_or_insert_default()),
            "cnonce" => (8, d.cnonce.get_or_insert_default()),
            "opaque" => (9, d.opaque.get_or_insert_default()),
            _ => continue,
        };
        if std::mem::replace(&mut seen[k], true) {
            return Err(bad("digest parameter given twice"));
        }
        *slot = value;
    }
    if !seen[..5].iter().all(|&x| x) {
        return Err(bad(
            "digest response lacks username, realm, nonce, uri or response",
        ));
    }
    if d.qop.is_some() && (d.nc.is_none() || d.cnonce.is_none()) {
        return Err(bad("digest qop without nc and cnonce"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_and_bearer() {
        assert_eq!(
            parse("Basic YWxpY2U6b3BlbiBzZXNhbWU=").unwrap(),
            Credentials::Basic {
                user: "alice".into(),
                password: "open sesame".into()
            }
        );
        assert_eq!(
            parse("basic Zm9vOg==").unwrap(),
            Credentials::Basic {
                user: "foo".into(),
                password: "".into()
            }
        );
        assert!(parse("Basic Zm9v").is_err()); // no ':' (and bad length)
        assert!(parse("Basic Zm9vOg").is_err()); // padding missing
        assert!(parse("Basic =Zm9vOg=").is_err());
        assert!(parse("Basic Zm9vOh==").is_err()); // non-canonical trailing bits
        assert_eq!(
            basic_value("alice", "open sesame"),
            "Basic YWxpY2U6b3BlbiBzZXNhbWU="
        );
        for (u, p) in [("a", ""), ("ab", "c"), ("", "xyz"), ("é", "ü:")] {
            assert_eq!(
                parse(&basic_value(u, p)).unwrap(),
                Credentials::Basic {
                    user: u.into(),
                    password: p.into()
                }
            );
        }
        assert!(parse("Basic ").is_err());
        assert_eq!(
            parse("Bearer abc.DEF-_~+/=").unwrap(),
            Credentials::Bearer("abc.DEF-_~+/=".into())
        );
        assert!(parse("Bearer a b").is_err());
        assert!(parse("Bearer").is_err());
        assert!(parse("Negotiate abc").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn digest_as_clients_send_it() {
        // ffmpeg / live555 (RFC 2069 form, no qop).
        let d = match parse(
            r#"Digest username="alice", realm="Sluice", nonce="n1", uri="rtsp://127.0.0.1:8554/movie", response="0123abcd""#,
        )
        .unwrap()
        {
            Credentials::Digest(d) => d,
            c => panic!("{c:?}"),
        };
        assert_eq!(d.username, "alice");
        assert_eq!(d.uri, "rtsp://127.0.0.1:8554/movie");
        assert_eq!(d.qop, None);
        // RFC 7616 form with qop, bare tokens, odd spacing and escapes.
        let d = match parse(
            "DIGEST username = \"a\\\"b\" ,realm=\"R\",nonce=n,uri=\"/x\",response=r,qop=auth,nc=00000001,cnonce=\"c\",algorithm=MD5,opaque=\"o\",extra=1",
        )
        .unwrap()
        {
            Credentials::Digest(d) => d,
            c => panic!("{c:?}"),
        };
        assert_eq!(d.username, "a\"b");
        assert_eq!(
            (d.qop.as_deref(), d.nc.as_deref(), d.cnonce.as_deref()),
            (Some("auth"), Some("00000001"), Some("c"))
        );
        for bad in [
            r#"Digest username="a", realm="R", nonce="n", uri="/x""#,
            r#"Digest username="a", username="b", realm="R", nonce="n", uri="/x", response="r""#,
            r#"Digest username="a, realm="R""#,
            r#"Digest username="a" realm="R", nonce="n", uri="/x", response="r""#,
            r#"Digest username="a", realm="R", nonce="n", uri="/x", response="r", qop=auth"#,
            r#"Digest =x"#,
            r#"Digest username"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
