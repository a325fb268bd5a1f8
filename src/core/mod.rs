//! The pure layer: names and labels, globs, the typed docker config, the kubelet's keyring rules,
//! the data passed between stages, reduce (API objects -> states), the planner and the summary.
//! Nothing here does I/O, and nothing names kube or tokio.

pub mod dockerconfig;
pub mod duration;
pub mod glob;
pub mod kubelet;
pub mod metrics;
pub mod model;
pub mod names;
pub mod plan;
pub mod reduce;
pub mod registry;
pub mod summary;
pub mod watch;

/// Field manager of every write, and the value of our managed-by label. Never change it:
/// server-side apply ownership is keyed by it.
pub const FIELD_MANAGER: &str = "pullsecret-reconciler";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// imagepullsecret-patcher's marker on the Secrets it made, for adoption.
pub const PATCHER: &str = "imagepullsecret-patcher";
pub const SOURCE_ANNOTATION: &str = "pullsecret-reconciler/source";
pub const RECORD_ANNOTATION: &str = "pullsecret-reconciler/image-pull-secrets";
pub const EXCLUDE_ANNOTATION: &str = "pullsecret-reconciler/exclude";
/// On a same-name Secret its owner keeps on purpose: `accept` makes the conflict info.
pub const CONFLICT_ANNOTATION: &str = "pullsecret-reconciler/conflict";
/// On each copy: the installation (its source namespace, which holds the Lease and the inventory)
/// that wrote it. A copy another installation wrote is a conflict: never updated, never pruned.
pub const INSTALLATION_ANNOTATION: &str = "pullsecret-reconciler/installation";
/// `"true"` on a copy of ours: prune never deletes it (references prune cannot see).
pub const KEEP_ANNOTATION: &str = "pullsecret-reconciler/keep";
pub const PATCHER_EXCLUDE_ANNOTATION: &str = "k8s.titansoft.com/imagepullsecret-patcher-exclude";
/// ConfigMap in the source namespace listing the target names earlier runs wrote.
pub const INVENTORY_NAME: &str = "pullsecret-reconciler-inventory";
pub const INVENTORY_KEY: &str = "names";
pub const DOCKERCONFIGJSON_TYPE: &str = "kubernetes.io/dockerconfigjson";
pub const DOCKERCONFIGJSON_KEY: &str = ".dockerconfigjson";
