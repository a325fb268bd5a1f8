//! The model's Pod-side states: stuck Pods for healing, and the records of copies held by Pods.

/// A Pending Pod one of whose containers (init or app) waits on ErrImagePull/ImagePullBackOff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StuckPod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub service_account: String,
    /// Every name in the Pod's `spec.imagePullSecrets` (fixed since its admission).
    pub pull_secrets: Vec<String>,
    /// `Kind/name` of its controller (ReplicaSet, StatefulSet, DaemonSet, Job); `None` otherwise.
    pub controller: Option<String>,
    /// What that controller's Pod template says, as read this run (`None`: not read).
    pub owner: Option<OwnerTemplate>,
}

/// What a stuck Pod's replacement would be made from (see [`crate::core::reduce::owner_template`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OwnerTemplate {
    /// The template's own `imagePullSecrets` (empty: admission copies the ServiceAccount's).
    pub pull_secrets: Vec<String>,
    /// For a Job: whether it absorbs one more failed Pod; `None` for other controllers.
    pub job_absorbs: Option<bool>,
}

/// A copy `namespace/name` kept for Pods alone at the last reference read: `before` = the
/// youngest holder's creation (Unix seconds), `pods` = the unfinished Pods of its namespace
/// created at or before it, then. No Pod created later can name a retired name (its
/// ServiceAccount and the inject policy no longer give it), so while that count holds, so do the
/// holders.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Held {
    pub namespace: String,
    pub name: String,
    pub before: i64,
    pub pods: usize,
}

/// How many of `namespace`'s unfinished Pods (`ages`: creation times by namespace) were created
/// at or before `before`: what a [`Held`] record counts, and what the next run compares with it.
pub fn created_by(ages: &std::collections::BTreeMap<String, Vec<i64>>, namespace: &str, before: i64) -> usize {
    ages.get(namespace)
        .map_or(0, |t| t.iter().filter(|c| **c <= before).count())
}
