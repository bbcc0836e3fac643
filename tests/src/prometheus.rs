//! Reading a Prometheus text page (format 0.0.4) the way a scraper would: one sample per line,
//! `name{label="value",…} number`, comments and blank lines skipped. Tests compare samples
//! before and after what they did, so the parser keeps every sample with its labels.

use std::collections::BTreeMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed page.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub samples: Vec<Sample>,
}

fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once('=')
            .ok_or_else(|| format!("label without '=' in {{{s}}}"))?;
        let after = after
            .strip_prefix('"')
            .ok_or_else(|| format!("label value not quoted in {{{s}}}"))?;
        // The value runs to the next unescaped quote.
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => break,
                },
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.ok_or_else(|| format!("unterminated label value in {{{s}}}"))?;
        out.insert(name.trim().to_string(), value);
        rest = after[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Ok(out)
}

/// Parses `text`, or says which line is wrong.
pub fn parse(text: &str) -> Result<Page, String> {
    let mut page = Page::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (head, value) = match line.rfind('}') {
            Some(close) => (&line[..=close], line[close + 1..].trim()),
            None => line
                .split_once(' ')
                .map(|(h, v)| (h, v.trim()))
                .ok_or_else(|| format!("line {}: no value: {line:?}", n + 1))?,
        };
        // A timestamp may follow the value.
        let value = value.split_whitespace().next().unwrap_or_default();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse()
                .map_err(|_| format!("line {}: bad value {v:?}: {line:?}", n + 1))?,
        };
        let (name, labels) = match head.split_once('{') {
            Some((name, labels)) => (
                name.trim(),
                parse_labels(labels.strip_suffix('}').unwrap_or(labels))
                    .map_err(|e| format!("line {}: {e}", n + 1))?,
            ),
            None => (head.trim(), BTreeMap::new()),
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
        {
            return Err(format!("line {}: bad metric name {name:?}", n + 1));
        }
        page.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(page)
}

impl Page {
    /// The samples called `name` whose labels include all of `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
        })
    }

    /// The one sample called `name` with exactly these labels (others allowed), if present.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.matching(name, labels).map(|s| s.value).next()
    }

    /// The sum of every sample called `name` whose labels include `labels` (0 when none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// Whether any sample is called `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_values_and_comments() {
        let p = parse(
            "# HELP x y\n# TYPE x counter\nx{route=\"a\",status=\"200\"} 3\n\
             x{route=\"b\\\"q\",status=\"404\"} 1\ny 2.5\nh_bucket{le=\"+Inf\"} 7\n",
        )
        .unwrap();
        assert_eq!(p.value("x", &[("route", "a")]), Some(3.0));
        assert_eq!(p.value("x", &[("route", "b\"q")]), Some(1.0));
        assert_eq!(p.sum("x", &[]), 4.0);
        assert_eq!(p.value("y", &[]), Some(2.5));
        assert_eq!(p.value("h_bucket", &[("le", "+Inf")]), Some(7.0));
        assert!(parse("x{a=b} 1").is_err());
        assert!(parse("x{a=\"b\"} nope").is_err());
    }
}
