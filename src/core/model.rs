//! Data at the bottom (pure, no I/O): what the stages hand each other — the policy, credentials,
//! the observed state, the plan and its actions, and the outcomes of applying it. Every stage
//! imports this module; no stage imports another stage's internals.

use std::collections::BTreeSet;
use std::fmt;

mod pods;
pub use pods::{Held, OwnerTemplate, StuckPod, created_by};

use crate::core::glob::Glob;

// ---------------------------------------------------------------------------------------------
// Policy: the part of the configuration the planner decides with.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adopt {
    Patcher,
    All,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRun {
    /// Write for real.
    Off,
    /// Plan and report; send nothing.
    Client,
    /// Send every write with `dryRun=All`: the API server checks it and persists nothing.
    Server,
}

impl DryRun {
    pub fn as_str(self) -> &'static str {
        match self {
            DryRun::Off => "off",
            DryRun::Client => "client",
            DryRun::Server => "server",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub include: Vec<Glob>,
    pub exclude: Vec<Glob>,
    /// Evaluated by the API server; here only to name it in reports.
    pub namespace_selector: Option<String>,
    /// Empty = leave ServiceAccounts alone.
    pub service_accounts: Vec<Glob>,
    pub adopt: Adopt,
    pub prune: bool,
    /// The most namespaces one run may deselect; 0 = no limit.
    pub prune_limit: usize,
    /// Evict stuck controller-owned Pods admitted before their ServiceAccount listed our names.
    pub heal: Heal,
    /// The most Pods one run may evict; 0 = no limit.
    pub heal_limit: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Heal {
    #[default]
    Off,
    Evict,
}

impl Policy {
    /// The selection as the user wrote it, for messages.
    pub fn describe_selection(&self) -> String {
        let list = |g: &[Glob]| g.iter().map(Glob::as_str).collect::<Vec<_>>().join(",");
        let mut s = format!(
            "PULLSECRET_NAMESPACES={:?}, PULLSECRET_EXCLUDE_NAMESPACES={:?}",
            list(&self.include),
            list(&self.exclude)
        );
        if let Some(sel) = &self.namespace_selector {
            s.push_str(&format!(", PULLSECRET_NAMESPACE_SELECTOR={sel:?}"));
        }
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Credentials.

/// The validated bytes of one target Secret's `.dockerconfigjson`, and where they came from.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// Name of the Secret written into every selected namespace.
    pub target: String,
    /// Human-readable origin, stored in the `pullsecret-reconciler/source` annotation.
    pub origin: String,
    /// The source Secret itself (namespace, name), which must never be overwritten by its own copy.
    pub source_secret: Option<(String, String)>,
    pub data: Vec<u8>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("target", &self.target)
            .field("origin", &self.origin)
            .field("source_secret", &self.source_secret)
            .field("data", &format_args!("<{} bytes redacted>", self.data.len()))
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Observed state: only the fields the planner needs.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub namespaces: Vec<NamespaceState>,
    /// Every Secret, in any namespace, whose name is one we manage now or managed before.
    pub secrets: Vec<SecretState>,
    pub service_accounts: Vec<ServiceAccountState>,
    /// Target names earlier runs wrote (the inventory ConfigMap), so renames can be cleaned up.
    pub inventory: Inventory,
    /// Retired names (inventory only) whose Secrets we may not list: RBAC no longer names them.
    pub unlistable: Vec<String>,
    /// Unfinished Pods that name a managed Secret; read only when the plan has a delete.
    pub pods: Pods,
    /// Which ServiceAccounts were listed: the plan asks for all of them before it deletes.
    pub service_accounts_listed: Listed,
    /// Pending Pods with a container waiting on an image pull; read only when healing is on.
    pub stuck: Vec<StuckPod>,
    /// Why the Pending Pods could not be listed (RBAC, a timeout): healing evicts nothing then.
    pub stuck_unreadable: Option<String>,
    /// This installation: the source namespace (empty: not known, every copy of ours counts).
    pub installation: String,
    /// Copies whose recorded Pod holders (see [`Held`]) are all still there: kept unread.
    pub held_over: BTreeSet<(String, String)>,
    /// Each namespace's unfinished Pods' creation times (Unix seconds), when read this run.
    pub pod_ages: Option<std::collections::BTreeMap<String, Vec<i64>>>,
}

/// How ServiceAccounts were read: only what the configuration names, or all of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Listed {
    /// `PULLSECRET_SERVICE_ACCOUNTS` is empty: none were needed.
    None,
    /// Every entry is a literal name: one list per name, with a name field selector.
    Named,
    /// A glob asked for all, or the run checks references before a delete.
    #[default]
    All,
}

impl Listed {
    pub fn as_str(self) -> &'static str {
        match self {
            Listed::None => "none",
            Listed::Named => "named",
            Listed::All => "all",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub names: Vec<String>,
    /// Copies kept for Pods alone when references were last read (key `held`).
    pub held: Vec<Held>,
    /// `None`: the ConfigMap does not exist (the first write creates it).
    pub resource_version: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Pods {
    /// Not read (yet): a plan that would delete asks for them first.
    #[default]
    NotRead,
    /// The list was refused (RBAC): nothing may be deleted this run.
    Unreadable(String),
    Read(Vec<PodState>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    /// `Pod`, or the workload (`Deployment`, …, `CronJob`) whose Pod template uses the Secret.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// The managed names among the Secrets it uses ([`crate::core::reduce::secrets_used`]).
    pub secrets: Vec<String>,
    /// Creation, Unix seconds (0 for a template).
    pub created: i64,
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
    /// Annotated `pullsecret-reconciler/conflict: "accept"`: theirs (info, not a convergence error).
    pub conflict_accepted: bool,
    /// Annotated `pullsecret-reconciler/keep: "true"`: held by hand, never pruned.
    pub keep: bool,
    /// `pullsecret-reconciler/installation`: the installation that wrote it (none: adoptable).
    pub installation: Option<String>,
    pub source_annotation: Option<String>,
    /// `.dockerconfigjson`, the only key we compare.
    pub data: Option<Vec<u8>>,
    /// Field managers other than ours, for conflict reports.
    pub managers: Vec<String>,
}

impl fmt::Debug for SecretState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

// ---------------------------------------------------------------------------------------------
// The plan: every decision as data. Apply executes it and decides nothing.

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub namespaces: NamespaceCounts,
    /// Every action, writes and non-writes, in a deterministic order. `Action::after` refers to
    /// positions in this list.
    pub actions: Vec<Action>,
    /// Findings that need no write (a GitOps owner of a list, a refused prune, an empty selection).
    pub findings: Vec<Finding>,
    /// The plan would delete, but references were not read: read them and plan again.
    pub needs_references: bool,
}

impl Plan {
    pub fn writes(&self) -> impl Iterator<Item = &Action> {
        self.actions.iter().filter(|a| a.op.is_write())
    }

    /// The deletes that wait for their references to be read: (namespace, name).
    pub fn reference_candidates(&self) -> BTreeSet<(String, String)> {
        let waits = |a: &&Action| {
            matches!(
                a.op,
                Op::Refused {
                    reason: "ReferencesNotRead",
                    ..
                }
            )
        };
        self.actions
            .iter()
            .filter(waits)
            .map(|a| (a.namespace.clone(), a.name.clone()))
            .collect()
    }

    /// The namespaces of [`Self::reference_candidates`].
    pub fn reference_namespaces(&self) -> BTreeSet<String> {
        self.reference_candidates().into_iter().map(|(ns, _)| ns).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NamespaceCounts {
    pub seen: usize,
    pub selected: usize,
    pub excluded: usize,
    pub terminating: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    ConfigMap,
    Pod,
    Secret,
    ServiceAccount,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ConfigMap => "ConfigMap",
            Kind::Pod => "Pod",
            Kind::Secret => "Secret",
            Kind::ServiceAccount => "ServiceAccount",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub kind: Kind,
    /// Empty for the inventory, which lives in the source namespace.
    pub namespace: String,
    pub name: String,
    pub op: Op,
    /// Positions (in `Plan::actions`) of the writes that must succeed before this one runs.
    pub after: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Server-side apply of a new Secret; `credential` indexes the run's credentials.
    CreateSecret {
        credential: usize,
    },
    /// Forced server-side apply guarded by the observed resourceVersion.
    UpdateSecret {
        credential: usize,
        resource_version: String,
        adopt: bool,
    },
    /// Prune: delete with resourceVersion and uid preconditions.
    DeleteSecret {
        resource_version: String,
        uid: String,
    },
    /// Write the whole list (ours added, ours removed, everyone else's kept in order), guarded by
    /// the observed resourceVersion; on a stale version the edit is re-applied to a fresh read.
    PatchServiceAccount {
        resource_version: String,
        edit: Edit,
        list: Vec<String>,
        recorded: Vec<String>,
    },
    /// Add names to / drop names from the inventory, guarded by its resourceVersion (or
    /// create-only when it did not exist); on a conflict re-read, merge, retry.
    EditInventory {
        resource_version: Option<String>,
        add: Vec<String>,
        remove: Vec<String>,
        /// The observed inventory with this edit applied: what the first attempt writes.
        names: Vec<String>,
    },
    /// Heal a stuck Pod: an eviction (PodDisruptionBudgets respected) with a uid precondition; its
    /// controller makes a new Pod, which gets the ServiceAccount's list at admission.
    Evict {
        uid: String,
        /// The controller that recreates it, for the report.
        controller: String,
    },
    Unchanged,
    /// A selected ServiceAccount name that does not exist (yet) in a selected namespace.
    Missing,
    /// Not ours and not adoptable: left alone and reported.
    Conflict {
        reason: &'static str,
        message: String,
    },
    /// A conflict its owner marked as intended: left alone, reported as info.
    AcceptedConflict {
        reason: &'static str,
        message: String,
    },
    /// A prune candidate kept because something still names it: deleted by a later run.
    Kept {
        reason: &'static str,
        message: String,
    },
    /// A prune the safety rules refused this run (`names`: the ServiceAccount entries, if any).
    Refused {
        reason: &'static str,
        message: String,
        names: Vec<String>,
    },
}

impl Op {
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Op::CreateSecret { .. }
                | Op::UpdateSecret { .. }
                | Op::DeleteSecret { .. }
                | Op::PatchServiceAccount { .. }
                | Op::EditInventory { .. }
                | Op::Evict { .. }
        )
    }

    /// The reason a dependant is skipped with when this write did not happen.
    pub fn blocks_as(&self) -> &'static str {
        match self {
            Op::CreateSecret { .. } | Op::UpdateSecret { .. } => "SecretNotWritten",
            Op::PatchServiceAccount { .. } => "StillReferenced",
            Op::DeleteSecret { .. } => "RemovalNotFinished",
            Op::EditInventory { .. } => "InventoryNotRecorded",
            _ => "PrerequisiteNotDone",
        }
    }
}

/// What we want done to one ServiceAccount's `imagePullSecrets`, independent of its current list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Edit {
    pub add: Vec<String>,
    pub remove: Vec<String>,
    /// Entries that name a Secret we manage in that namespace: recorded as ours if present.
    pub claim: Vec<String>,
}

impl Edit {
    /// Applies the edit to a list and the record of entries we added. Only recorded (or claimed)
    /// entries are ever removed; every other entry keeps its place. `None` when nothing changes.
    pub fn apply_to(&self, list: &[String], recorded: &[String]) -> Option<(Vec<String>, Vec<String>)> {
        let mut ours: Vec<String> = recorded.to_vec();
        for n in &self.claim {
            if list.contains(n) && !ours.contains(n) {
                ours.push(n.clone());
            }
        }
        let removable = |n: &String| self.remove.contains(n) && ours.contains(n);
        let mut new_list: Vec<String> = list.iter().filter(|n| !removable(n)).cloned().collect();
        let mut new_recorded: Vec<String> = ours
            .iter()
            .filter(|n| !removable(n) && new_list.contains(n))
            .cloned()
            .collect();
        for name in &self.add {
            if !new_list.contains(name) {
                new_list.push(name.clone());
            }
            if !new_recorded.contains(name) {
                new_recorded.push(name.clone());
            }
        }
        (new_list != list || new_recorded != recorded).then_some((new_list, new_recorded))
    }
}

/// The names whose Secrets a run looks at: configured targets, then earlier runs' inventory.
pub fn managed_names(targets: &[String], inventory: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    targets
        .iter()
        .chain(inventory)
        .filter(|n| seen.insert(n.as_str()))
        .cloned()
        .collect()
}

/// The inventory after adding and dropping names: sorted, no duplicates. `None` when unchanged.
pub fn edit_inventory(current: &[String], add: &[String], remove: &[String]) -> Option<Vec<String>> {
    let before: BTreeSet<&String> = current.iter().collect();
    let after: BTreeSet<&String> = current.iter().chain(add).filter(|n| !remove.contains(n)).collect();
    (after != before || current.len() != before.len() || !current.is_sorted())
        .then(|| after.into_iter().cloned().collect())
}

/// Serialized (and shown) as `info`, `warning`, `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For the record (an accepted conflict); no Event.
    Info,
    /// Does not make the run non-converged.
    Warning,
    /// Makes the run non-converged (exit 1).
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub namespace: String,
    pub kind: &'static str,
    pub name: String,
    pub reason: &'static str,
    pub message: String,
    pub severity: Severity,
}

// ---------------------------------------------------------------------------------------------
// Outcomes: one per action, carrying the action.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    pub message: String,
}

impl Failure {
    pub fn new(reason: &str, message: impl Into<String>) -> Failure {
        Failure {
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Not sent: a non-write, or any action of a client-side dry run.
    NotSent,
    /// Written (or, in a server-side dry run, accepted); `retries` after stale resourceVersions.
    Done {
        retries: usize,
    },
    /// The object disappeared meanwhile (a deleted ServiceAccount): counted as missing.
    Gone,
    Failed(Failure),
    /// Not attempted because a prerequisite was not done, or the deadline passed first.
    Skipped(Failure),
}

impl Status {
    /// Whether dependants may go ahead.
    pub fn unblocks(&self) -> bool {
        matches!(self, Status::NotSent | Status::Done { .. } | Status::Gone)
    }

    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Status::Failed(f) | Status::Skipped(f) => Some(f),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub action: Action,
    pub status: Status,
}

/// Counts from the request layer, for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ApiRequests {
    pub reads: u64,
    pub writes: u64,
    /// The most write requests that were ever in flight at once (bounded by PULLSECRET_CONCURRENCY).
    pub max_writes_in_flight: u64,
    /// Response body bytes received.
    pub bytes_read: u64,
}

/// When one registry's credential stops working.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Expiry {
    /// The `auths` key (registry pattern).
    pub server: String,
    pub provider: String,
    /// Seconds since the Unix epoch; `None` when the plugin gave no lifetime.
    pub expires_at: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn edit_keeps_duplicates_and_order_of_foreign_entries() {
        let edit = Edit {
            add: v(&["new"]),
            remove: v(&["old", "theirs"]),
            claim: vec![],
        };
        let (list, recorded) = edit.apply_to(&v(&["a", "old", "theirs", "a"]), &v(&["old"])).unwrap();
        assert_eq!(list, v(&["a", "theirs", "a", "new"]));
        assert_eq!(recorded, v(&["new"]));
    }

    #[test]
    fn claimed_entries_become_ours_and_move() {
        let edit = Edit {
            add: v(&["new"]),
            remove: v(&["old"]),
            claim: v(&["old"]),
        };
        let (list, recorded) = edit.apply_to(&v(&["x", "old"]), &[]).unwrap();
        assert_eq!((list, recorded), (v(&["x", "new"]), v(&["new"])));
        // A claim alone records the entry: one write, then nothing.
        let claim = Edit {
            claim: v(&["old"]),
            ..Edit::default()
        };
        let (list, recorded) = claim.apply_to(&v(&["old"]), &[]).unwrap();
        assert_eq!(claim.apply_to(&list, &recorded), None);
    }

    #[test]
    fn inventory_edits_merge() {
        assert_eq!(edit_inventory(&v(&["a"]), &v(&["b"]), &[]), Some(v(&["a", "b"])));
        assert_eq!(edit_inventory(&v(&["a", "b"]), &v(&["b"]), &[]), None);
        assert_eq!(edit_inventory(&v(&["a", "b"]), &[], &v(&["a"])), Some(v(&["b"])));
        assert_eq!(edit_inventory(&[], &[], &[]), None);
    }
}
