//! The kubelet's image-to-credential matching (pure), ported from
//! `k8s.io/kubernetes/pkg/credentialprovider/keyring.go` (v1.34.4): `ParseSchemelessURL`,
//! `SplitURL`, `URLsMatch`, the `BasicDockerKeyring`'s `Add`/`Lookup` and
//! `isDefaultRegistryMatch`; plus the image-name normalisation the kubelet applies before the
//! lookup (`parsers.ParseImageName`, which follows the Docker reference rules). The kubelet uses it both for a credential provider's
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
/// with ranges and `^` negation, `\` escapes. `None` = a malformed pattern (ErrBadPattern; Go
/// checks the whole pattern, also past a mismatch). Time is linear in pattern × name: a table
/// over (pattern element, name position), never backtracking (a tenant's `*a*a*a*a*a*a*a*a*b` key
/// against a 63-character label must not stall a run).
pub fn path_match(pattern: &str, name: &str) -> Option<bool> {
    path_match_counted(pattern, name).map(|(m, _)| m)
}

/// A pattern element.
enum Tok<'a> {
    Star,
    Any,
    /// The pattern after a class's `[` (matched by [`class`]).
    Class(&'a [char]),
    Lit(char),
}

fn tokens(p: &[char]) -> Option<Vec<Tok<'_>>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '*' => out.push(Tok::Star),
            '?' => out.push(Tok::Any),
            '[' => {
                let rest = &p[i + 1..];
                let (_, after) = class(rest, None)?;
                out.push(Tok::Class(rest));
                i += rest.len() - after.len();
            }
            '\\' => {
                out.push(Tok::Lit(*p.get(i + 1)?));
                i += 1;
            }
            c => out.push(Tok::Lit(c)),
        }
        i += 1;
    }
    Some(out)
}

/// The match and the number of table cells computed (for the complexity test).
fn path_match_counted(pattern: &str, name: &str) -> Option<(bool, usize)> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let toks = tokens(&p)?;
    let width = n.len() + 1;
    // row[ni]: does toks[ti..] match n[ni..]; computed from the last element back.
    let mut next: Vec<bool> = (0..width).map(|ni| ni == n.len()).collect();
    let mut cells = 0;
    for tok in toks.iter().rev() {
        let mut row = vec![false; width];
        for ni in (0..width).rev() {
            cells += 1;
            let here = n.get(ni).copied();
            row[ni] = match tok {
                Tok::Star => next[ni] || (here.is_some() && row[ni + 1]),
                Tok::Any => here.is_some() && next[ni + 1],
                Tok::Class(rest) => here.is_some() && class(rest, here).is_some_and(|(m, _)| m) && next[ni + 1],
                Tok::Lit(c) => here == Some(*c) && next[ni + 1],
            };
        }
        next = row;
    }
    Some((next[0], cells))
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

/// An `auths` entry's `auth` field as the kubelet decodes it (`decodeDockerConfigFieldAuth`,
/// `pkg/credentialprovider/config.go`): ending in `=` (after trimming) it must be padded
/// standard base64, else unpadded; Go's decoder skips CR and LF and accepts non-zero trailing
/// bits; the text splits at the first `:`. `None` where the kubelet fails to parse the config.
/// Validation, verify and explain all read credentials through this one function.
pub fn decode_auth(field: &str) -> Option<(String, String)> {
    let decoded = String::from_utf8(decode_auth_bytes(field)?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The base64 step of [`decode_auth`] alone.
pub fn decode_auth_bytes(field: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let config = GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true);
    let padded = field.trim().ends_with('=');
    let engine = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        config.with_decode_padding_mode(if padded {
            DecodePaddingMode::RequireCanonical
        } else {
            DecodePaddingMode::RequireNone
        }),
    );
    let bytes: Vec<u8> = field.bytes().filter(|b| !matches!(b, b'\r' | b'\n')).collect();
    engine.decode(bytes).ok()
}

/// `BasicDockerKeyring.Add`'s key for an `auths` entry: scheme dropped, `/v1/` and `/v2/`
/// equivalent to the bare host, a further path kept. `None` where Go's url.Parse fails.
pub fn keyring_key(location: &str) -> Option<String> {
    let value = location
        .strip_prefix("https://")
        .or_else(|| location.strip_prefix("http://"))
        .unwrap_or(location);
    if value.chars().any(|c| c.is_control() || c == ' ') {
        return None;
    }
    let (host, path) = match value.find('/') {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, ""),
    };
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let effective = if path.starts_with("/v2/") || path.starts_with("/v1/") {
        &path[3..]
    } else {
        path
    };
    Some(if !effective.is_empty() && effective != "/" {
        format!("{host}{effective}")
    } else {
        host.to_owned()
    })
}

/// A docker keyring: `auths` entries indexed as the kubelet indexes them.
#[derive(Debug, Clone, Default)]
pub struct Keyring<T> {
    /// (key, entry) in insertion order; lookups go by the reverse-sorted distinct keys, so more
    /// specific paths come first.
    entries: Vec<(String, T)>,
}

/// The kubelet's Docker Hub key.
/// Docker Hub's registry API host: where every Docker Hub alias (docker.io, an image without a
/// registry) is pulled from.
pub const DEFAULT_REGISTRY_HOST: &str = "index.docker.io";

impl<T: Clone> Keyring<T> {
    pub fn new() -> Keyring<T> {
        Keyring { entries: Vec::new() }
    }

    /// `Add`: one `auths` entry (an unparsable key is ignored, as the kubelet logs and skips it).
    pub fn add(&mut self, location: &str, entry: T) {
        if let Some(key) = keyring_key(location) {
            self.entries.push((key, entry));
        }
    }

    /// `Lookup(image)`: every entry whose key matches, most specific key first; else Docker
    /// Hub's entry for an image that pulls from Docker Hub.
    pub fn lookup(&self, image: &str) -> Vec<T> {
        let mut keys: Vec<&str> = self.entries.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys.reverse();
        let of = |key: &str| -> Vec<T> {
            self.entries
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, e)| e.clone())
                .collect()
        };
        let found: Vec<T> = keys
            .iter()
            .filter(|k| urls_match(k, image))
            .flat_map(|k| of(k))
            .collect();
        if !found.is_empty() {
            return found;
        }
        if is_default_registry_match(image) {
            return of(DEFAULT_REGISTRY_HOST);
        }
        Vec::new()
    }
}

/// `isDefaultRegistryMatch`: does `image` pull from Docker Hub?
pub fn is_default_registry_match(image: &str) -> bool {
    let mut parts = image.splitn(2, '/');
    let first = parts.next().unwrap_or_default();
    if first.is_empty() {
        return false;
    }
    match parts.next() {
        None => true,
        Some(_) if first == "docker.io" || first == "index.docker.io" => true,
        Some(_) => !first.contains(['.', ':']),
    }
}

/// An image reference split the Docker way (what `parsers.ParseImageName` returns as the
/// repository, and its tag or digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    /// The registry host (`docker.io` for Docker Hub).
    pub domain: String,
    /// The repository path (`library/nginx` for `nginx`).
    pub path: String,
    /// The tag; `latest` when neither tag nor digest is given.
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageName {
    /// `domain/path`: what the kubelet looks credentials up with.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }
}

/// Docker reference normalisation: `nginx` -> docker.io/library/nginx:latest. `None` for
/// something that is not an image reference.
pub fn parse_image_name(image: &str) -> Option<ImageName> {
    let image = image.trim();
    if image.is_empty() || image.chars().any(char::is_whitespace) {
        return None;
    }
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d.to_owned())),
        None => (image, None),
    };
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_owned())),
        _ => (rest, None),
    };
    let (domain, path) = match name.split_once('/') {
        Some((first, remainder)) if first.contains(['.', ':']) || first == "localhost" => {
            (first.to_owned(), remainder.to_owned())
        }
        _ => ("docker.io".to_owned(), name.to_owned()),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io".to_owned()
    } else {
        domain
    };
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    // The reference grammar's path is lower-case (the kubelet: InvalidImageName); a domain may
    // have capitals.
    if path.is_empty() || name.is_empty() || tag.as_deref() == Some("") || path.chars().any(|c| c.is_ascii_uppercase())
    {
        return None;
    }
    let tag = match (&tag, &digest) {
        (None, None) => Some("latest".to_owned()),
        _ => tag,
    };
    Some(ImageName {
        domain,
        path,
        tag,
        digest,
    })
}

impl ImageName {
    /// The registry API host (Docker Hub's is index.docker.io).
    pub fn api_host(&self) -> String {
        if self.domain == "docker.io" {
            DEFAULT_REGISTRY_HOST.to_owned()
        } else {
            self.domain.clone()
        }
    }
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

    /// `TestDockerKeyringForGlob`, same file: each key must find `target + "/foo/bar"`.
    const UPSTREAM_KEYRING_FOR_GLOB: &[(&str, &str)] = &[
        ("https://hello.kubernetes.io", "hello.kubernetes.io"),
        ("https://*.docker.io", "prefix.docker.io"),
        ("https://prefix.*.io", "prefix.docker.io"),
        ("https://prefix.docker.*", "prefix.docker.io"),
        ("https://*.docker.io/path", "prefix.docker.io/path"),
        ("https://prefix.*.io/path", "prefix.docker.io/path/subpath"),
        ("https://prefix.docker.*/path", "prefix.docker.io/path"),
        ("https://*.docker.io:8888", "prefix.docker.io:8888"),
        ("https://prefix.*.io:8888", "prefix.docker.io:8888"),
        ("https://prefix.docker.*:8888", "prefix.docker.io:8888"),
        ("https://*.docker.io/path:1111", "prefix.docker.io/path:1111"),
        ("https://*.docker.io/v1/", "prefix.docker.io/path:1111"),
        ("https://*.docker.io/v2/", "prefix.docker.io/path:1111"),
        ("https://prefix.docker.*/path:1111", "prefix.docker.io/path:1111"),
        ("prefix.docker.io:1111", "prefix.docker.io:1111/path"),
        ("*.docker.io:1111", "prefix.docker.io:1111/path"),
    ];

    /// `TestKeyringMiss`, same file: none may find `lookup + "/foo/bar"`.
    const UPSTREAM_KEYRING_MISS: &[(&str, &str)] = &[
        ("https://hello.kubernetes.io", "world.mesos.org/foo/bar"),
        ("https://*.docker.com", "prefix.docker.io"),
        ("https://suffix.*.io", "prefix.docker.io"),
        ("https://prefix.docker.c*", "prefix.docker.io"),
        ("https://prefix.*.io/path:1111", "prefix.docker.io/path/subpath:1111"),
        ("suffix.*.io", "prefix.docker.io"),
    ];

    #[test]
    fn the_kubelets_keyring_tables() {
        for &(key, target) in UPSTREAM_KEYRING_FOR_GLOB {
            let mut k = Keyring::new();
            k.add(key, "foo:bar");
            assert_eq!(
                k.lookup(&format!("{target}/foo/bar")),
                vec!["foo:bar"],
                "ForGlob {key} {target}"
            );
        }
        for &(key, target) in UPSTREAM_KEYRING_MISS {
            let mut k = Keyring::new();
            k.add(key, "foo:bar");
            assert!(k.lookup(&format!("{target}/foo/bar")).is_empty(), "Miss {key} {target}");
        }
        // TestKeyringMissWithDockerHubCredentials, TestKeyringHitWithUnqualifiedDockerHub,
        // TestKeyringHitWithUnqualifiedLibraryDockerHub, TestKeyringHitWithQualifiedDockerHub.
        let mut hub = Keyring::new();
        hub.add("https://index.docker.io/v1/", "hub");
        assert!(hub.lookup("world.mesos.org/foo/bar").is_empty());
        assert_eq!(hub.lookup("google/docker-registry"), vec!["hub"]);
        assert_eq!(hub.lookup("jenkins"), vec!["hub"]);
        assert_eq!(hub.lookup("index.docker.io/v1//google/docker-registry"), vec!["hub"]);
        // TestDockerKeyringLookup: the more specific path first, then the host.
        let mut k = Keyring::new();
        k.add("bar.example.com/pong", "grace");
        k.add("bar.example.com", "ada");
        let cases: &[(&str, &[&str])] = &[
            ("bar.example.com", &["ada"]),
            ("bar.example.com/pong", &["grace", "ada"]),
            ("bar.example.com/ping", &["ada"]),
            ("bar.example.com/pongz", &["grace", "ada"]),
            ("bar.example.com/pong/pang", &["grace", "ada"]),
            ("example.com", &[]),
            ("foo.example.com", &[]),
        ];
        for (image, want) in cases {
            assert_eq!(k.lookup(image), want.to_vec(), "Lookup {image}");
        }
        // TestIssue3797: a key with scheme and /v1/ matches by host.
        let mut quay = Keyring::new();
        quay.add("https://quay.io/v1/", "rex");
        for image in ["quay.io", "quay.io/foo", "quay.io/foo/bar"] {
            assert_eq!(quay.lookup(image), vec!["rex"], "{image}");
        }
    }

    #[test]
    fn the_kubelets_default_registry_table() {
        // TestIsDefaultRegistryMatch, same file.
        let cases = [
            ("foo/bar", true),
            ("docker.io/foo/bar", true),
            ("index.docker.io/foo/bar", true),
            ("foo", true),
            ("", false),
            ("registry.tld/foo/bar", false),
            ("registry:5000/foo/bar", false),
            ("myhostdocker.io/foo/bar", false),
        ];
        for (image, want) in cases {
            assert_eq!(is_default_registry_match(image), want, "{image:?}");
        }
    }

    #[test]
    fn image_names_normalise_like_docker_references() {
        let n = |s: &str| parse_image_name(s).map(|i| (i.repository(), i.tag, i.digest));
        assert_eq!(
            n("registry.acme.test/Team/App:1"),
            None,
            "an upper-case repository is invalid"
        );
        assert!(
            n("Registry.Acme.Test/team/app:1").is_some(),
            "a domain may have capitals"
        );
        assert_eq!(
            n("nginx"),
            Some(("docker.io/library/nginx".into(), Some("latest".into()), None))
        );
        assert_eq!(
            n("acme/app:1.2"),
            Some(("docker.io/acme/app".into(), Some("1.2".into()), None))
        );
        assert_eq!(
            n("index.docker.io/acme/app"),
            Some(("docker.io/acme/app".into(), Some("latest".into()), None))
        );
        assert_eq!(
            n("registry.local:5000/team/app:v1"),
            Some(("registry.local:5000/team/app".into(), Some("v1".into()), None))
        );
        assert_eq!(
            n("localhost/app@sha256:abc"),
            Some(("localhost/app".into(), None, Some("sha256:abc".into())))
        );
        assert_eq!(
            n("ghcr.io/a/b:1@sha256:abc"),
            Some(("ghcr.io/a/b".into(), Some("1".into()), Some("sha256:abc".into())))
        );
        assert_eq!(n(""), None);
        assert_eq!(n("has space"), None);
        // What the kubelet then finds: a docker.io key covers Docker Hub images.
        let mut k = Keyring::new();
        k.add("https://index.docker.io/v1/", "hub");
        assert_eq!(k.lookup(&parse_image_name("nginx").unwrap().repository()), vec!["hub"]);
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
    fn glob_matching_is_linear_in_pattern_times_name() {
        let pattern = "*a".repeat(8) + "b";
        let label = "a".repeat(63);
        let (matched, cells) = path_match_counted(&pattern, &label).unwrap();
        assert!(!matched);
        assert!(cells <= (pattern.len() + 1) * (label.len() + 1), "{cells} cells");
        assert_eq!(path_match(&pattern, &(label.clone() + "b")), Some(true));
        // Malformed anywhere is ErrBadPattern, as Go checks the remainder after a mismatch.
        assert_eq!(path_match("x[", "a"), None);
        assert_eq!(path_match("a\\", "a"), None);
    }

    #[test]
    fn auth_fields_decode_as_the_kubelet_decodes_them() {
        let ok = |user: &str, password: &str| Some((user.to_owned(), password.to_owned()));
        assert_eq!(decode_auth("dTpwYQ=="), ok("u", "pa"), "padded");
        assert_eq!(decode_auth("dTpwYQ"), ok("u", "pa"), "unpadded, as RawStdEncoding");
        assert_eq!(decode_auth("dTpw"), ok("u", "p"), "no padding needed");
        assert_eq!(decode_auth("dTpw\nYQ=="), ok("u", "pa"), "Go skips newlines");
        assert_eq!(decode_auth("dTpwYQ="), None, "wrong padding fails in Go too");
        assert_eq!(decode_auth("dTp=wYQ"), None, "'=' inside unpadded data");
        assert_eq!(decode_auth("dXNlcg"), None, "no ':'");
        assert_eq!(
            decode_auth("OnA="),
            ok("", "p"),
            "an empty user parses (the kubelet sends it)"
        );
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
