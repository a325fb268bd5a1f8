//! Stage 2, credentials from kubelet credential-provider plugins
//! (`PULLSECRET_CREDENTIAL_PROVIDER_*`): the same `CredentialProviderConfig` file and plugin
//! binaries a node uses, spoken to with the same exec protocol
//! (`credentialprovider.kubelet.k8s.io/v1`). For each image, every provider whose `matchImages`
//! match (the kubelet's rules, [`crate::core::kubelet`]) is executed with a `CredentialProviderRequest` on
//! stdin; every `auth` entry of the answers is merged into one docker config.
//!
//! Parsing, selection, answers and merging are pure; [`load`] does the I/O (exec, and the
//! TokenRequest for providers with `tokenAttributes`, KEP-4412). Any failure fails the whole
//! source: nothing is written anywhere. No credential reaches a message or a log line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

pub mod config;

use crate::core::duration::parse_go_duration;
use crate::core::kubelet;
pub use crate::core::model::Expiry;
pub use config::{EnvVar, Provider, TokenAttributes, parse_config, select};

/// The kubelet's catch-all timeout for one plugin execution.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(60);
/// Requested lifetime of a ServiceAccount token handed to a plugin (the API's minimum).
pub const TOKEN_EXPIRATION_SECONDS: i64 = 600;
/// Most bytes of a plugin's stderr shown in an error.
const STDERR_LIMIT: usize = 1000;

/// The request on the plugin's stdin.
pub fn request(provider: &Provider, image: &str, token: Option<&ServiceAccountToken>) -> Vec<u8> {
    let mut r = json!({
        "apiVersion": provider.api_version,
        "kind": "CredentialProviderRequest",
        "image": image,
    });
    if let Some(t) = token {
        r["serviceAccountToken"] = json!(t.token);
        r["serviceAccountAnnotations"] = json!(t.annotations);
    }
    serde_json::to_vec(&r).unwrap_or_default()
}

/// What the run hands a token-attribute provider (never logged).
#[derive(Clone)]
pub struct ServiceAccountToken {
    pub token: String,
    pub annotations: BTreeMap<String, String>,
}

impl std::fmt::Debug for ServiceAccountToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountToken")
            .field("token", &"<redacted>")
            .field("annotations", &self.annotations)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawResponse {
    api_version: Option<String>,
    kind: Option<String>,
    cache_duration: Option<String>,
    #[serde(default)]
    auth: BTreeMap<String, RawAuth>,
}

#[derive(Deserialize)]
struct RawAuth {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// One plugin answer, validated: registry pattern -> (username, password), and its lifetime.
pub struct Answer {
    pub auth: BTreeMap<String, (String, String)>,
    /// `cacheDuration` of the answer, else the provider's `defaultCacheDuration`; zero = not
    /// cacheable (lifetime unknown).
    pub lifetime: Duration,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("servers", &self.auth.keys().collect::<Vec<_>>())
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// Validates a plugin's stdout for `image`. Errors never quote the answer (it holds credentials).
pub fn parse_answer(provider: &Provider, image: &str, stdout: &[u8]) -> Result<Answer> {
    let at = format!("credential provider {:?} for image {image:?}", provider.name);
    let raw: RawResponse = serde_json::from_slice(stdout).map_err(|e| {
        anyhow!(
            "{at}: the answer is not a valid CredentialProviderResponse (JSON error at line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    if raw.api_version.as_deref() != Some(provider.api_version.as_str()) {
        bail!(
            "{at}: the answer has apiVersion {:?}, the config says {}",
            raw.api_version.unwrap_or_default(),
            provider.api_version
        );
    }
    if raw.kind.as_deref() != Some("CredentialProviderResponse") {
        bail!(
            "{at}: the answer's kind is {:?}, expected CredentialProviderResponse",
            raw.kind.unwrap_or_default()
        );
    }
    let lifetime = match raw.cache_duration.as_deref() {
        Some(d) => parse_go_duration(d).with_context(|| format!("{at}: cacheDuration"))?,
        None => provider.default_cache_duration,
    };
    let auth: BTreeMap<String, (String, String)> = raw
        .auth
        .into_iter()
        .filter(|(_, a)| !a.username.is_empty() || !a.password.is_empty())
        .map(|(k, a)| (k, (a.username, a.password)))
        .collect();
    if auth.is_empty() {
        bail!("{at}: the plugin returned no credential");
    }
    if let Some(bad) = auth.keys().find(|k| kubelet::parse(k).is_none()) {
        bail!("{at}: the answer has an auth key {bad:?} that is not a registry pattern");
    }
    if !auth.keys().any(|k| kubelet::urls_match(k, image)) {
        bail!(
            "{at}: the plugin returned credentials only for {}, none of which covers the image",
            auth.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(Answer { auth, lifetime })
}

/// Merges answers (in image order, then config order) into one docker config JSON. The first
/// answer for an `auths` key wins; later ones for the same key are ignored.
pub fn merge(answers: &[(String, Answer)], now: SystemTime) -> (Vec<u8>, Vec<Expiry>) {
    let mut auths = serde_json::Map::new();
    let mut expiries = Vec::new();
    let epoch = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    for (provider, answer) in answers {
        for (server, (user, password)) in &answer.auth {
            if auths.contains_key(server) {
                continue;
            }
            let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            auths.insert(
                server.clone(),
                json!({ "username": user, "password": password, "auth": auth }),
            );
            expiries.push(Expiry {
                server: server.clone(),
                provider: provider.clone(),
                expires_at: (!answer.lifetime.is_zero())
                    .then(|| epoch.checked_add(answer.lifetime).map_or(u64::MAX, |t| t.as_secs())),
            });
        }
    }
    let config = serde_json::to_vec(&json!({ "auths": auths })).unwrap_or_default();
    (config, expiries)
}

/// A plugin's stderr for an error message: cut short, and with anything credential-looking
/// removed — values after password/token/secret/authorization keys, and long runs of
/// base64/hex-like characters that mix letters and digits (keys, tokens, JWTs).
pub fn redact_stderr(stderr: &[u8], known_secrets: &[&str]) -> String {
    let mut text = String::from_utf8_lossy(stderr).into_owned();
    for s in known_secrets.iter().filter(|s| s.len() >= 4) {
        text = text.replace(*s, "[redacted]");
    }
    let mut out = String::new();
    let mut redact_next = false;
    for piece in text.split_inclusive(|c: char| c.is_whitespace() || "\"',;()[]{}".contains(c)) {
        let (word, sep) = piece.split_at(
            piece
                .trim_end_matches(|c: char| c.is_whitespace() || "\"',;()[]{}".contains(c))
                .len(),
        );
        let lower = word.to_ascii_lowercase();
        let key_value = [
            "password",
            "passwd",
            "token",
            "secret",
            "authorization",
            "auth",
            "bearer",
            "basic",
        ]
        .iter()
        .find_map(|k| {
            lower
                .strip_prefix(k)
                .and_then(|r| r.strip_prefix('=').or_else(|| r.strip_prefix(':')))
                .map(|v| (k.len() + 1, v.is_empty()))
        });
        if redact_next && !word.is_empty() {
            out.push_str("[redacted]");
            redact_next = false;
        } else if let Some((key_len, value_empty)) = key_value {
            out.push_str(&word[..key_len]);
            if value_empty {
                redact_next = true;
            } else {
                out.push_str("[redacted]");
            }
        } else if ["bearer", "basic"].contains(&lower.as_str()) {
            out.push_str(word);
            redact_next = true;
        } else if looks_secret(word) {
            out.push_str("[redacted]");
        } else {
            out.push_str(word);
        }
        out.push_str(sep);
    }
    let out = out.trim();
    if out.len() > STDERR_LIMIT {
        let mut cut = STDERR_LIMIT;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &out[..cut])
    } else {
        out.to_owned()
    }
}

fn looks_secret(word: &str) -> bool {
    // Host names (registries in messages) stay: dotted labels ending in an alphabetic one.
    let host_like = word.contains('.')
        && word
            .rsplit('.')
            .next()
            .is_some_and(|tld| !tld.is_empty() && tld.chars().all(|c| c.is_ascii_alphabetic()));
    !host_like
        && word.len() >= 20
        && word.chars().all(|c| c.is_ascii_alphanumeric() || "+/=_-.".contains(c))
        && word.chars().any(|c| c.is_ascii_digit())
        && word.chars().any(|c| c.is_ascii_alphabetic())
}

/// Runs one plugin for one image: the config's args and env on top of this process's
/// environment, the request on stdin, at most `timeout`. `secrets` (the ServiceAccount token
/// the request carries) never appear in an error, whatever the plugin echoes on stderr.
pub async fn exec(
    provider: &Provider,
    bin_dir: &Path,
    image: &str,
    request: Vec<u8>,
    timeout: Duration,
    secrets: &[&str],
) -> Result<Vec<u8>> {
    use tokio::io::AsyncWriteExt as _;
    let at = format!("credential provider {:?} for image {image:?}", provider.name);
    let path: PathBuf = bin_dir.join(&provider.name);
    let meta = std::fs::metadata(&path).map_err(|_| anyhow!("{at}: no plugin binary at {}", path.display()))?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            bail!("{at}: {} is not an executable file", path.display());
        }
    }
    let mut child = tokio::process::Command::new(&path)
        .args(&provider.args)
        .envs(provider.env.iter().map(|e| (&e.name, &e.value)))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| anyhow!("{at}: cannot start {}: {e}", path.display()))?;
    let mut stdin = child.stdin.take().context("plugin stdin")?;
    let run = async move {
        // A plugin that exits without reading its stdin is judged by its exit status.
        let _ = stdin.write_all(&request).await;
        drop(stdin);
        child.wait_with_output().await
    };
    let out = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| anyhow!("{at}: the plugin did not answer within {}s", timeout.as_secs()))?
        .map_err(|e| anyhow!("{at}: running the plugin: {e}"))?;
    if !out.status.success() {
        let status = out.status.code().map_or_else(
            || "was killed by a signal".to_owned(),
            |c| format!("exited with status {c}"),
        );
        bail!("{at}: the plugin {status}: {}", redact_stderr(&out.stderr, secrets));
    }
    Ok(out.stdout)
}

/// The credential-provider source: reads the config, runs every matching provider for every
/// image (in order), and returns the merged docker config and its expiry per registry.
pub async fn load(
    client: &kube::Client,
    source_namespace: &str,
    source: &CredentialProviderSource<'_>,
    deadline: tokio::time::Instant,
) -> Result<(Vec<u8>, Vec<Expiry>)> {
    let what = format!("PULLSECRET_CREDENTIAL_PROVIDER_CONFIG ({})", source.config);
    let bytes = std::fs::read(source.config).with_context(|| format!("{what}: cannot read the file"))?;
    let providers = parse_config(&bytes, &what)?;
    let mut answers: Vec<(String, Answer)> = Vec::new();
    let mut tokens: BTreeMap<String, Option<ServiceAccountToken>> = BTreeMap::new();
    for image in source.images {
        let serving = select(&providers, image);
        if serving.is_empty() {
            let patterns: Vec<String> = providers
                .iter()
                .map(|p| format!("{}: {}", p.name, p.match_images.join(" ")))
                .collect();
            bail!(
                "PULLSECRET_CREDENTIAL_PROVIDER_IMAGES: no provider in {} matches image {image:?} (matchImages: {})",
                source.config,
                patterns.join("; ")
            );
        }
        for provider in serving {
            let token = match &provider.token {
                None => None,
                Some(attrs) => {
                    if !tokens.contains_key(&attrs.audience) {
                        let t = service_account_token(client, source_namespace, source.service_account, attrs)
                            .await
                            .with_context(|| format!("credential provider {:?}", provider.name))?;
                        tokens.insert(attrs.audience.clone(), t);
                    }
                    tokens.get(&attrs.audience).cloned().flatten()
                }
            };
            // A second before the run's deadline, so the error names the plugin that hung.
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let left = left.saturating_sub(Duration::from_secs(1)).max(left / 2);
            let stdout = exec(
                provider,
                Path::new(source.bin_dir),
                image,
                request(provider, image, token.as_ref()),
                left.min(EXEC_TIMEOUT),
                &token.iter().map(|t| t.token.as_str()).collect::<Vec<_>>(),
            )
            .await?;
            answers.push((provider.name.clone(), parse_answer(provider, image, &stdout)?));
            tracing::info!(provider = %provider.name, image = %image, "credential provider answered");
        }
    }
    let (config, expiries) = merge(&answers, SystemTime::now());
    crate::core::dockerconfig::parse(&config).map_err(|problem| anyhow!("{what}: {problem}"))?;
    Ok((config, expiries))
}

/// The credential-provider settings, borrowed from the configuration.
pub struct CredentialProviderSource<'a> {
    pub config: &'a str,
    pub bin_dir: &'a str,
    pub images: &'a [String],
    /// (namespace, or None for the source namespace; name)
    pub service_account: (Option<&'a str>, &'a str),
}

/// KEP-4412 as the kubelet does it: read the ServiceAccount (its required and optional
/// annotations go to the plugin), then mint a short-lived token for the provider's audience with
/// the TokenRequest API. `None` when the ServiceAccount does not exist and is not required.
async fn service_account_token(
    client: &kube::Client,
    source_namespace: &str,
    (namespace, name): (Option<&str>, &str),
    attrs: &TokenAttributes,
) -> Result<Option<ServiceAccountToken>> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let namespace = namespace.unwrap_or(source_namespace);
    let who = format!("ServiceAccount {namespace}/{name} (PULLSECRET_CREDENTIAL_PROVIDER_SERVICE_ACCOUNT)");
    let api: kube::Api<ServiceAccount> = kube::Api::namespaced(client.clone(), namespace);
    let Some(account) = api.get_opt(name).await.with_context(|| format!("reading {who}"))? else {
        if attrs.require_service_account {
            bail!("{who} does not exist, and tokenAttributes.requireServiceAccount is true");
        }
        return Ok(None);
    };
    let present = account.metadata.annotations.unwrap_or_default();
    let mut annotations = BTreeMap::new();
    for key in &attrs.required_annotation_keys {
        let value = present
            .get(key)
            .with_context(|| format!("{who} lacks the annotation {key:?} that tokenAttributes requires"))?;
        annotations.insert(key.clone(), value.clone());
    }
    for key in &attrs.optional_annotation_keys {
        if let Some(value) = present.get(key) {
            annotations.insert(key.clone(), value.clone());
        }
    }
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(vec![attrs.audience.clone()]),
            expiration_seconds: Some(TOKEN_EXPIRATION_SECONDS),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let answer = api
        .create_token_request(name, &Default::default(), &request)
        .await
        .with_context(|| format!("requesting a token for {who} (audience {:?})", attrs.audience))?;
    let token = answer
        .status
        .and_then(|s| s.token)
        .filter(|t| !t.is_empty())
        .with_context(|| format!("the API server returned no token for {who}"))?;
    Ok(Some(ServiceAccountToken { token, annotations }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: ecr-credential-provider
    matchImages: ["*.dkr.ecr.*.amazonaws.com", "*.dkr.ecr.*.amazonaws.com.cn"]
    defaultCacheDuration: "12h"
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    args: [get-credentials]
    env:
      - name: AWS_PROFILE
        value: nodes
  - name: acme
    matchImages: ["registry.acme.test:5000"]
    defaultCacheDuration: 10m
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    tokenAttributes:
      serviceAccountTokenAudience: registry.acme.test
      requireServiceAccount: true
      requiredServiceAccountAnnotationKeys: [acme.test/role]
      cacheType: ServiceAccount
"#;

    fn providers() -> Vec<Provider> {
        parse_config(CONFIG.as_bytes(), "config.yaml").unwrap()
    }

    #[test]
    fn a_kubelet_config_parses_with_its_defaults() {
        let p = providers();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].default_cache_duration, Duration::from_secs(12 * 3600));
        assert_eq!(p[0].args, vec!["get-credentials"]);
        assert_eq!(p[0].env[0].name, "AWS_PROFILE");
        assert_eq!(p[1].token.as_ref().unwrap().audience, "registry.acme.test");
        // JSON is YAML too.
        let json = r#"{"apiVersion":"kubelet.config.k8s.io/v1","kind":"CredentialProviderConfig","providers":[{"name":"p","matchImages":["r.io"],"defaultCacheDuration":"1h","apiVersion":"credentialprovider.kubelet.k8s.io/v1"}]}"#;
        assert_eq!(parse_config(json.as_bytes(), "c.json").unwrap()[0].name, "p");
    }

    #[test]
    fn invalid_configs_name_the_provider_and_the_field() {
        let cases = [
            ("kind: Other", "kind"),
            ("name: ecr-credential-provider\n", "name appears twice"),
            ("defaultCacheDuration: \"12h\"", "defaultCacheDuration is required"),
            (
                "apiVersion: credentialprovider.kubelet.k8s.io/v1\n    args",
                "apiVersion \"credentialprovider.kubelet.k8s.io/v2\"",
            ),
            ("requireServiceAccount: true", "requireServiceAccount is required"),
            ("cacheType: ServiceAccount", "cacheType must be Token or ServiceAccount"),
        ];
        for (needle, want) in cases {
            let broken = match needle {
                "kind: Other" => CONFIG.replace("kind: CredentialProviderConfig", needle),
                "name: ecr-credential-provider\n" => CONFIG.replace("name: acme", "name: ecr-credential-provider"),
                "apiVersion: credentialprovider.kubelet.k8s.io/v1\n    args" => CONFIG.replacen(
                    "apiVersion: credentialprovider.kubelet.k8s.io/v1\n    args",
                    "apiVersion: credentialprovider.kubelet.k8s.io/v2\n    args",
                    1,
                ),
                "cacheType: ServiceAccount" => CONFIG.replace(needle, "cacheType: Forever"),
                _ => CONFIG.replacen(needle, "", 1),
            };
            let e = format!("{:#}", parse_config(broken.as_bytes(), "config.yaml").unwrap_err());
            assert!(e.contains(want) && e.starts_with("config.yaml"), "{needle}: {e}");
        }
        let e = format!(
            "{:#}",
            parse_config(
                b"providers: []\napiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig",
                "c"
            )
            .unwrap_err()
        );
        assert!(e.contains("at least 1 provider"), "{e}");
        let slash = CONFIG.replace("name: acme", "name: ../acme");
        assert!(format!("{:#}", parse_config(slash.as_bytes(), "c").unwrap_err()).contains("name must be a file name"));
    }

    #[tokio::test]
    async fn a_plugin_that_echoes_its_request_never_leaks_the_token() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("psr-echo-plugin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = &providers()[1];
        let bin = dir.join(&p.name);
        std::fs::write(&bin, "#!/bin/sh\ncat >&2\nexit 3\n").unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        // No digits: the stderr heuristics alone would let it through.
        let token = "fake-token-handed-to-the-plugin";
        let request = format!(r#"{{"kind":"CredentialProviderRequest","serviceAccountToken":"{token}"}}"#);
        let e = exec(
            p,
            &dir,
            "registry.acme.test:5000/app",
            request.into_bytes(),
            Duration::from_secs(10),
            &[token],
        )
        .await
        .unwrap_err();
        let text = format!("{e:#}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(text.contains("exited with status 3"), "{text}");
        assert!(!text.contains(token), "{text}");
    }

    #[test]
    fn a_plugins_duration_past_gos_range_is_an_error_not_a_panic() {
        let (p, image) = (&providers()[1], "registry.acme.test:5000/app");
        let answer = br#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Registry","cacheDuration":"99999999999999999999h","auth":{"registry.acme.test:5000":{"username":"u","password":"fake-secret"}}}"#;
        let e = parse_answer(p, image, answer).unwrap_err();
        assert!(format!("{e:#}").contains("cacheDuration"), "{e:#}");
    }

    #[test]
    fn providers_are_selected_by_match_images() {
        let p = providers();
        let names = |image: &str| select(&p, image).iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            names("111122223333.dkr.ecr.eu-west-1.amazonaws.com/app:1"),
            vec!["ecr-credential-provider"]
        );
        assert_eq!(names("registry.acme.test:5000/team/app"), vec!["acme"]);
        assert!(names("registry.acme.test/team/app").is_empty(), "the port must match");
        assert!(names("docker.io/library/nginx").is_empty());
    }

    #[test]
    fn answers_are_checked_and_never_quoted() {
        let p = &providers()[1];
        let image = "registry.acme.test:5000/app";
        let ok = br#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Registry","cacheDuration":"30m","auth":{"registry.acme.test:5000":{"username":"u","password":"fake-secret"}}}"#;
        let a = parse_answer(p, image, ok).unwrap();
        assert_eq!(a.lifetime, Duration::from_secs(1800));
        assert_eq!(a.auth["registry.acme.test:5000"].1, "fake-secret");
        let without_duration = String::from_utf8_lossy(ok).replace(r#""cacheDuration":"30m","#, "");
        assert_eq!(
            parse_answer(p, image, without_duration.as_bytes()).unwrap().lifetime,
            Duration::from_secs(600)
        );
        let cases: [(&str, &str); 5] = [
            (r#"{"auth": "fake-secret"#, "not a valid CredentialProviderResponse"),
            (
                &String::from_utf8_lossy(ok).replace("/v1\"", "/v1beta1\""),
                "apiVersion \"credentialprovider.kubelet.k8s.io/v1beta1\"",
            ),
            (
                &String::from_utf8_lossy(ok).replace("Response\"", "Request\""),
                "kind is \"CredentialProviderRequest\"",
            ),
            (
                r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","auth":{}}"#,
                "returned no credential",
            ),
            (
                &String::from_utf8_lossy(ok).replace("registry.acme.test:5000\"", "other.test\""),
                "none of which covers the image",
            ),
        ];
        for (answer, want) in cases {
            let e = format!("{:#}", parse_answer(p, image, answer.as_bytes()).unwrap_err());
            assert!(e.contains(want), "{e}");
            assert!(e.contains("\"acme\"") && e.contains(image), "{e}");
            assert!(!e.contains("fake-secret"), "{e}");
        }
    }

    #[test]
    fn answers_merge_first_wins_with_expiry() {
        let p = providers();
        let answer = |server: &str, pw: &str, lifetime: u64| Answer {
            auth: [(server.to_owned(), ("AWS".to_owned(), pw.to_owned()))].into(),
            lifetime: Duration::from_secs(lifetime),
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let answers = vec![
            (
                p[0].name.clone(),
                answer("1.dkr.ecr.eu-west-1.amazonaws.com", "first", 3600),
            ),
            (p[1].name.clone(), answer("registry.acme.test:5000", "acme", 0)),
            (
                p[0].name.clone(),
                answer("1.dkr.ecr.eu-west-1.amazonaws.com", "second", 60),
            ),
        ];
        let (config, expiries) = merge(&answers, now);
        let v: serde_json::Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(v["auths"]["1.dkr.ecr.eu-west-1.amazonaws.com"]["password"], "first");
        assert_eq!(v["auths"]["1.dkr.ecr.eu-west-1.amazonaws.com"]["auth"], "QVdTOmZpcnN0");
        crate::core::dockerconfig::parse(&config).unwrap();
        assert_eq!(expiries.len(), 2);
        assert_eq!(expiries[0].expires_at, Some(4600));
        assert_eq!(expiries[1].expires_at, None);
    }

    #[test]
    fn stderr_loses_what_looks_like_a_credential() {
        let stderr = b"E1124 main.go:364] error: password=hunter2 token: abc\nAuthorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl\nkey AKIAIOSFODNN7EXAMPLE failed for 111122223333.dkr.ecr.eu-west-1.amazonaws.com; secret fake-known-value\n";
        let out = redact_stderr(stderr, &["fake-known-value"]);
        for leaked in [
            "hunter2",
            "abc\n",
            "eyJhbGci",
            "AKIAIOSFODNN7EXAMPLE",
            "fake-known-value",
        ] {
            assert!(!out.contains(leaked), "{leaked} in {out}");
        }
        assert!(out.contains("main.go:364] error: password=[redacted]"), "{out}");
        assert!(
            out.contains("111122223333.dkr.ecr.eu-west-1.amazonaws.com"),
            "registry names stay: {out}"
        );
        let long = vec![b'x'; 5000];
        assert!(redact_stderr(&long, &[]).chars().count() <= STDERR_LIMIT + 1);
    }
}
