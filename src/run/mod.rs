//! One run, stage after stage: source -> verify -> Lease -> observe -> plan -> apply -> report,
//! then the watch window (`window.rs`) when one is set, then Events; and the metrics push after it.

mod held;
mod window;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use tokio::time::{Instant, timeout_at};

use crate::cluster::{client, events, lease, pushgateway, reads, registry, writes};
use crate::config::Config;
use crate::core::model::{self, Credential, DryRun, Observed, Plan, Policy, Status};
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
    let load = async {
        timeout_at(
            deadline,
            sources::load(&config.source, client, source_namespace, deadline),
        )
        .await
        .map_err(|_| passed("reading the source"))?
    };
    let loaded = apply::unless_stopped("reading the source", load).await?;

    // Registry truth: a credential a registry rejects is never copied anywhere.
    let mut registries = Vec::new();
    if config.verify != registry::Verify::Off {
        let clients = registry::Clients::new(config.registry_ca_file.as_deref())?;
        let targets = registry::targets(&loaded.credentials);
        let check = async {
            timeout_at(deadline, registry::check_all(&clients, &targets))
                .await
                .map_err(|_| passed("verifying registries"))
        };
        registries = apply::unless_stopped("verifying registries", check).await?;
        log_checks(&registries);
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
        let identity = lease::identity();
        let acquire = lease::acquire(client, source_namespace, &identity, wait);
        match apply::unless_stopped("waiting for the Lease", acquire).await? {
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
    let pass = reconcile(config, connection, source_namespace, loaded, registries, deadline).await;
    let summary = match pass {
        Ok(pass) => watch_then_report(config, connection, source_namespace, pass, started).await,
        Err(e) => Err(e),
    };
    if let Some(held) = lease {
        held.release().await;
    }
    let mut summary = summary?;
    summary.api_requests = counter.snapshot();
    summary.duration_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
}

/// One line per registry checked: info when `ok`, else a warning (under `warn` the only trace
/// besides the summary's info problem).
fn log_checks(registries: &[registry::RegistryCheck]) {
    for r in registries {
        if r.result == registry::Reply::Ok {
            tracing::info!(server = %r.server, source = %r.source, result = r.result.as_str(), status = ?r.status, latency_ms = r.latency_ms, "registry checked");
        } else {
            tracing::warn!(server = %r.server, source = %r.source, result = r.result.as_str(), status = ?r.status, latency_ms = r.latency_ms, "registry checked");
        }
    }
}

/// Records the kept copies' Pod holders (a cache: a failure only means the next run reads them).
async fn record_held(client: &kube::Client, source_namespace: &str, held: &[model::Held]) {
    if let Err(e) = writes::write_held(client, source_namespace, held).await {
        tracing::warn!(error = %format!("{e:#}"), "recording the kept copies' holders failed; the next run reads them");
    }
}

/// What a run reads from the cluster, in the two passes the planner needs. The real one is
/// [`reads::Reader`]; the seam lets the passes be tested without a cluster.
pub trait Observe: Sync {
    /// Everything the planner needs but references (Pods, workload templates, every
    /// ServiceAccount).
    fn observe(
        &self,
        policy: &Policy,
        targets: &[String],
        source_namespace: &str,
    ) -> impl Future<Output = Result<Observed>> + Send;
    /// References to `names` in `namespaces`; a failure is recorded in `observed` (the plan
    /// then refuses its deletes), never an error of the run.
    fn references(
        &self,
        observed: &mut Observed,
        namespaces: &BTreeSet<String>,
        names: &[String],
    ) -> impl Future<Output = ()> + Send;
    /// Each namespace's unfinished Pods' creation times (Pod metadata only).
    fn pod_ages(&self) -> impl Future<Output = Result<std::collections::BTreeMap<String, Vec<i64>>>> + Send;
}

impl Observe for reads::Reader {
    async fn observe(&self, policy: &Policy, targets: &[String], source_namespace: &str) -> Result<Observed> {
        reads::Reader::observe(self, policy, targets, source_namespace).await
    }

    async fn references(&self, observed: &mut Observed, namespaces: &BTreeSet<String>, names: &[String]) {
        reads::Reader::references(self, observed, namespaces, names).await;
    }

    async fn pod_ages(&self) -> Result<std::collections::BTreeMap<String, Vec<i64>>> {
        reads::Reader::pod_ages(self).await
    }
}

/// The plan and what it was made from. References — ServiceAccounts, Pods and workload templates
/// — are read only when the first plan would delete, and only where it would: they decide
/// whether it may, in a second plan.
pub async fn read_and_plan(
    reader: &impl Observe,
    policy: &Policy,
    credentials: &[Credential],
    source_namespace: &str,
) -> Result<(Plan, Observed)> {
    let targets: Vec<String> = credentials.iter().map(|c| c.target.clone()).collect();
    let mut observed = reader.observe(policy, &targets, source_namespace).await?;
    let mut plan = plan::plan(policy, credentials, &observed);
    if plan.needs_references {
        let names = model::managed_names(&targets, &observed.inventory.names);
        let mut namespaces = plan.reference_namespaces();
        // Past the per-namespace reads, copies whose recorded Pod holders are all still there
        // are not read again (`held.rs`).
        if namespaces.len() > reads::PER_NAMESPACE_LISTS {
            match reader.pod_ages().await {
                Ok(ages) => namespaces = held::hold_over(&mut observed, &plan.reference_candidates(), ages),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "reading every Pod's references instead"),
            }
        }
        reader.references(&mut observed, &namespaces, &names).await;
        plan = plan::plan(policy, credentials, &observed);
    }
    tracing::info!(
        namespaces = observed.namespaces.len(),
        secrets = observed.secrets.len(),
        service_accounts = observed.service_accounts.len(),
        "observed"
    );
    Ok((plan, observed))
}

/// What the full pass leaves for the window and the report.
struct Pass {
    summary: Summary,
    credentials: Vec<Credential>,
    /// The observed state with the pass's own writes in it; only when a window follows.
    store: Option<crate::core::watch::Store>,
    evicted: usize,
}

/// After the full pass: the watch window when one is set (and the pass was not stopped), then
/// the Events, once, for the whole run.
async fn watch_then_report(
    config: &Config,
    connection: &client::Connection,
    source_namespace: &str,
    pass: Pass,
    started: Instant,
) -> Result<Summary> {
    let mut summary = pass.summary;
    let end = started + config.watch;
    if let Some(store) = pass.store
        && !apply::stop_requested()
    {
        let w = window::Window {
            config,
            connection,
            source_namespace,
            credentials: pass.credentials,
            store,
            evicted: pass.evicted,
        };
        let watched = window::watch(w, end).await;
        summary.add_window(&watched.outcomes, watched.problems, watched.report);
    }
    // Judged before the Events, so that they say what the summary says.
    if apply::stop_reason() == Some(apply::Stop::LeaseLost) {
        summary.lease_lost(source_namespace, lease::LEASE_NAME);
    }
    if config.events {
        let anchor = events::Anchor::of(&config.source, source_namespace);
        events::send(
            &connection.client,
            &mut summary,
            &anchor,
            Instant::now() + events::BUDGET,
        )
        .await;
    }
    Ok(summary)
}

/// Observe, plan, apply and report, under the Lease.
async fn reconcile(
    config: &Config,
    connection: &client::Connection,
    source_namespace: &str,
    loaded: sources::Loaded,
    registries: Vec<registry::RegistryCheck>,
    deadline: Instant,
) -> Result<Pass> {
    let client = &connection.client;
    let reader = reads::Reader::new(client.clone());
    let read = async {
        let credentials = loaded.credentials;
        let (plan, observed) = read_and_plan(&reader, &config.policy, &credentials, source_namespace).await?;
        anyhow::Ok((credentials, loaded.expiries, plan, observed))
    };
    let read = async {
        timeout_at(deadline, read).await.map_err(|_| {
            anyhow!(
                "the run deadline ({}s) passed while reading the cluster",
                config.timeout.as_secs()
            )
        })?
    };
    let (credentials, expiries, mut plan, observed) = apply::unless_stopped("reading the cluster", read).await?;
    tracing::info!(
        selected = plan.namespaces.selected,
        writes = plan.writes().count(),
        dry_run = config.dry_run.as_str(),
        "planned"
    );

    // Copies kept for Pods alone, recorded so that the next run need not read them again.
    let held = plan::held_records(&plan, &observed);
    let held_changed = held != observed.inventory.held;
    // The outcomes take over the actions; the plan keeps its counts and findings for the report.
    // What was observed is kept only for a window (with every ServiceAccount read, it is the
    // run's largest structure besides the actions).
    let windowed = !config.watch.is_zero() && config.dry_run == DryRun::Off;
    let listed = observed.service_accounts_listed.as_str();
    let observed = windowed.then_some(observed);
    let actions = std::mem::take(&mut plan.actions);
    let outcomes = write_plan(config, connection, source_namespace, actions, &credentials, deadline).await;

    // After the writes (the inventory's own edits are guarded by its resourceVersion).
    if config.dry_run == DryRun::Off && held_changed {
        record_held(client, source_namespace, &held).await;
    }
    let mut summary = Summary::from_run(&plan, &outcomes, config.dry_run);
    summary.service_accounts.listed = listed;
    summary.add_expiries(&expiries, unix_now().as_secs());
    summary.add_registries(registries);
    let store = observed.map(|observed| {
        let mut store = crate::core::watch::Store::new(observed);
        for o in outcomes.iter().filter(|o| matches!(o.status, Status::Done { .. })) {
            store.wrote(&o.action, &credentials);
        }
        store
    });
    Ok(Pass {
        evicted: summary.pods.evicted,
        summary,
        credentials,
        store,
    })
}

/// Stage 5, apply: the actions through the runner (a client-side dry run sends nothing).
async fn write_plan(
    config: &Config,
    connection: &client::Connection,
    source_namespace: &str,
    actions: Vec<model::Action>,
    credentials: &[Credential],
    deadline: Instant,
) -> Vec<model::Outcome> {
    if config.dry_run == DryRun::Client {
        return apply::unsent(actions);
    }
    let cluster = writes::KubeCluster {
        client: connection.client.clone(),
        once: connection.once.clone(),
        namespace: source_namespace.to_owned(),
        dry_run: config.dry_run == DryRun::Server,
    };
    let limits = apply::Limits {
        concurrency: config.concurrency,
        deadline,
    };
    apply::execute(Arc::new(cluster), actions, credentials.to_vec().into(), limits).await
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::core::glob::Glob;
    use crate::core::model::{
        Inventory, Kind, Listed, NamespaceState, Op, PodState, Pods, SecretState, ServiceAccountState,
    };

    /// A rename `old` -> `new` in namespaces a and b; a Pod in b still names `old`.
    struct Renamed {
        /// The references the run asked for: (namespaces, names).
        asked: Mutex<Vec<(BTreeSet<String>, Vec<String>)>>,
        /// `Err`: the reference read fails (as a timeout or a 500 would).
        pods: Result<Vec<PodState>, String>,
    }

    fn old_copy(namespace: &str) -> SecretState {
        SecretState {
            namespace: namespace.into(),
            name: "old".into(),
            resource_version: "1".into(),
            uid: format!("uid-{namespace}"),
            type_: crate::core::DOCKERCONFIGJSON_TYPE.into(),
            ours: true,
            patcher: false,
            conflict_accepted: false,
            keep: false,
            installation: None,
            source_annotation: Some("secret:home/src".into()),
            data: Some(b"D".to_vec()),
            managers: vec![],
        }
    }

    impl Observe for Renamed {
        async fn observe(&self, _: &Policy, _: &[String], _: &str) -> Result<Observed> {
            let ns = |name: &str| NamespaceState {
                name: name.into(),
                terminating: false,
                opted_out: false,
            };
            // a's ServiceAccount no longer lists `old` (an earlier run moved it); b's and c's do.
            let sa = |namespace: &str| ServiceAccountState {
                namespace: namespace.into(),
                name: "default".into(),
                resource_version: "1".into(),
                pull_secrets: if namespace == "a" { vec![] } else { vec!["old".into()] },
                recorded: if namespace == "a" { vec![] } else { vec!["old".into()] },
                list_appliers: vec![],
            };
            Ok(Observed {
                namespaces: vec![ns("a"), ns("b"), ns("c")],
                secrets: vec![old_copy("a"), old_copy("b")],
                service_accounts: vec![sa("a"), sa("b"), sa("c")],
                inventory: Inventory {
                    held: vec![],
                    names: vec!["old".into()],
                    resource_version: Some("1".into()),
                },
                service_accounts_listed: Listed::Named,
                ..Observed::default()
            })
        }

        async fn references(&self, observed: &mut Observed, namespaces: &BTreeSet<String>, names: &[String]) {
            self.asked.lock().unwrap().push((namespaces.clone(), names.to_vec()));
            observed.service_accounts_listed = Listed::All;
            observed.pods = match &self.pods {
                Ok(pods) => Pods::Read(pods.clone()),
                Err(e) => Pods::Unreadable(e.clone()),
            };
        }

        async fn pod_ages(&self) -> Result<std::collections::BTreeMap<String, Vec<i64>>> {
            Ok(Default::default())
        }
    }

    fn policy() -> Policy {
        Policy {
            include: vec![Glob::new("*").unwrap()],
            exclude: vec![],
            namespace_selector: None,
            service_accounts: vec![Glob::new("default").unwrap()],
            adopt: model::Adopt::Patcher,
            prune: true,
            prune_limit: 10,
            heal: model::Heal::Off,
            heal_limit: 10,
        }
    }

    fn new_credential() -> Vec<Credential> {
        vec![Credential {
            target: "new".into(),
            origin: "secret:home/src".into(),
            source_secret: Some(("home".into(), "src".into())),
            data: b"D".to_vec(),
        }]
    }

    fn ops(plan: &Plan, name: &str) -> Vec<(String, &'static str)> {
        let label = |op: &Op| match op {
            Op::DeleteSecret { .. } => "delete",
            Op::Kept { .. } => "kept",
            Op::Refused { .. } => "refused",
            Op::CreateSecret { .. } => "create",
            _ => "other",
        };
        plan.actions
            .iter()
            .filter(|a| a.kind == Kind::Secret && a.name == name)
            .map(|a| (a.namespace.clone(), label(&a.op)))
            .collect()
    }

    #[tokio::test]
    async fn a_plan_that_would_delete_reads_references_where_it_would_and_plans_again() {
        let reader = Renamed {
            asked: Mutex::default(),
            pods: Ok(vec![PodState {
                kind: "Pod",
                namespace: "b".into(),
                name: "web-0".into(),
                secrets: vec!["old".into()],
                created: 0,
            }]),
        };
        let (plan, observed) = read_and_plan(&reader, &policy(), &new_credential(), "home")
            .await
            .unwrap();
        let asked = reader.asked.lock().unwrap().clone();
        let where_: BTreeSet<String> = ["a".to_owned(), "b".to_owned()].into();
        assert_eq!(
            asked,
            [(where_, vec!["new".to_owned(), "old".to_owned()])],
            "once, only where a copy would go"
        );
        assert_eq!(observed.service_accounts_listed, Listed::All);
        assert!(!plan.needs_references);
        assert_eq!(
            ops(&plan, "old"),
            [("a".to_owned(), "delete"), ("b".to_owned(), "kept")]
        );
        assert_eq!(
            ops(&plan, "new").len(),
            3,
            "every namespace gets the new name: {plan:#?}"
        );
    }

    #[tokio::test]
    async fn a_failed_reference_read_refuses_the_deletes_and_nothing_else() {
        let reader = Renamed {
            asked: Mutex::default(),
            pods: Err("listing Pods: 500 Internal Server Error".into()),
        };
        let (plan, _) = read_and_plan(&reader, &policy(), &new_credential(), "home")
            .await
            .unwrap();
        assert!(ops(&plan, "old").iter().all(|(_, op)| *op != "delete"), "{plan:#?}");
        assert!(
            plan.findings.iter().any(|f| f.reason == "PodsNotListable"),
            "{:?}",
            plan.findings
        );
        assert_eq!(
            ops(&plan, "new").iter().filter(|(_, op)| *op == "create").count(),
            3,
            "creates still happen"
        );
        assert!(
            plan.actions
                .iter()
                .any(|a| a.kind == Kind::ServiceAccount && a.op.is_write()),
            "ServiceAccounts still move to the new name"
        );
    }
}
