//! Stage 3, observe (reads only): a constant number of paged, cluster-wide lists -> [`Observed`],
//! plain data that keeps only what the planner needs.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ListParams;
use kube::{Api, Client};
use serde::de::DeserializeOwned;

use crate::source::DOCKERCONFIGJSON_KEY;
use crate::{
    FIELD_MANAGER, INVENTORY_KEY, INVENTORY_NAME, MANAGED_BY_LABEL, PATCHER, RECORD_ANNOTATION, SOURCE_ANNOTATION,
};

const PAGE_SIZE: u32 = 500;
pub const EXCLUDE_ANNOTATION: &str = "pullsecret-reconciler/exclude";
pub const PATCHER_EXCLUDE_ANNOTATION: &str = "k8s.titansoft.com/imagepullsecret-patcher-exclude";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub namespaces: Vec<NamespaceState>,
    /// Every Secret, in any namespace, whose name is one we manage now or managed before.
    pub secrets: Vec<SecretState>,
    pub service_accounts: Vec<ServiceAccountState>,
    /// Target names earlier runs wrote (the inventory ConfigMap), so renames can be cleaned up.
    pub inventory: Vec<String>,
    /// Retired names (inventory only) whose Secrets we may not list: RBAC no longer names them.
    pub unlistable: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceState {
    pub name: String,
    pub terminating: bool,
    /// Annotated `pullsecret-reconciler/exclude: "true"` or imagepullsecret-patcher's equivalent.
    pub opted_out: bool,
}

#[derive(Clone, PartialEq, Eq)]
pub struct SecretState {
    pub namespace: String,
    pub name: String,
    pub resource_version: String,
    pub uid: String,
    pub type_: String,
    /// Carries `app.kubernetes.io/managed-by: pullsecret-reconciler`.
    pub ours: bool,
    /// Marked as created by imagepullsecret-patcher.
    pub patcher: bool,
    pub source_annotation: Option<String>,
    /// `.dockerconfigjson`, the only key we compare.
    pub data: Option<Vec<u8>>,
    /// Field managers other than ours, for conflict reports.
    pub managers: Vec<String>,
}

impl std::fmt::Debug for SecretState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretState")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("resource_version", &self.resource_version)
            .field("type_", &self.type_)
            .field("ours", &self.ours)
            .field("patcher", &self.patcher)
            .field(
                "data",
                &self.data.as_ref().map(|d| format!("<{} bytes redacted>", d.len())),
            )
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountState {
    pub namespace: String,
    pub name: String,
    pub resource_version: String,
    pub pull_secrets: Vec<String>,
    /// Entries we added, from the `pullsecret-reconciler/image-pull-secrets` annotation.
    pub recorded: Vec<String>,
    /// Other managers that own `imagePullSecrets` through server-side apply (GitOps tools).
    pub list_appliers: Vec<String>,
}

/// Reads everything the planner needs. `names` are the Secret names to look for: the configured
/// targets plus the inventory, each read with a name field selector so RBAC can be limited to them.
pub async fn observe(
    client: &Client,
    selector: Option<&str>,
    targets: &[String],
    names: &[String],
    inventory: Vec<String>,
) -> Result<Observed> {
    let namespaces = list_all::<Namespace, _>(client, selector, None, namespace_state)
        .await
        .context("listing namespaces")?;
    let mut secrets = Vec::new();
    let mut unlistable = Vec::new();
    for name in names {
        let field = format!("metadata.name={name}");
        match list_all::<Secret, _>(client, None, Some(&field), secret_state).await {
            Ok(found) => secrets.extend(found),
            // A retired name the RBAC no longer covers: it cannot be pruned, but it must not
            // stop the run either. A configured target is different: that is an error.
            Err(e) if !targets.contains(name) && is_forbidden(&e) => unlistable.push(name.clone()),
            Err(e) => return Err(e).with_context(|| format!("listing Secrets named {name}")),
        }
    }
    let service_accounts = list_all::<ServiceAccount, _>(client, None, None, service_account_state)
        .await
        .context("listing ServiceAccounts")?;
    Ok(Observed {
        namespaces,
        secrets,
        service_accounts,
        inventory,
        unlistable,
    })
}

/// Reads the inventory of names earlier runs managed; a missing ConfigMap is an empty inventory.
pub async fn read_inventory(client: &Client, namespace: &str) -> Result<Vec<String>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cm = api
        .get_opt(INVENTORY_NAME)
        .await
        .with_context(|| format!("reading the inventory ConfigMap {namespace}/{INVENTORY_NAME}"))?;
    Ok(cm
        .and_then(|cm| cm.data)
        .and_then(|d| d.get(INVENTORY_KEY).cloned())
        .map(|s| split_list(&s))
        .unwrap_or_default())
}

fn is_forbidden(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<kube::Error>(), Some(kube::Error::Api(s)) if s.code == 403)
}

pub fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One paged list, cluster-wide. Each page is reduced by `keep` and dropped before the next is
/// fetched, so memory follows the kept fields, not the raw objects.
async fn list_all<K, T>(client: &Client, labels: Option<&str>, fields: Option<&str>, keep: fn(K) -> T) -> Result<Vec<T>>
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    let mut params = ListParams::default().limit(PAGE_SIZE);
    params.label_selector = labels.map(str::to_owned);
    params.field_selector = fields.map(str::to_owned);
    let mut out = Vec::new();
    loop {
        let page = api.list(&params).await?;
        out.extend(page.items.into_iter().map(keep));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params.continue_token = Some(token),
            None => return Ok(out),
        }
    }
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str)
}

fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref().and_then(|a| a.get(key)).map(String::as_str)
}

fn namespace_state(ns: Namespace) -> NamespaceState {
    let meta = &ns.metadata;
    let terminating =
        meta.deletion_timestamp.is_some() || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    let flag = |k| annotation(meta, k).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    NamespaceState {
        name: meta.name.clone().unwrap_or_default(),
        terminating,
        opted_out: flag(EXCLUDE_ANNOTATION) || flag(PATCHER_EXCLUDE_ANNOTATION),
    }
}

fn secret_state(s: Secret) -> SecretState {
    let meta = &s.metadata;
    let managers = other_managers(meta, |_| true);
    let patcher = label(meta, MANAGED_BY_LABEL) == Some(PATCHER) || annotation(meta, MANAGED_BY_LABEL) == Some(PATCHER);
    SecretState {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        type_: s.type_.clone().unwrap_or_else(|| "Opaque".into()),
        ours: label(meta, MANAGED_BY_LABEL) == Some(FIELD_MANAGER),
        patcher,
        source_annotation: annotation(meta, SOURCE_ANNOTATION).map(str::to_owned),
        data: s.data.and_then(|mut d| d.remove(DOCKERCONFIGJSON_KEY)).map(|b| b.0),
        managers,
    }
}

pub(crate) fn service_account_state(sa: ServiceAccount) -> ServiceAccountState {
    let meta = &sa.metadata;
    let list_appliers = other_managers(meta, |entry| {
        entry.operation.as_deref() == Some("Apply")
            && entry
                .fields_v1
                .as_ref()
                .and_then(|f| f.0.as_object())
                .is_some_and(|f| f.contains_key("f:imagePullSecrets"))
    });
    ServiceAccountState {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        pull_secrets: sa
            .image_pull_secrets
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.name)
            .collect(),
        recorded: annotation(meta, RECORD_ANNOTATION).map(split_list).unwrap_or_default(),
        list_appliers,
    }
}

type ManagedField = k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

fn other_managers(meta: &ObjectMeta, keep: impl Fn(&ManagedField) -> bool) -> Vec<String> {
    let mut names: BTreeMap<String, ()> = BTreeMap::new();
    for entry in meta.managed_fields.iter().flatten() {
        if let Some(m) = entry.manager.as_deref().filter(|m| *m != FIELD_MANAGER)
            && keep(entry)
        {
            names.insert(m.to_owned(), ());
        }
    }
    names.into_keys().collect()
}
