//! Stage 1, configuration: `PULLSECRET_*` environment variables (via envy) -> validated [`Config`].
//! No I/O: callers hand in the environment as name/value pairs.

use std::time::Duration;

use anyhow::{Context, Result};

pub use crate::core::model::{Adopt, DryRun, Heal, Policy};
pub use crate::core::registry::Verify;
mod env;
pub mod help;
mod source;
mod validate;

use env::{Raw, reject_unknown};
pub use env::{known_variables, process_environment, registry_ca_file, wants_json};
pub use source::{Mapping, Sensitive, Source};
pub use validate::WORDS;
use validate::validate;

/// Where and under which grouping key run metrics are pushed (`PULLSECRET_PUSHGATEWAY_URL`,
/// `PULLSECRET_CLUSTER_NAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushgateway {
    /// `scheme://host[:port][/path]`, without a trailing slash.
    pub url: String,
    /// The `cluster` grouping label (PULLSECRET_CLUSTER_NAME).
    pub cluster: Option<String>,
}

pub const PREFIX: &str = "PULLSECRET_";
pub const DEFAULT_SECRET_NAME: &str = "image-pull-secret";
pub const DEFAULT_REGISTRY_SERVER: &str = "https://index.docker.io/v1/";
pub const DEFAULT_EXCLUDES: &str = "kube-system,kube-public,kube-node-lease";

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

#[cfg(test)]
mod tests;
