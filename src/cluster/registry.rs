//! Stage 2b, registry truth (`PULLSECRET_VERIFY`): before anything is written, log in to every
//! registry of every source as a container runtime would — the Registry HTTP API v2 handshake
//! `docker login` does: `GET /v2/`, then Basic credentials or the Bearer token flow the
//! `WWW-Authenticate` challenge names (done by `oci-client`, with pull scope), ending with an
//! authenticated `GET /v2/` answered 200. Each registry is `ok`, `rejected` (401/403 after the
//! credential was presented), `unreachable` (DNS, connect, timeout, not a registry) or `tls`
//! (certificate problem).
//!
//! What is pure (targets, endpoints, the stop rule) is in `core::registry`; here is the HTTP. No credential reaches a
//! message or a log line.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};

pub use crate::core::registry::{DOCKER_HUB, RegistryCheck, Reply, Target, Verify, endpoint, stop_reason, targets};

/// The most one registry's whole check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(15);
/// Short: where egress from the tool's Pod is blocked, `warn` (the default) costs one such
/// timeout per registry and run.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
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

/// A manifest check: `Ok(digest)`, or `Err((result, message))` with result `missing`, `rejected`,
/// `unreachable` or `tls`.
pub type ManifestResult = Result<String, (Reply, String)>;
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
            Reply::Unreachable,
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
pub type Verdict = (Reply, Option<u16>, String);

/// A login with pull scope on `repository` at `host` (what `explain` checks for one image).
pub async fn login_for(clients: &Clients, target: &Target, host: &str, repository: &str) -> Verdict {
    match tokio::time::timeout(CHECK_TIMEOUT, login(clients, target, host, repository)).await {
        Ok(v) => v,
        Err(_) => (
            Reply::Unreachable,
            None,
            format!("no answer from {host} within {}s", CHECK_TIMEOUT.as_secs()),
        ),
    }
}

/// Whether the manifest for `reference` exists, with `credentials` (or anonymously):
/// `Ok(digest)`, or `Err((result, message))` with result `missing`, `rejected`,
/// `unreachable` or `tls`.
pub async fn manifest(clients: &Clients, reference: &Reference, credentials: Option<&Target>) -> ManifestResult {
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
                    Reply::Rejected,
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
                E::ImageManifestNotFoundError(_) => (Reply::Missing, format!("{host} has no manifest for {reference}")),
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
                    (Reply::Missing, format!("{host} has no manifest for {reference}"))
                }
                E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => (Reply::Rejected, refused.clone()),
                E::ServerError { code: 401 | 403, .. } => (Reply::Rejected, refused.clone()),
                E::ServerError { code: 404, .. } => (Reply::Missing, format!("{host} has no manifest for {reference}")),
                E::RequestError(e) => {
                    let (result, _, message) = classify(&host, &e);
                    (result, message)
                }
                other => (
                    Reply::Unreachable,
                    format!("{host}: {}", first_line(&other.to_string())),
                ),
            }
        })
    };
    match tokio::time::timeout(CHECK_TIMEOUT, fetch).await {
        Ok(r) => r,
        Err(_) => Err((
            Reply::Unreachable,
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
                Reply::Rejected,
                None,
                format!("the token service of {host} refused the credential"),
            );
        }
        Err(oci_client::errors::OciDistributionError::RequestError(e)) => return classify(host, &e),
        Err(e) => {
            return (
                Reply::Unreachable,
                None,
                format!("{host}: {}", first_line(&e.to_string())),
            );
        }
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
                200 => (Reply::Ok, Some(status), format!("{host} accepted the {flow}")),
                401 | 403 => (
                    Reply::Rejected,
                    Some(status),
                    format!("{host} answered {status} to the {flow}"),
                ),
                _ => (
                    Reply::Unreachable,
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
            Reply::Tls,
            None,
            format!("{host}: certificate problem: {}", first_line(&detail)),
        )
    } else if e.is_timeout() {
        (Reply::Unreachable, None, format!("{host}: timed out"))
    } else {
        (Reply::Unreachable, None, format!("{host}: {}", first_line(&detail)))
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().chars().take(300).collect()
}
