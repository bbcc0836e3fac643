//! Which content an RTSP URL names: `rtsp://HOST[:PORT]/ID`, `…/ID/`, `…/ID/track1` (the
//! stream's control URL from the SDP), with any query string ignored.

/// The stream's control name in the SDP (`a=control:`), relative to `Content-Base`.
pub const TRACK: &str = "track1";

/// The content id of an RTSP request URI, or `None` when the path names no content.
pub fn content_id(uri: &str) -> Option<&str> {
    let rest = uri
        .strip_prefix("rtsp://")
        .or_else(|| uri.strip_prefix("RTSP://"))
        .map_or(uri, |r| r.find('/').map_or("", |i| &r[i..]));
    let path = rest.split(['?', '#']).next().unwrap_or("");
    let path = path.trim_start_matches('/');
    let path = path.strip_suffix('/').unwrap_or(path);
    let path = path
        .strip_suffix(TRACK)
        .map_or(path, |p| p.strip_suffix('/').unwrap_or(path));
    let id = path.strip_suffix('/').unwrap_or(path);
    installer::store::check_id(id).ok().map(|_| id)
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
            ("*", None),
            ("rtsp://h/../etc", None),
            ("rtsp://h/a/b", None),
            ("rtsp://h/track1", Some("track1")),
        ] {
            assert_eq!(content_id(u), want, "{u}");
        }
        assert_eq!(content_base("rtsp://h/demo?x"), "rtsp://h/demo/");
        assert_eq!(content_base("rtsp://h/demo/"), "rtsp://h/demo/");
    }
}
