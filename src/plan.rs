//! Stage 4, plan (pure, no I/O): (Config, Credentials, Observed) -> [`Plan`]. Infallible and
//! deterministic: anything it cannot handle becomes a conflict or a warning, never an error.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{Adopt, Config};
use crate::glob::any_matches;
use crate::observe::{Observed, SecretState, ServiceAccountState};
use crate::source::{Credential, DOCKERCONFIGJSON_TYPE};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub namespaces: NamespaceCounts,
    pub secrets: Vec<SecretAction>,
    pub service_accounts: Vec<ServiceAccountAction>,
    /// Warnings that need no write (a GitOps owner of a ServiceAccount list, say).
    pub warnings: Vec<Warning>,
    /// The inventory to record before writing, when this run adds names to it.
    pub inventory_before: Option<Vec<String>>,
    /// The inventory to record once every removal of a retired name has succeeded.
    pub inventory_after: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NamespaceCounts {
    pub seen: usize,
    pub selected: usize,
    pub excluded: usize,
    pub terminating: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretAction {
    pub namespace: String,
    pub name: String,
    pub op: SecretOp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOp {
    /// Server-side apply of a new Secret; `credential` indexes the run's credentials.
    Create {
        credential: usize,
    },
    /// Forced server-side apply guarded by the observed resourceVersion.
    Update {
        credential: usize,
        resource_version: String,
        adopt: bool,
    },
    Unchanged,
    /// Not ours and not adoptable: left alone and reported.
    Conflict {
        reason: &'static str,
        message: String,
    },
    /// Prune: delete with resourceVersion and uid preconditions.
    Delete {
        resource_version: String,
        uid: String,
    },
}

impl SecretOp {
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            SecretOp::Create { .. } | SecretOp::Update { .. } | SecretOp::Delete { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountAction {
    pub namespace: String,
    pub name: String,
    pub op: ServiceAccountOp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceAccountOp {
    /// Write the whole list (ours added, ours removed, everyone else's kept in order), guarded by
    /// the observed resourceVersion; on a stale version the edit is re-applied to a fresh read.
    Patch {
        resource_version: String,
        edit: Edit,
        list: Vec<String>,
        recorded: Vec<String>,
    },
    Unchanged,
    /// A selected ServiceAccount name that does not exist (yet) in a selected namespace.
    Missing,
}

impl ServiceAccountOp {
    pub fn is_write(&self) -> bool {
        matches!(self, ServiceAccountOp::Patch { .. })
    }
}

/// What we want done to one ServiceAccount's `imagePullSecrets`, independent of its current list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Edit {
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

impl Edit {
    /// Applies the edit to a list and the record of entries we added. Only recorded entries are
    /// ever removed; every other entry keeps its place. Returns `None` when nothing changes.
    pub fn apply_to(&self, list: &[String], recorded: &[String]) -> Option<(Vec<String>, Vec<String>)> {
        let removable = |n: &String| self.remove.contains(n) && recorded.contains(n);
        let mut new_list: Vec<String> = list.iter().filter(|n| !removable(n)).cloned().collect();
        let mut new_recorded: Vec<String> = recorded
            .iter()
            .filter(|n| !removable(n) && new_list.contains(n))
            .cloned()
            .collect();
        for name in &self.add {
            if !new_list.contains(name) {
                new_list.push(name.clone());
                if !new_recorded.contains(name) {
                    new_recorded.push(name.clone());
                }
            }
        }
        (new_list != list || new_recorded != recorded).then_some((new_list, new_recorded))
    }
}

fn dedup_in_order(list: &mut Vec<String>) {
    let mut seen = BTreeSet::new();
    list.retain(|n| seen.insert(n.clone()));
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub namespace: String,
    pub kind: &'static str,
    pub name: String,
    pub reason: &'static str,
    pub message: String,
}

/// The names whose Secrets this run looks at: configured targets, then earlier runs' inventory.
pub fn managed_names(targets: &[String], inventory: &[String]) -> Vec<String> {
    let mut names: Vec<String> = targets.iter().chain(inventory).cloned().collect();
    dedup_in_order(&mut names);
    names
}

pub fn plan(config: &Config, credentials: &[Credential], observed: &Observed) -> Plan {
    let mut plan = Plan::default();
    let targets: Vec<String> = credentials.iter().map(|c| c.target.clone()).collect();
    // Every name this configuration or an earlier run wrote. Names whose Secrets we could not
    // list are not touched at all this run, and stay remembered.
    let known = managed_names(&targets, &observed.inventory);
    let managed: Vec<String> = known
        .iter()
        .filter(|n| !observed.unlistable.contains(n))
        .cloned()
        .collect();
    for name in &observed.unlistable {
        plan.warnings.push(Warning {
            namespace: String::new(),
            kind: "Secret",
            name: name.clone(),
            reason: "RetiredNameNotListable",
            message: format!(
                "{name} was written by earlier runs but may no longer be listed (RBAC): its copies and \
                 ServiceAccount entries are not pruned. Add it back to the RBAC resourceNames until one run \
                 has pruned it"
            ),
        });
    }

    // Namespaces, sorted so the plan does not depend on list order.
    let mut selected: BTreeSet<&str> = BTreeSet::new();
    let mut terminating: BTreeSet<&str> = BTreeSet::new();
    let mut namespaces: Vec<_> = observed.namespaces.iter().collect();
    namespaces.sort_by(|a, b| a.name.cmp(&b.name));
    namespaces.dedup_by(|a, b| a.name == b.name);
    for ns in &namespaces {
        plan.namespaces.seen += 1;
        if ns.terminating {
            plan.namespaces.terminating += 1;
            terminating.insert(&ns.name);
        } else if any_matches(&config.include, &ns.name) && !any_matches(&config.exclude, &ns.name) && !ns.opted_out {
            plan.namespaces.selected += 1;
            selected.insert(&ns.name);
        } else {
            plan.namespaces.excluded += 1;
        }
    }

    let is_source = |ns: &str, name: &str| {
        credentials.iter().any(|c| {
            c.source_secret
                .as_ref()
                .is_some_and(|(sns, sname)| sns == ns && sname == name)
        })
    };
    let mut existing: BTreeMap<(&str, &str), &SecretState> = BTreeMap::new();
    for s in &observed.secrets {
        existing.entry((s.namespace.as_str(), s.name.as_str())).or_insert(s);
    }

    // Secrets wanted in selected namespaces. `usable` = (namespace, name) a ServiceAccount may list.
    let mut usable: BTreeSet<(String, String)> = BTreeSet::new();
    let mut blocked: BTreeSet<(String, String)> = BTreeSet::new();
    for ns in &selected {
        for (i, cred) in credentials.iter().enumerate() {
            let key = (ns.to_string(), cred.target.clone());
            if is_source(ns, &cred.target) {
                usable.insert(key);
                continue;
            }
            let op = match existing.get(&(*ns, cred.target.as_str())) {
                None => SecretOp::Create { credential: i },
                Some(s) => secret_op(config, i, cred, s),
            };
            match &op {
                SecretOp::Conflict { .. } => blocked.insert(key),
                _ => usable.insert(key),
            };
            plan.secrets.push(SecretAction {
                namespace: ns.to_string(),
                name: cred.target.clone(),
                op,
            });
        }
    }

    // Prune: our Secrets that are no longer wanted where they are.
    if config.prune {
        for s in existing.values() {
            let wanted_here = selected.contains(s.namespace.as_str()) && targets.contains(&s.name);
            if s.ours
                && !wanted_here
                && managed.contains(&s.name)
                && !terminating.contains(s.namespace.as_str())
                && !is_source(&s.namespace, &s.name)
            {
                plan.secrets.push(SecretAction {
                    namespace: s.namespace.clone(),
                    name: s.name.clone(),
                    op: SecretOp::Delete {
                        resource_version: s.resource_version.clone(),
                        uid: s.uid.clone(),
                    },
                });
            }
        }
    }

    if !config.service_accounts.is_empty() {
        plan_service_accounts(
            config,
            observed,
            &selected,
            &terminating,
            &targets,
            &managed,
            &usable,
            &blocked,
            &mut plan,
        );
    }

    plan.secrets
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    plan.service_accounts
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    plan.warnings
        .sort_by(|a, b| (&a.namespace, &a.name, &a.message).cmp(&(&b.namespace, &b.name, &b.message)));

    // Inventory: remember new names before writing them; forget retired ones (prune only) once
    // the apply stage has seen every removal of theirs succeed.
    if !targets.iter().all(|t| observed.inventory.contains(t)) {
        plan.inventory_before = Some(sorted(known.clone()));
    }
    let keep: Vec<String> = targets.iter().chain(&observed.unlistable).cloned().collect();
    if config.prune && sorted(keep.clone()) != sorted(known) {
        plan.inventory_after = Some(sorted(keep));
    }
    plan
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

fn secret_op(config: &Config, i: usize, cred: &Credential, s: &SecretState) -> SecretOp {
    let others = if s.managers.is_empty() {
        "no field manager recorded".to_owned()
    } else {
        s.managers.join(", ")
    };
    if s.type_ != DOCKERCONFIGJSON_TYPE {
        return SecretOp::Conflict {
            reason: "WrongType",
            message: format!(
                "a Secret of type {} already has this name (managed by: {others}); a Secret's type is immutable, \
                 so it is left alone: rename or delete it",
                s.type_
            ),
        };
    }
    if s.ours {
        let same =
            s.data.as_deref() == Some(cred.data.as_slice()) && s.source_annotation.as_deref() == Some(&cred.origin);
        return if same {
            SecretOp::Unchanged
        } else {
            SecretOp::Update {
                credential: i,
                resource_version: s.resource_version.clone(),
                adopt: false,
            }
        };
    }
    let adoptable = match config.adopt {
        Adopt::All => true,
        Adopt::Patcher => s.patcher,
        Adopt::None => false,
    };
    if adoptable {
        SecretOp::Update {
            credential: i,
            resource_version: s.resource_version.clone(),
            adopt: true,
        }
    } else {
        SecretOp::Conflict {
            reason: "NotOwned",
            message: format!(
                "a Secret with this name exists without our label (managed by: {others}); it is left alone. \
                 Delete it, or set PULLSECRET_ADOPT=all to take it over"
            ),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn plan_service_accounts(
    config: &Config,
    observed: &Observed,
    selected: &BTreeSet<&str>,
    terminating: &BTreeSet<&str>,
    targets: &[String],
    managed: &[String],
    usable: &BTreeSet<(String, String)>,
    blocked: &BTreeSet<(String, String)>,
    plan: &mut Plan,
) {
    let mut by_ns: BTreeMap<&str, Vec<&ServiceAccountState>> = BTreeMap::new();
    for sa in &observed.service_accounts {
        by_ns.entry(sa.namespace.as_str()).or_default().push(sa);
    }
    for (ns, sas) in &mut by_ns {
        sas.sort_by(|a, b| a.name.cmp(&b.name));
        sas.dedup_by(|a, b| a.name == b.name);
        if terminating.contains(ns) {
            continue;
        }
        for sa in sas.iter() {
            let in_scope = selected.contains(ns) && any_matches(&config.service_accounts, &sa.name);
            let key = |t: &String| (ns.to_string(), t.clone());
            let add: Vec<String> = if in_scope {
                targets.iter().filter(|t| usable.contains(&key(t))).cloned().collect()
            } else {
                vec![]
            };
            // Ours to remove: recorded, managed by this configuration, and no longer wanted here.
            // A target whose Secret is someone else's (a conflict) is neither added nor removed.
            let remove: Vec<String> = if config.prune {
                sa.recorded
                    .iter()
                    .filter(|n| managed.contains(n) && !(in_scope && targets.contains(n)) && !blocked.contains(&key(n)))
                    .cloned()
                    .collect()
            } else {
                vec![]
            };
            let edit = Edit { add, remove };
            let op = match edit.apply_to(&sa.pull_secrets, &sa.recorded) {
                Some((list, recorded)) => ServiceAccountOp::Patch {
                    resource_version: sa.resource_version.clone(),
                    edit,
                    list,
                    recorded,
                },
                None => ServiceAccountOp::Unchanged,
            };
            if in_scope && !sa.list_appliers.is_empty() && !targets.is_empty() {
                plan.warnings.push(Warning {
                    namespace: ns.to_string(),
                    kind: "ServiceAccount",
                    name: sa.name.clone(),
                    reason: "ListOwnedByApplier",
                    message: format!(
                        "imagePullSecrets is applied by {}; its entries are kept, but it may drop ours on its next \
                         apply: add {} to its manifest or ignore imagePullSecrets there",
                        sa.list_appliers.join(", "),
                        targets.join(", ")
                    ),
                });
            }
            // Only in-scope ServiceAccounts and real changes are worth a line in the plan.
            if in_scope || op.is_write() {
                plan.service_accounts.push(ServiceAccountAction {
                    namespace: ns.to_string(),
                    name: sa.name.clone(),
                    op,
                });
            }
        }
    }
    for ns in selected {
        let present: BTreeSet<&str> = by_ns
            .get(ns)
            .map(|v| v.iter().map(|s| s.name.as_str()).collect())
            .unwrap_or_default();
        for g in config.service_accounts.iter().filter(|g| g.is_literal()) {
            if !present.contains(g.as_str()) {
                plan.service_accounts.push(ServiceAccountAction {
                    namespace: ns.to_string(),
                    name: g.as_str().to_owned(),
                    op: ServiceAccountOp::Missing,
                });
            }
        }
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
