//! Apply's I/O: [`Cluster`] over the Kubernetes API. One method, one request; every write carries
//! our field manager and, in a server-side dry run, `dryRun=All`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, ServiceAccount};
use kube::api::{DeleteParams, EvictParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::apply::{ApiError, ApiResult, Cluster};
use crate::core::model::{Credential, Failure, Inventory, ServiceAccountState};
use crate::core::{
    DOCKERCONFIGJSON_KEY, DOCKERCONFIGJSON_TYPE, FIELD_MANAGER, INSTALLATION_ANNOTATION, INVENTORY_KEY, INVENTORY_NAME,
    MANAGED_BY_LABEL, RECORD_ANNOTATION, SOURCE_ANNOTATION, reduce,
};

pub struct KubeCluster {
    pub client: Client,
    /// The same connection without kube's automatic retries of 429: an eviction a
    /// PodDisruptionBudget refuses is reported, never retried in a loop.
    pub once: Client,
    /// Where the inventory lives: the source namespace.
    pub namespace: String,
    /// Send every write with `dryRun=All`.
    pub dry_run: bool,
}

fn api_error(e: kube::Error) -> ApiError {
    match e {
        kube::Error::Api(s) => {
            let details = s.details.as_ref();
            // An eviction a PodDisruptionBudget refuses says so in its causes; other 429s throttle.
            let budget = details.is_some_and(|d| d.causes.iter().any(|c| c.reason == "DisruptionBudget"));
            let reason = match (budget, s.reason.is_empty()) {
                (true, _) => "DisruptionBudget",
                (false, true) => "ApiError",
                (false, false) => s.reason.as_str(),
            };
            ApiError {
                status: Some(s.code),
                failure: Failure::new(reason, s.message.clone()),
                retry_after: details
                    .map(|d| d.retry_after_seconds)
                    .filter(|s| *s > 0)
                    .map(|s| std::time::Duration::from_secs(u64::from(s))),
            }
        }
        other => ApiError {
            status: None,
            failure: Failure::new("RequestFailed", format!("{other:#}")),
            retry_after: None,
        },
    }
}

impl KubeCluster {
    fn patch_params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            dry_run: self.dry_run,
            ..PatchParams::default()
        }
    }

    fn inventory_api(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
}

impl Cluster for KubeCluster {
    async fn apply_secret(
        &self,
        namespace: &str,
        name: &str,
        credential: &Credential,
        resource_version: Option<&str>,
    ) -> ApiResult<()> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let mut meta = json!({
            "name": name,
            "labels": { MANAGED_BY_LABEL: FIELD_MANAGER },
            "annotations": { SOURCE_ANNOTATION: credential.origin, INSTALLATION_ANNOTATION: self.namespace },
        });
        let mut params = PatchParams::apply(FIELD_MANAGER);
        params.dry_run = self.dry_run;
        if let Some(rv) = resource_version {
            // Forced, so an adopted Secret's fields become ours; the resourceVersion makes sure it
            // is still the object we looked at (a replaced or edited Secret fails with 409 instead).
            meta["resourceVersion"] = Value::String(rv.to_owned());
            params = params.force();
        }
        let body = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta,
            "type": DOCKERCONFIGJSON_TYPE,
            "data": { DOCKERCONFIGJSON_KEY: STANDARD.encode(&credential.data) },
        });
        api.patch(name, &params, &Patch::Apply(body))
            .await
            .map(drop)
            .map_err(api_error)
    }

    async fn delete_secret(&self, namespace: &str, name: &str, resource_version: &str, uid: &str) -> ApiResult<()> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let params = DeleteParams {
            dry_run: self.dry_run,
            preconditions: Some(Preconditions {
                resource_version: Some(resource_version.to_owned()),
                uid: Some(uid.to_owned()),
            }),
            ..DeleteParams::default()
        };
        api.delete(name, &params).await.map(drop).map_err(api_error)
    }

    async fn read_service_account(&self, namespace: &str, name: &str) -> ApiResult<Option<ServiceAccountState>> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        api.get_opt(name)
            .await
            .map(|sa| sa.map(reduce::service_account))
            .map_err(api_error)
    }

    async fn write_service_account(
        &self,
        namespace: &str,
        name: &str,
        resource_version: &str,
        list: &[String],
        recorded: &[String],
    ) -> ApiResult<()> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let nullable = |v: Value, empty: bool| if empty { Value::Null } else { v };
        let body = json!({
            "metadata": {
                "resourceVersion": resource_version,
                "annotations": { RECORD_ANNOTATION: nullable(Value::String(recorded.join(",")), recorded.is_empty()) },
            },
            "imagePullSecrets": nullable(list.iter().map(|n| json!({ "name": n })).collect(), list.is_empty()),
        });
        api.patch(name, &self.patch_params(), &Patch::Merge(body))
            .await
            .map(drop)
            .map_err(api_error)
    }

    async fn read_inventory(&self) -> ApiResult<Option<Inventory>> {
        self.inventory_api()
            .get_opt(INVENTORY_NAME)
            .await
            .map(|cm| cm.map(reduce::inventory))
            .map_err(api_error)
    }

    async fn write_inventory(&self, names: &[String], resource_version: Option<&str>) -> ApiResult<()> {
        let api = self.inventory_api();
        let data = json!({ INVENTORY_KEY: names.join(",") });
        let result = match resource_version {
            // Create only: a ConfigMap made meanwhile by another run fails with 409 (AlreadyExists).
            None => {
                let cm: ConfigMap = serde_json::from_value(json!({
                    "metadata": {
                        "name": INVENTORY_NAME,
                        "namespace": self.namespace,
                        "labels": { MANAGED_BY_LABEL: FIELD_MANAGER },
                    },
                    "data": data,
                }))
                .map_err(|e| ApiError {
                    status: None,
                    failure: Failure::new("InternalError", e.to_string()),
                    retry_after: None,
                })?;
                let params = PostParams {
                    dry_run: self.dry_run,
                    field_manager: Some(FIELD_MANAGER.into()),
                };
                api.create(&params, &cm).await.map(drop)
            }
            Some(rv) => {
                let body = json!({ "metadata": { "resourceVersion": rv }, "data": data });
                api.patch(INVENTORY_NAME, &self.patch_params(), &Patch::Merge(body))
                    .await
                    .map(drop)
            }
        };
        result.map_err(api_error)
    }

    async fn evict_pod(&self, namespace: &str, name: &str, uid: &str) -> ApiResult<()> {
        let api: Api<Pod> = Api::namespaced(self.once.clone(), namespace);
        let params = EvictParams {
            delete_options: Some(DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(uid.to_owned()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            }),
            post_options: PostParams {
                dry_run: self.dry_run,
                field_manager: Some(FIELD_MANAGER.into()),
            },
        };
        api.evict(name, &params).await.map(drop).map_err(api_error)
    }
}

/// Records the [`crate::core::model::Held`] copies in the inventory ConfigMap (key `held`), with a
/// merge patch of that key alone: a cache (a lost or stale record only means a read), so it needs
/// no resourceVersion. A missing inventory is left alone (the next run records again).
pub async fn write_held(client: &Client, namespace: &str, records: &[crate::core::model::Held]) -> anyhow::Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let body = json!({ "data": { reduce::HELD_KEY: reduce::held_data(records) } });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    match api.patch(INVENTORY_NAME, &params, &Patch::Merge(body)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
