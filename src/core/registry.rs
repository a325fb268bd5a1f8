//! Registry verification's pure half: the (registry, credential) pairs to check, where an `auths`
//! key points, the verdict types, and when verdicts stop a run. The HTTP is `cluster::registry`.

use serde::Serialize;

use crate::core::model::Credential;

/// Docker Hub's registry API host, for every alias of Docker Hub in an `auths` key.
pub use crate::core::kubelet::DEFAULT_REGISTRY_HOST as DOCKER_HUB;

/// `PULLSECRET_VERIFY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    Off,
    Warn,
    Strict,
}

/// What a registry answered: a login (`ok`, `rejected`, `unreachable`, `tls`) or a manifest check
/// (those, or `missing`). Serialized, and shown, by these lower-case names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reply {
    Ok,
    /// 401/403 after the credential was presented.
    Rejected,
    /// DNS, connect, timeout, not a registry.
    Unreachable,
    /// A certificate (or handshake) problem.
    Tls,
    /// The manifest does not exist (manifest checks only).
    Missing,
}

impl Reply {
    pub fn as_str(self) -> &'static str {
        match self {
            Reply::Ok => "ok",
            Reply::Rejected => "rejected",
            Reply::Unreachable => "unreachable",
            Reply::Tls => "tls",
            Reply::Missing => "missing",
        }
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One registry's verdict, as the summary's `registries` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryCheck {
    /// The `auths` key.
    pub server: String,
    /// The credential's origin (source Secret, variable, file, provider).
    pub source: String,
    /// `ok`, `rejected`, `unreachable` or `tls`.
    pub result: Reply,
    /// The last HTTP status seen, if any.
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// One line for people (never a credential).
    pub message: String,
}

/// A registry login to try: never printed with its password.
#[derive(Clone)]
pub struct Target {
    pub server: String,
    pub source: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("server", &self.server)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Every (registry, credential) of every source, in order. Sources were validated before, so
/// every entry has `auth` or `username`+`password`.
pub fn targets(credentials: &[Credential]) -> Vec<Target> {
    let mut out = Vec::new();
    for c in credentials {
        let Ok(entries) = crate::core::dockerconfig::parse(&c.data) else {
            continue;
        };
        out.extend(entries.into_iter().map(|e| Target {
            server: e.server,
            source: c.origin.clone(),
            username: e.username,
            password: e.password,
        }));
    }
    out
}

/// Where an `auths` key points: (host[:port], a repository to ask pull scope for). Schemes and
/// Docker's `/v1/`/`/v2/` suffixes go; a further path is kept as the repository; every Docker Hub
/// alias becomes [`DOCKER_HUB`]. `None` for a wildcard key, which names no single host.
pub fn endpoint(server: &str) -> Option<(String, String)> {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let (host, path) = s.split_once('/').unwrap_or((s, ""));
    if host.is_empty() || host.contains('*') {
        return None;
    }
    let path = path.trim_matches('/');
    let path = match path {
        "v1" | "v2" => "",
        p => p.strip_prefix("v2/").unwrap_or(p),
    };
    let hub = matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com"
    );
    let host = if hub {
        DOCKER_HUB.to_owned()
    } else {
        host.to_ascii_lowercase()
    };
    let repository = match (path.is_empty(), hub) {
        (false, _) => path.to_owned(),
        (true, true) => "library/hello-world".to_owned(),
        (true, false) => "pullsecret-reconciler/verify".to_owned(),
    };
    Some((host, repository))
}

/// Whether the checks stop the run (exit 2, nothing written): any `rejected` always; an
/// `unreachable` or `tls` only under `strict`. The reason names each registry and source.
pub fn stop_reason(mode: Verify, checks: &[RegistryCheck]) -> Option<String> {
    let stopping: Vec<String> = checks
        .iter()
        .filter(|c| c.result == Reply::Rejected || (mode == Verify::Strict && c.result != Reply::Ok))
        .map(|c| format!("registry {} ({}) is {}: {}", c.server, c.source, c.result, c.message))
        .collect();
    if stopping.is_empty() {
        return None;
    }
    let why = if mode == Verify::Strict {
        " (PULLSECRET_VERIFY=strict)"
    } else {
        ""
    };
    Some(format!(
        "registry verification failed{why}, nothing was written: {}",
        stopping.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(json: &str) -> Credential {
        Credential {
            target: "t".into(),
            origin: "secret:ns/regcred".into(),
            source_secret: None,
            data: json.as_bytes().to_vec(),
        }
    }

    #[test]
    fn an_unpadded_auth_logs_in_with_its_user_as_the_kubelet_would() {
        // base64("ci-bot:pw") unpadded: validation accepts it, and so does the kubelet.
        let json = r#"{"auths":{"r.test":{"auth":"Y2ktYm90OnB3"}}}"#;
        let unpadded = r#"{"auths":{"r.test":{"auth":"Y2ktYm90OnB3YQ"}}}"#;
        assert!(crate::sources::validate(unpadded.as_bytes(), "x").is_ok());
        let t = &targets(&[credential(json), credential(unpadded)]);
        assert_eq!((t[0].username.as_str(), t[0].password.as_str()), ("ci-bot", "pw"));
        assert_eq!((t[1].username.as_str(), t[1].password.as_str()), ("ci-bot", "pwa"));
    }

    #[test]
    fn every_auths_entry_is_a_target_with_its_credential() {
        let c = credential(
            r#"{"auths":{"ghcr.io":{"auth":"dXNlcjpwYXNzOndpdGg6Y29sb25z"},"https://index.docker.io/v1/":{"username":"hub","password":"fake"}}}"#,
        );
        let t = targets(&[c]);
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].server.as_str(), t[0].username.as_str(), t[0].password.as_str()),
            ("ghcr.io", "user", "pass:with:colons")
        );
        assert_eq!((t[1].username.as_str(), t[1].password.as_str()), ("hub", "fake"));
        assert_eq!(t[1].source, "secret:ns/regcred");
        assert!(!format!("{t:?}").contains("fake"), "Debug never shows a password");
    }

    #[test]
    fn rejected_always_stops_unreachable_only_under_strict() {
        let check = |server: &str, result: Reply| RegistryCheck {
            server: server.into(),
            source: "secret:ns/regcred".into(),
            result,
            status: None,
            latency_ms: 1,
            message: "m".into(),
        };
        let ok = [check("a.io", Reply::Ok)];
        assert_eq!(stop_reason(Verify::Strict, &ok), None);
        let down = [
            check("a.io", Reply::Ok),
            check("b.io", Reply::Unreachable),
            check("c.io", Reply::Tls),
        ];
        assert_eq!(stop_reason(Verify::Warn, &down), None);
        let strict = stop_reason(Verify::Strict, &down).unwrap();
        assert!(
            strict.contains("b.io (secret:ns/regcred) is unreachable") && strict.contains("c.io"),
            "{strict}"
        );
        let rejected = stop_reason(Verify::Warn, &[check("a.io", Reply::Rejected)]).unwrap();
        assert!(
            rejected.starts_with("registry verification failed, nothing was written: registry a.io"),
            "{rejected}"
        );
    }

    #[test]
    fn auths_keys_become_endpoints() {
        let e = |s: &str| endpoint(s);
        assert_eq!(
            e("https://index.docker.io/v1/"),
            Some((DOCKER_HUB.into(), "library/hello-world".into()))
        );
        assert_eq!(e("docker.io"), Some((DOCKER_HUB.into(), "library/hello-world".into())));
        assert_eq!(
            e("registry-1.docker.io"),
            Some((DOCKER_HUB.into(), "library/hello-world".into()))
        );
        assert_eq!(e("ghcr.io/acme"), Some(("ghcr.io".into(), "acme".into())));
        assert_eq!(
            e("Registry.Local:5000"),
            Some(("registry.local:5000".into(), "pullsecret-reconciler/verify".into()))
        );
        assert_eq!(
            e("https://registry.local:5000/v2/"),
            Some(("registry.local:5000".into(), "pullsecret-reconciler/verify".into()))
        );
        assert_eq!(e("*.dkr.ecr.eu-west-1.amazonaws.com"), None);
    }
}
