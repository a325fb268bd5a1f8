//! Stage 5, apply (the only stage that writes): runs a plan's writes over the [`Cluster`]
//! trait in dependency waves, with bounded concurrency and the run deadline -> one [`Outcome`]
//! per action. It decides nothing: what waits for what comes from the plan's `after` lists.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};

use crate::core::model::{
    Action, Credential, Edit, Failure, Inventory, Op, Outcome, ServiceAccountState, Status, edit_inventory,
};

/// Writes of one object repeated after "the object has been modified" before giving up.
const ATTEMPTS: usize = 6;

/// After a stop request (SIGTERM: a Job at its activeDeadlineSeconds, an eviction), writes in
/// flight get this long to finish; none starts.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Why writes stop before the run is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM or SIGINT.
    Signal,
    /// Another run holds the Lease now: this one must not write any more.
    LeaseLost,
}

fn stop_channel() -> &'static tokio::sync::watch::Sender<Option<Stop>> {
    static STOP: std::sync::OnceLock<tokio::sync::watch::Sender<Option<Stop>>> = std::sync::OnceLock::new();
    STOP.get_or_init(|| tokio::sync::watch::channel(None).0)
}

/// Asks the run to stop: no write starts from now on, and those in flight get [`STOP_GRACE`].
pub fn request_stop() {
    stop_for(Stop::Signal);
}

/// The first reason given is kept.
pub fn stop_for(reason: Stop) {
    stop_channel().send_if_modified(|current| {
        let first = current.is_none();
        if first {
            *current = Some(reason);
        }
        first
    });
}

pub fn stop_requested() -> bool {
    stop_reason().is_some()
}

pub fn stop_reason() -> Option<Stop> {
    *stop_channel().borrow()
}

/// Resolves when a stop is requested (at once if it already was).
pub async fn stop_requested_now() {
    let mut rx = stop_channel().subscribe();
    if rx.wait_for(Option::is_some).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A stage before the writes that a stop request cut short: the run ends with its summary,
/// nothing written, exit 1 (see [`crate::core::summary::Summary::interrupted`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted {
    /// What the run was doing, as in "while {stage}".
    pub stage: &'static str,
    pub reason: Stop,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = match self.reason {
            Stop::Signal => "the run was asked to stop (SIGTERM or SIGINT)",
            Stop::LeaseLost => "another run took the Lease",
        };
        write!(
            f,
            "{why} while {}: nothing was written; the next run does it",
            self.stage
        )
    }
}

impl std::error::Error for Interrupted {}

/// Runs a stage that writes nothing (connecting, reading the source, verifying registries,
/// waiting for the Lease, reading the cluster) until it ends or a stop is requested, whichever
/// comes first: a signal is honoured in every stage, not only between writes.
pub async fn unless_stopped<T>(
    stage: &'static str,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::select! {
        biased;
        () = stop_requested_now() => Err(anyhow::Error::new(Interrupted {
            stage,
            reason: stop_reason().unwrap_or(Stop::Signal),
        })),
        r = work => r,
    }
}

/// Resolves [`STOP_GRACE`] after a stop request (never without one).
async fn stopped_and_grace_passed() {
    stop_requested_now().await;
    tokio::time::sleep(STOP_GRACE).await;
}

fn stop_status(when: &str) -> Status {
    let why = match stop_reason() {
        Some(Stop::LeaseLost) => "another run took the Lease",
        _ => "the run was asked to stop (SIGTERM)",
    };
    Status::Failed(Failure::new("Stopped", format!("{why} {when}; the next run does it")))
}

/// A refused or failed API call: the HTTP status when there was one, and what to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: Option<u16>,
    pub failure: Failure,
    /// The server's `Retry-After` (its Status `details.retryAfterSeconds`), when it gave one.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    fn is(&self, code: u16) -> bool {
        self.status == Some(code)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The API calls apply makes, one method per call: the Kubernetes client implements it
/// ([`kube::KubeCluster`]), and unit tests script it.
pub trait Cluster: Send + Sync + 'static {
    /// Server-side apply of a dockerconfigjson Secret; with a resourceVersion, forced and guarded by it.
    fn apply_secret(
        &self,
        namespace: &str,
        name: &str,
        credential: &Credential,
        resource_version: Option<&str>,
    ) -> impl Future<Output = ApiResult<()>> + Send;
    fn delete_secret(
        &self,
        namespace: &str,
        name: &str,
        resource_version: &str,
        uid: &str,
    ) -> impl Future<Output = ApiResult<()>> + Send;
    fn read_service_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = ApiResult<Option<ServiceAccountState>>> + Send;
    /// Writes the whole list and our record of it, guarded by `resource_version`.
    fn write_service_account(
        &self,
        namespace: &str,
        name: &str,
        resource_version: &str,
        list: &[String],
        recorded: &[String],
    ) -> impl Future<Output = ApiResult<()>> + Send;
    fn read_inventory(&self) -> impl Future<Output = ApiResult<Option<Inventory>>> + Send;
    /// An eviction (the Eviction API: PodDisruptionBudgets decide), with a uid precondition, sent
    /// once: a budget's refusal (429) is an answer, never retried.
    fn evict_pod(&self, namespace: &str, name: &str, uid: &str) -> impl Future<Output = ApiResult<()>> + Send;
    /// Guarded by `resource_version`; `None` = create only.
    fn write_inventory(
        &self,
        names: &[String],
        resource_version: Option<&str>,
    ) -> impl Future<Output = ApiResult<()>> + Send;
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub concurrency: usize,
    pub deadline: Instant,
}

/// The outcomes of a run that sends nothing (client-side dry run): every action as planned.
pub fn unsent(actions: Vec<Action>) -> Vec<Outcome> {
    actions
        .into_iter()
        .map(|action| Outcome {
            action,
            status: Status::NotSent,
        })
        .collect()
}

/// Executes every write among a plan's `actions` (taken over: each outcome carries its action).
/// A write whose prerequisite was not done is skipped with the reason the prerequisite gives;
/// one failure never stops unrelated writes.
pub async fn execute<C: Cluster>(
    cluster: Arc<C>,
    actions: Vec<Action>,
    credentials: Arc<[Credential]>,
    limits: Limits,
) -> Vec<Outcome> {
    let mut status: Vec<Option<Status>> = actions
        .iter()
        .map(|a| (!a.op.is_write()).then_some(Status::NotSent))
        .collect();
    let depth = depths(&actions);
    let last = depth.iter().copied().max().unwrap_or(0);
    for wave in 0..=last {
        let mut runnable = Vec::new();
        let ready: Vec<usize> = (0..actions.len())
            .filter(|&i| status[i].is_none() && depth[i] == wave)
            .collect();
        for i in ready {
            let blocker = actions[i]
                .after
                .iter()
                .find(|&&j| !status.get(j).and_then(Option::as_ref).is_some_and(Status::unblocks));
            match blocker {
                Some(&j) => status[i] = Some(Status::Skipped(blocked_by(actions.get(j)))),
                None => runnable.push(i),
            }
        }
        for (i, s) in run_wave(&cluster, &actions, &runnable, &credentials, limits).await {
            status[i] = Some(s);
        }
    }
    let outcomes: Vec<Outcome> = actions
        .into_iter()
        .zip(status)
        .map(|(action, s)| Outcome {
            action,
            status: s.unwrap_or(Status::Skipped(Failure::new("InternalError", "never scheduled"))),
        })
        .collect();
    for o in &outcomes {
        if let Some(f) = o.status.failure() {
            let a = &o.action;
            tracing::warn!(kind = a.kind.as_str(), namespace = %a.namespace, name = %a.name, reason = %f.reason, "write not done");
        }
    }
    outcomes
}

fn blocked_by(prerequisite: Option<&Action>) -> Failure {
    match prerequisite {
        Some(p) => Failure::new(
            p.op.blocks_as(),
            format!(
                "not done: it waits for {} {}{}, which was not done",
                p.kind.as_str(),
                if p.namespace.is_empty() {
                    String::new()
                } else {
                    format!("{}/", p.namespace)
                },
                p.name
            ),
        ),
        None => Failure::new("InternalError", "the plan names a prerequisite that does not exist"),
    }
}

/// Each action's wave: 0 without prerequisites, else one more than its deepest prerequisite.
/// A malformed plan (a cycle or a dangling index) cannot hang the run: depth is capped.
fn depths(actions: &[Action]) -> Vec<usize> {
    let mut depth = vec![0usize; actions.len()];
    for _ in 0..actions.len().min(64) {
        let mut changed = false;
        for (i, a) in actions.iter().enumerate() {
            let d = a
                .after
                .iter()
                .filter_map(|&j| depth.get(j))
                .map(|d| d + 1)
                .max()
                .unwrap_or(0);
            if d > depth[i] && d <= actions.len() {
                depth[i] = d;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    depth
}

/// Runs one wave with at most `concurrency` writes in flight, each bounded by the deadline.
async fn run_wave<C: Cluster>(
    cluster: &Arc<C>,
    actions: &[Action],
    runnable: &[usize],
    credentials: &Arc<[Credential]>,
    limits: Limits,
) -> Vec<(usize, Status)> {
    let mut out = Vec::with_capacity(runnable.len());
    let mut set = JoinSet::new();
    let mut slots: HashMap<tokio::task::Id, usize> = HashMap::new();
    let mut queue = runnable.iter().copied();
    let mut pending = queue.next();
    loop {
        while let Some(i) = pending.filter(|_| set.len() < limits.concurrency.max(1)) {
            if stop_requested() {
                out.push((i, stop_status("before this write started")));
            } else if Instant::now() >= limits.deadline {
                out.push((i, deadline_status("before this write started")));
            } else {
                let (cluster, credentials, action) = (cluster.clone(), credentials.clone(), actions[i].clone());
                let deadline = limits.deadline;
                let handle = set.spawn(async move {
                    tokio::select! {
                        r = timeout_at(deadline, perform(&*cluster, &action, &credentials)) => {
                            r.unwrap_or_else(|_| deadline_status("before this write finished"))
                        }
                        () = stopped_and_grace_passed() => stop_status("and the grace for writes in flight passed"),
                    }
                });
                slots.insert(handle.id(), i);
            }
            pending = queue.next();
        }
        match set.join_next_with_id().await {
            Some(Ok((id, s))) => out.extend(slots.remove(&id).map(|i| (i, s))),
            Some(Err(e)) => {
                let reason = if e.is_panic() { "Panicked" } else { "Cancelled" };
                let s = Status::Failed(Failure::new(reason, format!("the write task stopped: {e}")));
                out.extend(slots.remove(&e.id()).map(|i| (i, s)));
            }
            None if pending.is_none() => return out,
            None => {}
        }
    }
}

fn deadline_status(when: &str) -> Status {
    Status::Failed(Failure::new(
        "DeadlineExceeded",
        format!("the run deadline (PULLSECRET_TIMEOUT_SECS) passed {when}"),
    ))
}

/// One write, with the retries its kind allows.
async fn perform<C: Cluster>(cluster: &C, action: &Action, credentials: &[Credential]) -> Status {
    let (ns, name) = (action.namespace.as_str(), action.name.as_str());
    let credential = |i: usize| {
        credentials
            .get(i)
            .ok_or_else(|| Failure::new("InternalError", "the plan refers to an unknown credential"))
    };
    match &action.op {
        Op::CreateSecret { credential: c } => match credential(*c) {
            Ok(cred) => done(cluster.apply_secret(ns, name, cred, None).await),
            Err(f) => Status::Failed(f),
        },
        Op::UpdateSecret {
            credential: c,
            resource_version,
            ..
        } => match credential(*c) {
            Ok(cred) => done(cluster.apply_secret(ns, name, cred, Some(resource_version)).await),
            Err(f) => Status::Failed(f),
        },
        Op::DeleteSecret { resource_version, uid } => {
            deleted(cluster.delete_secret(ns, name, resource_version, uid).await)
        }
        Op::PatchServiceAccount {
            resource_version,
            edit,
            list,
            recorded,
        } => {
            let first = (resource_version.clone(), list.clone(), recorded.clone());
            patch_service_account(cluster, (ns, name), first, edit).await
        }
        Op::EditInventory {
            resource_version,
            add,
            remove,
            names,
        } => write_inventory(cluster, (resource_version.clone(), names.clone()), add, remove).await,
        Op::Evict { uid, .. } => evicted(evict_unless_refused(cluster, ns, name, uid).await),
        _ => Status::NotSent,
    }
}

fn done(r: ApiResult<()>) -> Status {
    match r {
        Ok(()) => Status::Done { retries: 0 },
        Err(e) => Status::Failed(e.failure),
    }
}

fn deleted(r: ApiResult<()>) -> Status {
    match r {
        Err(e) if e.is(404) => Status::Done { retries: 0 },
        Err(e) if e.is(409) => Status::Failed(Failure::new(
            "Changed",
            "not deleted: the Secret changed since it was read; the next run looks again",
        )),
        r => done(r),
    }
}

/// Throttled evictions (429 without a budget's refusal) are tried again this often at most.
const EVICTION_ATTEMPTS: u32 = 5;

/// An eviction, tried again after the server's `Retry-After` (1 s if it gave none, at most 10 s)
/// while the API server only throttles it: a 429 is a PodDisruptionBudget's refusal only when
/// the answer says so (cause `DisruptionBudget`) — a Pending Pod consumes no budget. The run's
/// deadline and a stop request bound the waits (the runner wraps every write in both).
async fn evict_unless_refused<C: Cluster>(cluster: &C, ns: &str, name: &str, uid: &str) -> ApiResult<()> {
    let mut attempt = 1;
    loop {
        match cluster.evict_pod(ns, name, uid).await {
            Err(e) if e.is(429) && e.failure.reason != "DisruptionBudget" && attempt < EVICTION_ATTEMPTS => {
                let wait = e
                    .retry_after
                    .unwrap_or(Duration::from_secs(1))
                    .min(Duration::from_secs(10));
                tracing::info!(
                    namespace = ns,
                    pod = name,
                    wait_ms = wait.as_millis() as u64,
                    "eviction throttled; trying again"
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            r => return r,
        }
    }
}

fn evicted(r: ApiResult<()>) -> Status {
    match r {
        Err(e) if e.is(404) => Status::Gone,
        Err(e) if e.is(429) && e.failure.reason != "DisruptionBudget" => Status::Failed(Failure::new(
            "Throttled",
            format!(
                "not evicted: the API server throttled the eviction {EVICTION_ATTEMPTS} times ({}); the next run \
                 tries again",
                e.failure.message
            ),
        )),
        Err(e) if e.is(429) => Status::Failed(Failure::new(
            "DisruptionBudget",
            format!(
                "not evicted: a PodDisruptionBudget allows no disruption now ({}); the next run tries again, or \
                 delete the Pod yourself",
                e.failure.message
            ),
        )),
        Err(e) if e.is(409) => Status::Failed(Failure::new(
            "Changed",
            "not evicted: the Pod changed since it was read; the next run looks again",
        )),
        r => done(r),
    }
}

/// The planned list first; after a 409, the ServiceAccount as it is now with the same edit.
async fn patch_service_account<C: Cluster>(
    cluster: &C,
    (ns, name): (&str, &str),
    first: (String, Vec<String>, Vec<String>),
    edit: &Edit,
) -> Status {
    let mut next = Some(first);
    retrying(|attempt| {
        let first = if attempt == 0 { next.take() } else { None };
        async move {
            let (rv, list, recorded) = match first {
                Some(v) => v,
                None => match cluster.read_service_account(ns, name).await? {
                    None => return Ok(Step::Gone),
                    Some(sa) => match edit.apply_to(&sa.pull_secrets, &sa.recorded) {
                        Some((l, r)) => (sa.resource_version, l, r),
                        None => return Ok(Step::Done),
                    },
                },
            };
            match cluster.write_service_account(ns, name, &rv, &list, &recorded).await {
                Err(e) if e.is(404) => Ok(Step::Gone),
                r => r.map(|()| Step::Done),
            }
        }
    })
    .await
}

/// The planned names first; after a 409, the inventory as it is now with the same edit.
async fn write_inventory<C: Cluster>(
    cluster: &C,
    first: (Option<String>, Vec<String>),
    add: &[String],
    remove: &[String],
) -> Status {
    let mut next = Some(first);
    retrying(|attempt| {
        let first = if attempt == 0 { next.take() } else { None };
        async move {
            let (rv, names) = match first {
                Some(v) => v,
                None => {
                    let current = cluster.read_inventory().await?.unwrap_or_default();
                    match edit_inventory(&current.names, add, remove) {
                        Some(names) => (current.resource_version, names),
                        None if current.resource_version.is_some() => return Ok(Step::Done),
                        None => (None, current.names),
                    }
                }
            };
            match cluster.write_inventory(&names, rv.as_deref()).await {
                // Deleted by hand meanwhile: re-read (finding nothing) and create it.
                Err(e) if e.is(404) => Err(ApiError { status: Some(409), ..e }),
                r => r.map(|()| Step::Done),
            }
        }
    })
    .await
}

enum Step {
    Done,
    Gone,
}

/// Runs `attempt` until it is done, re-running it (after a short, growing pause) while the API
/// server answers 409: another client changed the object after we read it.
async fn retrying<F, Fut>(mut attempt: F) -> Status
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ApiResult<Step>>,
{
    for n in 0..ATTEMPTS {
        match attempt(n).await {
            Ok(Step::Done) => return Status::Done { retries: n },
            Ok(Step::Gone) => return Status::Gone,
            Err(e) if e.is(409) => {
                tracing::debug!(attempt = n, "stale resourceVersion, re-reading");
                tokio::time::sleep(Duration::from_millis(10 << n)).await;
            }
            Err(e) => return Status::Failed(e.failure),
        }
    }
    Status::Failed(Failure::new(
        "Conflict",
        "the object kept changing while we wrote it; giving up for this run",
    ))
}

#[cfg(test)]
mod tests;
