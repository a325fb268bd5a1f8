//! Stage 1, configuration: `PULLSECRET_*` environment variables (via envy) -> validated [`Config`].
//! No I/O: callers hand in the environment as name/value pairs.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

pub use crate::cluster::pushgateway::Pushgateway;
use crate::core::glob::Glob;
pub use crate::core::model::{Adopt, DryRun, Heal, Policy};
use crate::core::names::{check_label, check_object_name};
pub use crate::core::registry::Verify;
pub use crate::sources::{Mapping, Sensitive, Source};

pub const PREFIX: &str = "PULLSECRET_";
pub const DEFAULT_SECRET_NAME: &str = "image-pull-secret";
pub const DEFAULT_REGISTRY_SERVER: &str = "https://index.docker.io/v1/";
pub const DEFAULT_EXCLUDES: &str = "kube-system,kube-public,kube-node-lease";

/// Raw strings as envy reads them; everything is parsed by hand afterwards so that every error
/// names its variable. Deliberately not `Debug`: it holds credentials.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Raw {
    source_secrets: Option<String>,
    source_namespace: Option<String>,
    dockerconfigjson: Option<String>,
    dockerconfigjson_file: Option<String>,
    registry_server: Option<String>,
    registry_username: Option<String>,
    registry_password: Option<String>,
    registry_email: Option<String>,
    secret_name: Option<String>,
    namespaces: Option<String>,
    exclude_namespaces: Option<String>,
    namespace_selector: Option<String>,
    service_accounts: Option<String>,
    adopt: Option<String>,
    prune: Option<String>,
    prune_limit: Option<String>,
    heal_pods: Option<String>,
    heal_limit: Option<String>,
    dry_run: Option<String>,
    concurrency: Option<String>,
    timeout_secs: Option<String>,
    watch: Option<String>,
    output: Option<String>,
    log_format: Option<String>,
    verify: Option<String>,
    registry_ca_file: Option<String>,
    events: Option<String>,
    pushgateway_url: Option<String>,
    cluster_name: Option<String>,
    credential_provider_config: Option<String>,
    credential_provider_bin_dir: Option<String>,
    credential_provider_images: Option<String>,
    credential_provider_service_account: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub source: Source,
    /// Where the source Secrets and the inventory live; `None` = the client's default namespace.
    pub source_namespace: Option<String>,
    /// What the planner decides with: selection, ServiceAccounts, adoption, prune.
    pub policy: Policy,
    pub dry_run: DryRun,
    pub concurrency: usize,
    pub timeout: Duration,
    /// The watch window: the run keeps watching and reacting until this long after it started;
    /// zero = off.
    pub watch: Duration,
    pub output: Format,
    pub log_format: Format,
    /// Write Events for problems and for runs that changed something.
    pub events: bool,
    /// Push the run's metrics here at the end of a run.
    pub pushgateway: Option<Pushgateway>,
    /// Log in to every source registry before writing.
    pub verify: Verify,
    /// Extra CA bundle (PEM path) for registries.
    pub registry_ca_file: Option<String>,
}

impl Config {
    /// Parses and validates the environment. `env` is every variable of the process (or a test's
    /// stand-in); `force_dry_run` is the `--dry-run` flag.
    pub fn from_env<I>(env: I, force_dry_run: bool) -> Result<Config>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let env: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with(PREFIX)).collect();
        reject_unknown(env.iter().map(|(k, _)| k.as_str()))?;
        // envy lower-cases names; `Raw`'s fields are lower-case.
        // An empty value means "not set" for every variable except SERVICE_ACCOUNTS, where empty
        // is meaningful (leave ServiceAccounts alone); envy gives us both as Some("").
        let raw: Raw = envy::prefixed(PREFIX)
            .from_iter(env)
            .context("reading PULLSECRET_* variables")?;
        validate(raw, force_dry_run)
    }
}

/// The process environment as UTF-8 pairs; a non-UTF-8 `PULLSECRET_*` value is an error rather
/// than being silently dropped.
pub fn process_environment() -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (k, v) in std::env::vars_os() {
        let Ok(k) = k.into_string() else { continue };
        match v.into_string() {
            Ok(v) => out.push((k, v)),
            Err(_) if k.starts_with(PREFIX) => bail!("{k}: value is not valid UTF-8"),
            Err(_) => {}
        }
    }
    Ok(out)
}

/// Whether the summary was asked for as JSON, read on its own: a configuration that fails to
/// validate still answers a script that asked for JSON with one object on stdout.
pub fn wants_json(env: &[(String, String)]) -> bool {
    let output = parse_format("PULLSECRET_OUTPUT", value_of(env, "PULLSECRET_OUTPUT"));
    matches!(output, Ok(Format::Json))
}

/// The one setting `explain` takes from the environment: the registries' extra CA bundle.
pub fn registry_ca_file(env: &[(String, String)]) -> Option<String> {
    non_empty(value_of(env, "PULLSECRET_REGISTRY_CA_FILE"))
}

/// One variable's value, read as `Config::from_env` reads it (then trimmed by [`non_empty`]).
fn value_of(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// The variables [`Raw`] reads, derived from its fields (so a field cannot go unread or a
/// variable be accepted without a field).
pub fn known_variables() -> BTreeSet<String> {
    struct_fields::<Raw>()
        .iter()
        .map(|f| format!("{PREFIX}{}", f.to_ascii_uppercase()))
        .collect()
}

/// The field names of a struct deserialised by serde's derive, asked of the derive itself.
fn struct_fields<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields probed"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

fn reject_unknown<'a>(names: impl Iterator<Item = &'a str>) -> Result<()> {
    let known = known_variables();
    let unknown: Vec<&str> = names.filter(|n| !known.contains(*n)).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let hint = if unknown.iter().any(|n| n.starts_with("PULLSECRET_RECONCILER_")) {
        " (PULLSECRET_RECONCILER_* variables are injected by Kubernetes for a Service named \
         pullsecret-reconciler: set `enableServiceLinks: false` in the Pod spec)"
    } else {
        " (a typo? `pullsecret-reconciler --help` lists the variables)"
    };
    bail!("unknown configuration variable(s) {}{hint}", unknown.join(", "))
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn validate(mut raw: Raw, force_dry_run: bool) -> Result<Config> {
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
    let window = crate::sources::provider::parse_go_duration(&v)
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

fn parse_format(var: &str, value: Option<String>) -> Result<Format> {
    Ok(match word(var, value)? {
        Some("json") => Format::Json,
        _ => Format::Text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::help::VARIABLES;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<Config> {
        Config::from_env(env(pairs), false)
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        format!("{:#}", parse(pairs).expect_err("should fail"))
    }

    #[test]
    fn the_watch_window_is_a_go_duration_and_refused_with_a_dry_run() {
        let src = ("PULLSECRET_SOURCE_SECRETS", "a");
        assert_eq!(parse(&[src]).unwrap().watch, Duration::ZERO, "off by default");
        assert_eq!(parse(&[src, ("PULLSECRET_WATCH", "0")]).unwrap().watch, Duration::ZERO);
        assert_eq!(
            parse(&[src, ("PULLSECRET_WATCH", "4m30s")]).unwrap().watch,
            Duration::from_secs(270)
        );
        let e = err(&[src, ("PULLSECRET_WATCH", "5 minutes")]);
        assert!(e.contains("PULLSECRET_WATCH"), "{e}");
        let e = err(&[src, ("PULLSECRET_WATCH", "25h")]);
        assert!(e.contains("PULLSECRET_WATCH") && e.contains("24h"), "{e}");
        for dry in [("PULLSECRET_DRY_RUN", "true"), ("PULLSECRET_DRY_RUN", "server")] {
            let e = err(&[src, dry, ("PULLSECRET_WATCH", "1m")]);
            assert!(
                e.contains("PULLSECRET_WATCH") && e.contains("PULLSECRET_DRY_RUN"),
                "{e}"
            );
        }
        let e = format!(
            "{:#}",
            Config::from_env(env(&[src, ("PULLSECRET_WATCH", "1m")]), true).expect_err("--dry-run")
        );
        assert!(e.contains("--dry-run"), "{e}");
        assert!(parse(&[src, ("PULLSECRET_DRY_RUN", "true"), ("PULLSECRET_WATCH", "0")]).is_ok());
    }

    #[test]
    fn defaults_with_one_source() {
        let c = parse(&[("PULLSECRET_SOURCE_SECRETS", "regcred")]).unwrap();
        assert_eq!(
            c.source,
            Source::Secrets(vec![Mapping {
                source: "regcred".into(),
                target: "regcred".into()
            }])
        );
        let p = &c.policy;
        assert_eq!(p.include, vec![Glob::new("*").unwrap()]);
        assert_eq!(p.exclude.len(), 3);
        assert_eq!(p.service_accounts, vec![Glob::new("default").unwrap()]);
        assert_eq!((p.adopt, p.prune, p.prune_limit), (Adopt::Patcher, true, 10));
        assert_eq!((c.dry_run, c.concurrency), (DryRun::Off, 16));
        assert_eq!(c.timeout, Duration::from_secs(300));
        assert_eq!((c.output, c.log_format), (Format::Text, Format::Text));
        assert_eq!(c.source_namespace, None);
    }

    #[test]
    fn mappings_and_targets() {
        let c = parse(&[("PULLSECRET_SOURCE_SECRETS", " a , b=c ,")]).unwrap();
        let Source::Secrets(m) = c.source else {
            panic!("{:?}", c.source)
        };
        let targets: Vec<&str> = m.iter().map(|m| m.target.as_str()).collect();
        assert_eq!(targets, vec!["a", "c"]);
    }

    #[test]
    fn other_variables_are_ignored() {
        let mut e = env(&[("PULLSECRET_SOURCE_SECRETS", "a")]);
        e.push(("HOME".into(), "/root".into()));
        assert!(Config::from_env(e, false).is_ok());
    }

    #[test]
    fn dry_run_flag_overrides() {
        let c = Config::from_env(env(&[("PULLSECRET_SOURCE_SECRETS", "a")]), true).unwrap();
        assert_eq!(c.dry_run, DryRun::Client);
        let server = [("PULLSECRET_SOURCE_SECRETS", "a"), ("PULLSECRET_DRY_RUN", "server")];
        assert_eq!(Config::from_env(env(&server), true).unwrap().dry_run, DryRun::Server);
        assert_eq!(parse(&server).unwrap().dry_run, DryRun::Server);
        let t = [("PULLSECRET_SOURCE_SECRETS", "a"), ("PULLSECRET_DRY_RUN", "true")];
        assert_eq!(parse(&t).unwrap().dry_run, DryRun::Client);
    }

    /// One rule for every word setting: the listed words, exactly; any other case or a synonym
    /// is an error naming the variable and the words.
    #[test]
    fn word_settings_take_their_listed_words_exactly_and_nothing_else() {
        for (var, words) in WORDS {
            for w in *words {
                parse(&[(var, w), ("PULLSECRET_SOURCE_SECRETS", "a")]).unwrap_or_else(|e| panic!("{var}={w}: {e:#}"));
            }
            let others = words
                .iter()
                .map(|w| w.to_ascii_uppercase())
                .chain(
                    words
                        .iter()
                        .map(|w| format!("{}{}", w[..1].to_ascii_uppercase(), &w[1..])),
                )
                .chain(["1", "0", "yes", "no", "on", "client", "enabled"].map(String::from))
                .filter(|v| !words.contains(&v.as_str()));
            for v in others {
                let e = err(&[(var, v.as_str()), ("PULLSECRET_SOURCE_SECRETS", "a")]);
                assert!(
                    e.contains(&format!("{var}: expected one of {}", words.join(", "))),
                    "{var}={v}: {e}"
                );
            }
        }
        // The default is each list's first word.
        let c = parse(&[("PULLSECRET_SOURCE_SECRETS", "a")]).unwrap();
        assert_eq!(
            (c.policy.adopt, c.policy.prune, c.policy.heal),
            (Adopt::Patcher, true, Heal::Off)
        );
        assert_eq!(
            (c.dry_run, c.output, c.log_format, c.events),
            (DryRun::Off, Format::Text, Format::Text, true)
        );
        assert_eq!(c.verify, Verify::Warn);
    }

    #[test]
    fn verify_modes_and_the_ca_file() {
        let c = parse(&[("PULLSECRET_SOURCE_SECRETS", "a")]).unwrap();
        assert_eq!((c.verify, c.registry_ca_file), (Verify::Warn, None), "warn by default");
        for (v, want) in [
            ("off", Verify::Off),
            ("warn", Verify::Warn),
            (" strict ", Verify::Strict),
        ] {
            assert_eq!(
                parse(&[("PULLSECRET_SOURCE_SECRETS", "a"), ("PULLSECRET_VERIFY", v)])
                    .unwrap()
                    .verify,
                want
            );
        }
        let e = err(&[("PULLSECRET_SOURCE_SECRETS", "a"), ("PULLSECRET_VERIFY", "maybe")]);
        assert!(
            e.contains("PULLSECRET_VERIFY: expected one of warn, off, strict"),
            "{e}"
        );
        let c = parse(&[
            ("PULLSECRET_SOURCE_SECRETS", "a"),
            ("PULLSECRET_REGISTRY_CA_FILE", "/ca.pem"),
        ])
        .unwrap();
        assert_eq!(c.registry_ca_file.as_deref(), Some("/ca.pem"));
        let e = err(&[("PULLSECRET_SOURCE_SECRETS", "a"), ("PULLSECRET_EVENTS", "sure")]);
        assert!(e.contains("PULLSECRET_EVENTS: expected one of true, false"), "{e}");
    }

    #[test]
    fn credential_provider_mode() {
        let base = [
            (
                "PULLSECRET_CREDENTIAL_PROVIDER_CONFIG",
                "/etc/kubernetes/credential-providers.yaml",
            ),
            (
                "PULLSECRET_CREDENTIAL_PROVIDER_BIN_DIR",
                "/usr/libexec/kubernetes/plugins",
            ),
            (
                "PULLSECRET_CREDENTIAL_PROVIDER_IMAGES",
                "111122223333.dkr.ecr.eu-west-1.amazonaws.com/app, ghcr.io/acme/app:1,ghcr.io/acme/app:1",
            ),
            ("PULLSECRET_SECRET_NAME", "ecr"),
        ];
        let c = parse(&base).unwrap();
        let Source::CredentialProvider {
            config,
            bin_dir,
            images,
            service_account,
            target,
        } = c.source
        else {
            panic!("{:?}", c.source)
        };
        assert_eq!(config, "/etc/kubernetes/credential-providers.yaml");
        assert_eq!(bin_dir, "/usr/libexec/kubernetes/plugins");
        assert_eq!(
            images,
            vec!["111122223333.dkr.ecr.eu-west-1.amazonaws.com/app", "ghcr.io/acme/app:1"]
        );
        assert_eq!(service_account, (None, "pullsecret-reconciler".to_string()));
        assert_eq!(target, "ecr");
        // The extra pairs replace the base's of the same name.
        let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
            base.iter()
                .copied()
                .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
                .chain(extra.iter().copied())
                .collect()
        };
        let c = parse(&with(&[(
            "PULLSECRET_CREDENTIAL_PROVIDER_SERVICE_ACCOUNT",
            "ci/puller",
        )]))
        .unwrap();
        assert!(
            matches!(c.source, Source::CredentialProvider { service_account: (Some(ref n), ref s), .. } if n == "ci" && s == "puller")
        );
        let refused: [(Vec<(&str, &str)>, &str); 6] = [
            (
                with(&[("PULLSECRET_SOURCE_SECRETS", "a")]),
                "more than one credentials source",
            ),
            (
                base.iter().copied().filter(|(k, _)| !k.ends_with("BIN_DIR")).collect(),
                "PULLSECRET_CREDENTIAL_PROVIDER_BIN_DIR is required",
            ),
            (
                base.iter().copied().filter(|(k, _)| !k.ends_with("IMAGES")).collect(),
                "PULLSECRET_CREDENTIAL_PROVIDER_IMAGES is required",
            ),
            (
                vec![
                    ("PULLSECRET_CREDENTIAL_PROVIDER_IMAGES", "x/y"),
                    ("PULLSECRET_SOURCE_SECRETS", "a"),
                ],
                "PULLSECRET_CREDENTIAL_PROVIDER_IMAGES is set without PULLSECRET_CREDENTIAL_PROVIDER_CONFIG",
            ),
            (
                with(&[("PULLSECRET_CREDENTIAL_PROVIDER_IMAGES", "bad image")]),
                "PULLSECRET_CREDENTIAL_PROVIDER_IMAGES: \"bad image\" is not an image reference",
            ),
            (
                with(&[("PULLSECRET_CREDENTIAL_PROVIDER_SERVICE_ACCOUNT", "Bad_Name")]),
                "PULLSECRET_CREDENTIAL_PROVIDER_SERVICE_ACCOUNT: invalid ServiceAccount",
            ),
        ];
        for (vars, want) in refused {
            let e = err(&vars);
            assert!(e.contains(want), "{vars:?}: {e}");
        }
    }

    #[test]
    fn pushgateway_url_and_cluster_name() {
        let c = parse(&[("PULLSECRET_SOURCE_SECRETS", "a")]).unwrap();
        assert_eq!(c.pushgateway, None);
        let c = parse(&[
            ("PULLSECRET_SOURCE_SECRETS", "a"),
            ("PULLSECRET_PUSHGATEWAY_URL", " http://pushgateway.monitoring:9091/ "),
            ("PULLSECRET_CLUSTER_NAME", "prod-eu/1"),
        ])
        .unwrap();
        let want = Pushgateway {
            url: "http://pushgateway.monitoring:9091".into(),
            cluster: Some("prod-eu/1".into()),
        };
        assert_eq!(c.pushgateway, Some(want));
        // A cluster name alone is accepted (a fleet may set it everywhere) and used by nothing else.
        assert!(parse(&[("PULLSECRET_SOURCE_SECRETS", "a"), ("PULLSECRET_CLUSTER_NAME", "x")]).is_ok());
        let refused = [
            (
                "pushgateway:9091",
                "PULLSECRET_PUSHGATEWAY_URL: expected an http:// or https:// URL",
            ),
            ("/metrics", "PULLSECRET_PUSHGATEWAY_URL: expected http://host:port"),
            (
                "ftp://pg:21",
                "PULLSECRET_PUSHGATEWAY_URL: expected an http:// or https:// URL",
            ),
            ("http://pg:9091/?x=1", "a query string is not supported"),
            ("not a url", "PULLSECRET_PUSHGATEWAY_URL: not a URL"),
        ];
        for (v, want) in refused {
            let e = err(&[("PULLSECRET_SOURCE_SECRETS", "a"), ("PULLSECRET_PUSHGATEWAY_URL", v)]);
            assert!(e.contains(want), "{v}: {e}");
        }
        let e = err(&[
            ("PULLSECRET_SOURCE_SECRETS", "a"),
            ("PULLSECRET_PUSHGATEWAY_URL", "https://admin:hunter2@pg:9091"),
        ]);
        assert!(e.contains("credentials in the URL") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn healing_is_off_by_default_and_evict_takes_a_limit() {
        let c = parse(&[("PULLSECRET_SOURCE_SECRETS", "a")]).unwrap();
        assert_eq!((c.policy.heal, c.policy.heal_limit), (Heal::Off, 10));
        let c = parse(&[
            ("PULLSECRET_SOURCE_SECRETS", "a"),
            ("PULLSECRET_HEAL_PODS", "evict"),
            ("PULLSECRET_HEAL_LIMIT", "0"),
        ])
        .unwrap();
        assert_eq!((c.policy.heal, c.policy.heal_limit), (Heal::Evict, 0));
    }

    #[test]
    fn an_empty_exclude_list_is_the_default_not_everything() {
        let c = parse(&[
            ("PULLSECRET_SOURCE_SECRETS", "a"),
            ("PULLSECRET_EXCLUDE_NAMESPACES", " "),
        ])
        .unwrap();
        let excluded: Vec<&str> = c.policy.exclude.iter().map(Glob::as_str).collect();
        assert_eq!(excluded, ["kube-system", "kube-public", "kube-node-lease"]);
    }

    #[test]
    fn prune_limit_zero_means_no_limit() {
        let c = parse(&[("PULLSECRET_SOURCE_SECRETS", "a"), ("PULLSECRET_PRUNE_LIMIT", "0")]).unwrap();
        assert_eq!(c.policy.prune_limit, 0);
    }

    #[test]
    fn every_variable_help_prints_is_read_and_every_field_read_is_printed() {
        let printed: BTreeSet<String> = VARIABLES.iter().map(|(n, _, _)| format!("{PREFIX}{n}")).collect();
        let read = known_variables();
        assert_eq!(printed, read);
        assert!(read.len() >= 29, "{read:?}");
        // And each one really is accepted: none is reported unknown.
        for name in &read {
            if let Err(e) = Config::from_env([(name.clone(), String::new())], false) {
                assert!(!format!("{e:#}").contains("unknown"), "{name}: {e:#}");
            }
        }
    }

    #[test]
    fn selector_is_passed_through_for_the_api_server_to_judge() {
        // Valid selectors the old hand parser rejected; invalid ones fail on the first list.
        for sel in ["env in(a)", "tier>1", "!legacy", "a=b,c notin (d,e)"] {
            let c = parse(&[
                ("PULLSECRET_SOURCE_SECRETS", "a"),
                ("PULLSECRET_NAMESPACE_SELECTOR", sel),
            ])
            .unwrap();
            assert_eq!(c.policy.namespace_selector.as_deref(), Some(sel));
        }
    }

    #[test]
    fn empty_service_accounts_means_none() {
        let c = parse(&[("PULLSECRET_SOURCE_SECRETS", "a"), ("PULLSECRET_SERVICE_ACCOUNTS", "")]).unwrap();
        assert!(c.policy.service_accounts.is_empty());
    }

    #[test]
    fn registry_mode_defaults_server() {
        let c = parse(&[
            ("PULLSECRET_REGISTRY_USERNAME", "u"),
            ("PULLSECRET_REGISTRY_PASSWORD", "p"),
        ])
        .unwrap();
        match c.source {
            Source::Registry {
                server, target, email, ..
            } => {
                assert_eq!(server, DEFAULT_REGISTRY_SERVER);
                assert_eq!(target, DEFAULT_SECRET_NAME);
                assert_eq!(email, None);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_variable_is_named_and_value_not_echoed() {
        let e = err(&[
            ("PULLSECRET_SOURCE_SECRETS", "a"),
            ("PULLSECRET_PRUNNE", "hunter2-secret"),
        ]);
        assert!(e.contains("PULLSECRET_PRUNNE"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn service_link_variables_get_a_hint() {
        let e = err(&[
            ("PULLSECRET_SOURCE_SECRETS", "a"),
            ("PULLSECRET_RECONCILER_SERVICE_HOST", "10.0.0.1"),
        ]);
        assert!(e.contains("enableServiceLinks"), "{e}");
    }

    #[test]
    fn every_failure_names_its_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "no credentials source"),
            (
                &[
                    ("PULLSECRET_SOURCE_SECRETS", "a"),
                    ("PULLSECRET_DOCKERCONFIGJSON", "{}"),
                ],
                "more than one",
            ),
            (
                &[
                    ("PULLSECRET_DOCKERCONFIGJSON_FILE", "/x"),
                    ("PULLSECRET_REGISTRY_USERNAME", "u"),
                ],
                "more than one",
            ),
            (&[("PULLSECRET_REGISTRY_USERNAME", "u")], "PULLSECRET_REGISTRY_PASSWORD"),
            (&[("PULLSECRET_REGISTRY_PASSWORD", "p")], "PULLSECRET_REGISTRY_USERNAME"),
            (
                &[("PULLSECRET_REGISTRY_SERVER", "r.example")],
                "PULLSECRET_REGISTRY_USERNAME",
            ),
            (
                &[("PULLSECRET_SOURCE_SECRETS", "Bad_Name")],
                "PULLSECRET_SOURCE_SECRETS",
            ),
            (&[("PULLSECRET_SOURCE_SECRETS", "a=b,c=b")], "appears twice"),
            (
                &[("PULLSECRET_SOURCE_SECRETS", "a"), ("PULLSECRET_PRUNE", "maybe")],
                "PULLSECRET_PRUNE",
            ),
            (
                &[("PULLSECRET_SOURCE_SECRETS", "a"), ("PULLSECRET_DRY_RUN", "ja")],
                "PULLSECRET_DRY_RUN",
            ),
            (
                &[("PULLSECRET_SOURCE_SECRETS", "a"), ("PULLSECRET_CONCURRENCY", "ten")],
                "PULLSECRET_CONCURRENCY",
            ),
            (
                &[("PULLSECRET_SOURCE_SECRETS", "a"), ("PULLSECRET_CONCURRENCY", "0")],
                "out of range",
            ),
            (
                &[("PULLSECRET_SOURCE_SECRETS", "a"), ("PULLSECRET_TIMEOUT_SECS", "-1")],
                "PULLSECRET_TIMEOUT_SECS",
            ),
            (
                &[("PULLSECRET_SOURCE_SECRETS", "a"), ("PULLSECRET_NAMESPACES", "team-[a")],
                "PULLSECRET_NAMESPACES",
            ),
            (
                &[
                    ("PULLSECRET_SOURCE_SECRETS", "a"),
                    ("PULLSECRET_EXCLUDE_NAMESPACES", "A*"),
                ],
                "PULLSECRET_EXCLUDE_NAMESPACES",
            ),
            (
                &[
                    ("PULLSECRET_SOURCE_SECRETS", "a"),
                    ("PULLSECRET_SERVICE_ACCOUNTS", "x y"),
                ],
                "PULLSECRET_SERVICE_ACCOUNTS",
            ),
            (
                &[("PULLSECRET_SOURCE_SECRETS", "a"), ("PULLSECRET_DRY_RUN", "maybe")],
                "PULLSECRET_DRY_RUN",
            ),
            (
                &[("PULLSECRET_SOURCE_SECRETS", "a"), ("PULLSECRET_PRUNE_LIMIT", "-3")],
                "PULLSECRET_PRUNE_LIMIT",
            ),
            (
                &[("PULLSECRET_SOURCE_SECRETS", "a"), ("PULLSECRET_ADOPT", "some")],
                "PULLSECRET_ADOPT",
            ),
            (
                &[("PULLSECRET_SOURCE_SECRETS", "a"), ("PULLSECRET_HEAL_PODS", "delete")],
                "PULLSECRET_HEAL_PODS",
            ),
            (
                &[("PULLSECRET_SOURCE_SECRETS", "a"), ("PULLSECRET_HEAL_LIMIT", "ten")],
                "PULLSECRET_HEAL_LIMIT",
            ),
            (
                &[("PULLSECRET_SOURCE_SECRETS", "a"), ("PULLSECRET_OUTPUT", "yaml")],
                "PULLSECRET_OUTPUT",
            ),
            (
                &[("PULLSECRET_SOURCE_SECRETS", "a"), ("PULLSECRET_LOG_FORMAT", "xml")],
                "PULLSECRET_LOG_FORMAT",
            ),
            (
                &[
                    ("PULLSECRET_SOURCE_SECRETS", "a"),
                    ("PULLSECRET_SOURCE_NAMESPACE", "Tools"),
                ],
                "PULLSECRET_SOURCE_NAMESPACE",
            ),
            (
                &[("PULLSECRET_DOCKERCONFIGJSON", "{}"), ("PULLSECRET_SECRET_NAME", "-x")],
                "PULLSECRET_SECRET_NAME",
            ),
        ];
        for (pairs, want) in cases {
            let e = err(pairs);
            assert!(e.contains(want), "{pairs:?}: {e}");
        }
    }

    #[test]
    fn password_is_redacted_in_debug() {
        let c = parse(&[
            ("PULLSECRET_REGISTRY_USERNAME", "u"),
            ("PULLSECRET_REGISTRY_PASSWORD", "s3cr3t-pw"),
        ])
        .unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t-pw"));
        let c = parse(&[("PULLSECRET_DOCKERCONFIGJSON", "{\"auths\":{\"x\":{\"auth\":\"zzz\"}}}")]).unwrap();
        assert!(!format!("{c:?}").contains("zzz"));
    }

    /// One variable set to `value` over a valid configuration (Secrets mode).
    fn one_over_valid(name: &str, value: &str) -> Vec<(String, String)> {
        let mut env = vec![("PULLSECRET_SOURCE_SECRETS".to_owned(), "regcred".to_owned())];
        env.retain(|(k, _)| k != name);
        env.push((name.to_owned(), value.to_owned()));
        env
    }

    fn a_value() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            "\\PC{0,12}",
            "[0-9]{1,7}",
            "-?[0-9]{1,3}",
            "[a-z][a-z0-9.-]{0,12}",
            "[a-z*?,]{1,10}",
            Just("true".to_owned()),
            Just("false".to_owned()),
            Just("json".to_owned()),
            Just("server".to_owned()),
            Just("evict".to_owned()),
            Just("https://pg.example:9091".to_owned()),
        ]
    }

    proptest::proptest! {
        /// Any values for all the known variables at once parse or fail cleanly, never echoing a
        /// password.
        #[test]
        fn arbitrary_values_never_panic(values in proptest::collection::vec("\\PC{0,12}", VARIABLES.len())) {
            let pairs: Vec<(String, String)> = VARIABLES
                .iter()
                .zip(&values)
                .map(|((name, _, _), v)| (format!("{PREFIX}{name}"), v.clone()))
                .collect();
            if let Err(e) = Config::from_env(pairs, false) {
                let at = VARIABLES.iter().position(|(n, _, _)| *n == "REGISTRY_PASSWORD").unwrap();
                let password = &values[at];
                let message = format!("{e:#}");
                // Text that also stands in a non-secret variable (which errors may quote) is no leak.
                let elsewhere = values.iter().enumerate().any(|(i, v)| i != at && v.contains(password.as_str()));
                if password.chars().count() > 3 && !elsewhere {
                    proptest::prop_assert!(!message.contains(password.as_str()), "{}", message);
                }
            }
        }

        /// Each variable alone, over a configuration that is otherwise valid, so that every
        /// variable's own check is reached (all at once, the first invalid one hides the rest):
        /// it is accepted, or refused with an error that names it; a number in range is taken
        /// as given.
        #[test]
        fn every_variable_is_checked_on_its_own(values in proptest::collection::vec(a_value(), VARIABLES.len())) {
            for ((short, _, _), value) in VARIABLES.iter().zip(&values) {
                let name = format!("{PREFIX}{short}");
                match Config::from_env(one_over_valid(&name, value), false) {
                    Err(e) => {
                        let message = format!("{e:#}");
                        let family = short.starts_with("REGISTRY_") && message.contains("PULLSECRET_REGISTRY_*");
                        proptest::prop_assert!(message.contains(&name) || family, "{name}={value:?}: {message}");
                        if *short == "REGISTRY_PASSWORD" && value.chars().count() > 3 {
                            proptest::prop_assert!(!message.contains(value.as_str()), "{message}");
                        }
                    }
                    Ok(c) => {
                        let n: Option<u64> = value.trim().parse().ok();
                        let taken = match (*short, n) {
                            ("CONCURRENCY", Some(n)) => c.concurrency as u64 == n,
                            ("TIMEOUT_SECS", Some(n)) => c.timeout.as_secs() == n,
                            ("PRUNE_LIMIT", Some(n)) => c.policy.prune_limit as u64 == n,
                            ("HEAL_LIMIT", Some(n)) => c.policy.heal_limit as u64 == n,
                            _ => true,
                        };
                        proptest::prop_assert!(taken, "{name}={value:?} accepted but not taken: {c:?}");
                    }
                }
            }
        }
    }
}
