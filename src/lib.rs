//! pullsecret-reconciler: one stateless run converges registry pull Secrets and ServiceAccount
//! `imagePullSecrets` in every selected namespace: observe -> plan -> apply -> report.

pub mod apply;
pub mod client;
pub mod config;
pub mod glob;
pub mod observe;
pub mod plan;
pub mod report;
pub mod selector;
pub mod source;

use anyhow::{Result, anyhow};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use tokio::time::{Instant, timeout_at};

pub use config::Config;
pub use report::Summary;

/// Field manager of every write, and the value of our managed-by label. Never change it:
/// server-side apply ownership is keyed by it.
pub const FIELD_MANAGER: &str = "pullsecret-reconciler";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// imagepullsecret-patcher's marker on the Secrets it made, for adoption.
pub const PATCHER: &str = "imagepullsecret-patcher";
pub const SOURCE_ANNOTATION: &str = "pullsecret-reconciler/source";
pub const RECORD_ANNOTATION: &str = "pullsecret-reconciler/image-pull-secrets";
/// ConfigMap in the source namespace listing the target names earlier runs wrote.
pub const INVENTORY_NAME: &str = "pullsecret-reconciler-inventory";
pub const INVENTORY_KEY: &str = "names";

/// One run. `Err` means the run stopped before writing anything (exit code 2): the source could
/// not be read or validated, or the cluster could not be listed. Everything after that is in the
/// returned [`Summary`].
pub async fn run(
    config: &Config,
    client: &Client,
    counter: &client::RequestCounter,
    source_namespace: &str,
) -> Result<Summary> {
    let started = Instant::now();
    let deadline = started + config.timeout;
    let targets = config.targets();

    let read = async {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), source_namespace);
        let credentials = source::load(config, &secrets, source_namespace).await?;
        let inventory = observe::read_inventory(client, source_namespace).await?;
        let names = plan::managed_names(&targets, &inventory);
        let selector = config.namespace_selector.as_deref();
        let observed = observe::observe(client, selector, &targets, &names, inventory).await?;
        anyhow::Ok((credentials, observed))
    };
    let (credentials, observed) = timeout_at(deadline, read).await.map_err(|_| {
        anyhow!(
            "the run deadline ({}s) passed while reading the cluster",
            config.timeout.as_secs()
        )
    })??;
    tracing::info!(
        namespaces = observed.namespaces.len(),
        secrets = observed.secrets.len(),
        service_accounts = observed.service_accounts.len(),
        "observed"
    );

    let plan = plan::plan(config, &credentials, &observed);
    drop(observed);
    tracing::info!(
        selected = plan.namespaces.selected,
        secret_writes = plan.secrets.iter().filter(|a| a.op.is_write()).count(),
        service_account_writes = plan.service_accounts.iter().filter(|a| a.op.is_write()).count(),
        dry_run = config.dry_run,
        "planned"
    );

    let outcomes = if config.dry_run {
        apply::Outcomes::default()
    } else {
        let writer = apply::Writer {
            client: client.clone(),
            namespace: source_namespace.to_owned(),
            concurrency: config.concurrency,
            deadline,
        };
        writer.execute(&plan, &credentials).await
    };

    let mut summary = Summary::from_run(&plan, &outcomes, config.dry_run);
    summary.api_requests = counter.snapshot();
    summary.duration_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
}
