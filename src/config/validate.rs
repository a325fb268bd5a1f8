//! Validation: [`Raw`] strings -> the typed [`Config`], every error naming its variable.

use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::env::{Raw, non_empty};
use super::*;
use crate::core::glob::Glob;
use crate::core::names::{check_label, check_object_name};

pub(super) fn validate(mut raw: Raw, force_dry_run: bool) -> Result<Config> {
    // Checked in this order; the first invalid setting is the error.
    let verify = match word("PULLSECRET_VERIFY", raw.verify.take())? {
        Some("off") => Verify::Off,
        Some("strict") => Verify::Strict,
        // Verify by default: a mistyped rotated password must not be copied everywhere.
        _ => Verify::Warn,
    };
    let registry_ca_file = non_empty(raw.registry_ca_file.take());
    let source = source(&mut raw)?;
    let source_namespace = match non_empty(raw.source_namespace.take()) {
        Some(ns) => {
            check_label(&ns).with_context(|| format!("PULLSECRET_SOURCE_NAMESPACE: invalid namespace name {ns:?}"))?;
            Some(ns)
        }
        None => None,
    };
    let policy = policy(&mut raw)?;
    let dry_run = match word("PULLSECRET_DRY_RUN", raw.dry_run.take())? {
        Some("true") => DryRun::Client,
        Some("server") => DryRun::Server,
        _ if force_dry_run => DryRun::Client,
        _ => DryRun::Off,
    };
    let concurrency = parse_number("PULLSECRET_CONCURRENCY", raw.concurrency.take(), 16, 1, 256)? as usize;
    let timeout = parse_number("PULLSECRET_TIMEOUT_SECS", raw.timeout_secs.take(), 300, 1, 86_400)?;
    let watch = watch_window(raw.watch.take(), dry_run)?;
    Ok(Config {
        source,
        source_namespace,
        policy,
        dry_run,
        concurrency,
        timeout: Duration::from_secs(timeout),
        watch,
        output: parse_format("PULLSECRET_OUTPUT", raw.output.take())?,
        log_format: parse_format("PULLSECRET_LOG_FORMAT", raw.log_format.take())?,
        events: parse_bool("PULLSECRET_EVENTS", raw.events.take(), true)?,
        pushgateway: pushgateway(&mut raw)?,
        verify,
        registry_ca_file,
    })
}

/// The longest window: a day, like the longest run deadline.
const MAX_WATCH: Duration = Duration::from_secs(86_400);

/// `PULLSECRET_WATCH`: a Go duration (`4m30s`), `0` or unset = no window. A window writes as it
/// goes, so a dry run with one is refused rather than silently shortened.
fn watch_window(value: Option<String>, dry_run: DryRun) -> Result<Duration> {
    let Some(v) = non_empty(value) else {
        return Ok(Duration::ZERO);
    };
    let window = crate::core::duration::parse_go_duration(&v)
        .map_err(|e| anyhow::anyhow!("PULLSECRET_WATCH: expected a Go duration such as 4m30s or 0, got {v:?}: {e}"))?;
    if window > MAX_WATCH {
        bail!("PULLSECRET_WATCH: at most 24h, got {v:?}");
    }
    if !window.is_zero() && dry_run != DryRun::Off {
        bail!(
            "PULLSECRET_WATCH={v} cannot be combined with PULLSECRET_DRY_RUN (or --dry-run): a watch window writes as \
             it reacts; unset one of them"
        );
    }
    Ok(window)
}

/// Which credentials-source variables are set, by name.
fn source_modes(raw: &Raw, registry_set: bool) -> Vec<&'static str> {
    let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    let mut modes = Vec::new();
    for (on, name) in [
        (set(&raw.source_secrets), "PULLSECRET_SOURCE_SECRETS"),
        (set(&raw.dockerconfigjson), "PULLSECRET_DOCKERCONFIGJSON"),
        (set(&raw.dockerconfigjson_file), "PULLSECRET_DOCKERCONFIGJSON_FILE"),
        (registry_set, "PULLSECRET_REGISTRY_*"),
        (
            set(&raw.credential_provider_config),
            "PULLSECRET_CREDENTIAL_PROVIDER_CONFIG",
        ),
    ] {
        if on {
            modes.push(name);
        }
    }
    modes
}

/// Exactly one credentials source, with its target name.
fn source(raw: &mut Raw) -> Result<Source> {
    let target = match non_empty(raw.secret_name.take()) {
        Some(t) => {
            check_object_name(&t).with_context(|| format!("PULLSECRET_SECRET_NAME: invalid Secret name {t:?}"))?;
            t
        }
        None => DEFAULT_SECRET_NAME.to_owned(),
    };
    let registry_set = [
        &raw.registry_server,
        &raw.registry_username,
        &raw.registry_password,
        &raw.registry_email,
    ]
    .iter()
    .any(|v| v.as_deref().is_some_and(|s| !s.trim().is_empty()));
    if non_empty(raw.credential_provider_config.clone()).is_none() {
        for (var, value) in [
            (
                "PULLSECRET_CREDENTIAL_PROVIDER_BIN_DIR",
                &raw.credential_provider_bin_dir,
            ),
            ("PULLSECRET_CREDENTIAL_PROVIDER_IMAGES", &raw.credential_provider_images),
            (
                "PULLSECRET_CREDENTIAL_PROVIDER_SERVICE_ACCOUNT",
                &raw.credential_provider_service_account,
            ),
        ] {
            if non_empty(value.clone()).is_some() {
                bail!("{var} is set without PULLSECRET_CREDENTIAL_PROVIDER_CONFIG");
            }
        }
    }
    let modes = source_modes(raw, registry_set);
    if modes.len() > 1 {
        bail!(
            "more than one credentials source is set ({}): set exactly one",
            modes.join(", ")
        );
    }
    if let Some(list) = non_empty(raw.source_secrets.take()) {
        Ok(Source::Secrets(parse_mappings(&list)?))
    } else if let Some(json) = raw.dockerconfigjson.take().filter(|s| !s.trim().is_empty()) {
        Ok(Source::Inline {
            json: Sensitive(json),
            target,
        })
    } else if let Some(path) = non_empty(raw.dockerconfigjson_file.take()) {
        Ok(Source::File { path, target })
    } else if let Some(config) = non_empty(raw.credential_provider_config.take()) {
        provider_source(raw, config, target)
    } else if registry_set {
        registry_source(raw, target)
    } else {
        bail!(
            "no credentials source: set one of PULLSECRET_SOURCE_SECRETS, PULLSECRET_DOCKERCONFIGJSON, \
             PULLSECRET_DOCKERCONFIGJSON_FILE, PULLSECRET_REGISTRY_USERNAME/PASSWORD or \
             PULLSECRET_CREDENTIAL_PROVIDER_CONFIG"
        )
    }
}

/// `PULLSECRET_CREDENTIAL_PROVIDER_*`: the plugins' config, their folder, the images and whose
/// token they get.
fn provider_source(raw: &mut Raw, config: String, target: String) -> Result<Source> {
    let bin_dir = non_empty(raw.credential_provider_bin_dir.take())
        .context("PULLSECRET_CREDENTIAL_PROVIDER_BIN_DIR is required with PULLSECRET_CREDENTIAL_PROVIDER_CONFIG")?;
    let list = non_empty(raw.credential_provider_images.take())
        .context("PULLSECRET_CREDENTIAL_PROVIDER_IMAGES is required with PULLSECRET_CREDENTIAL_PROVIDER_CONFIG")?;
    let mut images: Vec<String> = Vec::new();
    for image in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if crate::core::kubelet::parse(image).is_none() || image.starts_with('/') {
            bail!("PULLSECRET_CREDENTIAL_PROVIDER_IMAGES: {image:?} is not an image reference");
        }
        if !images.iter().any(|i| i == image) {
            images.push(image.to_owned());
        }
    }
    if images.is_empty() {
        bail!("PULLSECRET_CREDENTIAL_PROVIDER_IMAGES: no image given");
    }
    let account =
        non_empty(raw.credential_provider_service_account.take()).unwrap_or_else(|| "pullsecret-reconciler".to_owned());
    let service_account = match account.split_once('/') {
        Some((ns, name)) => (Some(ns.to_owned()), name.to_owned()),
        None => (None, account.clone()),
    };
    for part in [service_account.0.as_deref(), Some(service_account.1.as_str())]
        .into_iter()
        .flatten()
    {
        check_object_name(part).with_context(|| {
            format!("PULLSECRET_CREDENTIAL_PROVIDER_SERVICE_ACCOUNT: invalid ServiceAccount {account:?}")
        })?;
    }
    Ok(Source::CredentialProvider {
        config,
        bin_dir,
        images,
        service_account,
        target,
    })
}

/// `PULLSECRET_REGISTRY_*`: one registry login, written as `kubectl create secret docker-registry`
/// would.
fn registry_source(raw: &mut Raw, target: String) -> Result<Source> {
    let username = non_empty(raw.registry_username.take())
        .context("PULLSECRET_REGISTRY_USERNAME is required with the other PULLSECRET_REGISTRY_* variables")?;
    let password = raw
        .registry_password
        .take()
        .filter(|p| !p.is_empty())
        .context("PULLSECRET_REGISTRY_PASSWORD is required with the other PULLSECRET_REGISTRY_* variables")?;
    let server = non_empty(raw.registry_server.take()).unwrap_or_else(|| DEFAULT_REGISTRY_SERVER.to_owned());
    Ok(Source::Registry {
        server,
        username,
        password: Sensitive(password),
        email: non_empty(raw.registry_email.take()),
        target,
    })
}

/// What the planner decides with: selection, ServiceAccounts, adoption, prune and healing.
fn policy(raw: &mut Raw) -> Result<Policy> {
    let include = parse_globs(
        "PULLSECRET_NAMESPACES",
        &non_empty(raw.namespaces.take()).unwrap_or_else(|| "*".into()),
    )?;
    let exclude = parse_globs(
        "PULLSECRET_EXCLUDE_NAMESPACES",
        // Empty is "not set", as for every variable but SERVICE_ACCOUNTS: the default excludes.
        &non_empty(raw.exclude_namespaces.take()).unwrap_or_else(|| DEFAULT_EXCLUDES.into()),
    )?;
    // The API server validates the selector on the first list, before any write.
    let namespace_selector = non_empty(raw.namespace_selector.take());
    let service_accounts = parse_globs(
        "PULLSECRET_SERVICE_ACCOUNTS",
        &raw.service_accounts.take().unwrap_or_else(|| "default".into()),
    )?;
    let adopt = match word("PULLSECRET_ADOPT", raw.adopt.take())? {
        Some("all") => Adopt::All,
        Some("none") => Adopt::None,
        _ => Adopt::Patcher,
    };
    let prune = parse_bool("PULLSECRET_PRUNE", raw.prune.take(), true)?;
    let prune_limit = parse_number("PULLSECRET_PRUNE_LIMIT", raw.prune_limit.take(), 10, 0, 1_000_000)? as usize;
    let heal = match word("PULLSECRET_HEAL_PODS", raw.heal_pods.take())? {
        Some("evict") => Heal::Evict,
        _ => Heal::Off,
    };
    let heal_limit = parse_number("PULLSECRET_HEAL_LIMIT", raw.heal_limit.take(), 10, 0, 1_000_000)? as usize;
    Ok(Policy {
        include,
        exclude,
        namespace_selector,
        service_accounts,
        adopt,
        prune,
        prune_limit,
        heal,
        heal_limit,
    })
}

/// `PULLSECRET_PUSHGATEWAY_URL` with its `cluster` grouping label.
fn pushgateway(raw: &mut Raw) -> Result<Option<Pushgateway>> {
    let cluster = non_empty(raw.cluster_name.take());
    if cluster
        .as_ref()
        .is_some_and(|c| c.len() > 253 || c.chars().any(char::is_control))
    {
        bail!("PULLSECRET_CLUSTER_NAME: expected a name of at most 253 printable characters");
    }
    Ok(non_empty(raw.pushgateway_url.take())
        .map(|u| parse_pushgateway_url(&u))
        .transpose()?
        .map(|url| Pushgateway { url, cluster }))
}

/// `http(s)://host[:port][/path]` -> the same without a trailing slash. The value is not echoed
/// when it might carry credentials (user info).
fn parse_pushgateway_url(value: &str) -> Result<String> {
    const VAR: &str = "PULLSECRET_PUSHGATEWAY_URL";
    let uri: http::Uri = value
        .parse()
        .map_err(|_| anyhow::anyhow!("{VAR}: not a URL (expected http://host:port or https://host)"))?;
    let authority = uri
        .authority()
        .with_context(|| format!("{VAR}: expected http://host:port or https://host, got {value:?}"))?;
    if authority.as_str().contains('@') {
        bail!("{VAR}: credentials in the URL are not supported (the value is not shown)");
    }
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        bail!("{VAR}: expected an http:// or https:// URL, got {value:?}");
    }
    if uri.query().is_some() {
        bail!("{VAR}: a query string is not supported, got {value:?}");
    }
    Ok(value.trim_end_matches('/').to_owned())
}

fn parse_mappings(list: &str) -> Result<Vec<Mapping>> {
    let mut out: Vec<Mapping> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (source, target) = match item.split_once('=') {
            Some((s, t)) => (s.trim(), t.trim()),
            None => (item, item),
        };
        for name in [source, target] {
            check_object_name(name).with_context(|| {
                format!("PULLSECRET_SOURCE_SECRETS: invalid Secret name {name:?} in entry {item:?}")
            })?;
        }
        if out.iter().any(|m| m.target == target) {
            bail!("PULLSECRET_SOURCE_SECRETS: target {target:?} appears twice; each target needs exactly one source");
        }
        out.push(Mapping {
            source: source.to_owned(),
            target: target.to_owned(),
        });
    }
    if out.is_empty() {
        bail!("PULLSECRET_SOURCE_SECRETS: no Secret names given");
    }
    Ok(out)
}

fn parse_globs(var: &str, list: &str) -> Result<Vec<Glob>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|p| Glob::new(p).with_context(|| format!("{var}: invalid name or glob {p:?}")))
        .collect()
}

/// Every setting that takes a word, with its words, the default first. One rule for all of
/// them: one of these words, exactly (lowercase; spaces around the value are ignored, an empty
/// value is the default); no other case, no synonyms (`Warn`, `1`, `yes` are errors). `--help`
/// and docs/configuration.md list the words from this table, so the accepted values and the
/// documented ones are the same list.
pub const WORDS: &[(&str, &[&str])] = &[
    ("PULLSECRET_ADOPT", &["patcher", "all", "none"]),
    ("PULLSECRET_PRUNE", &["true", "false"]),
    ("PULLSECRET_HEAL_PODS", &["off", "evict"]),
    ("PULLSECRET_DRY_RUN", &["false", "true", "server"]),
    ("PULLSECRET_OUTPUT", &["text", "json"]),
    ("PULLSECRET_LOG_FORMAT", &["text", "json"]),
    ("PULLSECRET_EVENTS", &["true", "false"]),
    ("PULLSECRET_VERIFY", &["warn", "off", "strict"]),
];

/// `var`'s word (see [`WORDS`]), `None` when unset or empty.
fn word(var: &str, value: Option<String>) -> Result<Option<&'static str>> {
    let Some(v) = non_empty(value) else { return Ok(None) };
    let words = WORDS
        .iter()
        .find(|(name, _)| *name == var)
        .map_or(&[][..], |(_, words)| *words);
    match words.iter().find(|w| **w == v) {
        Some(w) => Ok(Some(w)),
        None => bail!("{var}: expected one of {}, got {v:?}", words.join(", ")),
    }
}

fn parse_bool(var: &str, value: Option<String>, default: bool) -> Result<bool> {
    Ok(word(var, value)?.map_or(default, |w| w == "true"))
}

fn parse_number(var: &str, value: Option<String>, default: u64, min: u64, max: u64) -> Result<u64> {
    let Some(v) = non_empty(value) else { return Ok(default) };
    let n: u64 = v
        .parse()
        .map_err(|_| anyhow::anyhow!("{var}: expected a whole number, got {v:?}"))?;
    if !(min..=max).contains(&n) {
        bail!("{var}: {n} is out of range {min}-{max}");
    }
    Ok(n)
}

pub(super) fn parse_format(var: &str, value: Option<String>) -> Result<Format> {
    Ok(match word(var, value)? {
        Some("json") => Format::Json,
        _ => Format::Text,
    })
}
