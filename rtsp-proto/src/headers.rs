//! The typed headers stream control needs: `Transport`, `Range: npt=`, `Scale`, `Session` and
//! `RTP-Info` (RFC 2326 section 12).
//!
//! Why typed and why here: these values decide what the server does (which ports to send to,
//! where to seek, how fast to play), so they are parsed once into types the session state
//! machine can trust, and written back in one canonical form. Parsing is liberal because the
//! clients are: ffmpeg, GStreamer and VLC spell `Range` as `npt=0-`, `npt=0.000-`,
//! `npt=now-` or h:m:s, quote `mode="PLAY"` or not, and offer transports we do not speak next
//! to ones we do. Writing is strict and fixed, because some clients (VLC with `Scale`) only
//! believe what they see echoed in the exact form they expect.
//!
//! Errors: a syntactically broken value is [`Error::BadHeaderValue`] (answer 400); a `Range`
//! we cannot honour, including units other than `npt` (`clock=`, `smpte=`), is
//! [`Error::InvalidRange`] (answer 457 Invalid Range, which tells the client the range is the
//! problem; 501 would suggest the method is). Transports we do not support are not errors:
//! [`parse_transport`] skips them, and an empty list means "answer 461".

use crate::error::{Error, Result, context_str};

/// The lower transport of an RTP/AVP `Transport` alternative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lower {
    /// `RTP/AVP` or `RTP/AVP/UDP`: RTP and RTCP to the client's two UDP ports.
    Udp { client_port: (u16, u16) },
    /// `RTP/AVP/TCP`: `$` frames on the RTSP connection, on these channels when given.
    Tcp { interleaved: Option<(u8, u8)> },
}

/// One `Transport` alternative (RFC 2326 section 12.39) we can serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transport {
    pub lower: Lower,
    /// `unicast`, or absent; only an explicit `multicast` makes this false (RFC 2326 makes
    /// multicast the default, but no VOD client means multicast by leaving the flag out).
    pub unicast: bool,
    pub destination: Option<String>,
    pub source: Option<String>,
    pub server_port: Option<(u16, u16)>,
    pub ssrc: Option<u32>,
    /// `mode`, unquoted (`PLAY`).
    pub mode: Option<String>,
}

impl Transport {
    /// The canonical header value: `RTP/AVP;unicast;client_port=a-b;server_port=c-d;ssrc=0000ABCD`
    /// or `RTP/AVP/TCP;unicast;interleaved=a-b;ssrc=...`, absent fields omitted.
    pub fn to_header_value(&self) -> String {
        let mut s = String::from(match self.lower {
            Lower::Udp { .. } => "RTP/AVP",
            Lower::Tcp { .. } => "RTP/AVP/TCP",
        });
        s.push_str(if self.unicast {
            ";unicast"
        } else {
            ";multicast"
        });
        if let Some(d) = &self.destination {
            s.push_str(&format!(";destination={d}"));
        }
        if let Some(src) = &self.source {
            s.push_str(&format!(";source={src}"));
        }
        match self.lower {
            Lower::Udp {
                client_port: (a, b),
            } => s.push_str(&format!(";client_port={a}-{b}")),
            Lower::Tcp {
                interleaved: Some((a, b)),
            } => s.push_str(&format!(";interleaved={a}-{b}")),
            Lower::Tcp { interleaved: None } => {}
        }
        if let Some((a, b)) = self.server_port {
            s.push_str(&format!(";server_port={a}-{b}"));
        }
        if let Some(ssrc) = self.ssrc {
            s.push_str(&format!(";ssrc={ssrc:08X}"));
        }
        if let Some(mode) = &self.mode {
            s.push_str(&format!(";mode=\"{mode}\""));
        }
        s
    }
}

/// Parses a `Transport` header: the alternatives we can serve, in the client's preference
/// order. Profiles other than `RTP/AVP`, `RTP/AVP/UDP` and `RTP/AVP/TCP` are skipped, as are
/// UDP alternatives without `client_port`; unknown parameters are ignored. An empty list means
/// nothing usable was offered (answer 461). A broken value (empty alternative, bad port
/// number, unterminated quote) is an error.
pub fn parse_transport(value: &str) -> Result<Vec<Transport>> {
    let bad = |reason| Error::BadHeaderValue {
        header: "Transport",
        value: context_str(value),
        reason,
    };
    if value.trim().is_empty() {
        return Err(bad("empty value"));
    }
    let mut out = Vec::new();
    for alternative in split_quoted(value, b',').map_err(bad)? {
        if alternative.trim().is_empty() {
            continue; // a stray comma
        }
        let mut params = split_quoted(alternative, b';').map_err(bad)?.into_iter();
        let spec = params.next().unwrap_or_default().trim();
        if spec.is_empty() {
            return Err(bad("no transport specification before ';'"));
        }
        let tcp =
            if spec.eq_ignore_ascii_case("RTP/AVP") || spec.eq_ignore_ascii_case("RTP/AVP/UDP") {
                false
            } else if spec.eq_ignore_ascii_case("RTP/AVP/TCP") {
                true
            } else {
                continue;
            };
        let mut t = Transport {
            lower: Lower::Tcp { interleaved: None },
            unicast: true,
            destination: None,
            source: None,
            server_port: None,
            ssrc: None,
            mode: None,
        };
        let mut client_port = None;
        let mut interleaved = None;
        for param in params {
            let (name, val) = match param.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (param.trim(), None),
            };
            let lower = name.to_ascii_lowercase();
            match (lower.as_str(), val) {
                ("unicast", None) => t.unicast = true,
                ("multicast", None) => t.unicast = false,
                ("destination", Some(v)) => t.destination = address(v).map_err(bad)?,
                ("source", Some(v)) => t.source = address(v).map_err(bad)?,
                ("client_port", Some(v)) => {
                    client_port = Some(port_pair::<u16>(v).ok_or_else(|| bad("bad client_port"))?)
                }
                ("server_port", Some(v)) => {
                    t.server_port = Some(port_pair::<u16>(v).ok_or_else(|| bad("bad server_port"))?)
                }
                ("interleaved", Some(v)) => {
                    interleaved = Some(port_pair::<u8>(v).ok_or_else(|| bad("bad interleaved"))?)
                }
                ("ssrc", Some(v)) => {
                    let v = unquote(v);
                    if v.is_empty() || v.len() > 8 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(bad("ssrc is not 1 to 8 hex digits"));
                    }
                    t.ssrc = u32::from_str_radix(v, 16).ok();
                }
                ("mode", Some(v)) => {
                    let v = unquote(v);
                    if v.is_empty() || !v.bytes().all(|b| is_tchar(b) || b == b',' || b == b' ') {
                        return Err(bad("mode is not a list of methods"));
                    }
                    t.mode = Some(v.to_owned());
                }
                _ => {}
            }
        }
        if tcp {
            t.lower = Lower::Tcp { interleaved };
        } else {
            let Some(client_port) = client_port else {
                continue;
            };
            t.lower = Lower::Udp { client_port };
        }
        out.push(t);
    }
    Ok(out)
}

/// `a-b`, or `a` alone meaning `a-(a+1)`.
fn port_pair<T>(v: &str) -> Option<(T, T)>
where
    T: std::str::FromStr + TryFrom<u32> + Into<u32> + Copy,
{
    let num = |s: &str| {
        let s = s.trim();
        if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<T>().ok()
    };
    match v.split_once('-') {
        Some((a, b)) => Some((num(a)?, num(b)?)),
        None => {
            let a = num(v)?;
            let b = T::try_from(a.into() + 1).ok()?;
            Some((a, b))
        }
    }
}

/// A `destination` or `source` host: letters, digits and `.:-_[]%` (names, IPv4, IPv6).
/// An empty value is the same as none.
fn address(v: &str) -> std::result::Result<Option<String>, &'static str> {
    let v = unquote(v);
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".:-_[]%".contains(&b))
    {
        return Err("destination or source is not a host address");
    }
    Ok((!v.is_empty()).then(|| v.to_owned()))
}

/// RFC 2616 `token` characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

/// Splits on `sep` outside double quotes; an unterminated quote is an error.
fn split_quoted(s: &str, sep: u8) -> std::result::Result<Vec<&str>, &'static str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        if b == b'"' {
            quoted = !quoted;
        } else if b == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    if quoted {
        return Err("unterminated quoted string");
    }
    parts.push(&s[start..]);
    Ok(parts)
}

/// The start of an npt range: `now` or seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NptTime {
    Now,
    Seconds(f64),
}

/// `Range: npt=start-end` (RFC 2326 section 3.6). `start` is `None` for `npt=-20`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NptRange {
    pub start: Option<NptTime>,
    pub end: Option<f64>,
}

impl NptRange {
    /// `npt=12.345-60.000`, `npt=12.345-`, `npt=now-` or `npt=-60.000`.
    pub fn to_header_value(&self) -> String {
        let start = match self.start {
            None => String::new(),
            Some(NptTime::Now) => "now".to_owned(),
            Some(NptTime::Seconds(s)) => format_npt(s),
        };
        let end = self.end.map(format_npt).unwrap_or_default();
        format!("npt={start}-{end}")
    }
}

/// Seconds with three decimals (`12.345`). Negative, NaN and infinite values, which no valid
/// range holds, are written as `0.000` so that the output is always a valid npt time.
pub fn format_npt(seconds: f64) -> String {
    let seconds = if seconds.is_finite() && seconds > 0.0 {
        seconds
    } else {
        0.0
    };
    format!("{seconds:.3}")
}

/// Parses `Range` in npt units. Accepts `npt=0-`, `npt=0.000-`, `npt=10-20`, `npt=-20`,
/// `npt=now-`, h:m:s forms (`npt=1:02:03.5-`), whitespace around the parts, and ignores a
/// trailing `;time=...` parameter. Everything else, other units included, is
/// [`Error::InvalidRange`] (457).
pub fn parse_range(value: &str) -> Result<NptRange> {
    let bad = |reason| Error::InvalidRange {
        value: context_str(value),
        reason,
    };
    let spec = value.split(';').next().unwrap_or_default();
    let Some((unit, range)) = spec.split_once('=') else {
        return Err(bad("no unit (expected npt=)"));
    };
    if !unit.trim().eq_ignore_ascii_case("npt") {
        return Err(bad("only npt ranges are supported"));
    }
    let Some((start, end)) = range.split_once('-') else {
        return Err(bad("no '-' in the range"));
    };
    let (start, end) = (start.trim(), end.trim());
    if start.is_empty() && end.is_empty() {
        return Err(bad("neither start nor end"));
    }
    let start = if start.is_empty() {
        None
    } else if start.eq_ignore_ascii_case("now") {
        Some(NptTime::Now)
    } else {
        Some(NptTime::Seconds(parse_npt_time(start).map_err(bad)?))
    };
    let end = if end.is_empty() {
        None
    } else {
        Some(parse_npt_time(end).map_err(bad)?)
    };
    if let (Some(NptTime::Seconds(s)), Some(e)) = (start, end)
        && e < s
    {
        return Err(bad("end before start"));
    }
    Ok(NptRange { start, end })
}

/// `npt-sec` (`12`, `12.5`) or `npt-hhmmss` (`1:02:03.5`), never negative, NaN or infinite.
fn parse_npt_time(s: &str) -> std::result::Result<f64, &'static str> {
    let parts: Vec<&str> = s.split(':').collect();
    match parts.as_slice() {
        [secs] => decimal(secs),
        [h, m, secs] => {
            if h.is_empty() || !h.bytes().all(|b| b.is_ascii_digit()) {
                return Err("hours are not a number");
            }
            if m.is_empty() || m.len() > 2 || !m.bytes().all(|b| b.is_ascii_digit()) {
                return Err("minutes are not one or two digits");
            }
            let hours: f64 = h.parse().map_err(|_| "hours are not a number")?;
            let minutes: f64 = m.parse().map_err(|_| "minutes are not a number")?;
            let seconds = decimal(secs)?;
            if minutes >= 60.0 || seconds >= 60.0 {
                return Err("minutes or seconds of 60 or more");
            }
            let whole = secs.split('.').next().unwrap_or_default();
            if whole.is_empty() || whole.len() > 2 {
                return Err("seconds are not one or two digits");
            }
            let total = hours * 3600.0 + minutes * 60.0 + seconds;
            if total.is_finite() {
                Ok(total)
            } else {
                Err("time too large")
            }
        }
        _ => Err("time is neither seconds nor h:m:s"),
    }
}

/// An unsigned decimal: digits, optionally `.` and more digits (`5`, `5.`, `5.25`, `.5`).
fn decimal(s: &str) -> std::result::Result<f64, &'static str> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return Err("time is not a non-negative decimal number");
    }
    let v: f64 = s.parse().map_err(|_| "time is not a number")?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err("time too large")
    }
}

/// Parses `Scale` (RFC 2326 section 12.34): a finite, non-zero decimal (`4`, `-2.0`, `0.5`).
pub fn parse_scale(value: &str) -> Result<f64> {
    let bad = |reason| Error::BadHeaderValue {
        header: "Scale",
        value: context_str(value),
        reason,
    };
    let v = value.trim();
    let unsigned = v.strip_prefix(['-', '+']).unwrap_or(v);
    let scale = decimal(unsigned).map_err(|_| bad("not a decimal number"))?;
    if scale == 0.0 {
        return Err(bad("scale 0"));
    }
    Ok(if v.starts_with('-') { -scale } else { scale })
}

/// The shortest decimal that reads back as `scale`: `4`, `-2`, `0.5`, `1`.
pub fn format_scale(scale: f64) -> String {
    format!("{scale}")
}

/// Longest session id accepted.
pub const MAX_SESSION_ID: usize = 64;

/// Parses `Session` (RFC 2326 section 12.37): `ABC123;timeout=60` → `("ABC123", Some(60))`.
/// The id is 1 to [`MAX_SESSION_ID`] characters out of letters, digits and `$-_.+`.
pub fn parse_session(value: &str) -> Result<(String, Option<u32>)> {
    let bad = |reason| Error::BadHeaderValue {
        header: "Session",
        value: context_str(value),
        reason,
    };
    let mut parts = value.split(';');
    let id = parts.next().unwrap_or_default().trim();
    if id.is_empty() || id.len() > MAX_SESSION_ID {
        return Err(bad("session id is empty or longer than 64 characters"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"$-_.+".contains(&b))
    {
        return Err(bad(
            "session id has characters other than letters, digits and $-_.+",
        ));
    }
    let mut timeout = None;
    for param in parts {
        let Some((name, v)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("timeout") {
            let v = v.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("timeout is not a number"));
            }
            timeout = Some(v.parse().map_err(|_| bad("timeout too large"))?);
        }
    }
    Ok((id.to_owned(), timeout))
}

/// `ABC123;timeout=60`.
pub fn format_session(id: &str, timeout_secs: u32) -> String {
    format!("{id};timeout={timeout_secs}")
}

/// One stream of `RTP-Info` (RFC 2326 section 12.33).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpInfo {
    pub url: String,
    pub seq: Option<u16>,
    pub rtptime: Option<u32>,
}

/// `url=rtsp://h/x/track1;seq=123;rtptime=456`, entries joined with `,`.
pub fn format_rtp_info(entries: &[RtpInfo]) -> String {
    let mut s = String::new();
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str("url=");
        s.push_str(&e.url);
        if let Some(seq) = e.seq {
            s.push_str(&format!(";seq={seq}"));
        }
        if let Some(t) = e.rtptime {
            s.push_str(&format!(";rtptime={t}"));
        }
    }
    s
}

/// Parses `RTP-Info`. URLs may themselves hold `,` and `;` (RFC 2326 notes the ambiguity), so
/// an entry starts only at a `,` followed by `url=`, and a `;` ends the URL only when a known
/// parameter (`seq`, `rtptime`, `ssrc`) follows it; unknown parameters after that are ignored.
pub fn parse_rtp_info(value: &str) -> Result<Vec<RtpInfo>> {
    const KNOWN: [&str; 3] = ["seq", "rtptime", "ssrc"];
    let bad = |reason| Error::BadHeaderValue {
        header: "RTP-Info",
        value: context_str(value),
        reason,
    };
    let mut entries = Vec::new();
    for entry in split_before(value, ',', &["url"]) {
        let mut segments = entry.split(';');
        let first = segments.next().unwrap_or_default();
        let Some((name, url)) = first.split_once('=') else {
            return Err(bad("entry does not start with url="));
        };
        if !name.trim().eq_ignore_ascii_case("url") {
            return Err(bad("entry does not start with url="));
        }
        let mut url = url.to_owned();
        let mut info = RtpInfo {
            url: String::new(),
            seq: None,
            rtptime: None,
        };
        let mut in_params = false;
        for segment in segments {
            let param = segment.split_once('=').map(|(n, v)| (n.trim(), v.trim()));
            let known = param.filter(|(n, _)| KNOWN.iter().any(|k| n.eq_ignore_ascii_case(k)));
            let Some((name, v)) = known else {
                if !in_params {
                    url.push(';');
                    url.push_str(segment);
                }
                continue;
            };
            in_params = true;
            let numeric = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
            if name.eq_ignore_ascii_case("seq") {
                let seq = v.parse().ok().filter(|_| numeric);
                info.seq = Some(seq.ok_or_else(|| bad("bad seq"))?);
            } else if name.eq_ignore_ascii_case("rtptime") {
                let rtptime = v.parse().ok().filter(|_| numeric);
                info.rtptime = Some(rtptime.ok_or_else(|| bad("bad rtptime"))?);
            }
        }
        info.url = url.trim().to_owned();
        if info.url.is_empty() {
            return Err(bad("empty url"));
        }
        entries.push(info);
    }
    Ok(entries)
}

/// Splits `s` at each `sep` that is followed (after optional whitespace) by one of `names`
/// and `=`, compared case-insensitively.
fn split_before<'a>(s: &'a str, sep: char, names: &[&str]) -> Vec<&'a str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, _) in s.match_indices(sep) {
        let next = s[i + 1..].trim_start();
        let starts_param = names.iter().any(|name| {
            next.get(..name.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(name))
                && next[name.len()..].trim_start().starts_with('=')
        });
        if starts_param {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    parts.push(&s[start..]);
    parts
}
