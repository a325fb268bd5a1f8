//! The watch window (I/O through the stages below it): after the full pass, watch -> reduce into
//! the store -> plan the touched namespaces with the same planner -> apply with the same runner,
//! until the window ends, a signal arrives, the Lease is lost or a watch cannot be re-established.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::apply;
use crate::cluster::watch::{self, Report};
use crate::cluster::{client, registry, writes};
use crate::config::Config;
use crate::config::Source;
use crate::core::glob::Glob;
use crate::core::model::{Credential, Heal, Op, Outcome, Severity, Status, managed_names};
use crate::core::summary::{self, Problem};
use crate::core::watch::{Change, Contest, Latency, Scope, Store, WatchReport, plan_window};
use crate::sources;

/// Events that arrive within this long of the first one are planned together.
pub const SETTLE: Duration = Duration::from_millis(100);
/// A watch failing this long without a success ends the window (exit 1): never a silent gap.
pub const WATCH_LOST_AFTER: Duration = Duration::from_secs(30);
/// Failures closer together than this are one outage (the watcher retries every few seconds).
const SAME_OUTAGE: Duration = Duration::from_secs(15);
/// The most one reaction's writes may take (or the run's deadline, if shorter).
const REACTION_DEADLINE: Duration = Duration::from_secs(30);

/// What the window hands back to the run.
pub struct Watched {
    pub outcomes: Vec<Outcome>,
    pub problems: Vec<Problem>,
    pub report: WatchReport,
}

/// The window's inputs from the run.
pub struct Window<'a> {
    pub config: &'a Config,
    pub connection: &'a client::Connection,
    pub source_namespace: &'a str,
    pub credentials: Vec<Credential>,
    pub store: Store,
    /// Pods the full pass evicted: the window's evictions share `PULLSECRET_HEAL_LIMIT` with it.
    pub evicted: usize,
}

/// What is being watched, from the configuration.
fn spec(w: &Window, end: Instant) -> watch::Spec {
    let policy = &w.config.policy;
    let targets: Vec<String> = w.credentials.iter().map(|c| c.target.clone()).collect();
    let service_accounts = if policy.service_accounts.is_empty() {
        vec![]
    } else if policy.service_accounts.iter().all(Glob::is_literal) {
        policy
            .service_accounts
            .iter()
            .map(|g| Scope::Named(g.as_str().to_owned()))
            .collect()
    } else {
        vec![Scope::All]
    };
    let sources = match &w.config.source {
        Source::Secrets(mappings) => Some((
            w.source_namespace.to_owned(),
            mappings.iter().map(|m| m.source.clone()).collect(),
        )),
        _ => None,
    };
    watch::Spec {
        namespace_selector: policy.namespace_selector.clone(),
        secret_names: managed_names(&targets, w.store.inventory_names()),
        service_accounts,
        sources,
        pods: policy.heal == Heal::Evict,
        timeout: end.saturating_duration_since(Instant::now()) + Duration::from_secs(1),
    }
}

/// The window's running state.
struct Loop<'a> {
    w: Window<'a>,
    /// Namespaces to plan again, with when their first event arrived.
    pending: BTreeMap<String, Instant>,
    /// When a source change arrived, if one did since the last reaction.
    source_changed: Option<Instant>,
    contest: Contest,
    outcomes: Vec<Outcome>,
    problems: Vec<Problem>,
    latencies: Vec<u64>,
    report: WatchReport,
    /// Per kind: (first, last) failure of the current outage.
    failing: BTreeMap<&'static str, (Instant, Instant)>,
}

/// Watches and reacts until `end`; the window's writes, problems and report.
pub async fn watch(w: Window<'_>, end: Instant) -> Watched {
    let started = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = spec(&w, end);
    tracing::info!(
        window_secs = end.saturating_duration_since(started).as_secs(),
        secret_names = spec.secret_names.len(),
        "watching"
    );
    let watches = watch::start(&w.connection.watch, &spec, &tx);
    drop(tx);
    let mut l = Loop {
        w,
        pending: BTreeMap::new(),
        source_changed: None,
        contest: Contest::default(),
        outcomes: Vec::new(),
        problems: Vec::new(),
        latencies: Vec::new(),
        report: WatchReport::default(),
        failing: BTreeMap::new(),
    };
    let mut flush_at: Option<Instant> = None;
    let ended_by = loop {
        let flush = async {
            match flush_at {
                Some(t) => sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = apply::stop_requested_now() => break match apply::stop_reason() {
                Some(apply::Stop::LeaseLost) => "lease",
                _ => "signal",
            },
            () = sleep_until(end) => break "window",
            () = flush => {
                flush_at = None;
                l.react().await;
            }
            item = rx.recv() => {
                let Some((at, report)) = item else {
                    l.problem("WatchLost", "every watch ended; the window ends early".into());
                    break "error";
                };
                if !l.receive(at, report) {
                    break "error";
                }
                if (!l.pending.is_empty() || l.source_changed.is_some()) && flush_at.is_none() {
                    flush_at = Some(Instant::now() + SETTLE);
                }
            }
        }
    };
    drop(watches);
    l.report.window_ms = started.elapsed().as_millis() as u64;
    l.report.latency_ms = Latency::of(&l.latencies);
    l.report.ended_by = ended_by;
    tracing::info!(
        ended_by,
        reactions = l.report.reactions,
        writes = l.outcomes.len(),
        "the window ended"
    );
    Watched {
        outcomes: l.outcomes,
        problems: l.problems,
        report: l.report,
    }
}

impl Loop<'_> {
    fn problem(&mut self, reason: &str, message: String) {
        tracing::error!(reason, message = %message, "watch window");
        self.problems
            .push(summary::problem("", "Watch", "", reason, &message, Severity::Error));
    }

    /// Takes one report in; false when the window must end (a watch lost for too long).
    fn receive(&mut self, at: Instant, report: Report) -> bool {
        match report {
            Report::Change(change) => {
                *self.report.events.entry(change.kind()).or_default() += 1;
                self.failing.remove(change.kind());
                if *change == Change::Source {
                    self.source_changed.get_or_insert(at);
                    return true;
                }
                for ns in self.w.store.apply(*change).0 {
                    if !self.contest.left_alone.contains_key(&ns) {
                        self.pending.entry(ns).or_insert(at);
                    }
                }
            }
            Report::Relist { kind } => {
                self.report.relists += 1;
                tracing::info!(kind, "relisted after 410 Gone; planning what changed");
            }
            Report::Failed { kind, message } => {
                let (first, last) = self.failing.entry(kind).or_insert((at, at));
                if at.duration_since(*last) > SAME_OUTAGE {
                    *first = at;
                }
                *last = at;
                if at.duration_since(*first) >= WATCH_LOST_AFTER {
                    let secs = WATCH_LOST_AFTER.as_secs();
                    self.problem(
                        "WatchLost",
                        format!(
                            "the {kind} watch could not be re-established for {secs}s ({message}); the window \
                             ended early, the next run's full pass covers the gap"
                        ),
                    );
                    return false;
                }
            }
        }
        true
    }

    /// Reads the credentials again after a source change; every known namespace is planned
    /// again when they changed. A source that no longer reads or validates (or that a registry
    /// rejects) is a problem and changes nothing.
    async fn reload(&mut self, at: Instant) {
        let config = self.w.config;
        let deadline = Instant::now() + REACTION_DEADLINE.min(config.timeout);
        let client = &self.w.connection.client;
        let loaded = match sources::load(&config.source, client, self.w.source_namespace, deadline).await {
            Ok(l) => l,
            Err(e) => {
                self.problem(
                    "SourceInvalid",
                    format!("the source changed and no longer reads: {e:#}; copies keep the last good credentials"),
                );
                return;
            }
        };
        if loaded.credentials == self.w.credentials {
            return;
        }
        if config.verify != registry::Verify::Off
            && let Ok(clients) = registry::Clients::new(config.registry_ca_file.as_deref())
        {
            let checks = registry::check_all(&clients, &registry::targets(&loaded.credentials)).await;
            if let Some(stop) = registry::stop_reason(config.verify, &checks) {
                self.problem("SourceRejected", format!("the changed source was not copied: {stop}"));
                return;
            }
        }
        tracing::info!("the source changed: every copy is brought up to date");
        self.w.credentials = loaded.credentials;
        for ns in self.w.store.namespace_names() {
            if !self.contest.left_alone.contains_key(&ns) {
                self.pending.entry(ns).or_insert(at);
            }
        }
    }

    /// Plans the pending namespaces and applies the plan's writes.
    async fn react(&mut self) {
        if let Some(at) = self.source_changed.take() {
            self.reload(at).await;
        }
        let pending = std::mem::take(&mut self.pending);
        if pending.is_empty() {
            return;
        }
        let config = self.w.config;
        let namespaces: BTreeSet<String> = pending.keys().cloned().collect();
        let limit = config.policy.heal_limit;
        let evictions_left = (limit > 0).then(|| limit.saturating_sub(self.w.evicted));
        let plan = plan_window(
            &config.policy,
            &self.w.credentials,
            &self.w.store,
            &namespaces,
            evictions_left,
        );
        if plan.writes().next().is_none() {
            self.outcomes.extend(
                apply::unsent(plan.actions)
                    .into_iter()
                    .filter(|o| is_conflict(&o.action.op)),
            );
            return;
        }
        self.report.reactions += 1;
        let cluster = writes::KubeCluster {
            client: self.w.connection.client.clone(),
            once: self.w.connection.once.clone(),
            namespace: self.w.source_namespace.to_owned(),
            dry_run: false,
        };
        let limits = apply::Limits {
            concurrency: config.concurrency,
            deadline: Instant::now() + REACTION_DEADLINE.min(config.timeout),
        };
        let credentials: Arc<[Credential]> = self.w.credentials.clone().into();
        let outcomes = apply::execute(Arc::new(cluster), plan.actions, credentials.clone(), limits).await;
        let acknowledged = Instant::now();
        for o in outcomes {
            if matches!(o.status, Status::Done { .. }) && o.action.op.is_write() {
                self.w.store.wrote(&o.action, &credentials);
                self.w.evicted += usize::from(matches!(o.action.op, Op::Evict { .. }));
                if let Some(at) = pending.get(&o.action.namespace) {
                    self.latencies.push(acknowledged.duration_since(*at).as_millis() as u64);
                }
                if self.contest.count(&o.action) {
                    let a = &o.action;
                    let message = format!(
                        "written {} times in this window: something keeps undoing it; the window leaves namespace \
                         {} alone until the next run",
                        crate::core::watch::WRITES_PER_OBJECT,
                        a.namespace
                    );
                    self.problems.push(summary::problem(
                        &a.namespace,
                        a.kind.as_str(),
                        &a.name,
                        "Contested",
                        &message,
                        Severity::Warning,
                    ));
                }
            }
            if o.action.op.is_write() || is_conflict(&o.action.op) {
                self.outcomes.push(o);
            }
        }
    }
}

fn is_conflict(op: &Op) -> bool {
    matches!(op, Op::Conflict { .. } | Op::AcceptedConflict { .. })
}
