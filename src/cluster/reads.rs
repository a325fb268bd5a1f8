//! Stage 3, observe (reads only): a constant number of paged, cluster-wide lists -> [`Observed`],
//! each as narrow as the plan allows (by name, metadata only). Each page is reduced to the
//! model's plain states before the next is fetched.

use std::collections::BTreeSet;

use std::future::Future;

use anyhow::{Context, Result, anyhow};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, ServiceAccount};
use kube::api::{ListParams, ObjectList};
use kube::{Api, Client};
use serde::de::DeserializeOwned;

use crate::core::INVENTORY_NAME;
use crate::core::glob::Glob;
use crate::core::model::{
    Heal, Inventory, Listed, NamespaceState, Observed, OwnerTemplate, PodState, Pods, Policy, SecretState,
    ServiceAccountState, StuckPod, managed_names,
};
use crate::core::reduce;

/// Objects per list page.
pub const PAGE_SIZE: u32 = 500;
/// Up to this many namespaces with a delete candidate, references are listed per namespace;
/// past it, cluster-wide (one paged list per kind).
pub const PER_NAMESPACE_LISTS: usize = 20;

/// Where reference lists go: each namespace while they are few, else the whole cluster.
fn scopes(namespaces: &BTreeSet<String>) -> Vec<Option<&str>> {
    if namespaces.len() <= PER_NAMESPACE_LISTS {
        namespaces.iter().map(|n| Some(n.as_str())).collect()
    } else {
        vec![None]
    }
}

pub struct Reader {
    pub client: Client,
    pub page_size: u32,
}

impl Reader {
    pub fn new(client: Client) -> Reader {
        Reader {
            client,
            page_size: PAGE_SIZE,
        }
    }

    /// Reads everything the planner needs except Pods. Secrets are read by name (the configured
    /// targets plus the inventory), each with a field selector, so RBAC can be limited to them;
    /// ServiceAccounts by name too when every configured entry is a literal name.
    pub async fn observe(&self, policy: &Policy, targets: &[String], source_namespace: &str) -> Result<Observed> {
        let inventory = self.inventory(source_namespace).await?;
        // Four independent lists, concurrently: the client decodes one page while the API
        // server prepares another.
        let (namespaces, (secrets, unlistable), (service_accounts, listed), (stuck, stuck_unreadable)) = tokio::try_join!(
            self.namespaces(policy.namespace_selector.as_deref()),
            self.secrets(targets, &inventory.names),
            self.configured_service_accounts(policy),
            self.stuck_pods(policy.heal),
        )?;
        Ok(Observed {
            namespaces,
            secrets,
            service_accounts,
            inventory,
            unlistable,
            pods: Pods::NotRead,
            service_accounts_listed: listed,
            stuck,
            stuck_unreadable,
            installation: source_namespace.to_owned(),
            held_over: BTreeSet::new(),
            pod_ages: None,
        })
    }

    /// With healing on, Pending Pods waiting on an image pull: one paged list with a phase field
    /// selector (a steady state has few Pending Pods). None read when healing is off.
    /// Healing alone needs them: a failed list (RBAC, a timeout) refuses healing, not the run,
    /// and comes back as the reason (the second value).
    async fn stuck_pods(&self, heal: Heal) -> Result<(Vec<StuckPod>, Option<String>)> {
        if heal == Heal::Off {
            return Ok((vec![], None));
        }
        let listed = self
            .list_all::<Pod, _>(Some("status.phase=Pending"), reduce::stuck_pod)
            .await
            .context("listing Pending Pods (PULLSECRET_HEAL_PODS=evict)");
        match listed {
            Ok(mut stuck) => {
                self.owners(&mut stuck).await;
                Ok((stuck, None))
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "listing Pending Pods failed: no Pod is healed this run");
                Ok((vec![], Some(format!("{e:#}"))))
            }
        }
    }

    /// Each stuck Pod's controller, read once per controller (a list by name: the `list` the
    /// reference check already has, no `get`): what its replacement would be made from. One that
    /// cannot be read leaves `owner` unset, and the plan falls back to the Pod itself.
    async fn owners(&self, stuck: &mut [StuckPod]) {
        use k8s_openapi::api::apps::v1::{DaemonSet, ReplicaSet, StatefulSet};
        use k8s_openapi::api::batch::v1::Job;
        let mut read: std::collections::BTreeMap<(String, String), Option<OwnerTemplate>> = Default::default();
        for pod in stuck.iter_mut() {
            let Some(controller) = pod.controller.clone() else {
                continue;
            };
            let k = (pod.namespace.clone(), controller.clone());
            if !read.contains_key(&k) {
                let (kind, name) = controller.split_once('/').unwrap_or_default();
                let ns = pod.namespace.as_str();
                let owner = match kind {
                    "ReplicaSet" => self
                        .named::<ReplicaSet>(ns, name)
                        .await
                        .map(|o| reduce::owner_template(o.spec.template.as_ref().and_then(|t| t.spec.as_ref()), None)),
                    "StatefulSet" => self
                        .named::<StatefulSet>(ns, name)
                        .await
                        .map(|o| reduce::owner_template(o.spec.template.spec.as_ref(), None)),
                    "DaemonSet" => self
                        .named::<DaemonSet>(ns, name)
                        .await
                        .map(|o| reduce::owner_template(o.spec.template.spec.as_ref(), None)),
                    "Job" => self.named::<Job>(ns, name).await.map(|o| {
                        let spec = o.spec.as_ref();
                        reduce::owner_template(
                            spec.and_then(|s| s.template.spec.as_ref()),
                            spec.map(|s| (s, o.status.as_ref())),
                        )
                    }),
                    _ => None,
                };
                read.insert(k.clone(), owner);
            }
            pod.owner = read.get(&k).cloned().flatten();
        }
    }

    /// The object `name` in `namespace`, by a list with a name field selector; `None` when it is
    /// gone or cannot be read (logged).
    async fn named<K>(&self, namespace: &str, name: &str) -> Option<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let params = ListParams::default().fields(&format!("metadata.name={name}"));
        match api.list(&params).await {
            Ok(list) => list.items.into_iter().next(),
            Err(e) => {
                tracing::warn!(namespace, name, error = %e, "reading a stuck Pod's controller failed");
                None
            }
        }
    }

    /// Every unfinished Pod's creation time, by namespace: one paged, cluster-wide list of Pod
    /// metadata only (no spec, no status), what decides whether a recorded holder may have ended.
    pub async fn pod_ages(&self) -> Result<std::collections::BTreeMap<String, Vec<i64>>> {
        let api: Api<Pod> = Api::all(self.client.clone());
        let fetch = |p: ListParams| {
            let api = api.clone();
            async move { api.list_metadata(&p).await }
        };
        let unfinished = Some("status.phase!=Succeeded,status.phase!=Failed");
        let ages = self
            .paged(None, unfinished, fetch, |p| {
                Some((
                    p.metadata.namespace.clone().unwrap_or_default(),
                    reduce::created(&p.metadata),
                ))
            })
            .await
            .context("listing Pod metadata (which holders of kept copies have ended)")?;
        let mut out: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
        for (ns, created) in ages {
            out.entry(ns).or_default().push(created);
        }
        Ok(out)
    }

    /// Namespaces as metadata only: the plan needs names, annotations and deletion timestamps.
    async fn namespaces(&self, selector: Option<&str>) -> Result<Vec<NamespaceState>> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let fetch = |p: ListParams| {
            let api = api.clone();
            async move { api.list_metadata(&p).await }
        };
        self.paged(selector, None, fetch, |n| Some(reduce::namespace(&n.metadata)))
            .await
            .map_err(|e| selector_error(e, selector))
    }

    /// Secrets by name, one field-selected list per managed name; also the retired names RBAC no
    /// longer lets us list.
    async fn secrets(&self, targets: &[String], inventory: &[String]) -> Result<(Vec<SecretState>, Vec<String>)> {
        let mut secrets = Vec::new();
        let mut unlistable = Vec::new();
        for name in managed_names(targets, inventory) {
            let field = format!("metadata.name={name}");
            match self
                .list_all::<Secret, _>(Some(&field), |s| Some(reduce::secret(s)))
                .await
            {
                Ok(found) => secrets.extend(found),
                // A retired name the RBAC no longer covers: it cannot be pruned, but it must not
                // stop the run either. A configured target is different: that is an error.
                Err(e) if !targets.contains(&name) && status(&e) == Some(403) => unlistable.push(name),
                Err(e) => return Err(e).with_context(|| format!("listing Secrets named {name}")),
            }
        }
        Ok((secrets, unlistable))
    }

    /// The configured ServiceAccounts: by name when every entry is a literal, else all of them.
    async fn configured_service_accounts(&self, policy: &Policy) -> Result<(Vec<ServiceAccountState>, Listed)> {
        if policy.service_accounts.is_empty() {
            return Ok((vec![], Listed::None));
        }
        if !policy.service_accounts.iter().all(Glob::is_literal) {
            return Ok((self.service_accounts().await?, Listed::All));
        }
        let mut found = Vec::new();
        for g in &policy.service_accounts {
            let field = format!("metadata.name={}", g.as_str());
            let page = self
                .list_all::<ServiceAccount, _>(Some(&field), |s| Some(reduce::service_account(s)))
                .await
                .with_context(|| format!("listing ServiceAccounts named {}", g.as_str()))?;
            found.extend(page);
        }
        Ok((found, Listed::Named))
    }

    /// Every ServiceAccount in the cluster: for a glob, or to check references before a delete.
    pub async fn service_accounts(&self) -> Result<Vec<ServiceAccountState>> {
        self.list_all::<ServiceAccount, _>(None, |s| Some(reduce::service_account(s)))
            .await
            .context("listing ServiceAccounts")
    }

    /// What could still name a delete candidate, read only when the plan would delete and only in
    /// the candidates' namespaces (one list per namespace and kind up to [`PER_NAMESPACE_LISTS`]
    /// namespaces, cluster-wide past it): every ServiceAccount there, the unfinished Pods naming
    /// one of `names`, and the workloads whose Pod templates do. Any failure (RBAC, a timeout, an
    /// error answer) is an answer, not a stop: `observed.pods` says why, and nothing is deleted
    /// this run while every other write happens.
    pub async fn references(&self, observed: &mut Observed, namespaces: &BTreeSet<String>, names: &[String]) {
        let read = async {
            let scopes = scopes(namespaces);
            if observed.service_accounts_listed != Listed::All {
                let mut found = Vec::new();
                for scope in &scopes {
                    found.extend(
                        self.list_in::<ServiceAccount, _>(*scope, |s| Some(reduce::service_account(s)))
                            .await
                            .context("listing ServiceAccounts")?,
                    );
                }
                // Fresh reads replace what the first pass had; the rest stays.
                let fresh: BTreeSet<(String, String)> =
                    found.iter().map(|s| (s.namespace.clone(), s.name.clone())).collect();
                observed
                    .service_accounts
                    .retain(|s| !fresh.contains(&(s.namespace.clone(), s.name.clone())));
                observed.service_accounts.extend(found);
            }
            let wanted: BTreeSet<String> = names.iter().cloned().collect();
            let mut pods = Vec::new();
            for scope in &scopes {
                pods.extend(
                    self.list_in::<Pod, _>(*scope, |p| reduce::pod(p, &wanted))
                        .await
                        .context("listing Pods")?,
                );
            }
            pods.retain(|p| namespaces.contains(&p.namespace));
            for scope in &scopes {
                self.templates_in(*scope, &wanted, namespaces, &mut pods).await?;
            }
            anyhow::Ok(pods)
        };
        let result = read.await;
        // Every ServiceAccount of the candidates' namespaces is known (or the deletes are refused).
        observed.service_accounts_listed = Listed::All;
        observed.pods = match result {
            Ok(pods) => Pods::Read(pods),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "reading references failed: nothing is deleted this run");
                Pods::Unreadable(format!("{e:#}"))
            }
        };
    }

    /// Workloads whose Pod templates name one of `names` directly, in `namespaces` only: a
    /// Deployment at zero replicas or a CronJob between runs makes Pods that will need the copy.
    async fn templates_in(
        &self,
        scope: Option<&str>,
        names: &BTreeSet<String>,
        namespaces: &BTreeSet<String>,
        out: &mut Vec<PodState>,
    ) -> Result<()> {
        use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
        use k8s_openapi::api::batch::v1::{CronJob, Job};
        let keep = |s: PodState| namespaces.contains(&s.namespace).then_some(s);
        macro_rules! kind {
            ($k:ty, $name:literal, |$o:ident| $spec:expr) => {{
                let found = self
                    .list_in::<$k, _>(scope, |$o: $k| {
                        let spec = $spec.cloned();
                        reduce::template($name, $o.metadata, spec.as_ref(), names).and_then(keep)
                    })
                    .await
                    .with_context(|| format!("listing {}s (their Pod templates)", $name))?;
                out.extend(found);
            }};
        }
        kind!(Deployment, "Deployment", |o| o.spec.template.spec.as_ref());
        kind!(StatefulSet, "StatefulSet", |o| o.spec.template.spec.as_ref());
        kind!(DaemonSet, "DaemonSet", |o| o.spec.template.spec.as_ref());
        kind!(ReplicaSet, "ReplicaSet", |o| o
            .spec
            .template
            .as_ref()
            .and_then(|t| t.spec.as_ref()));
        kind!(Job, "Job", |o| o.spec.as_ref().and_then(|s| s.template.spec.as_ref()));
        kind!(CronJob, "CronJob", |o| o
            .spec
            .job_template
            .spec
            .as_ref()
            .and_then(|j| j.template.spec.as_ref()));
        Ok(())
    }

    /// One paged list of whole objects in one namespace, or cluster-wide.
    async fn list_in<K, T>(&self, namespace: Option<&str>, keep: impl FnMut(K) -> Option<T>) -> Result<Vec<T>>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = match namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        self.list_api(api, None, keep).await
    }

    /// The inventory of names earlier runs managed; a missing ConfigMap is an empty inventory.
    async fn inventory(&self, namespace: &str) -> Result<Inventory> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let cm = api
            .get_opt(INVENTORY_NAME)
            .await
            .with_context(|| format!("reading the inventory ConfigMap {namespace}/{INVENTORY_NAME}"))?;
        Ok(cm.map(reduce::inventory).unwrap_or_default())
    }

    /// One paged list of whole objects, cluster-wide, optionally by field selector.
    pub async fn list_all<K, T>(&self, fields: Option<&str>, keep: impl FnMut(K) -> Option<T>) -> Result<Vec<T>>
    where
        K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    {
        self.list_api(Api::all(self.client.clone()), fields, keep).await
    }

    /// One paged list of whole objects through `api`, optionally by field selector.
    async fn list_api<K, T>(
        &self,
        api: Api<K>,
        fields: Option<&str>,
        keep: impl FnMut(K) -> Option<T>,
    ) -> Result<Vec<T>>
    where
        K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    {
        self.paged(
            None,
            fields,
            |p| {
                let api = api.clone();
                async move { api.list(&p).await }
            },
            keep,
        )
        .await
    }

    async fn paged<I, T, F, Fut>(
        &self,
        labels: Option<&str>,
        fields: Option<&str>,
        fetch: F,
        keep: impl FnMut(I) -> Option<T>,
    ) -> Result<Vec<T>>
    where
        I: Clone,
        F: FnMut(ListParams) -> Fut,
        Fut: Future<Output = kube::Result<ObjectList<I>>>,
    {
        paged(self.page_size, labels, fields, fetch, keep).await
    }
}

/// Pages through a list. Each page is reduced by `keep` and dropped before the next is fetched,
/// so memory follows the kept fields, not the raw objects. An expired continue token (410 Gone:
/// the API server compacted that snapshot) restarts the list from the beginning, once.
async fn paged<I, T, F, Fut>(
    page_size: u32,
    labels: Option<&str>,
    fields: Option<&str>,
    mut fetch: F,
    mut keep: impl FnMut(I) -> Option<T>,
) -> Result<Vec<T>>
where
    I: Clone,
    F: FnMut(ListParams) -> Fut,
    Fut: Future<Output = kube::Result<ObjectList<I>>>,
{
    let mut params = ListParams::default().limit(page_size);
    params.label_selector = labels.map(str::to_owned);
    params.field_selector = fields.map(str::to_owned);
    let mut out = Vec::new();
    let mut restarted = false;
    loop {
        let page = match fetch(params.clone()).await {
            Err(kube::Error::Api(s)) if s.code == 410 && params.continue_token.is_some() && !restarted => {
                tracing::warn!(
                    kept = out.len(),
                    "the list's continue token expired (410 Gone); listing again from the beginning, once"
                );
                restarted = true;
                out.clear();
                params.continue_token = None;
                continue;
            }
            page => page?,
        };
        out.extend(page.items.into_iter().filter_map(&mut keep));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params.continue_token = Some(token),
            None => return Ok(out),
        }
    }
}

fn status(e: &anyhow::Error) -> Option<u16> {
    match e.downcast_ref::<kube::Error>() {
        Some(kube::Error::Api(s)) => Some(s.code),
        _ => None,
    }
}

/// The API server judges label selectors; its 400 on the first list is a configuration error.
fn selector_error(e: anyhow::Error, selector: Option<&str>) -> anyhow::Error {
    match (selector, e.downcast_ref::<kube::Error>()) {
        (Some(sel), Some(kube::Error::Api(s))) if s.code == 400 => anyhow!(
            "PULLSECRET_NAMESPACE_SELECTOR: the API server rejected the label selector {sel:?}: {}",
            s.message
        ),
        _ => e.context("listing namespaces"),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use kube::api::{ListMeta, TypeMeta};
    use kube::core::Status;

    use super::*;

    fn page(items: &[u32], next: Option<&str>) -> kube::Result<ObjectList<u32>> {
        Ok(ObjectList {
            types: TypeMeta::default(),
            metadata: ListMeta {
                continue_: next.map(str::to_owned),
                ..ListMeta::default()
            },
            items: items.to_vec(),
        })
    }

    fn gone() -> kube::Result<ObjectList<u32>> {
        Err(kube::Error::Api(Box::new(Status {
            code: 410,
            reason: "Expired".into(),
            ..Status::default()
        })))
    }

    /// A fetch that answers from a script, recording the continue tokens it was asked for.
    async fn list(script: Vec<kube::Result<ObjectList<u32>>>) -> (Result<Vec<u32>>, Vec<Option<String>>) {
        let script = RefCell::new(script.into_iter());
        let asked = RefCell::new(Vec::new());
        let fetch = |p: ListParams| {
            asked.borrow_mut().push(p.continue_token.clone());
            let answer = script.borrow_mut().next().expect("an answer");
            async move { answer }
        };
        let out = paged(2, None, None, fetch, Some).await;
        (out, asked.into_inner())
    }

    #[tokio::test]
    async fn an_expired_continue_token_restarts_the_list_once() {
        let (out, asked) = list(vec![
            page(&[1, 2], Some("t1")),
            gone(),
            page(&[1, 2], Some("t2")),
            page(&[3], None),
        ])
        .await;
        assert_eq!(out.unwrap(), [1, 2, 3], "nothing twice, nothing lost");
        assert_eq!(asked, [None, Some("t1".into()), None, Some("t2".into())]);
    }

    #[tokio::test]
    async fn a_second_expiry_is_an_error() {
        let (out, _) = list(vec![page(&[1], Some("t1")), gone(), page(&[1], Some("t2")), gone()]).await;
        assert!(out.is_err());
    }
}
