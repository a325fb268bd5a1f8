//! The kubelet's image-to-credential matching (pure), ported from
//! `k8s.io/kubernetes/pkg/credentialprovider/keyring.go` (v1.34.4): `ParseSchemelessURL`,
//! `SplitURL` and `URLsMatch`. The kubelet uses it both for a credential provider's
//! `matchImages` and for the keys of a docker config's `auths`: host parts are matched one by one
//! with Go's `filepath.Match` globs (so `*.example.com` needs exactly one more label), the port must
//! be equal, and the pattern's path must be a prefix of the image's.

/// A schemeless URL split like Go's `url.Parse("https://" + s)` followed by `SplitURL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    pub host_parts: Vec<String>,
    pub port: String,
    pub path: String,
}

/// `ParseSchemelessURL` + `SplitURL`. `None` where Go's `url.Parse` fails (spaces, control
/// characters, a bad `%` escape, an invalid port).
pub fn parse(schemeless: &str) -> Option<Parts> {
    if schemeless.chars().any(|c| c.is_control() || c == ' ') {
        return None;
    }
    // Fragment and query are not part of host or path.
    let without_fragment = schemeless.split('#').next().unwrap_or_default();
    let without_query = without_fragment.split('?').next().unwrap_or_default();
    let (authority, path) = match without_query.find('/') {
        Some(i) => (&without_query[..i], &without_query[i..]),
        None => (without_query, ""),
    };
    // User info ends at the last '@' of the authority.
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let path = unescape(path)?;
    let (hostname, port) = split_host_port(host);
    if !port.is_empty() && !port.bytes().all(|b| b.is_ascii_digit()) {
        // url.Parse: "invalid port".
        return None;
    }
    Some(Parts {
        host_parts: hostname.split('.').map(str::to_owned).collect(),
        port: port.to_owned(),
        path,
    })
}

/// Go's `net.SplitHostPort`, falling back to (whole host, "") where it fails, as `SplitURL` does.
fn split_host_port(host: &str) -> (&str, &str) {
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((inside, after)) => match after.strip_prefix(':') {
                Some(port) if !port.contains(':') => (inside, port),
                _ => (host, ""),
            },
            None => (host, ""),
        };
    }
    match host.split_once(':') {
        Some((h, port)) if !port.contains(':') => (h, port),
        _ => (host, ""),
    }
}

/// Percent-decoding of a URL path, failing on a bad escape like `url.Parse`.
fn unescape(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `URLsMatchStr(glob, target)`: does the credential (or `matchImages`) pattern `glob` cover the
/// image reference `target`? A pattern that does not parse matches nothing, as in the kubelet.
pub fn urls_match(glob: &str, target: &str) -> bool {
    let (Some(g), Some(t)) = (parse(glob), parse(target)) else {
        return false;
    };
    g.port == t.port
        && g.host_parts.len() == t.host_parts.len()
        && t.path.starts_with(&g.path)
        && g.host_parts
            .iter()
            .zip(&t.host_parts)
            .all(|(p, s)| path_match(p, s).unwrap_or(false))
}

/// Go's `filepath.Match` on one host label (no separators there): `*`, `?`, `[...]` classes
/// with ranges and `^` negation, `\` escapes. `None` = a malformed pattern (ErrBadPattern).
pub fn path_match(pattern: &str, name: &str) -> Option<bool> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> Option<bool> {
    let Some((&first, rest)) = p.split_first() else {
        return Some(n.is_empty());
    };
    match first {
        '*' => {
            // Validate the rest of the pattern even when it is not reached, as Go does.
            for i in 0..=n.len() {
                if match_from(rest, &n[i..])? {
                    return Some(true);
                }
            }
            Some(false)
        }
        '?' => match n.split_first() {
            Some((_, n_rest)) => match_from(rest, n_rest),
            None => Some(false),
        },
        '[' => {
            let (matched, after) = class(rest, n.first().copied())?;
            match (matched, n.split_first()) {
                (true, Some((_, n_rest))) => match_from(after, n_rest),
                _ => Some(false),
            }
        }
        '\\' => {
            let (&c, after) = rest.split_first()?;
            match n.split_first() {
                Some((&x, n_rest)) if x == c => match_from(after, n_rest),
                _ => Some(false),
            }
        }
        c => match n.split_first() {
            Some((&x, n_rest)) if x == c => match_from(rest, n_rest),
            _ => Some(false),
        },
    }
}

/// A `[...]` class after its `[`: (does `c` match, the pattern after `]`). `None` if malformed,
/// following Go's `matchChunk`/`getEsc` (a bare `-` or `]` where a character is due is an error).
fn class(p: &[char], c: Option<char>) -> Option<(bool, &[char])> {
    fn esc(p: &[char], i: &mut usize) -> Option<char> {
        let mut ch = *p.get(*i)?;
        if ch == '-' || ch == ']' {
            return None;
        }
        if ch == '\\' {
            *i += 1;
            ch = *p.get(*i)?;
        }
        *i += 1;
        Some(ch)
    }
    let mut i = 0;
    let negated = p.first() == Some(&'^');
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut ranges = 0;
    loop {
        if p.get(i) == Some(&']') && ranges > 0 {
            i += 1;
            break;
        }
        let lo = esc(p, &mut i)?;
        let mut hi = lo;
        if p.get(i) == Some(&'-') {
            i += 1;
            hi = esc(p, &mut i)?;
        }
        if c.is_some_and(|c| lo <= c && c <= hi) {
            matched = true;
        }
        ranges += 1;
    }
    Some((matched != negated && c.is_some(), &p[i..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kubelet's own table: `TestURLsMatch` in
    /// k8s.io/kubernetes/pkg/credentialprovider/keyring_test.go at v1.34.4, case for case.
    const UPSTREAM_URLS_MATCH: &[(&str, &str, bool)] = &[
        // match when there is no path component
        ("*.kubernetes.io", "prefix.kubernetes.io", true),
        ("prefix.*.io", "prefix.kubernetes.io", true),
        ("prefix.kubernetes.*", "prefix.kubernetes.io", true),
        ("*-good.kubernetes.io", "prefix-good.kubernetes.io", true),
        // match with path components
        ("*.kubernetes.io/blah", "prefix.kubernetes.io/blah", true),
        ("prefix.*.io/foo", "prefix.kubernetes.io/foo/bar", true),
        // match with path components and ports
        ("*.kubernetes.io:1111/blah", "prefix.kubernetes.io:1111/blah", true),
        ("prefix.*.io:1111/foo", "prefix.kubernetes.io:1111/foo/bar", true),
        // no match when number of parts mismatch
        ("*.kubernetes.io", "kubernetes.io", false),
        ("*.*.kubernetes.io", "prefix.kubernetes.io", false),
        ("*.*.kubernetes.io", "kubernetes.io", false),
        ("*kubernetes.io", "a.kubernetes.io", false),
        // match when number of parts match
        ("*kubernetes.io", "kubernetes.io", true),
        ("*.*.*.kubernetes.io", "a.b.c.kubernetes.io", true),
        // no match when some parts mismatch
        ("kubernetes.io", "kubernetes.com", false),
        ("k*.io", "quay.io", false),
        // no match when ports mismatch
        ("*.kubernetes.io:1234/blah", "prefix.kubernetes.io:1111/blah", false),
        ("prefix.*.io/foo", "prefix.kubernetes.io:1111/foo/bar", false),
    ];

    #[test]
    fn the_kubelets_url_matching_table() {
        for &(glob, target, want) in UPSTREAM_URLS_MATCH {
            assert_eq!(urls_match(glob, target), want, "URLsMatchStr({glob:?}, {target:?})");
        }
    }

    #[test]
    fn matching_the_images_credential_providers_see() {
        let ecr = "*.dkr.ecr.*.amazonaws.com";
        assert!(urls_match(ecr, "111122223333.dkr.ecr.eu-west-1.amazonaws.com/app:1.2"));
        assert!(urls_match(
            ecr,
            "111122223333.dkr.ecr.eu-west-1.amazonaws.com/team/app@sha256:abcd"
        ));
        assert!(!urls_match(ecr, "111122223333.dkr.ecr.eu-west-1.amazonaws.com.cn/app"));
        assert!(urls_match("registry.local:5000", "registry.local:5000/app"));
        assert!(!urls_match("registry.local", "registry.local:5000/app"));
        assert!(urls_match("ghcr.io/acme", "ghcr.io/acme/app:1"));
        assert!(!urls_match("ghcr.io/acme", "ghcr.io/other/app:1"));
        // Malformed patterns and references match nothing.
        assert!(!urls_match("[z-a].io", "b.io"));
        assert!(!urls_match("bad host.io", "bad host.io"));
        assert!(!urls_match("r.io:abc", "r.io:abc"));
    }

    #[test]
    fn go_filepath_match_on_labels() {
        assert_eq!(path_match("a?c", "abc"), Some(true));
        assert_eq!(path_match("[a-c]x", "bx"), Some(true));
        assert_eq!(path_match("[^a-c]x", "bx"), Some(false));
        assert_eq!(path_match("[^a-c]x", "dx"), Some(true));
        assert_eq!(path_match("\\*", "*"), Some(true));
        assert_eq!(path_match("\\*", "a"), Some(false));
        assert_eq!(path_match("[", "a"), None);
        assert_eq!(path_match("[]a]", "a"), None);
        assert_eq!(path_match("[a-]", "a"), None);
        assert_eq!(path_match("*", ""), Some(true));
        assert_eq!(path_match("?", ""), Some(false));
    }
}
