//! The environment: `PULLSECRET_*` variables as envy reads them ([`Raw`]), which variables are
//! known, and the few settings read on their own (before or without a full validation).

use std::collections::BTreeSet;

use anyhow::{Result, bail};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::validate::parse_format;
use super::{Format, PREFIX};

/// Raw strings as envy reads them; everything is parsed by hand afterwards so that every error
/// names its variable. Deliberately not `Debug`: it holds credentials.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub(super) source_secrets: Option<String>,
    pub(super) source_namespace: Option<String>,
    pub(super) dockerconfigjson: Option<String>,
    pub(super) dockerconfigjson_file: Option<String>,
    pub(super) registry_server: Option<String>,
    pub(super) registry_username: Option<String>,
    pub(super) registry_password: Option<String>,
    pub(super) registry_email: Option<String>,
    pub(super) secret_name: Option<String>,
    pub(super) namespaces: Option<String>,
    pub(super) exclude_namespaces: Option<String>,
    pub(super) namespace_selector: Option<String>,
    pub(super) service_accounts: Option<String>,
    pub(super) adopt: Option<String>,
    pub(super) prune: Option<String>,
    pub(super) prune_limit: Option<String>,
    pub(super) heal_pods: Option<String>,
    pub(super) heal_limit: Option<String>,
    pub(super) dry_run: Option<String>,
    pub(super) concurrency: Option<String>,
    pub(super) timeout_secs: Option<String>,
    pub(super) watch: Option<String>,
    pub(super) output: Option<String>,
    pub(super) log_format: Option<String>,
    pub(super) verify: Option<String>,
    pub(super) registry_ca_file: Option<String>,
    pub(super) events: Option<String>,
    pub(super) pushgateway_url: Option<String>,
    pub(super) cluster_name: Option<String>,
    pub(super) credential_provider_config: Option<String>,
    pub(super) credential_provider_bin_dir: Option<String>,
    pub(super) credential_provider_images: Option<String>,
    pub(super) credential_provider_service_account: Option<String>,
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

pub(super) fn reject_unknown<'a>(names: impl Iterator<Item = &'a str>) -> Result<()> {
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

pub(super) fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}
