//! Pure: name globs (`*` and `?`) for namespace and ServiceAccount selection.

use anyhow::{Result, bail};

/// A Kubernetes object name or a pattern with `*` (any run) and `?` (one character).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob> {
        let ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'*' | b'?');
        if pattern.is_empty() || pattern.len() > 253 || !pattern.bytes().all(ok) {
            bail!("only lower-case letters, digits, '-', '.', '*' and '?' are allowed");
        }
        Ok(Glob(pattern.to_owned()))
    }

    pub fn is_literal(&self) -> bool {
        !self.0.contains(['*', '?'])
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, name: &str) -> bool {
        matches(self.0.as_bytes(), name.as_bytes())
    }
}

pub fn any_matches(globs: &[Glob], name: &str) -> bool {
    globs.iter().any(|g| g.matches(name))
}

/// Iterative wildcard match with single-star backtracking: linear in practice, no recursion.
fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        Glob::new(p).unwrap().matches(t)
    }

    #[test]
    fn wildcards() {
        assert!(m("*", "anything"));
        assert!(m("team-*", "team-a"));
        assert!(!m("team-*", "xteam-a"));
        assert!(m("*-prod", "shop-prod"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("kube-system", "kube-system"));
        assert!(!m("kube-system", "kube-system2"));
    }

    #[test]
    fn rejects_bad_characters() {
        for bad in ["", "A", "a b", "a/b", "[ab]", "x_y"] {
            assert!(Glob::new(bad).is_err(), "{bad}");
        }
        assert!(Glob::new("a").unwrap().is_literal());
        assert!(!Glob::new("a*").unwrap().is_literal());
    }
}
