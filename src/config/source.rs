//! The credentials source a configuration names (exactly one mode), as typed settings. Reading
//! it is the `sources` layer's job.

use std::fmt;

/// A string that must never reach a log line or an error message.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive(pub String);

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One source Secret copied into every namespace as `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub source: String,
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Secrets(Vec<Mapping>),
    Inline {
        json: Sensitive,
        target: String,
    },
    File {
        path: String,
        target: String,
    },
    Registry {
        server: String,
        username: String,
        password: Sensitive,
        email: Option<String>,
        target: String,
    },
    /// kubelet credential-provider plugins (`PULLSECRET_CREDENTIAL_PROVIDER_*`).
    CredentialProvider {
        config: String,
        bin_dir: String,
        images: Vec<String>,
        /// Whose token a provider with `tokenAttributes` gets: (namespace or None for the source
        /// namespace, name).
        service_account: (Option<String>, String),
        target: String,
    },
}

impl Source {
    /// The Secret names a run writes in every namespace — the managed names. The one rule that the
    /// admission fence, the inject policy and the chart's RBAC helper restate in CEL and Go
    /// templates; `tests/integration/parity.rs` checks each of them against this.
    pub fn target_names(&self) -> Vec<String> {
        match self {
            Source::Secrets(mappings) => mappings.iter().map(|m| m.target.clone()).collect(),
            Source::Inline { target, .. }
            | Source::File { target, .. }
            | Source::Registry { target, .. }
            | Source::CredentialProvider { target, .. } => vec![target.clone()],
        }
    }
}
