//! Which content an RTSP URL names: `rtsp://HOST[:PORT]/ID`, `…/ID/`, `…/ID/track1` (the
//! stream's control URL from the SDP), with any query string ignored.

/// The stream's control name in the SDP (`a=control:`), relative to `Content-Base`.
pub const TRACK: &str = "track1";

/// The content id an RTSP request URI names: `Err` when the URI is refused outright (a path
/// that tries to leave the store or hide what it names: `..` in any encoding, encoded
/// separators, backslashes, NUL, non-ASCII, not `rtsp://` or `/`-rooted; answer 400),
/// `Ok(None)` when the path names no content (answer 404). The path goes through the same
/// decoding and refusals as HTTP's ([`http_proto::target::normalise_path`]).
pub fn content_id(uri: &str) -> Result<Option<String>, http_proto::Error> {
    Ok(target(uri)?.map(|t| t.id))
}

/// What a request URI names: a content id, and the signed-URL prefix it came with (the
/// `/s/EXPIRY/MAC/ID` form of [`crate::auth::keys`]), if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub id: String,
    pub signed: Option<crate::auth::keys::SignedPrefix>,
}

/// [`content_id`], keeping the signed prefix.
pub fn target(uri: &str) -> Result<Option<Target>, http_proto::Error> {
    let scheme = ["rtsp://", "rtsps://"].iter().find_map(|s| {
        uri.get(..s.len())
            .filter(|p| p.eq_ignore_ascii_case(s))
            .map(|_| &uri[s.len()..])
    });
    let rest = match scheme {
        Some(r) => r.find('/').map_or("/", |i| &r[i..]),
        None => uri,
    };
    let raw = rest.split('?').next().unwrap_or("");
    if raw.contains('#') {
        return Err(http_proto::Error::BadTarget(raw.chars().take(64).collect()));
    }
    let path = http_proto::target::normalise_path(raw)?;
    let (signed, path) = crate::auth::keys::split_signed(&path)
        .map_err(|_| http_proto::Error::BadTarget("malformed signed URL prefix".into()))?;
    let path = path.trim_start_matches('/');
    let path = path.strip_suffix('/').unwrap_or(path);
    let path = path
        .strip_suffix(TRACK)
        .map_or(path, |p| p.strip_suffix('/').unwrap_or(path));
    let id = path.strip_suffix('/').unwrap_or(path);
    Ok(installer::store::check_id(id).ok().map(|_| Target {
        id: id.to_string(),
        signed,
    }))
}

/// The path (and query) of an RTSP request URI: what follows `rtsp://HOST[:PORT]`.
pub fn path_and_query(uri: &str) -> &str {
    let rest = ["rtsp://", "rtsps://"].iter().find_map(|s| {
        uri.get(..s.len())
            .filter(|p| p.eq_ignore_ascii_case(s))
            .map(|_| &uri[s.len()..])
    });
    match rest {
        Some(r) => r.find('/').map_or("/", |i| &r[i..]),
        None => uri,
    }
}

/// The `Content-Base` for a DESCRIBE of `uri`: the URI without query, ending in `/`.
pub fn content_base(uri: &str) -> String {
    let base = uri.split(['?', '#']).next().unwrap_or(uri);
    if base.ends_with('/') {
        base.to_string()
    } else {
        format!("{base}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_urls() {
        for (u, want) in [
            ("rtsp://127.0.0.1:8554/demo", Some("demo")),
            ("rtsp://127.0.0.1:8554/demo/", Some("demo")),
            ("rtsp://h/demo/track1", Some("demo")),
            ("rtsp://h:1/demo/track1/", Some("demo")),
            ("rtsp://h/demo?token=x", Some("demo")),
            ("/demo", Some("demo")),
            ("rtsp://h/", None),
            ("rtsp://h", None),
            ("rtsp://h/d%65mo", Some("demo")),
            ("rtsp://h/a/b", None),
            ("rtsp://h/track1", Some("track1")),
        ] {
            assert_eq!(content_id(u).expect(u).as_deref(), want, "{u}");
        }
        for u in [
            "rtsp://h/../etc",
            "rtsp://h/%2e%2e/demo",
            "rtsp://h/demo%2ftrack1",
            "rtsp://h/..%5cdemo",
            "rtsp://h/%c0%ae%c0%ae/demo",
            "rtsp://h/%252e%252e/demo",
            "rtsp://h/de%00mo",
            "rtsp://h/demo\\x",
            "rtsp://h//etc/passwd",
            "http://h/demo",
            "demo",
            "*",
        ] {
            assert!(content_id(u).is_err(), "{u}");
        }
        let signed = "rtsp://h/s/99/0123456789abcdef0123456789abcdef/demo/track1";
        let t = target(signed).unwrap().unwrap();
        assert_eq!(t.id, "demo");
        assert_eq!(t.signed.map(|s| s.expires), Some(99));
        assert!(target("rtsp://h/s/99/short/demo").is_err());
        assert_eq!(content_base("rtsp://h/demo?x"), "rtsp://h/demo/");
        assert_eq!(path_and_query("rtsp://h:1/s/1/ab/demo?x"), "/s/1/ab/demo?x");
        assert_eq!(path_and_query("RTSP://h"), "/");
        assert_eq!(path_and_query("/demo"), "/demo");
        assert_eq!(content_base("rtsp://h/demo/"), "rtsp://h/demo/");
    }
}
