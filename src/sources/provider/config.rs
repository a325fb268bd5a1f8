//! The kubelet's `CredentialProviderConfig` (kubelet.config.k8s.io/v1): parsed and validated as
//! the kubelet does, and which providers serve an image (pure).

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;

use crate::core::duration::parse_go_duration;
use crate::core::kubelet;

/// The config's own API versions the kubelet decodes.
pub(super) const CONFIG_API_VERSIONS: &[&str] = &[
    "kubelet.config.k8s.io/v1",
    "kubelet.config.k8s.io/v1beta1",
    "kubelet.config.k8s.io/v1alpha1",
];
/// The exec protocol's versions a provider may declare.
pub(super) const PLUGIN_API_VERSIONS: &[&str] = &[
    "credentialprovider.kubelet.k8s.io/v1",
    "credentialprovider.kubelet.k8s.io/v1beta1",
    "credentialprovider.kubelet.k8s.io/v1alpha1",
];
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    providers: Vec<RawProvider>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProvider {
    #[serde(default)]
    name: String,
    #[serde(default)]
    match_images: Vec<String>,
    default_cache_duration: Option<String>,
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: Vec<EnvVar>,
    token_attributes: Option<RawTokenAttributes>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTokenAttributes {
    #[serde(default)]
    service_account_token_audience: String,
    require_service_account: Option<bool>,
    #[serde(default)]
    required_service_account_annotation_keys: Vec<String>,
    #[serde(default)]
    optional_service_account_annotation_keys: Vec<String>,
    #[serde(default)]
    cache_type: String,
}

/// One validated provider of the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub name: String,
    pub match_images: Vec<String>,
    pub default_cache_duration: Duration,
    pub api_version: String,
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
    pub token: Option<TokenAttributes>,
}

/// KEP-4412: the provider wants a ServiceAccount token for this audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAttributes {
    pub audience: String,
    pub require_service_account: bool,
    pub required_annotation_keys: Vec<String>,
    pub optional_annotation_keys: Vec<String>,
}

/// Parses and validates a `CredentialProviderConfig` (YAML or JSON) as the kubelet does. `what`
/// names the file in errors.
pub fn parse_config(bytes: &[u8], what: &str) -> Result<Vec<Provider>> {
    let text = std::str::from_utf8(bytes).map_err(|_| anyhow!("{what}: not UTF-8 text"))?;
    let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| {
        // The parser's message points at the place; the file holds no credentials.
        anyhow!("{what}: not a CredentialProviderConfig ({e})")
    })?;
    match raw.api_version.as_deref() {
        Some(v) if CONFIG_API_VERSIONS.contains(&v) => {}
        other => bail!(
            "{what}: apiVersion {other:?} is not one of {}",
            CONFIG_API_VERSIONS.join(", ")
        ),
    }
    if raw.kind.as_deref() != Some("CredentialProviderConfig") {
        bail!("{what}: kind {:?}, expected CredentialProviderConfig", raw.kind);
    }
    if raw.providers.is_empty() {
        bail!("{what}: providers: at least 1 provider is required");
    }
    let mut out: Vec<Provider> = Vec::new();
    for p in raw.providers {
        let at = format!("{what}: provider {:?}", p.name);
        if p.name.is_empty() || p.name.contains('/') || p.name.contains(' ') || p.name == "." || p.name == ".." {
            bail!("{at}: name must be a file name in the plugin folder (not empty, no '/' or spaces, not . or ..)");
        }
        if out.iter().any(|o| o.name == p.name) {
            bail!("{at}: name appears twice");
        }
        if !PLUGIN_API_VERSIONS.contains(&p.api_version.as_str()) {
            bail!(
                "{at}: apiVersion {:?} is not one of {}",
                p.api_version,
                PLUGIN_API_VERSIONS.join(", ")
            );
        }
        if p.match_images.is_empty() {
            bail!("{at}: matchImages: at least 1 item is required");
        }
        for m in &p.match_images {
            if kubelet::parse(m).is_none() {
                bail!("{at}: matchImages entry {m:?} is not a valid image pattern");
            }
        }
        let duration = p
            .default_cache_duration
            .as_deref()
            .with_context(|| format!("{at}: defaultCacheDuration is required"))?;
        let default_cache_duration =
            parse_go_duration(duration).with_context(|| format!("{at}: defaultCacheDuration {duration:?}"))?;
        let token = p
            .token_attributes
            .map(|t| token_attributes(&at, &p.api_version, t))
            .transpose()?;
        out.push(Provider {
            name: p.name,
            match_images: p.match_images,
            default_cache_duration,
            api_version: p.api_version,
            args: p.args,
            env: p.env,
            token,
        });
    }
    Ok(out)
}

/// KEP-4412's `tokenAttributes`, checked as the kubelet checks them. `at` names the provider.
fn token_attributes(at: &str, api_version: &str, t: RawTokenAttributes) -> Result<TokenAttributes> {
    if t.service_account_token_audience.is_empty() {
        bail!("{at}: tokenAttributes.serviceAccountTokenAudience is required");
    }
    let require = t
        .require_service_account
        .with_context(|| format!("{at}: tokenAttributes.requireServiceAccount is required"))?;
    if api_version != PLUGIN_API_VERSIONS[0] {
        bail!("{at}: tokenAttributes needs apiVersion {}", PLUGIN_API_VERSIONS[0]);
    }
    if !require && !t.required_service_account_annotation_keys.is_empty() {
        bail!("{at}: tokenAttributes.requireServiceAccount cannot be false with requiredServiceAccountAnnotationKeys");
    }
    if !matches!(t.cache_type.as_str(), "Token" | "ServiceAccount") {
        bail!("{at}: tokenAttributes.cacheType must be Token or ServiceAccount");
    }
    if let Some(k) = t
        .required_service_account_annotation_keys
        .iter()
        .find(|k| t.optional_service_account_annotation_keys.contains(k))
    {
        bail!("{at}: tokenAttributes: annotation key {k:?} is both required and optional");
    }
    Ok(TokenAttributes {
        audience: t.service_account_token_audience,
        require_service_account: require,
        required_annotation_keys: t.required_service_account_annotation_keys,
        optional_annotation_keys: t.optional_service_account_annotation_keys,
    })
}

/// The providers that serve `image`, in config order.
pub fn select<'a>(providers: &'a [Provider], image: &str) -> Vec<&'a Provider> {
    providers
        .iter()
        .filter(|p| p.match_images.iter().any(|m| kubelet::urls_match(m, image)))
        .collect()
}
