//! Stage 4, plan (pure, no I/O): (Policy, Credentials, Observed) -> [`Plan`]. Infallible and
//! deterministic. Every rule — what is written, what may be deleted, what is kept or refused, and
//! which write waits for which — is decided here and carried as data; apply only executes.

use std::collections::{BTreeMap, BTreeSet};

use crate::DOCKERCONFIGJSON_TYPE;
use crate::glob::any_matches;
use crate::model::{
    Action, Adopt, Credential, Edit, Finding, Kind, Observed, Op, Plan, Pods, Policy, SecretState, ServiceAccountState,
    Severity, edit_inventory, managed_names,
};

/// How many objects a "kept" message names before it gives a count.
const NAMED_IN_MESSAGE: usize = 3;

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
}

/// A ServiceAccount and what we want to do to its list.
struct SaEdit<'a> {
    sa: &'a ServiceAccountState,
    in_scope: bool,
    edit: Edit,
}

/// An existing copy of ours that is no longer wanted where it is.
struct Candidate<'a> {
    secret: &'a SecretState,
    /// Its namespace is not selected this run (as opposed to a renamed or dropped name).
    deselection: bool,
}

pub fn plan(policy: &Policy, credentials: &[Credential], observed: &Observed) -> Plan {
    let w = World::new(policy, credentials, observed);
    let mut plan = Plan::default();
    w.count_namespaces(&mut plan);
    w.warn_unlistable(&mut plan);

    let (secret_actions, usable, blocked, ours) = w.desired_secrets();
    let mut sa_edits = w.service_account_edits(&usable, &blocked, &ours);
    let mut candidates = w.prune_candidates();
    let refused = w.refuse_deselection(&mut plan, &mut candidates, &mut sa_edits);

    // Assemble in a fixed order; `after` refers to positions in `plan.actions`.
    let mut actions: Vec<Action> = Vec::new();
    let new_names: Vec<String> = w
        .targets
        .iter()
        .filter(|t| !observed.inventory.names.contains(t))
        .cloned()
        .collect();
    let record = (!new_names.is_empty()).then(|| {
        actions.push(inventory_action(&w, new_names, vec![]));
        actions.len() - 1
    });
    let mut upserts: BTreeMap<Key, usize> = BTreeMap::new();
    for mut a in secret_actions {
        if matches!(a.op, Op::CreateSecret { .. } | Op::UpdateSecret { .. }) {
            a.after.extend(record);
            upserts.insert(key(&a.namespace, &a.name), actions.len());
        }
        actions.push(a);
    }
    let mut removals: BTreeMap<Key, Vec<usize>> = BTreeMap::new();
    let mut final_lists: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for e in &sa_edits {
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
        final_lists.insert((&sa.namespace, &sa.name), list);
        if e.in_scope && !sa.list_appliers.is_empty() && !w.targets.is_empty() {
            plan.findings.push(Finding {
                namespace: sa.namespace.clone(),
                kind: "ServiceAccount",
                name: sa.name.clone(),
                reason: "ListOwnedByApplier",
                message: format!(
                    "imagePullSecrets is applied by {}; its entries are kept, but it may drop ours on its next \
                     apply: add {} to its manifest or ignore imagePullSecrets there",
                    sa.list_appliers.join(", "),
                    w.targets.join(", ")
                ),
                severity: Severity::Warning,
            });
        }
        if !(e.in_scope || op.is_write()) {
            continue;
        }
        let mut after = Vec::new();
        if op.is_write() {
            after.extend(e.edit.add.iter().filter_map(|n| upserts.get(&key(&sa.namespace, n))));
            for n in &e.edit.remove {
                removals.entry(key(&sa.namespace, n)).or_default().push(actions.len());
            }
        }
        actions.push(Action {
            kind: Kind::ServiceAccount,
            namespace: sa.namespace.clone(),
            name: sa.name.clone(),
            op,
            after,
        });
    }
    actions.extend(w.missing_service_accounts());
    actions.extend(refused);

    // Deletes: only what nothing names once this run's ServiceAccount edits are done.
    let mut deleted: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut held: BTreeSet<String> = BTreeSet::new();
    let mut pods_unreadable = false;
    for c in &candidates {
        let s = c.secret;
        let k = key(&s.namespace, &s.name);
        let named_by = w.named_by(&s.namespace, &s.name, &final_lists);
        let op = if !named_by.is_empty() {
            Op::Kept {
                reason: "StillReferenced",
                message: kept_message(&named_by),
            }
        } else {
            match &observed.pods {
                Pods::Read(_) => Op::DeleteSecret {
                    resource_version: s.resource_version.clone(),
                    uid: s.uid.clone(),
                },
                Pods::NotRead => {
                    plan.needs_pods = true;
                    Op::Refused {
                        reason: "PodsNotRead",
                        message: "not deleted: Pods were not read to check that none still names it".into(),
                        names: vec![],
                    }
                }
                Pods::Unreadable(_) => {
                    pods_unreadable = true;
                    Op::Refused {
                        reason: "PodsNotListable",
                        message: "not deleted: Pods could not be listed to check that none still names it".into(),
                        names: vec![],
                    }
                }
            }
        };
        if op.is_write() {
            deleted.entry(s.name.clone()).or_default().push(actions.len());
        } else {
            held.insert(s.name.clone());
        }
        actions.push(Action {
            kind: Kind::Secret,
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            after: if op.is_write() {
                removals.get(&k).cloned().unwrap_or_default()
            } else {
                vec![]
            },
            op,
        });
    }
    if let Pods::Unreadable(why) = &observed.pods
        && pods_unreadable
    {
        plan.findings.push(Finding {
            namespace: String::new(),
            kind: "Pod",
            name: String::new(),
            reason: "PodsNotListable",
            message: format!(
                "nothing was deleted: listing Pods (to make sure none still names a Secret before it is deleted) \
                 failed: {why}. Grant `list` on pods to the reconciler's ClusterRole"
            ),
            severity: Severity::Error,
        });
    }

    // Forget retired names once every copy and entry of theirs is gone (kept or refused ones stay).
    if policy.prune {
        // A refused ServiceAccount action names the entries it kept; a refused Secret, itself.
        let refused_names: BTreeSet<&String> = actions
            .iter()
            .flat_map(|a| match (&a.op, a.kind) {
                (Op::Refused { names, .. }, Kind::ServiceAccount) => names.iter().collect(),
                (Op::Refused { .. }, _) => vec![&a.name],
                _ => vec![],
            })
            .collect();
        let forget: Vec<String> = w
            .known
            .iter()
            .filter(|n| {
                !w.targets.contains(n)
                    && !observed.unlistable.contains(n)
                    && !held.contains(*n)
                    && !refused_names.contains(n)
            })
            .cloned()
            .collect();
        if !forget.is_empty() {
            let mut after: Vec<usize> = forget
                .iter()
                .flat_map(|n| deleted.get(n).cloned().unwrap_or_default())
                .collect();
            for (k, idx) in &removals {
                if forget.contains(&k.1) {
                    after.extend(idx);
                }
            }
            after.extend(record);
            after.sort_unstable();
            after.dedup();
            let mut a = inventory_action(&w, vec![], forget);
            a.after = after;
            actions.push(a);
        }
    }

    plan.actions = actions;
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
        name: crate::INVENTORY_NAME.to_owned(),
        op: Op::EditInventory {
            resource_version: w.observed.inventory.resource_version.clone(),
            add,
            remove,
            names,
        },
        after: vec![],
    }
}

fn kept_message(named_by: &[String]) -> String {
    let shown: Vec<&str> = named_by.iter().take(NAMED_IN_MESSAGE).map(String::as_str).collect();
    let more = named_by.len().saturating_sub(NAMED_IN_MESSAGE);
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "kept: still named by {}{tail}; a later run deletes it once nothing names it",
        shown.join(", ")
    )
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
    fn desired_secrets(&self) -> (Vec<Action>, BTreeSet<Key>, BTreeSet<Key>, BTreeSet<Key>) {
        let (mut actions, mut usable, mut blocked) = (Vec::new(), BTreeSet::new(), BTreeSet::new());
        let mut ours: BTreeSet<Key> = self
            .existing
            .values()
            .filter(|s| s.ours)
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
                if matches!(op, Op::Conflict { .. }) {
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
        (actions, usable, blocked, ours)
    }

    fn secret_op(&self, i: usize, cred: &Credential, s: &SecretState) -> Op {
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
        if s.ours {
            let same =
                s.data.as_deref() == Some(cred.data.as_slice()) && s.source_annotation.as_deref() == Some(&cred.origin);
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
                    "a Secret with this name exists without our label (managed by: {others}); it is left alone. \
                     Delete it, or set PULLSECRET_ADOPT=all to take it over"
                ),
            }
        }
    }

    /// Every ServiceAccount outside terminating namespaces, sorted, with the edit we want.
    fn service_account_edits(
        &self,
        usable: &BTreeSet<Key>,
        blocked: &BTreeSet<Key>,
        ours: &BTreeSet<Key>,
    ) -> Vec<SaEdit<'a>> {
        if self.policy.service_accounts.is_empty() {
            return vec![];
        }
        let mut sas: Vec<&ServiceAccountState> = self
            .observed
            .service_accounts
            .iter()
            .filter(|sa| !self.terminating.contains(sa.namespace.as_str()))
            .collect();
        sas.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        sas.dedup_by(|a, b| a.namespace == b.namespace && a.name == b.name);
        sas.into_iter()
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
                    // An entry naming a Secret we manage here is ours, whoever added it.
                    edit.claim = sa
                        .pull_secrets
                        .iter()
                        .filter(|n| self.managed.contains(*n) && ours.contains(&key(ns, n)) && !sa.recorded.contains(n))
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

    /// Copies of ours that are no longer wanted where they are (prune on).
    fn prune_candidates(&self) -> Vec<Candidate<'a>> {
        if !self.policy.prune {
            return vec![];
        }
        self.existing
            .values()
            .filter(|s| {
                let wanted_here = self.selected.contains(s.namespace.as_str()) && self.targets.contains(&s.name);
                s.ours
                    && !wanted_here
                    && self.managed.contains(&s.name)
                    && !self.terminating.contains(s.namespace.as_str())
                    && !self.is_source(&s.namespace, &s.name)
            })
            .map(|s| Candidate {
                secret: s,
                deselection: !self.selected.contains(s.namespace.as_str()),
            })
            .collect()
    }

    /// The empty-selection and prune-limit guards. When either holds, no deselection happens:
    /// the candidates and ServiceAccount removals in deselected namespaces become `Refused`
    /// actions (returned), and one error finding says why and how to proceed.
    fn refuse_deselection(
        &self,
        plan: &mut Plan,
        candidates: &mut Vec<Candidate>,
        sa_edits: &mut [SaEdit],
    ) -> Vec<Action> {
        let mut deselected: BTreeSet<&str> = candidates
            .iter()
            .filter(|c| c.deselection)
            .map(|c| c.secret.namespace.as_str())
            .collect();
        for e in sa_edits.iter() {
            if !e.edit.remove.is_empty() && !self.selected.contains(e.sa.namespace.as_str()) {
                deselected.insert(&e.sa.namespace);
            }
        }
        let limit = self.policy.prune_limit;
        let (reason, message) = if self.selected.is_empty() {
            (
                "EmptySelection",
                format!(
                    "the selection matches no namespace ({}): nothing was pruned, to protect the {} namespace(s) \
                     that hold our copies or entries. Check the selection for a typo",
                    self.policy.describe_selection(),
                    deselected.len()
                ),
            )
        } else if limit > 0 && deselected.len() > limit {
            let names: Vec<&str> = deselected.iter().take(5).copied().collect();
            let more = if deselected.len() > 5 { ", …" } else { "" };
            (
                "PruneLimitExceeded",
                format!(
                    "this run would deselect {} namespaces ({}{more}), more than PULLSECRET_PRUNE_LIMIT={limit}: \
                     nothing was deselected. If the narrower selection is intended, run once with \
                     PULLSECRET_PRUNE_LIMIT={} (or 0 for no limit); otherwise fix the selection ({})",
                    deselected.len(),
                    names.join(", "),
                    deselected.len(),
                    self.policy.describe_selection()
                ),
            )
        } else {
            return vec![];
        };
        plan.findings.push(Finding {
            namespace: String::new(),
            kind: "Run",
            name: String::new(),
            reason,
            message,
            severity: Severity::Error,
        });
        let refused = |kind, namespace: &str, name: &str, names| Action {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            op: Op::Refused {
                reason,
                message: format!("not pruned: {reason} (see the run's problems)"),
                names,
            },
            after: vec![],
        };
        let mut out = Vec::new();
        for e in sa_edits.iter_mut() {
            if !e.edit.remove.is_empty() && !self.selected.contains(e.sa.namespace.as_str()) {
                out.push(refused(
                    Kind::ServiceAccount,
                    &e.sa.namespace,
                    &e.sa.name,
                    std::mem::take(&mut e.edit.remove),
                ));
            }
        }
        candidates.retain(|c| {
            if c.deselection {
                out.push(refused(Kind::Secret, &c.secret.namespace, &c.secret.name, vec![]));
            }
            !c.deselection
        });
        out
    }

    /// What still names `name` in `ns` once this run's ServiceAccount edits are done.
    fn named_by(&self, ns: &str, name: &str, final_lists: &BTreeMap<(&str, &str), Vec<String>>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut sas: Vec<&ServiceAccountState> = self
            .observed
            .service_accounts
            .iter()
            .filter(|s| s.namespace == ns)
            .collect();
        sas.sort_by(|a, b| a.name.cmp(&b.name));
        sas.dedup_by(|a, b| a.name == b.name);
        for sa in sas {
            let list = final_lists
                .get(&(sa.namespace.as_str(), sa.name.as_str()))
                .unwrap_or(&sa.pull_secrets);
            if list.iter().any(|n| n == name) {
                out.push(format!("ServiceAccount {}", sa.name));
            }
        }
        if let Pods::Read(pods) = &self.observed.pods {
            let mut names: Vec<&str> = pods
                .iter()
                .filter(|p| p.namespace == ns && p.pull_secrets.iter().any(|n| n == name))
                .map(|p| p.name.as_str())
                .collect();
            names.sort_unstable();
            names.dedup();
            out.extend(names.into_iter().map(|p| format!("Pod {p}")));
        }
        out
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
