//! Request targets to router paths: decode once, refuse anything ambiguous.
//!
//! Nothing is resolved: a path with `.` or `..` segments (raw or encoded), an encoded `/` or
//! `\`, a raw backslash, an escape that decodes to `%` (double encoding), a byte outside ASCII
//! (overlong UTF-8 such as `%c0%ae` can then never become `.`), NUL or another control byte, or
//! an empty segment (`//`) is refused with a precise [`Error`]. What passes is ASCII made only of
//! RFC 3986 path characters, so the router's string matching sees exactly what the client meant
//! and a later decoding step (there is none) could not change it.

use crate::Error;

/// A normalised request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The decoded path, starting with `/`.
    pub path: String,
    /// The raw query string after `?`, if any (never decoded here).
    pub query: Option<String>,
}

/// Normalise an HTTP request target: origin-form (`/path?query`), or absolute-form
/// (`http://HOST/path`) only when HOST is the request's `Host` header.
pub fn normalise(target: &str, host: Option<&str>) -> Result<Target, Error> {
    if target.contains('#') {
        return Err(Error::BadTarget(clip(target)));
    }
    let rest = match scheme_rest(target) {
        Some(rest) => {
            let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
            let same = host.is_some_and(|h| h.trim().eq_ignore_ascii_case(authority));
            if !same || authority.is_empty() {
                return Err(Error::ForeignHost(clip(authority)));
            }
            path
        }
        None => target,
    };
    let (raw_path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (rest, None),
    };
    Ok(Target {
        path: normalise_path(raw_path)?,
        query,
    })
}

/// `http://` or `https://` (any case) stripped, or `None` for any other form.
fn scheme_rest(target: &str) -> Option<&str> {
    ["http://", "https://"].iter().find_map(|s| {
        target
            .get(..s.len())
            .filter(|p| p.eq_ignore_ascii_case(s))
            .map(|_| &target[s.len()..])
    })
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Characters allowed in a decoded path segment (RFC 3986 `pchar` without `%`).
fn pchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Classify one byte of the decoded path (`escaped`: it came from a `%XX`).
fn check_byte(b: u8, escaped: bool) -> Result<(), Error> {
    match b {
        0 => Err(Error::Nul),
        b'/' | b'\\' if escaped => Err(Error::EncodedSeparator),
        b'\\' => Err(Error::Backslash),
        b'%' => Err(Error::DoubleEncoding),
        0x80.. => Err(Error::NonAscii),
        b if b < 0x20 || b == 0x7f => Err(Error::ControlChar),
        b'/' => Ok(()),
        b if pchar(b) => Ok(()),
        b => Err(Error::BadChar(b as char)),
    }
}

/// Decode and check a path (no query): starts with `/`, no `.`/`..` or empty segments (a
/// trailing `/` is allowed), only path characters after one round of percent-decoding.
pub fn normalise_path(raw: &str) -> Result<String, Error> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(Error::BadTarget(clip(raw)));
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(Error::BadEscape);
            };
            let d = h << 4 | l;
            check_byte(d, true)?;
            out.push(d);
            i += 3;
        } else {
            check_byte(b, false)?;
            out.push(b);
            i += 1;
        }
    }
    // Every byte passed `check_byte`: ASCII only.
    let path = String::from_utf8(out).map_err(|_| Error::NonAscii)?;
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    for (k, s) in segments.iter().enumerate() {
        match *s {
            "." | ".." => return Err(Error::Traversal),
            "" if k != last => return Err(Error::EmptySegment),
            _ => {}
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(t: &str) -> Result<String, Error> {
        normalise(t, Some("example.org:8080")).map(|t| t.path)
    }

    #[test]
    fn accepted() {
        for (t, want) in [
            ("/", "/"),
            ("/content/demo.ts", "/content/demo.ts"),
            ("/content/demo/index.m3u8", "/content/demo/index.m3u8"),
            ("/content/d%65mo.ts", "/content/demo.ts"),
            ("/api/v1/contents/", "/api/v1/contents/"),
            ("/a...b/..c/c..", "/a...b/..c/c.."),
            ("http://example.org:8080/content/x.ts", "/content/x.ts"),
            ("HTTP://EXAMPLE.org:8080", "/"),
        ] {
            assert_eq!(path(t).as_deref(), Ok(want), "{t}");
        }
        let t = normalise("/metrics?x=%2e%2e/..", None).unwrap();
        assert_eq!(t.path, "/metrics");
        assert_eq!(t.query.as_deref(), Some("x=%2e%2e/.."));
    }

    #[test]
    fn refused() {
        use Error::*;
        for (t, want) in [
            ("/content/../etc/passwd", Traversal),
            ("/content/..", Traversal),
            ("/./content/demo.ts", Traversal),
            ("/content/%2e%2e/x", Traversal),
            ("/content/%2E%2e/x", Traversal),
            ("/content/.%2e/x", Traversal),
            ("/content/%2e/x", Traversal),
            ("/content/..%2fstore.json", EncodedSeparator),
            ("/content/%2F", EncodedSeparator),
            ("/content/..%5cx", EncodedSeparator),
            ("/content/..\\x", Backslash),
            ("/content/%c0%ae%c0%ae/x", NonAscii),
            ("/content/%e0%80%ae/x", NonAscii),
            ("/content/%252e%252e/x", DoubleEncoding),
            ("/content/%25", DoubleEncoding),
            ("/content/%2", BadEscape),
            ("/content/%zz", BadEscape),
            ("/content/a%00.ts", Nul),
            ("/content/a%0a.ts", ControlChar),
            ("/content/a%20b.ts", BadChar(' ')),
            ("//etc/passwd", EmptySegment),
            ("/content//demo.ts", EmptySegment),
            (
                "http://evil.example/content/x.ts",
                ForeignHost("evil.example".into()),
            ),
            ("https:///etc/passwd", ForeignHost(String::new())),
            ("*", BadTarget("*".into())),
            ("example.org:443", BadTarget("example.org:443".into())),
            ("file:///etc/passwd", BadTarget("file:///etc/passwd".into())),
            ("/x#frag", BadTarget("/x#frag".into())),
        ] {
            assert_eq!(path(t), Err(want), "{t}");
        }
        assert!(matches!(
            normalise("http://example.org/x", None),
            Err(ForeignHost(_))
        ));
    }

    #[test]
    fn idempotent() {
        for t in ["/content/d%65mo.ts", "/a/b/", "/x:y@z"] {
            let once = normalise_path(t).unwrap();
            assert_eq!(normalise_path(&once).unwrap(), once);
        }
    }
}
