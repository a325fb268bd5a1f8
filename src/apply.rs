//! Stage 5, apply (the only module that writes): executes a [`Plan`] with bounded concurrency,
//! in the order that keeps Pods safe -> [`Outcomes`]. One failed write never stops the others.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};

use crate::plan::{Edit, Plan, SecretOp, ServiceAccountOp};
use crate::source::{Credential, DOCKERCONFIGJSON_KEY, DOCKERCONFIGJSON_TYPE};
use crate::{FIELD_MANAGER, INVENTORY_KEY, INVENTORY_NAME, MANAGED_BY_LABEL, RECORD_ANNOTATION, SOURCE_ANNOTATION};

/// Re-reads of a ServiceAccount after "the object has been modified" before giving up.
const SA_ATTEMPTS: usize = 6;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    pub message: String,
}

impl Failure {
    fn new(reason: &str, message: impl Into<String>) -> Failure {
        Failure {
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// Results parallel to the plan's action lists: `None` = done (or nothing to do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcomes {
    pub secrets: Vec<Option<Failure>>,
    pub service_accounts: Vec<Option<Failure>>,
    pub inventory: Option<Failure>,
    /// ServiceAccount writes repeated after a stale resourceVersion.
    pub retries: usize,
}

pub struct Writer {
    pub client: Client,
    pub namespace: String,
    pub concurrency: usize,
    pub deadline: Instant,
}

impl Writer {
    pub async fn execute(&self, plan: &Plan, credentials: &[Credential]) -> Outcomes {
        let mut out = Outcomes {
            secrets: vec![None; plan.secrets.len()],
            service_accounts: vec![None; plan.service_accounts.len()],
            ..Outcomes::default()
        };
        // Remember new names before creating anything under them, so a crash cannot orphan them.
        if let Some(names) = &plan.inventory_before
            && let Err(f) = self.write_inventory(names).await
        {
            let blocked = Failure::new("InventoryNotRecorded", format!("nothing written: {}", f.message));
            for (i, a) in plan.secrets.iter().enumerate() {
                out.secrets[i] = a.op.is_write().then(|| blocked.clone());
            }
            for (i, a) in plan.service_accounts.iter().enumerate() {
                out.service_accounts[i] = a.op.is_write().then(|| blocked.clone());
            }
            out.inventory = Some(f);
            return out;
        }

        // 1. Secrets first: a ServiceAccount never points at a Secret that is not there yet.
        let upserts: Vec<usize> = (0..plan.secrets.len())
            .filter(|&i| matches!(plan.secrets[i].op, SecretOp::Create { .. } | SecretOp::Update { .. }))
            .collect();
        let creds: Arc<Vec<Credential>> = Arc::new(credentials.to_vec());
        let results = self
            .bounded(&upserts, |i| {
                let a = plan.secrets[i].clone();
                let api: Api<Secret> = Api::namespaced(self.client.clone(), &a.namespace);
                let creds = creds.clone();
                async move { upsert_secret(&api, &a.name, &a.op, &creds).await }
            })
            .await;
        let mut unwritten: BTreeSet<(String, String)> = BTreeSet::new();
        for (i, r) in upserts.iter().zip(results) {
            if r.is_some() {
                unwritten.insert((plan.secrets[*i].namespace.clone(), plan.secrets[*i].name.clone()));
            }
            out.secrets[*i] = r;
        }

        // 2. ServiceAccounts: add what now exists, remove what we no longer want.
        let patches: Vec<usize> = (0..plan.service_accounts.len())
            .filter(|&i| plan.service_accounts[i].op.is_write())
            .collect();
        let results = self
            .bounded(&patches, |i| {
                let a = plan.service_accounts[i].clone();
                let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &a.namespace);
                let unwritten = unwritten.clone();
                async move {
                    let ServiceAccountOp::Patch {
                        resource_version,
                        mut edit,
                        list,
                        recorded,
                    } = a.op
                    else {
                        return (None, 0);
                    };
                    let missing: Vec<String> = edit
                        .add
                        .iter()
                        .filter(|n| unwritten.contains(&(a.namespace.clone(), (*n).clone())))
                        .cloned()
                        .collect();
                    if !missing.is_empty() {
                        edit.add.retain(|n| !missing.contains(n));
                        if edit.add.is_empty() && edit.remove.is_empty() {
                            let msg = format!(
                                "not pointed at {} because the Secret was not written",
                                missing.join(", ")
                            );
                            return (Some(Failure::new("SecretNotWritten", msg)), 0);
                        }
                    }
                    let first = if missing.is_empty() {
                        Some((list, recorded))
                    } else {
                        None
                    };
                    patch_service_account(&api, &a.name, resource_version, &edit, first).await
                }
            })
            .await;
        let mut kept: BTreeSet<(String, String)> = BTreeSet::new();
        for (i, r) in patches.iter().zip(results) {
            let (failure, retries) = r;
            out.retries += retries;
            let a = &plan.service_accounts[*i];
            if failure.is_some()
                && let ServiceAccountOp::Patch { edit, .. } = &a.op
            {
                kept.extend(edit.remove.iter().map(|n| (a.namespace.clone(), n.clone())));
            }
            out.service_accounts[*i] = failure;
        }

        // 3. Prune last, and never a Secret a ServiceAccount we failed to patch still lists.
        let deletes: Vec<usize> = (0..plan.secrets.len())
            .filter(|&i| matches!(plan.secrets[i].op, SecretOp::Delete { .. }))
            .collect();
        let results = self
            .bounded(&deletes, |i| {
                let a = plan.secrets[i].clone();
                let api: Api<Secret> = Api::namespaced(self.client.clone(), &a.namespace);
                let still_listed = kept.contains(&(a.namespace.clone(), a.name.clone()));
                async move {
                    if still_listed {
                        return Some(Failure::new(
                            "StillReferenced",
                            "kept: a ServiceAccount that lists it could not be patched",
                        ));
                    }
                    let SecretOp::Delete { resource_version, uid } = &a.op else {
                        return None;
                    };
                    delete_secret(&api, &a.name, resource_version, uid).await
                }
            })
            .await;
        for (i, r) in deletes.iter().zip(results) {
            out.secrets[*i] = r;
        }

        // 4. Forget retired names only when nothing of theirs is left.
        if let Some(names) = &plan.inventory_after {
            let retired_failed = plan.secrets.iter().zip(&out.secrets).any(|(a, f)| f.is_some() && !names.contains(&a.name))
                || plan.service_accounts.iter().zip(&out.service_accounts).any(|(a, f)| {
                    f.is_some()
                        && matches!(&a.op, ServiceAccountOp::Patch { edit, .. } if edit.remove.iter().any(|n| !names.contains(n)))
                });
            if !retired_failed {
                out.inventory = self.write_inventory(names).await.err();
            }
        }
        log_failures(plan, &out);
        out
    }

    /// Runs `work` for each index with at most `concurrency` in flight, each bounded by the run
    /// deadline. Results come back in input order; a task cut off by the deadline reports so.
    async fn bounded<R, F, Fut>(&self, indices: &[usize], work: F) -> Vec<R>
    where
        F: Fn(usize) -> Fut,
        Fut: Future<Output = R> + Send + 'static,
        R: Send + 'static + Deadlined,
    {
        let mut results: Vec<Option<R>> = (0..indices.len()).map(|_| None).collect();
        let mut set = JoinSet::new();
        let mut next = 0;
        while next < indices.len() || !set.is_empty() {
            while next < indices.len() && set.len() < self.concurrency && Instant::now() < self.deadline {
                let fut = work(indices[next]);
                let deadline = self.deadline;
                let slot = next;
                set.spawn(async move { (slot, timeout_at(deadline, fut).await.ok()) });
                next += 1;
            }
            if set.is_empty() {
                break; // deadline passed before the rest could start
            }
            if let Some(Ok((slot, r))) = set.join_next().await {
                results[slot] = r;
            }
        }
        results.into_iter().map(|r| r.unwrap_or_else(R::deadline)).collect()
    }

    async fn write_inventory(&self, names: &[String]) -> Result<(), Failure> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let body = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": INVENTORY_NAME,
                "namespace": self.namespace,
                "labels": { MANAGED_BY_LABEL: FIELD_MANAGER },
            },
            "data": { INVENTORY_KEY: names.join(",") },
        });
        let (params, patch) = (PatchParams::apply(FIELD_MANAGER).force(), Patch::Apply(body));
        match timeout_at(self.deadline, api.patch(INVENTORY_NAME, &params, &patch)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify(e)),
            Err(_) => Err(Failure::new(
                "DeadlineExceeded",
                "run deadline reached while recording the inventory",
            )),
        }
    }
}

/// One structured line per failed write (names and reasons only), for logs read without the summary.
fn log_failures(plan: &Plan, out: &Outcomes) {
    for (a, f) in plan.secrets.iter().zip(&out.secrets) {
        if let Some(f) = f {
            tracing::warn!(namespace = %a.namespace, secret = %a.name, reason = %f.reason, "Secret write failed");
        }
    }
    for (a, f) in plan.service_accounts.iter().zip(&out.service_accounts) {
        if let Some(f) = f {
            tracing::warn!(namespace = %a.namespace, service_account = %a.name, reason = %f.reason, "ServiceAccount write failed");
        }
    }
}

/// What a task reports when the run deadline cut it off or kept it from starting.
trait Deadlined {
    fn deadline() -> Self;
}

impl Deadlined for Option<Failure> {
    fn deadline() -> Self {
        Some(Failure::new(
            "DeadlineExceeded",
            "run deadline reached before this write finished",
        ))
    }
}

impl Deadlined for (Option<Failure>, usize) {
    fn deadline() -> Self {
        (Option::<Failure>::deadline(), 0)
    }
}

fn classify(e: kube::Error) -> Failure {
    match e {
        kube::Error::Api(s) => Failure::new(if s.reason.is_empty() { "ApiError" } else { &s.reason }, s.message),
        other => Failure::new("RequestFailed", format!("{other:#}")),
    }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

async fn upsert_secret(api: &Api<Secret>, name: &str, op: &SecretOp, creds: &[Credential]) -> Option<Failure> {
    let (credential, resource_version) = match op {
        SecretOp::Create { credential } => (*credential, None),
        SecretOp::Update {
            credential,
            resource_version,
            ..
        } => (*credential, Some(resource_version)),
        _ => return None,
    };
    let Some(cred) = creds.get(credential) else {
        return Some(Failure::new("InternalError", "plan refers to an unknown credential"));
    };
    let mut meta = json!({
        "name": name,
        "labels": { MANAGED_BY_LABEL: FIELD_MANAGER },
        "annotations": { SOURCE_ANNOTATION: cred.origin },
    });
    let mut params = PatchParams::apply(FIELD_MANAGER);
    if let Some(rv) = resource_version {
        // Forced, so an adopted Secret's fields become ours; the resourceVersion makes sure it is
        // still the object we looked at (a replaced or edited Secret fails with 409 instead).
        meta["resourceVersion"] = Value::String(rv.clone());
        params = params.force();
    }
    let body = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": DOCKERCONFIGJSON_TYPE,
        "data": { DOCKERCONFIGJSON_KEY: STANDARD.encode(&cred.data) },
    });
    api.patch(name, &params, &Patch::Apply(body)).await.err().map(classify)
}

async fn delete_secret(api: &Api<Secret>, name: &str, resource_version: &str, uid: &str) -> Option<Failure> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: Some(resource_version.to_owned()),
            uid: Some(uid.to_owned()),
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => None,
        Err(e) if is_status(&e, 404) => None,
        Err(e) => Some(classify(e)),
    }
}

fn vanished() -> Failure {
    Failure::new("NotFound", "the ServiceAccount was deleted during the run")
}

/// The non-destructive write of an atomic list: the full list with a resourceVersion
/// precondition; on 409 re-read, re-apply the same edit, try again.
async fn patch_service_account(
    api: &Api<ServiceAccount>,
    name: &str,
    mut resource_version: String,
    edit: &Edit,
    first: Option<(Vec<String>, Vec<String>)>,
) -> (Option<Failure>, usize) {
    let mut next = first;
    let mut retries = 0;
    for attempt in 0..SA_ATTEMPTS {
        let (list, recorded) = match next.take() {
            Some(v) => v,
            None => match api.get_opt(name).await {
                Ok(Some(sa)) => {
                    let current = crate::observe::service_account_state(sa);
                    resource_version = current.resource_version;
                    match edit.apply_to(&current.pull_secrets, &current.recorded) {
                        Some(v) => v,
                        None => return (None, retries),
                    }
                }
                Ok(None) => return (Some(vanished()), retries),
                Err(e) => return (Some(classify(e)), retries),
            },
        };
        let body = json!({
            "metadata": {
                "resourceVersion": resource_version,
                "annotations": { RECORD_ANNOTATION: if recorded.is_empty() { Value::Null } else { Value::String(recorded.join(",")) } },
            },
            "imagePullSecrets": if list.is_empty() {
                Value::Null
            } else {
                Value::Array(list.iter().map(|n| json!({ "name": n })).collect())
            },
        });
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        match api.patch(name, &params, &Patch::Merge(body)).await {
            Ok(_) => return (None, retries),
            Err(e) if is_status(&e, 409) && attempt + 1 < SA_ATTEMPTS => {
                retries += 1;
                tracing::debug!(service_account = name, attempt, "stale resourceVersion, re-reading");
                // Back off a little so two writers of one list do not keep colliding.
                tokio::time::sleep(std::time::Duration::from_millis(10 << attempt)).await;
            }
            Err(e) if is_status(&e, 404) => return (Some(vanished()), retries),
            Err(e) => return (Some(classify(e)), retries),
        }
    }
    (
        Some(Failure::new(
            "Conflict",
            "the ServiceAccount kept changing; giving up for this run",
        )),
        retries,
    )
}
