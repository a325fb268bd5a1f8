//! Pure: syntax check of a Kubernetes label selector, so a typo fails before any request.
//! The API server still evaluates the selector; this only catches malformed input early.

use anyhow::{Result, bail};

/// Accepts the grammar of `labels.Parse`: comma-separated `key`, `!key`, `key=v`, `key==v`,
/// `key!=v`, `key in (v1,v2)`, `key notin (v1,v2)`.
pub fn check(selector: &str) -> Result<()> {
    for req in split_requirements(selector)? {
        let req = req.trim();
        if req.is_empty() {
            bail!("empty requirement");
        }
        if let Some(key) = req.strip_prefix('!') {
            check_key(key.trim())?;
        } else if let Some((key, values)) = split_set(req, " notin ").or_else(|| split_set(req, " in ")) {
            check_key(key.trim())?;
            let values = values.trim();
            let inner = values
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| anyhow::anyhow!("set values must be in parentheses"))?;
            for v in inner.split(',') {
                check_value(v.trim())?;
            }
        } else if let Some((key, value)) = req
            .split_once("!=")
            .or_else(|| req.split_once("=="))
            .or_else(|| req.split_once('='))
        {
            check_key(key.trim())?;
            check_value(value.trim())?;
        } else {
            check_key(req)?;
        }
    }
    Ok(())
}

fn split_set<'a>(req: &'a str, op: &str) -> Option<(&'a str, &'a str)> {
    req.find(op).map(|i| (&req[..i], &req[i + op.len()..]))
}

fn split_requirements(s: &str) -> Result<Vec<&str>> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            bail!("unbalanced parentheses");
        }
    }
    if depth != 0 {
        bail!("unbalanced parentheses");
    }
    out.push(&s[start..]);
    Ok(out)
}

fn check_key(key: &str) -> Result<()> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() || prefix.len() > 253 || crate::config::check_object_name(prefix).is_err() {
                bail!("invalid key prefix {prefix:?}");
            }
            name
        }
        None => key,
    };
    if name.is_empty() || !qualified(name) {
        bail!("invalid key {key:?}");
    }
    Ok(())
}

fn check_value(v: &str) -> Result<()> {
    if !v.is_empty() && !qualified(v) {
        bail!("invalid value {v:?}");
    }
    Ok(())
}

/// Label names and values: at most 63 of [A-Za-z0-9_.-], alphanumeric at both ends.
fn qualified(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn valid() {
        for s in [
            "env",
            "!env",
            "env=prod",
            "env==prod",
            "env!=prod",
            "env in (a,b)",
            "tier notin (x)",
            "example.com/team=a,env",
            "a=b,c in (d, e),!f",
            "env=",
        ] {
            assert!(check(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn invalid() {
        for s in [
            "env in (a",
            "=x",
            "a=b,",
            "env in a",
            "bad key=x",
            "a=b c",
            "x=-y",
            ",a",
            "a)(",
        ] {
            assert!(check(s).is_err(), "{s}");
        }
    }
}
