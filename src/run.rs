//! One run, stage after stage: source -> verify -> Lease -> observe -> plan -> apply -> report ->
//! Events; and the metrics push after it.

use std::sync::Arc;

use anyhow::{Result, anyhow};
use tokio::time::{Instant, timeout_at};

use crate::cli::config::Config;
use crate::cluster::{client, events, lease, pushgateway, reads, registry, writes};
use crate::core::model::{self, DryRun};
use crate::core::plan;
use crate::core::summary::{self, Summary};
use crate::{apply, sources};

/// One run. `Err` means the run stopped before writing anything (exit code 2): the source could
/// not be read or validated, or the cluster could not be listed. Everything after that is in the
/// returned [`Summary`].
pub async fn run(
    config: &Config,
    connection: &client::Connection,
    counter: &client::RequestCounter,
    source_namespace: &str,
) -> Result<Summary> {
    let client = &connection.client;
    let started = Instant::now();
    let deadline = started + config.timeout;

    let passed = |what: &str| anyhow!("the run deadline ({}s) passed while {what}", config.timeout.as_secs());
    let loaded = timeout_at(
        deadline,
        sources::load(&config.source, client, source_namespace, deadline),
    )
    .await
    .map_err(|_| passed("reading the source"))??;

    // Registry truth: a credential a registry rejects is never copied anywhere.
    let mut registries = Vec::new();
    if config.verify != registry::Verify::Off {
        let clients = registry::Clients::new(config.registry_ca_file.as_deref())?;
        let targets = registry::targets(&loaded.credentials);
        registries = timeout_at(deadline, registry::check_all(&clients, &targets))
            .await
            .map_err(|_| passed("verifying registries"))?;
        for r in &registries {
            tracing::info!(server = %r.server, source = %r.source, result = r.result, status = ?r.status, latency_ms = r.latency_ms, "registry checked");
        }
        if let Some(stop) = registry::stop_reason(config.verify, &registries) {
            tracing::error!(error = %stop, "stopped before writing anything");
            let mut summary = Summary::aborted(config.dry_run, &anyhow!(stop));
            summary.registries = registries;
            summary.api_requests = counter.snapshot();
            summary.duration_ms = started.elapsed().as_millis() as u64;
            return Ok(summary);
        }
    }

    // One run at a time (dry runs persist nothing and take no Lease).
    let lease = if config.dry_run == DryRun::Off {
        let wait = lease::MAX_WAIT.min(config.timeout / 2);
        match lease::acquire(client, source_namespace, &lease::identity(), wait).await? {
            lease::Acquired::Held(held) => Some(held),
            lease::Acquired::Busy(holder) => {
                tracing::error!(holder = %holder, "the Lease is held by another run; nothing written");
                let mut summary =
                    Summary::lease_held(config.dry_run, source_namespace, lease::LEASE_NAME, &holder, wait);
                summary.registries = registries;
                summary.api_requests = counter.snapshot();
                summary.duration_ms = started.elapsed().as_millis() as u64;
                return Ok(summary);
            }
        }
    } else {
        None
    };
    let summary = reconcile(config, connection, source_namespace, loaded, registries, deadline).await;
    if let Some(held) = lease {
        held.release().await;
    }
    let mut summary = summary?;
    summary.api_requests = counter.snapshot();
    summary.duration_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
}

/// Observe, plan, apply, report and notify, under the Lease.
async fn reconcile(
    config: &Config,
    connection: &client::Connection,
    source_namespace: &str,
    loaded: sources::Loaded,
    registries: Vec<registry::RegistryCheck>,
    deadline: Instant,
) -> Result<Summary> {
    let client = &connection.client;
    let reader = reads::Reader::new(client.clone());
    let read = async {
        let credentials = loaded.credentials;
        let targets: Vec<String> = credentials.iter().map(|c| c.target.clone()).collect();
        let mut observed = reader.observe(&config.policy, &targets, source_namespace).await?;
        let mut plan = plan::plan(&config.policy, &credentials, &observed);
        // References — ServiceAccounts, Pods and workload templates — are read only when the plan
        // would delete, only where it would: they decide whether it may.
        if plan.needs_references {
            let names = model::managed_names(&targets, &observed.inventory.names);
            let namespaces = plan.reference_namespaces();
            reader.references(&mut observed, &namespaces, &names).await;
            plan = plan::plan(&config.policy, &credentials, &observed);
        }
        tracing::info!(
            namespaces = observed.namespaces.len(),
            secrets = observed.secrets.len(),
            service_accounts = observed.service_accounts.len(),
            "observed"
        );
        anyhow::Ok((credentials, loaded.expiries, plan, observed.service_accounts_listed))
    };
    let (credentials, expiries, mut plan, listed) = timeout_at(deadline, read).await.map_err(|_| {
        anyhow!(
            "the run deadline ({}s) passed while reading the cluster",
            config.timeout.as_secs()
        )
    })??;
    tracing::info!(
        selected = plan.namespaces.selected,
        writes = plan.writes().count(),
        dry_run = config.dry_run.as_str(),
        "planned"
    );

    // The outcomes take over the actions; the plan keeps its counts and findings for the report.
    let actions = std::mem::take(&mut plan.actions);
    let outcomes = match config.dry_run {
        DryRun::Client => apply::unsent(actions),
        DryRun::Off | DryRun::Server => {
            let cluster = writes::KubeCluster {
                client: client.clone(),
                once: connection.once.clone(),
                namespace: source_namespace.to_owned(),
                dry_run: config.dry_run == DryRun::Server,
            };
            let limits = apply::Limits {
                concurrency: config.concurrency,
                deadline,
            };
            apply::execute(Arc::new(cluster), actions, credentials.into(), limits).await
        }
    };

    let mut summary = Summary::from_run(&plan, &outcomes, config.dry_run);
    summary.service_accounts.listed = listed.as_str();
    summary.add_expiries(&expiries, unix_now().as_secs());
    summary.add_registries(registries);
    if config.events {
        let anchor = events::Anchor::of(&config.source, source_namespace);
        events::send(client, &mut summary, &anchor, Instant::now() + events::BUDGET).await;
    }
    Ok(summary)
}

/// After a run (finished or stopped): push its metrics when a Pushgateway is configured. A dry run
/// pushes nothing (it refreshed nothing). A failed push is a warning in the summary and the log;
/// it never changes the exit code.
pub async fn push_metrics(config: &Config, summary: &mut Summary) {
    let Some(target) = &config.pushgateway else { return };
    if summary.dry_run {
        return;
    }
    match pushgateway::push(target, crate::core::metrics::encode(summary, unix_now().as_secs_f64())).await {
        Ok(()) => tracing::info!(url = %pushgateway::push_url(target), "pushed run metrics"),
        Err(message) => {
            tracing::warn!(error = %message, "pushing run metrics failed");
            summary.problems.push(summary::problem(
                "",
                "Pushgateway",
                "",
                "MetricsNotPushed",
                &message,
                model::Severity::Warning,
            ));
        }
    }
}

/// Time since the Unix epoch (zero on a clock before 1970).
fn unix_now() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}
