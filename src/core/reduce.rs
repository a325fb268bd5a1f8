//! Pure: API objects -> the model's plain states, keeping only what the planner needs. Used by
//! observe for every list page and by apply when it re-reads an object after a conflict.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodSpec, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};

use crate::core::model::{
    Held, Inventory, NamespaceState, OwnerTemplate, PodState, SecretState, ServiceAccountState, StuckPod,
};
use crate::core::{
    CONFLICT_ANNOTATION, DOCKERCONFIGJSON_KEY, EXCLUDE_ANNOTATION, FIELD_MANAGER, INSTALLATION_ANNOTATION,
    INVENTORY_KEY, KEEP_ANNOTATION, MANAGED_BY_LABEL, PATCHER, PATCHER_EXCLUDE_ANNOTATION, RECORD_ANNOTATION,
    SOURCE_ANNOTATION,
};

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str)
}

fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref().and_then(|a| a.get(key)).map(String::as_str)
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// From metadata alone (namespaces are listed as `PartialObjectMetadata`): a namespace is
/// Terminating exactly when it carries a deletion timestamp.
pub fn namespace(meta: &ObjectMeta) -> NamespaceState {
    let terminating = meta.deletion_timestamp.is_some();
    let flag = |k| annotation(meta, k).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    NamespaceState {
        name: meta.name.clone().unwrap_or_default(),
        terminating,
        opted_out: flag(EXCLUDE_ANNOTATION) || flag(PATCHER_EXCLUDE_ANNOTATION),
    }
}

pub fn secret(s: Secret) -> SecretState {
    let meta = &s.metadata;
    let managers = other_managers(meta, |_| true);
    let patcher = label(meta, MANAGED_BY_LABEL) == Some(PATCHER) || annotation(meta, MANAGED_BY_LABEL) == Some(PATCHER);
    SecretState {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        type_: s.type_.clone().unwrap_or_else(|| "Opaque".into()),
        // Ours: our label *and* our field manager owning the data. A label alone is copied along
        // by `kubectl get -o yaml | kubectl apply` into another namespace or name; such a copy is
        // someone else's (a conflict where we want a Secret, never pruned).
        ours: label(meta, MANAGED_BY_LABEL) == Some(FIELD_MANAGER) && owns_data(meta),
        patcher,
        conflict_accepted: annotation(meta, CONFLICT_ANNOTATION)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("accept")),
        installation: annotation(meta, INSTALLATION_ANNOTATION)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
        keep: annotation(meta, KEEP_ANNOTATION).is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
        source_annotation: annotation(meta, SOURCE_ANNOTATION).map(str::to_owned),
        data: s.data.and_then(|mut d| d.remove(DOCKERCONFIGJSON_KEY)).map(|b| b.0),
        managers,
    }
}

pub fn service_account(sa: ServiceAccount) -> ServiceAccountState {
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

/// A Pod that has not finished and names one of `names` in `spec.imagePullSecrets`; `None` for
/// every other Pod, so a page of Pods shrinks to the few that matter.
pub fn pod(p: Pod, names: &BTreeSet<String>) -> Option<PodState> {
    let finished = matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    if finished {
        return None;
    }
    let secrets = secrets_used(p.spec.as_ref()?, names);
    (!secrets.is_empty()).then(|| PodState {
        kind: "Pod",
        created: created(&p.metadata),
        namespace: p.metadata.namespace.unwrap_or_default(),
        name: p.metadata.name.unwrap_or_default(),
        secrets,
    })
}

/// Creation time, Unix seconds (0 when unknown).
pub fn created(meta: &ObjectMeta) -> i64 {
    meta.creation_timestamp.as_ref().map_or(0, |t| t.0.as_second())
}

/// The managed names among every Secret a Pod spec uses, in order, once each: its
/// `imagePullSecrets`, `secret` and `projected` volumes (a dockerconfigjson mounted for Kaniko,
/// BuildKit, Tekton or a CI runner), and its containers' (init, ephemeral) `envFrom[].secretRef`
/// and `env[].valueFrom.secretKeyRef`. Any of them keeps a copy alive: the kubelet cannot start the
/// Pod, or restart its containers, without the Secret.
pub fn secrets_used(spec: &PodSpec, names: &BTreeSet<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |n: Option<&String>| {
        if let Some(n) = n
            && names.contains(n)
            && !out.contains(n)
        {
            out.push(n.clone());
        }
    };
    for r in spec.image_pull_secrets.iter().flatten() {
        add(Some(&r.name));
    }
    for v in spec.volumes.iter().flatten() {
        add(v.secret.as_ref().and_then(|s| s.secret_name.as_ref()));
        let projected = v.projected.as_ref().and_then(|p| p.sources.as_ref());
        for source in projected.into_iter().flatten() {
            add(source.secret.as_ref().map(|s| &s.name));
        }
    }
    let containers = spec.containers.iter().chain(spec.init_containers.iter().flatten());
    let envs = containers.map(|c| (c.env.as_ref(), c.env_from.as_ref())).chain(
        spec.ephemeral_containers
            .iter()
            .flatten()
            .map(|c| (c.env.as_ref(), c.env_from.as_ref())),
    );
    for (env, env_from) in envs {
        for e in env.into_iter().flatten() {
            add(e
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
                .map(|k| &k.name));
        }
        for e in env_from.into_iter().flatten() {
            add(e.secret_ref.as_ref().map(|r| &r.name));
        }
    }
    out
}

/// The waiting reasons of a container whose image the kubelet cannot pull.
pub const STUCK_REASONS: &[&str] = &["ImagePullBackOff", "ErrImagePull"];

/// A Pod's containers (init or app) waiting on an image pull: what `explain --stuck` reduces each
/// page to, and what makes a Pod stuck for healing.
pub fn stuck_containers(pod: &Pod) -> BTreeSet<String> {
    let Some(status) = &pod.status else {
        return BTreeSet::new();
    };
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .filter(|c| {
            c.state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref())
                .is_some_and(|r| STUCK_REASONS.contains(&r))
        })
        .map(|c| c.name.clone())
        .collect()
}

/// A Pending Pod with a container (init or app) waiting on an image pull; `None` otherwise.
pub fn stuck_pod(p: Pod) -> Option<StuckPod> {
    let pending = p.status.as_ref()?.phase.as_deref() == Some("Pending");
    if !pending || stuck_containers(&p).is_empty() || p.metadata.deletion_timestamp.is_some() {
        return None;
    }
    // Only these controllers make a replacement with the same template when a Pod is evicted.
    let controller = p
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .filter(|o| matches!(o.kind.as_str(), "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job"))
        .map(|o| format!("{}/{}", o.kind, o.name));
    let spec = p.spec.unwrap_or_default();
    Some(StuckPod {
        namespace: p.metadata.namespace.unwrap_or_default(),
        name: p.metadata.name.unwrap_or_default(),
        uid: p.metadata.uid.unwrap_or_default(),
        service_account: spec.service_account_name.unwrap_or_else(|| "default".into()),
        pull_secrets: spec.image_pull_secrets.into_iter().flatten().map(|r| r.name).collect(),
        controller,
        owner: None,
    })
}

/// What a controller's Pod template says about its next Pod: its `imagePullSecrets`, and for a
/// Job (`job` = (spec, status)) whether one more failed Pod is absorbed (an evicted Pod counts as
/// failed): backoff left (`status.failed` + 1 ≤ `backoffLimit`, default 6; per-index limits are
/// not judged), or a `podFailurePolicy` rule that ignores `DisruptionTarget`.
pub fn owner_template(
    template: Option<&PodSpec>,
    job: Option<(
        &k8s_openapi::api::batch::v1::JobSpec,
        Option<&k8s_openapi::api::batch::v1::JobStatus>,
    )>,
) -> OwnerTemplate {
    let pull_secrets = template
        .and_then(|s| s.image_pull_secrets.as_ref())
        .into_iter()
        .flatten()
        .map(|r| r.name.clone())
        .collect();
    let job_absorbs = job.map(|(spec, status)| {
        let ignores_disruption = spec.pod_failure_policy.iter().flat_map(|p| &p.rules).any(|r| {
            r.action == "Ignore"
                && r.on_pod_conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "DisruptionTarget" && c.status.as_deref().unwrap_or("True") == "True")
        });
        let failed = status.and_then(|s| s.failed).unwrap_or(0);
        let backoff_left = spec.backoff_limit_per_index.is_none() && failed < spec.backoff_limit.unwrap_or(6);
        ignores_disruption || backoff_left
    });
    OwnerTemplate {
        pull_secrets,
        job_absorbs,
    }
}

/// A workload whose Pod template names one of `names` directly (its Pods will, whatever the
/// ServiceAccount says); `None` otherwise.
pub fn template(
    kind: &'static str,
    meta: ObjectMeta,
    spec: Option<&PodSpec>,
    names: &BTreeSet<String>,
) -> Option<PodState> {
    let secrets = secrets_used(spec?, names);
    (!secrets.is_empty()).then(|| PodState {
        kind,
        created: 0,
        namespace: meta.namespace.unwrap_or_default(),
        name: meta.name.unwrap_or_default(),
        secrets,
    })
}

pub fn inventory(cm: ConfigMap) -> Inventory {
    let data = |key: &str| cm.data.as_ref().and_then(|d| d.get(key)).map(|s| split_list(s));
    Inventory {
        names: data(INVENTORY_KEY).unwrap_or_default(),
        // A cache: an entry that does not parse is dropped (its copy is simply read again).
        held: data(HELD_KEY)
            .unwrap_or_default()
            .iter()
            .filter_map(|e| held(e))
            .collect(),
        resource_version: cm.metadata.resource_version.clone(),
    }
}

/// The inventory's key for [`Held`] records: `namespace/name@before#pods`, comma-separated.
pub const HELD_KEY: &str = "held";

fn held(entry: &str) -> Option<Held> {
    let (copy, rest) = entry.split_once('@')?;
    let (namespace, name) = copy.split_once('/')?;
    let (before, pods) = rest.split_once('#')?;
    Some(Held {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        before: before.parse().ok()?,
        pods: pods.parse().ok()?,
    })
}

/// The `held` value for `records` (sorted, so equal sets write equal text).
pub fn held_data(records: &[Held]) -> String {
    let mut sorted: Vec<&Held> = records.iter().collect();
    sorted.sort();
    let entries: Vec<String> = sorted
        .iter()
        .map(|h| format!("{}/{}@{}#{}", h.namespace, h.name, h.before, h.pods))
        .collect();
    entries.join(",")
}

/// Whether our field manager owns the Secret's `data` (our server-side apply wrote it).
fn owns_data(meta: &ObjectMeta) -> bool {
    meta.managed_fields.iter().flatten().any(|entry| {
        entry.manager.as_deref() == Some(FIELD_MANAGER)
            && entry
                .fields_v1
                .as_ref()
                .and_then(|f| f.0.as_object())
                .is_some_and(|f| f.contains_key("f:data"))
    })
}

fn other_managers(meta: &ObjectMeta, keep: impl Fn(&ManagedFieldsEntry) -> bool) -> Vec<String> {
    let mut names = BTreeSet::new();
    for entry in meta.managed_fields.iter().flatten() {
        if let Some(m) = entry.manager.as_deref().filter(|m| *m != FIELD_MANAGER)
            && keep(entry)
        {
            names.insert(m.to_owned());
        }
    }
    names.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{LocalObjectReference, PodSpec, PodStatus};

    fn labelled_secret(manager: &str) -> Secret {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "regcred", "namespace": "a",
                "labels": { MANAGED_BY_LABEL: FIELD_MANAGER },
                "managedFields": [{ "manager": manager, "operation": "Apply", "apiVersion": "v1",
                    "fieldsType": "FieldsV1", "fieldsV1": { "f:data": { "f:.dockerconfigjson": {} } } }]
            },
            "type": "kubernetes.io/dockerconfigjson"
        }))
        .unwrap()
    }

    #[test]
    fn our_label_alone_does_not_make_a_secret_ours() {
        assert!(secret(labelled_secret(FIELD_MANAGER)).ours, "our apply wrote its data");
        let copy = secret(labelled_secret("kubectl-client-side-apply"));
        assert!(!copy.ours, "a hand-made copy carries the label, not our ownership");
        assert_eq!(copy.managers, ["kubectl-client-side-apply"]);
    }

    fn pod_with(phase: &str, secrets: &[&str]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some("a".into()),
                name: Some("p".into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                image_pull_secrets: Some(
                    secrets
                        .iter()
                        .map(|n| LocalObjectReference { name: n.to_string() })
                        .collect(),
                ),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn only_unfinished_pods_naming_managed_secrets_are_kept() {
        let names: BTreeSet<String> = ["regcred".to_string()].into();
        let kept = pod(pod_with("Running", &["other", "regcred"]), &names).unwrap();
        assert_eq!(kept.secrets, vec!["regcred"]);
        assert!(pod(pod_with("Pending", &["regcred"]), &names).is_some());
        assert!(pod(pod_with("Succeeded", &["regcred"]), &names).is_none());
        assert!(pod(pod_with("Failed", &["regcred"]), &names).is_none());
        assert!(pod(pod_with("Running", &["other"]), &names).is_none());
    }

    #[test]
    fn every_way_a_pod_uses_a_secret_is_a_reference() {
        let names: BTreeSet<String> = ["pull", "kaniko", "projected", "key", "from", "init", "debug"]
            .map(String::from)
            .into();
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "imagePullSecrets": [{ "name": "pull" }, { "name": "theirs" }],
            "volumes": [
                { "name": "docker", "secret": { "secretName": "kaniko" } },
                { "name": "p", "projected": { "sources": [
                    { "configMap": { "name": "cm" } },
                    { "secret": { "name": "projected" } }
                ] } },
                { "name": "empty", "emptyDir": {} }
            ],
            "containers": [{
                "name": "c",
                "env": [
                    { "name": "A", "value": "x" },
                    { "name": "B", "valueFrom": { "secretKeyRef": { "name": "key", "key": ".dockerconfigjson" } } }
                ],
                "envFrom": [{ "secretRef": { "name": "from" } }, { "configMapRef": { "name": "cm" } }]
            }],
            "initContainers": [{ "name": "i", "envFrom": [{ "secretRef": { "name": "init" } }] }],
            "ephemeralContainers": [{
                "name": "e",
                "env": [{ "name": "C", "valueFrom": { "secretKeyRef": { "name": "debug", "key": "k" } } }]
            }]
        }))
        .unwrap();
        assert_eq!(
            secrets_used(&spec, &names),
            ["pull", "kaniko", "projected", "key", "from", "init", "debug"]
        );
        let template = template("Job", ObjectMeta::default(), Some(&spec), &names).unwrap();
        assert_eq!(template.secrets.len(), 7, "templates count every kind too");
        let only_volume: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [{ "name": "c" }],
            "volumes": [{ "name": "docker", "secret": { "secretName": "kaniko" } }, { "name": "again", "secret": { "secretName": "kaniko" } }]
        }))
        .unwrap();
        assert_eq!(secrets_used(&only_volume, &names), ["kaniko"], "once each");
    }

    #[test]
    fn a_job_absorbs_an_eviction_with_backoff_left_or_a_policy_that_ignores_disruption() {
        use k8s_openapi::api::batch::v1::{JobSpec, JobStatus};
        let job = |spec: serde_json::Value, failed: i32| -> (JobSpec, JobStatus) {
            let mut spec = spec;
            spec["template"] = serde_json::json!({ "spec": { "containers": [{ "name": "c" }] } });
            (
                serde_json::from_value(spec).unwrap(),
                JobStatus {
                    failed: Some(failed),
                    ..JobStatus::default()
                },
            )
        };
        let absorbs = |(spec, status): (JobSpec, JobStatus)| {
            owner_template(spec.template.spec.as_ref(), Some((&spec, Some(&status)))).job_absorbs
        };
        assert_eq!(
            absorbs(job(serde_json::json!({}), 5)),
            Some(true),
            "default backoffLimit 6"
        );
        assert_eq!(
            absorbs(job(serde_json::json!({}), 6)),
            Some(false),
            "the seventh failure fails it"
        );
        assert_eq!(absorbs(job(serde_json::json!({ "backoffLimit": 0 }), 0)), Some(false));
        let ignore = serde_json::json!({ "backoffLimit": 0, "podFailurePolicy": { "rules": [
            { "action": "Ignore", "onPodConditions": [{ "type": "DisruptionTarget" }] }] } });
        assert_eq!(absorbs(job(ignore, 0)), Some(true));
        let per_index = serde_json::json!({ "backoffLimitPerIndex": 1, "completionMode": "Indexed", "completions": 2 });
        assert_eq!(
            absorbs(job(per_index, 0)),
            Some(false),
            "per-index limits: not judged, left alone"
        );
        let spec = PodSpec {
            image_pull_secrets: Some(vec![LocalObjectReference { name: "team".into() }]),
            ..PodSpec::default()
        };
        let t = owner_template(Some(&spec), None);
        assert_eq!((t.pull_secrets, t.job_absorbs), (vec!["team".to_string()], None));
    }

    #[test]
    fn held_records_round_trip_and_bad_entries_are_dropped() {
        let records = vec![
            Held {
                namespace: "b".into(),
                name: "old".into(),
                before: 1_700_000_000,
                pods: 12,
            },
            Held {
                namespace: "a".into(),
                name: "old".into(),
                before: 5,
                pods: 1,
            },
        ];
        let text = held_data(&records);
        assert_eq!(text, "a/old@5#1,b/old@1700000000#12", "sorted");
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "data": { "names": "old", "held": format!("{text},garbage,c/x@no#1") }
        }))
        .unwrap();
        let parsed = inventory(cm).held;
        assert_eq!(parsed.len(), 2);
        assert_eq!(held_data(&parsed), text);
    }
}
