//! Stage 4, plan (pure, no I/O): (Policy, Credentials, Observed) -> [`Plan`]. Infallible and
//! deterministic. Every rule — what is written, what may be deleted, what is kept or refused, and
//! which write waits for which — is decided here and carried as data; apply only executes.
//! This file plans the desired state and assembles the plan; `prune.rs` holds the prune guards.

mod heal;
pub use heal::NOT_HEALABLE;
mod prune;
pub use prune::held_records;

use std::collections::{BTreeMap, BTreeSet};

use crate::core::DOCKERCONFIGJSON_TYPE;
use crate::core::glob::any_matches;
use crate::core::model::{
    Action, Adopt, Credential, Edit, Finding, Kind, Observed, Op, Plan, Policy, SecretState, ServiceAccountState,
    Severity, edit_inventory, managed_names,
};

type Key = (String, String);

fn key(ns: &str, name: &str) -> Key {
    (ns.to_owned(), name.to_owned())
}

/// What the planner derives once from its inputs.
struct World<'a> {
    policy: &'a Policy,
    credentials: &'a [Credential],
    observed: &'a Observed,
    targets: Vec<String>,
    /// Targets and inventory names.
    known: Vec<String>,
    /// Known names whose Secrets we could list: the only ones we may prune.
    managed: BTreeSet<String>,
    selected: BTreeSet<&'a str>,
    terminating: BTreeSet<&'a str>,
    existing: BTreeMap<(&'a str, &'a str), &'a SecretState>,
    /// Every observed ServiceAccount by (namespace, name): sorted, one per name.
    service_accounts: BTreeMap<(&'a str, &'a str), &'a ServiceAccountState>,
}

/// A ServiceAccount and what we want to do to its list.
struct SaEdit<'a> {
    sa: &'a ServiceAccountState,
    in_scope: bool,
    edit: Edit,
}

/// The Secrets wanted in selected namespaces, and what follows from them for ServiceAccounts.
struct Desired {
    actions: Vec<Action>,
    /// (namespace, name) pairs a ServiceAccount may list.
    usable: BTreeSet<Key>,
    /// Held by someone else (a conflict): never added, never removed.
    blocked: BTreeSet<Key>,
    /// Every copy that is ours once this run is done.
    ours: BTreeSet<Key>,
}

/// The plan's actions as they are assembled, with the positions later actions wait for.
#[derive(Default)]
struct Assembly {
    actions: Vec<Action>,
    /// Recording new names in the inventory: every Secret write waits for it.
    record: Option<usize>,
    /// Secret creates and updates by (namespace, name).
    upserts: BTreeMap<Key, usize>,
    /// ServiceAccount patches that remove an entry, by (namespace, name of the entry).
    removals: BTreeMap<Key, Vec<usize>>,
    /// Each ServiceAccount's list once this run's edits are done, by (namespace, name).
    final_lists: BTreeMap<Key, Vec<String>>,
}

impl Assembly {
    fn push(&mut self, a: Action) -> usize {
        self.actions.push(a);
        self.actions.len() - 1
    }
}

pub fn plan(policy: &Policy, credentials: &[Credential], observed: &Observed) -> Plan {
    let w = World::new(policy, credentials, observed);
    let mut plan = Plan::default();
    w.count_namespaces(&mut plan);
    w.warn_unlistable(&mut plan);

    let desired = w.desired_secrets();
    let mut sa_edits = w.service_account_edits(&desired);
    let mut candidates = w.prune_candidates();
    let refused = w.refuse_deselection(&mut plan, &mut candidates, &mut sa_edits);

    // Assembled in a fixed order; `after` refers to positions in `plan.actions`.
    let mut asm = Assembly::default();
    w.record_new_names(&mut asm);
    for mut a in desired.actions {
        if matches!(a.op, Op::CreateSecret { .. } | Op::UpdateSecret { .. }) {
            a.after.extend(asm.record);
            let k = key(&a.namespace, &a.name);
            let i = asm.push(a);
            asm.upserts.insert(k, i);
        } else {
            asm.push(a);
        }
    }
    // Post-edit lists are kept only where a delete must check them.
    let checked: BTreeSet<&str> = candidates.iter().map(|c| c.secret.namespace.as_str()).collect();
    w.patch_service_accounts(&mut asm, &sa_edits, &checked, &mut plan);
    asm.actions.extend(w.missing_service_accounts());
    asm.actions.extend(refused);
    w.delete_or_keep(&mut asm, &candidates, &mut plan);
    w.forget_retired(&mut asm);
    w.heal(&mut asm, &mut plan);

    plan.actions = asm.actions;
    plan.findings.sort_by(|a, b| {
        (&a.namespace, &a.name, a.reason, &a.message).cmp(&(&b.namespace, &b.name, b.reason, &b.message))
    });
    plan
}

fn inventory_action(w: &World, add: Vec<String>, remove: Vec<String>) -> Action {
    let current = &w.observed.inventory.names;
    let names = edit_inventory(current, &add, &remove).unwrap_or_else(|| current.clone());
    Action {
        kind: Kind::ConfigMap,
        namespace: String::new(),
        name: crate::core::INVENTORY_NAME.to_owned(),
        op: Op::EditInventory {
            resource_version: w.observed.inventory.resource_version.clone(),
            add,
            remove,
            names,
        },
        after: vec![],
    }
}

impl<'a> World<'a> {
    fn new(policy: &'a Policy, credentials: &'a [Credential], observed: &'a Observed) -> World<'a> {
        let targets: Vec<String> = credentials.iter().map(|c| c.target.clone()).collect();
        let known = managed_names(&targets, &observed.inventory.names);
        let managed = known
            .iter()
            .filter(|n| !observed.unlistable.contains(n))
            .cloned()
            .collect();
        let (mut selected, mut terminating) = (BTreeSet::new(), BTreeSet::new());
        for ns in &observed.namespaces {
            if ns.terminating {
                terminating.insert(ns.name.as_str());
            } else if any_matches(&policy.include, &ns.name) && !any_matches(&policy.exclude, &ns.name) && !ns.opted_out
            {
                selected.insert(ns.name.as_str());
            }
        }
        let mut existing = BTreeMap::new();
        for s in &observed.secrets {
            existing.entry((s.namespace.as_str(), s.name.as_str())).or_insert(s);
        }
        let mut service_accounts = BTreeMap::new();
        for sa in &observed.service_accounts {
            service_accounts
                .entry((sa.namespace.as_str(), sa.name.as_str()))
                .or_insert(sa);
        }
        World {
            policy,
            credentials,
            observed,
            targets,
            known,
            managed,
            selected,
            terminating,
            existing,
            service_accounts,
        }
    }

    fn count_namespaces(&self, plan: &mut Plan) {
        let seen: BTreeSet<&str> = self.observed.namespaces.iter().map(|n| n.name.as_str()).collect();
        let c = &mut plan.namespaces;
        c.seen = seen.len();
        c.selected = self.selected.len();
        c.terminating = self.terminating.len();
        c.excluded = c.seen - c.selected - c.terminating;
    }

    fn warn_unlistable(&self, plan: &mut Plan) {
        for name in &self.observed.unlistable {
            plan.findings.push(Finding {
                namespace: String::new(),
                kind: "Secret",
                name: name.clone(),
                reason: "RetiredNameNotListable",
                message: format!(
                    "{name} was written by earlier runs but may no longer be listed (RBAC): its copies and \
                     ServiceAccount entries are not pruned. Add it back to the RBAC resourceNames until one run \
                     has pruned it"
                ),
                severity: Severity::Warning,
            });
        }
    }

    /// A copy of ours written by this installation, or by none recorded (adopted on its next write).
    pub(super) fn ours(&self, s: &SecretState) -> bool {
        s.ours && !self.foreign(s)
    }

    /// A copy of ours that another installation wrote: reported, never touched, never pruned.
    fn foreign(&self, s: &SecretState) -> bool {
        let this = self.observed.installation.as_str();
        s.ours && !this.is_empty() && s.installation.as_deref().is_some_and(|i| i != this)
    }

    /// The copy carries this installation's record (always true while the installation is unknown).
    fn recorded_here(&self, s: &SecretState) -> bool {
        let this = self.observed.installation.as_str();
        this.is_empty() || s.installation.as_deref() == Some(this)
    }

    fn is_source(&self, ns: &str, name: &str) -> bool {
        self.credentials.iter().any(|c| {
            c.source_secret
                .as_ref()
                .is_some_and(|(sns, sname)| sns == ns && sname == name)
        })
    }

    /// Secrets wanted in selected namespaces. Also returns the (namespace, name) pairs a
    /// ServiceAccount may list (`usable`), those held by someone else (`blocked`), and every copy
    /// that is ours once this run is done (`ours`).
    fn desired_secrets(&self) -> Desired {
        let (mut actions, mut usable, mut blocked) = (Vec::new(), BTreeSet::new(), BTreeSet::new());
        let mut ours: BTreeSet<Key> = self
            .existing
            .values()
            .filter(|s| self.ours(s))
            .map(|s| key(&s.namespace, &s.name))
            .collect();
        for ns in &self.selected {
            for (i, cred) in self.credentials.iter().enumerate() {
                let k = key(ns, &cred.target);
                if self.is_source(ns, &cred.target) {
                    usable.insert(k);
                    continue;
                }
                let op = match self.existing.get(&(*ns, cred.target.as_str())) {
                    None => Op::CreateSecret { credential: i },
                    Some(s) => self.secret_op(i, cred, s),
                };
                if matches!(op, Op::Conflict { .. } | Op::AcceptedConflict { .. }) {
                    blocked.insert(k);
                } else {
                    usable.insert(k.clone());
                    ours.insert(k);
                }
                actions.push(Action {
                    kind: Kind::Secret,
                    namespace: ns.to_string(),
                    name: cred.target.clone(),
                    op,
                    after: vec![],
                });
            }
        }
        Desired {
            actions,
            usable,
            blocked,
            ours,
        }
    }

    fn secret_op(&self, i: usize, cred: &Credential, s: &SecretState) -> Op {
        match self.secret_op_unmarked(i, cred, s) {
            Op::Conflict { reason, message } if s.conflict_accepted => Op::AcceptedConflict {
                reason: "ConflictAccepted",
                message: format!(
                    "left alone as its owner asked (pullsecret-reconciler/conflict: accept): {reason}: {message}"
                ),
            },
            op => op,
        }
    }

    fn secret_op_unmarked(&self, i: usize, cred: &Credential, s: &SecretState) -> Op {
        let others = if s.managers.is_empty() {
            "no field manager recorded".to_owned()
        } else {
            s.managers.join(", ")
        };
        if s.type_ != DOCKERCONFIGJSON_TYPE {
            return Op::Conflict {
                reason: "WrongType",
                message: format!(
                    "a Secret of type {} already has this name (managed by: {others}); a Secret's type is \
                     immutable, so it is left alone: rename or delete it",
                    s.type_
                ),
            };
        }
        if self.foreign(s) {
            let other = s.installation.as_deref().unwrap_or_default();
            return Op::Conflict {
                reason: "OtherInstallation",
                message: format!(
                    "written by the installation in namespace {other} (annotation pullsecret-reconciler/installation), \
                     not this one ({this}): left alone, never updated or pruned. Two installations must not write \
                     the same name: give one of them another target name, or uninstall one and remove the \
                     annotation so the other adopts the copy",
                    this = self.observed.installation
                ),
            };
        }
        if s.ours {
            let same = s.data.as_deref() == Some(cred.data.as_slice())
                && s.source_annotation.as_deref() == Some(&cred.origin)
                && self.recorded_here(s);
            return if same {
                Op::Unchanged
            } else {
                Op::UpdateSecret {
                    credential: i,
                    resource_version: s.resource_version.clone(),
                    adopt: false,
                }
            };
        }
        let adoptable = match self.policy.adopt {
            Adopt::All => true,
            Adopt::Patcher => s.patcher,
            Adopt::None => false,
        };
        if adoptable {
            Op::UpdateSecret {
                credential: i,
                resource_version: s.resource_version.clone(),
                adopt: true,
            }
        } else {
            Op::Conflict {
                reason: "NotOwned",
                message: format!(
                    "a Secret with this name exists that we did not write (managed by: {others}; without our \
                     label, or with it but not written by our field manager, as a copy made by hand); it is left \
                     alone. Delete it, or set PULLSECRET_ADOPT=all to take it over"
                ),
            }
        }
    }

    /// Every ServiceAccount outside terminating namespaces, sorted, with the edit we want.
    fn service_account_edits(&self, desired: &Desired) -> Vec<SaEdit<'a>> {
        let (usable, blocked, ours) = (&desired.usable, &desired.blocked, &desired.ours);
        if self.policy.service_accounts.is_empty() {
            return vec![];
        }
        self.service_accounts
            .values()
            .filter(|sa| !self.terminating.contains(sa.namespace.as_str()))
            .map(|sa| {
                let ns = sa.namespace.as_str();
                let in_scope = self.selected.contains(ns) && any_matches(&self.policy.service_accounts, &sa.name);
                let mut edit = Edit::default();
                if in_scope {
                    edit.add = self
                        .targets
                        .iter()
                        .filter(|t| usable.contains(&key(ns, t)) && !sa.pull_secrets.contains(t))
                        .cloned()
                        .collect();
                    // An entry naming a Secret we write here under a configured name is ours,
                    // whoever added it (imagepullsecret-patcher's, after adoption). Not an old
                    // name's: an entry we never recorded is removed by no run (and the admission
                    // fence lets a run remove only what it recorded), so its copy stays referenced.
                    edit.claim = sa
                        .pull_secrets
                        .iter()
                        .filter(|n| self.targets.contains(*n) && ours.contains(&key(ns, n)) && !sa.recorded.contains(n))
                        .cloned()
                        .collect();
                    edit.claim.dedup();
                }
                if self.policy.prune {
                    edit.remove = sa
                        .recorded
                        .iter()
                        .chain(&edit.claim)
                        .filter(|n| {
                            sa.pull_secrets.contains(n)
                                && self.managed.contains(*n)
                                && !(in_scope && self.targets.contains(n))
                                && !blocked.contains(&key(ns, n))
                                // Another installation's copy: its entries are its own.
                                && !self.existing.get(&(ns, n.as_str())).is_some_and(|s| self.foreign(s))
                        })
                        .cloned()
                        .collect();
                }
                SaEdit { sa, in_scope, edit }
            })
            .collect()
    }

    /// Literal ServiceAccount names that do not exist in a selected namespace.
    fn missing_service_accounts(&self) -> Vec<Action> {
        let present: BTreeSet<(&str, &str)> = self
            .observed
            .service_accounts
            .iter()
            .map(|s| (s.namespace.as_str(), s.name.as_str()))
            .collect();
        let mut out = Vec::new();
        for ns in &self.selected {
            for g in self.policy.service_accounts.iter().filter(|g| g.is_literal()) {
                if !present.contains(&(*ns, g.as_str())) {
                    out.push(Action {
                        kind: Kind::ServiceAccount,
                        namespace: ns.to_string(),
                        name: g.as_str().to_owned(),
                        op: Op::Missing,
                        after: vec![],
                    });
                }
            }
        }
        out
    }

    /// New target names go into the inventory before anything is written under them.
    fn record_new_names(&self, asm: &mut Assembly) {
        let new: Vec<String> = self
            .targets
            .iter()
            .filter(|t| !self.observed.inventory.names.contains(t))
            .cloned()
            .collect();
        if !new.is_empty() {
            asm.record = Some(asm.push(inventory_action(self, new, vec![])));
        }
    }

    /// One patch per ServiceAccount whose list changes, waiting for the Secrets it adds; the
    /// in-scope ones that need nothing are listed as unchanged.
    fn patch_service_accounts(&self, asm: &mut Assembly, edits: &[SaEdit], checked: &BTreeSet<&str>, plan: &mut Plan) {
        for e in edits {
            let sa = e.sa;
            let (op, list) = match e.edit.apply_to(&sa.pull_secrets, &sa.recorded) {
                Some((list, recorded)) => (
                    Op::PatchServiceAccount {
                        resource_version: sa.resource_version.clone(),
                        edit: e.edit.clone(),
                        list: list.clone(),
                        recorded,
                    },
                    list,
                ),
                None => (Op::Unchanged, sa.pull_secrets.clone()),
            };
            if checked.contains(sa.namespace.as_str()) {
                asm.final_lists.insert(key(&sa.namespace, &sa.name), list);
            }
            if e.in_scope && !sa.list_appliers.is_empty() && !self.targets.is_empty() {
                plan.findings.push(Finding {
                    namespace: sa.namespace.clone(),
                    kind: "ServiceAccount",
                    name: sa.name.clone(),
                    reason: "ListOwnedByApplier",
                    message: format!(
                        "imagePullSecrets is applied by {}; its entries are kept, but it may drop ours on its \
                         next apply: add {} to its manifest or ignore imagePullSecrets there",
                        sa.list_appliers.join(", "),
                        self.targets.join(", ")
                    ),
                    severity: Severity::Warning,
                });
            }
            if !(e.in_scope || op.is_write()) {
                continue;
            }
            let mut after = Vec::new();
            if op.is_write() {
                after.extend(
                    e.edit
                        .add
                        .iter()
                        .filter_map(|n| asm.upserts.get(&key(&sa.namespace, n))),
                );
                for n in &e.edit.remove {
                    asm.removals
                        .entry(key(&sa.namespace, n))
                        .or_default()
                        .push(asm.actions.len());
                }
            }
            asm.push(Action {
                kind: Kind::ServiceAccount,
                namespace: sa.namespace.clone(),
                name: sa.name.clone(),
                op,
                after,
            });
        }
    }
}

#[cfg(test)]
mod tests;
