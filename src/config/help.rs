//! What `--help` prints after clap's usage: every variable with its default and meaning, and the
//! exit codes. `docs/configuration.md` is made from the same table ([`configuration_markdown`]),
//! and a test keeps the two equal.

use super::{DEFAULT_EXCLUDES, DEFAULT_REGISTRY_SERVER, DEFAULT_SECRET_NAME, PREFIX, WORDS};

/// Every variable we read, with its default and meaning, for `--help`. Which variables are known
/// is derived from [`Raw`]'s fields; a unit test keeps this table and those fields equal.
pub const VARIABLES: &[(&str, &str, &str)] = &[
    (
        "SOURCE_SECRETS",
        "",
        "comma list of Secrets in the source namespace: `name` or `source=target`",
    ),
    (
        "SOURCE_NAMESPACE",
        "in-cluster namespace, else kubeconfig namespace",
        "where source Secrets (and the inventory) live",
    ),
    ("DOCKERCONFIGJSON", "", "inline docker config JSON"),
    (
        "DOCKERCONFIGJSON_FILE",
        "",
        "path to a docker config JSON file, read every run",
    ),
    (
        "REGISTRY_SERVER",
        DEFAULT_REGISTRY_SERVER,
        "registry for the server/username/password mode",
    ),
    ("REGISTRY_USERNAME", "", "registry user name"),
    ("REGISTRY_PASSWORD", "", "registry password"),
    ("REGISTRY_EMAIL", "", "registry e-mail (optional)"),
    (
        "SECRET_NAME",
        DEFAULT_SECRET_NAME,
        "target Secret name for the inline/file/registry modes",
    ),
    ("NAMESPACES", "*", "names or globs of namespaces to include"),
    (
        "EXCLUDE_NAMESPACES",
        DEFAULT_EXCLUDES,
        "names or globs of namespaces to exclude",
    ),
    (
        "NAMESPACE_SELECTOR",
        "",
        "label selector for namespaces, evaluated by the API server",
    ),
    (
        "SERVICE_ACCOUNTS",
        "default",
        "names or globs of ServiceAccounts to patch; `*` = all; empty = none",
    ),
    (
        "ADOPT",
        "patcher",
        "take over unlabelled same-name Secrets: patcher, all or none",
    ),
    (
        "PRUNE",
        "true",
        "remove our Secrets and entries that are no longer wanted",
    ),
    (
        "PRUNE_LIMIT",
        "10",
        "most namespaces one run may deselect (prune because no longer selected); 0 = no limit",
    ),
    (
        "HEAL_PODS",
        "off",
        "evict: evict controller-owned Pods stuck on an image pull that were admitted before their ServiceAccount listed a managed name (PodDisruptionBudgets respected)",
    ),
    ("HEAL_LIMIT", "10", "most Pods one run may evict; 0 = no limit"),
    (
        "DRY_RUN",
        "false",
        "true: plan and report, write nothing (also --dry-run); server: send writes with dryRun=All",
    ),
    ("CONCURRENCY", "16", "writes in flight (1-256)"),
    (
        "TIMEOUT_SECS",
        "300",
        "deadline in seconds of the full pass (and of each reaction in a watch window)",
    ),
    (
        "WATCH",
        "0",
        "a Go duration (4m30s): after the full pass keep watching, and react to new or relabelled namespaces, new ServiceAccounts, rotated sources, edited or deleted copies (and stuck Pods when healing), until this long after the run started; deletes wait for the next run; 0 = off; refused with a dry run",
    ),
    ("OUTPUT", "text", "summary on stdout: text or json"),
    ("LOG_FORMAT", "text", "logs on stderr: text or json (RUST_LOG filters)"),
    (
        "EVENTS",
        "true",
        "Events for problems and for runs that changed something (none when nothing to do); false = none",
    ),
    (
        "PUSHGATEWAY_URL",
        "",
        "push run metrics to this Prometheus Pushgateway (http:// or https://) at the end of a run",
    ),
    ("CLUSTER_NAME", "", "grouping label `cluster` for pushed metrics"),
    (
        "CREDENTIAL_PROVIDER_CONFIG",
        "",
        "source mode: a kubelet CredentialProviderConfig file (kubelet.config.k8s.io/v1)",
    ),
    (
        "CREDENTIAL_PROVIDER_BIN_DIR",
        "",
        "folder of the credential-provider plugin binaries (with ..._CONFIG)",
    ),
    (
        "CREDENTIAL_PROVIDER_IMAGES",
        "",
        "comma list of image references to get credentials for (with ..._CONFIG)",
    ),
    (
        "CREDENTIAL_PROVIDER_SERVICE_ACCOUNT",
        "pullsecret-reconciler",
        "ServiceAccount (`name` in the source namespace, or `namespace/name`) whose token goes to providers with tokenAttributes",
    ),
    (
        "VERIFY",
        "warn",
        "off/warn/strict: log in to every source registry before writing; rejected stops the run, unreachable/tls are noted (info: no Event, same exit code) or stop under strict",
    ),
    (
        "REGISTRY_CA_FILE",
        "",
        "extra CA bundle (PEM) trusted for registries (verify and explain)",
    ),
];

pub const EXIT_CODES: &str = "Exit codes: 0 converged; 1 finished, not converged (failed writes, conflicts, refused prunes,\n\
                              deadline, Lease held, stopped); 2 nothing written (bad configuration or source, cluster\n\
                              unreachable, a list failed).";

/// The words a word setting takes ([`WORDS`], the parser's own list), or `None`.
fn words(name: &str) -> Option<&'static [&'static str]> {
    WORDS
        .iter()
        .find(|(var, _)| var.strip_prefix(PREFIX) == Some(name))
        .map(|(_, words)| *words)
}

/// The text after clap's options in `--help`.
pub fn after_help() -> String {
    let mut s = String::from("Configuration (environment variables; unknown PULLSECRET_* variables are errors):\n");
    for (name, default, meaning) in VARIABLES {
        let default = if default.is_empty() { "(none)" } else { default };
        let one_of = words(name)
            .map(|w| format!("; one of: {}", w.join(", ")))
            .unwrap_or_default();
        s.push_str(&format!(
            "  {PREFIX}{name:<22} {meaning}\n  {:<33} default: {default}{one_of}\n",
            ""
        ));
    }
    s.push_str("  (A word setting takes one of its words exactly: lowercase, no synonyms.)\n");
    s.push('\n');
    s.push_str(EXIT_CODES);
    s.push_str("\n\nSubcommand: pullsecret-reconciler explain --help\n");
    s
}

/// `docs/configuration.md`: the same table as `--help`, as Markdown.
pub fn configuration_markdown() -> String {
    let mut s = String::from(
        "# Configuration\n\n\
         <!-- Generated from the table `--help` prints (src/config/help.rs); a unit test keeps the two equal.\n\
         Edit the table, then run `just docs`. -->\n\n\
         Every setting is an environment variable. An empty value means \"not set\" (the default), except\n\
         for `PULLSECRET_SERVICE_ACCOUNTS`, where empty means \"patch no ServiceAccount\". A `PULLSECRET_*`\n\
         variable not in this table is an error (exit 2), so a typo never goes unnoticed. A setting that\n\
         takes a word takes one of the words listed here, exactly: lowercase, no synonyms (`Warn`, `1` or\n\
         `yes` is an error naming the variable and its words).\n\n\
         | Variable | Default | Meaning |\n|---|---|---|\n",
    );
    for (name, default, meaning) in VARIABLES {
        let default = if default.is_empty() {
            "(none)".to_owned()
        } else {
            format!("`{default}`")
        };
        let meaning = meaning.replace('|', "\\|");
        let one_of = words(name)
            .map(|w| {
                format!(
                    " (one of {})",
                    w.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", ")
                )
            })
            .unwrap_or_default();
        s.push_str(&format!("| `{PREFIX}{name}` | {default} | {meaning}{one_of} |\n"));
    }
    s.push_str("\n## Flags\n\n- `--dry-run`: the same as `PULLSECRET_DRY_RUN=true`.\n- `--help`, `--version`.\n");
    s.push_str("- `explain`: see [troubleshooting](troubleshooting.md).\n\n## Exit codes\n\n");
    s.push_str(
        &EXIT_CODES
            .replace('\n', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    );
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page in docs/ is the table's: change one, regenerate the other (`just docs`).
    /// Every word setting is in the table, with the parser's default.
    #[test]
    fn every_word_setting_is_listed_with_its_first_word_as_default() {
        for (var, list) in WORDS {
            let name = var.strip_prefix(PREFIX).unwrap();
            let row = VARIABLES
                .iter()
                .find(|(n, _, _)| *n == name)
                .unwrap_or_else(|| panic!("{var}"));
            assert_eq!(row.1, list[0], "{var}: the default");
        }
    }

    #[test]
    fn the_configuration_page_is_made_from_the_help_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(path, configuration_markdown()).unwrap();
        }
        let page = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            page == configuration_markdown(),
            "docs/configuration.md differs from the --help table: run `just docs`"
        );
    }
}
