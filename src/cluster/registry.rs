//! Stage 2b, registry truth (`PULLSECRET_VERIFY`): before anything is written, log in to every
//! registry of every source as a container runtime would — the Registry HTTP API v2 handshake
//! `docker login` does: `GET /v2/`, then Basic credentials or the Bearer token flow the
//! `WWW-Authenticate` challenge names (done by `oci-client`, with pull scope), ending with an
//! authenticated `GET /v2/` answered 200. Each registry is `ok`, `rejected` (401/403 after the
//! credential was presented), `unreachable` (DNS, connect, timeout, not a registry) or `tls`
//! (certificate problem).
//!
//! [`targets`] and [`endpoint`] are pure; [`check`] does the HTTP. No credential reaches a
//! message or a log line.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use serde::Serialize;
use serde_json::Value;

use crate::core::model::Credential;

/// The most one registry's whole check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Docker Hub's registry API host, for every alias of Docker Hub in an `auths` key.
pub const DOCKER_HUB: &str = "index.docker.io";

/// `PULLSECRET_VERIFY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    Off,
    Warn,
    Strict,
}

/// One registry's verdict, as the summary's `registries` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryCheck {
    /// The `auths` key.
    pub server: String,
    /// The credential's origin (source Secret, variable, file, provider).
    pub source: String,
    /// `ok`, `rejected`, `unreachable` or `tls`.
    pub result: &'static str,
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
        let Ok(doc) = serde_json::from_slice::<Value>(&c.data) else {
            continue;
        };
        let Some(auths) = doc.get("auths").and_then(Value::as_object) else {
            continue;
        };
        for (server, entry) in auths {
            let text = |k: &str| entry.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            let (username, password) = match entry.get("auth").and_then(Value::as_str).filter(|a| !a.is_empty()) {
                Some(auth) => crate::core::kubelet::decode_auth(auth).unwrap_or_default(),
                None => (text("username"), text("password")),
            };
            out.push(Target {
                server: server.clone(),
                source: c.origin.clone(),
                username,
                password,
            });
        }
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
        .filter(|c| c.result == "rejected" || (mode == Verify::Strict && c.result != "ok"))
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

/// HTTP clients for the checks, trusting the system roots plus `ca_file` (PEM), if given, and
/// the results of `explain`'s checks so far: one login per (registry, repository, credential)
/// and one manifest check per (reference, credential), however many Pods ask (kept in memory
/// only; never printed).
pub struct Clients {
    http: reqwest::Client,
    oci: oci_client::Client,
    logins: Memo<Verdict>,
    manifests: Memo<ManifestResult>,
}

type ManifestResult = Result<String, (&'static str, String)>;
type Memo<T> = std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::OnceCell<T>>>>;

fn shared<T>(memo: &Memo<T>, key: String) -> std::sync::Arc<tokio::sync::OnceCell<T>> {
    memo.lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key)
        .or_default()
        .clone()
}

/// [`login_for`], asked once per (registry, repository, credential) and shared.
pub async fn login_shared(clients: &Clients, target: &Target, host: &str, repository: &str) -> Verdict {
    let key = [host, repository, &target.username, &target.password].join("\0");
    let cell = shared(&clients.logins, key);
    cell.get_or_init(|| login_for(clients, target, host, repository))
        .await
        .clone()
}

/// [`manifest`], asked once per (reference, credential) and shared.
pub async fn manifest_shared(clients: &Clients, reference: &Reference, credentials: Option<&Target>) -> ManifestResult {
    let (user, password) = credentials.map_or(("", ""), |t| (t.username.as_str(), t.password.as_str()));
    let key = [reference.whole().as_str(), user, password].join("\0");
    let cell = shared(&clients.manifests, key);
    cell.get_or_init(|| manifest(clients, reference, credentials))
        .await
        .clone()
}

impl Clients {
    pub fn new(ca_file: Option<&str>) -> Result<Clients> {
        let mut http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CHECK_TIMEOUT)
            .user_agent(concat!("pullsecret-reconciler/", env!("CARGO_PKG_VERSION")));
        let mut extra = Vec::new();
        if let Some(path) = ca_file {
            let what = format!("PULLSECRET_REGISTRY_CA_FILE ({path})");
            let pem = std::fs::read(path).with_context(|| format!("{what}: cannot read the file"))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|_| anyhow!("{what}: not a PEM certificate bundle"))?;
            if certs.is_empty() {
                return Err(anyhow!("{what}: no certificate in the file"));
            }
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
            extra.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data: pem,
            });
        }
        let http = http
            .build()
            .map_err(|e| anyhow!("setting up the registry client: {e}"))?;
        let oci = oci_client::Client::new(ClientConfig {
            protocol: ClientProtocol::Https,
            extra_root_certificates: extra,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(CHECK_TIMEOUT),
            ..ClientConfig::default()
        });
        Ok(Clients {
            http,
            oci,
            logins: Default::default(),
            manifests: Default::default(),
        })
    }
}

/// Checks every target concurrently (a slow registry never makes the others wait its timeout);
/// results in target order.
pub async fn check_all(clients: &Clients, targets: &[Target]) -> Vec<RegistryCheck> {
    futures::future::join_all(targets.iter().map(|t| check(clients, t))).await
}

/// One registry login.
pub async fn check(clients: &Clients, target: &Target) -> RegistryCheck {
    let started = Instant::now();
    let (result, status, message) = match endpoint(&target.server) {
        None => (
            "unreachable",
            None,
            "a wildcard key names no single registry to log in to".to_owned(),
        ),
        Some((host, repository)) => login_for(clients, target, &host, &repository).await,
    };
    RegistryCheck {
        server: target.server.clone(),
        source: target.source.clone(),
        result,
        status,
        latency_ms: started.elapsed().as_millis() as u64,
        message,
    }
}

/// (result, HTTP status, message) of one login.
pub type Verdict = (&'static str, Option<u16>, String);

/// A login with pull scope on `repository` at `host` (what `explain` checks for one image).
pub async fn login_for(clients: &Clients, target: &Target, host: &str, repository: &str) -> Verdict {
    match tokio::time::timeout(CHECK_TIMEOUT, login(clients, target, host, repository)).await {
        Ok(v) => v,
        Err(_) => (
            "unreachable",
            None,
            format!("no answer from {host} within {}s", CHECK_TIMEOUT.as_secs()),
        ),
    }
}

/// Whether the manifest for `reference` exists, with `credentials` (or anonymously):
/// `Ok(digest)`, or `Err((result, message))` with result `missing`, `rejected`,
/// `unreachable` or `tls`.
pub async fn manifest(
    clients: &Clients,
    reference: &Reference,
    credentials: Option<&Target>,
) -> Result<String, (&'static str, String)> {
    let auth = match credentials {
        Some(t) => RegistryAuth::Basic(t.username.clone(), t.password.clone()),
        None => RegistryAuth::Anonymous,
    };
    let host = reference.resolve_registry().to_owned();
    let fetch = async {
        // Authenticate for pull first (Bearer registries need the token for the manifest).
        match clients.oci.auth(reference, &auth, RegistryOperation::Pull).await {
            Ok(_) => {}
            Err(oci_client::errors::OciDistributionError::AuthenticationFailure(_)) => {
                return Err((
                    "rejected",
                    format!("the token service of {host} refused the credential"),
                ));
            }
            Err(oci_client::errors::OciDistributionError::RequestError(e)) => {
                let (result, _, message) = classify(&host, &e);
                return Err((result, message));
            }
            Err(_) => {}
        }
        let refused = if credentials.is_some() {
            format!("{host} refused to serve {reference} with this credential")
        } else {
            format!("{host} refused anonymous access to {reference}")
        };
        clients.oci.fetch_manifest_digest(reference, &auth).await.map_err(|e| {
            use oci_client::errors::OciDistributionError as E;
            match e {
                E::ImageManifestNotFoundError(_) => ("missing", format!("{host} has no manifest for {reference}")),
                E::RegistryError { envelope, .. }
                    if envelope.errors.iter().any(|x| {
                        matches!(
                            x.code,
                            oci_client::errors::OciErrorCode::ManifestUnknown
                                | oci_client::errors::OciErrorCode::NameUnknown
                                | oci_client::errors::OciErrorCode::NotFound
                        )
                    }) =>
                {
                    ("missing", format!("{host} has no manifest for {reference}"))
                }
                E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => ("rejected", refused.clone()),
                E::ServerError { code: 401 | 403, .. } => ("rejected", refused.clone()),
                E::ServerError { code: 404, .. } => ("missing", format!("{host} has no manifest for {reference}")),
                E::RequestError(e) => {
                    let (result, _, message) = classify(&host, &e);
                    (result, message)
                }
                other => ("unreachable", format!("{host}: {}", first_line(&other.to_string()))),
            }
        })
    };
    match tokio::time::timeout(CHECK_TIMEOUT, fetch).await {
        Ok(r) => r,
        Err(_) => Err((
            "unreachable",
            format!("no answer from {host} within {}s", CHECK_TIMEOUT.as_secs()),
        )),
    }
}

async fn login(clients: &Clients, target: &Target, host: &str, repository: &str) -> Verdict {
    let reference = Reference::with_tag(host.to_owned(), repository.to_owned(), "latest".to_owned());
    let auth = RegistryAuth::Basic(target.username.clone(), target.password.clone());
    // The challenge and, for Bearer, the token request with pull scope.
    let bearer = match clients.oci.auth(&reference, &auth, RegistryOperation::Pull).await {
        Ok(token) => token,
        Err(oci_client::errors::OciDistributionError::AuthenticationFailure(_)) => {
            return (
                "rejected",
                None,
                format!("the token service of {host} refused the credential"),
            );
        }
        Err(oci_client::errors::OciDistributionError::RequestError(e)) => return classify(host, &e),
        Err(e) => return ("unreachable", None, format!("{host}: {}", first_line(&e.to_string()))),
    };
    // The check docker login ends with: an authenticated GET /v2/.
    let request = clients.http.get(format!("https://{host}/v2/"));
    let request = match &bearer {
        Some(token) => request.bearer_auth(token),
        None => request.basic_auth(&target.username, Some(&target.password)),
    };
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let flow = if bearer.is_some() {
                "Bearer token"
            } else {
                "Basic credentials"
            };
            match status {
                200 => ("ok", Some(status), format!("{host} accepted the {flow}")),
                401 | 403 => (
                    "rejected",
                    Some(status),
                    format!("{host} answered {status} to the {flow}"),
                ),
                _ => (
                    "unreachable",
                    Some(status),
                    format!("{host} answered {status} to GET /v2/: not a registry v2 API?"),
                ),
            }
        }
        Err(e) => classify(host, &e),
    }
}

/// A transport error: `tls` when a certificate (or the handshake) is the problem, else
/// `unreachable`.
fn classify(host: &str, e: &reqwest::Error) -> Verdict {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut chain = Vec::new();
    let mut tls = false;
    while let Some(err) = source {
        if err.downcast_ref::<rustls::Error>().is_some() {
            tls = true;
        }
        let text = err.to_string();
        if text.contains("certificate") || text.contains("InvalidCertificate") || text.contains("tls handshake") {
            tls = true;
        }
        chain.push(text);
        source = err.source();
    }
    let detail = chain.last().cloned().unwrap_or_default();
    if tls {
        (
            "tls",
            None,
            format!("{host}: certificate problem: {}", first_line(&detail)),
        )
    } else if e.is_timeout() {
        ("unreachable", None, format!("{host}: timed out"))
    } else {
        ("unreachable", None, format!("{host}: {}", first_line(&detail)))
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().chars().take(300).collect()
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
        let check = |server: &str, result: &'static str| RegistryCheck {
            server: server.into(),
            source: "secret:ns/regcred".into(),
            result,
            status: None,
            latency_ms: 1,
            message: "m".into(),
        };
        let ok = [check("a.io", "ok")];
        assert_eq!(stop_reason(Verify::Strict, &ok), None);
        let down = [check("a.io", "ok"), check("b.io", "unreachable"), check("c.io", "tls")];
        assert_eq!(stop_reason(Verify::Warn, &down), None);
        let strict = stop_reason(Verify::Strict, &down).unwrap();
        assert!(
            strict.contains("b.io (secret:ns/regcred) is unreachable") && strict.contains("c.io"),
            "{strict}"
        );
        let rejected = stop_reason(Verify::Warn, &[check("a.io", "rejected")]).unwrap();
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
