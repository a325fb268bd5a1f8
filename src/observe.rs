//! Stage 3, observe (reads only): a constant number of paged, cluster-wide lists -> [`Observed`].
//! Each page is reduced to the model's plain states before the next is fetched.

use std::collections::BTreeSet;

use anyhow::{Context, Result, anyhow};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, ServiceAccount};
use kube::api::ListParams;
use kube::{Api, Client};
use serde::de::DeserializeOwned;

use crate::INVENTORY_NAME;
use crate::model::{Inventory, Observed, Pods, Policy, managed_names};
use crate::reduce;

/// Objects per list page.
pub const PAGE_SIZE: u32 = 500;

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
    /// targets plus the inventory), each with a field selector, so RBAC can be limited to them.
    pub async fn observe(&self, policy: &Policy, targets: &[String], source_namespace: &str) -> Result<Observed> {
        let inventory = self.inventory(source_namespace).await?;
        let selector = policy.namespace_selector.as_deref();
        let namespaces = match self
            .list_all::<Namespace, _>(selector, None, |n| Some(reduce::namespace(n)))
            .await
        {
            Ok(n) => n,
            Err(e) => return Err(selector_error(e, selector)),
        };
        let mut secrets = Vec::new();
        let mut unlistable = Vec::new();
        for name in managed_names(targets, &inventory.names) {
            let field = format!("metadata.name={name}");
            match self
                .list_all::<Secret, _>(None, Some(&field), |s| Some(reduce::secret(s)))
                .await
            {
                Ok(found) => secrets.extend(found),
                // A retired name the RBAC no longer covers: it cannot be pruned, but it must not
                // stop the run either. A configured target is different: that is an error.
                Err(e) if !targets.contains(&name) && status(&e) == Some(403) => unlistable.push(name),
                Err(e) => return Err(e).with_context(|| format!("listing Secrets named {name}")),
            }
        }
        let service_accounts = self
            .list_all::<ServiceAccount, _>(None, None, |s| Some(reduce::service_account(s)))
            .await
            .context("listing ServiceAccounts")?;
        Ok(Observed {
            namespaces,
            secrets,
            service_accounts,
            inventory,
            unlistable,
            pods: Pods::NotRead,
        })
    }

    /// Unfinished Pods naming one of `names`: one cluster-wide paged list, read only when the
    /// plan would delete. A refusal (RBAC) is an answer, not an error: nothing will be deleted.
    pub async fn pods(&self, names: &[String]) -> Result<Pods> {
        let names: BTreeSet<String> = names.iter().cloned().collect();
        match self.list_all::<Pod, _>(None, None, |p| reduce::pod(p, &names)).await {
            Ok(pods) => Ok(Pods::Read(pods)),
            Err(e) if status(&e) == Some(403) => Ok(Pods::Unreadable(format!("{e:#}"))),
            Err(e) => Err(e).context("listing Pods"),
        }
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

    /// One paged list, cluster-wide. Each page is reduced by `keep` and dropped before the next
    /// is fetched, so memory follows the kept fields, not the raw objects.
    async fn list_all<K, T>(
        &self,
        labels: Option<&str>,
        fields: Option<&str>,
        mut keep: impl FnMut(K) -> Option<T>,
    ) -> Result<Vec<T>>
    where
        K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let api: Api<K> = Api::all(self.client.clone());
        let mut params = ListParams::default().limit(self.page_size);
        params.label_selector = labels.map(str::to_owned);
        params.field_selector = fields.map(str::to_owned);
        let mut out = Vec::new();
        loop {
            let page = api.list(&params).await?;
            out.extend(page.items.into_iter().filter_map(&mut keep));
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params.continue_token = Some(token),
                None => return Ok(out),
            }
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
