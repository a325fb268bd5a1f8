//! The prune guards (pure): which copies of ours are no longer wanted, the empty-selection and
//! deselection-limit refusals, the reference check (ServiceAccounts after this run's edits, and
//! unfinished Pods) that turns a delete into a kept copy, and when a retired name is forgotten.

use std::collections::{BTreeMap, BTreeSet};

use super::{Assembly, SaEdit, World, inventory_action, key};
use crate::core::KEEP_ANNOTATION;
use crate::core::model::{Action, Finding, Kind, Listed, Op, Plan, Pods, SecretState, Severity};

/// How many objects a "kept" message names before it gives a count.
const NAMED_IN_MESSAGE: usize = 3;

/// An existing copy of ours that is no longer wanted where it is.
pub(super) struct Candidate<'a> {
    pub(super) secret: &'a SecretState,
    /// Its namespace is not selected this run (as opposed to a renamed or dropped name).
    deselection: bool,
}

fn unlisted_message(service_accounts: &[String]) -> String {
    let shown: Vec<&str> = service_accounts
        .iter()
        .take(NAMED_IN_MESSAGE)
        .map(String::as_str)
        .collect();
    format!(
        "this run removes it from ServiceAccount(s) {}; a Pod admitted before that patch may still name it, so the \
         next run deletes it once no Pod does",
        shown.join(", ")
    )
}

/// A copy annotated `pullsecret-reconciler/keep: "true"`.
fn held_by_hand() -> Op {
    Op::Kept {
        reason: "KeepAnnotation",
        message: format!("kept: annotated {KEEP_ANNOTATION}: \"true\"; remove the annotation to let a run delete it"),
    }
}

/// A copy whose recorded Pod holders are all still there (not read again this run).
fn still_held() -> Op {
    Op::Kept {
        reason: "StillReferenced",
        message: "kept: still named by Pods when references were last read, and none of the Pods that could \
                  name it has ended since (read again once one has); a later run deletes it once nothing names it"
            .into(),
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
    /// Copies of ours that are no longer wanted where they are (prune on).
    pub(super) fn prune_candidates(&self) -> Vec<Candidate<'a>> {
        if !self.policy.prune {
            return vec![];
        }
        self.existing
            .values()
            .filter(|s| {
                let wanted_here = self.selected.contains(s.namespace.as_str()) && self.targets.contains(&s.name);
                self.ours(s)
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

    /// Which guard, if any, stops deselecting `deselected`: (reason, message).
    fn deselection_guard(&self, deselected: &BTreeSet<&str>) -> Option<(&'static str, String)> {
        let limit = self.policy.prune_limit;
        if self.selected.is_empty() {
            Some((
                "EmptySelection",
                format!(
                    "the selection matches no namespace ({}): nothing was pruned, to protect the {} namespace(s) \
                     that hold our copies or entries. Check the selection for a typo",
                    self.policy.describe_selection(),
                    deselected.len()
                ),
            ))
        } else if limit > 0 && deselected.len() > limit {
            let names: Vec<&str> = deselected.iter().take(5).copied().collect();
            let more = if deselected.len() > 5 { ", …" } else { "" };
            Some((
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
            ))
        } else {
            None
        }
    }

    /// The empty-selection and prune-limit guards. When either holds, no deselection happens:
    /// the candidates and ServiceAccount removals in deselected namespaces become `Refused`
    /// actions (returned), and one error finding says why and how to proceed.
    pub(super) fn refuse_deselection(
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
        let Some((reason, message)) = self.deselection_guard(&deselected) else {
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

    /// Deletes only what nothing names: no Pod or template, and no ServiceAccount — not even one
    /// this run stops naming it (that copy waits for the next run, see [`Self::unlisted_here`]).
    /// The rest is kept, or refused without the Pods.
    pub(super) fn delete_or_keep(&self, asm: &mut Assembly, candidates: &[Candidate], plan: &mut Plan) {
        let mut pods_unreadable = false;
        for c in candidates {
            let s = c.secret;
            // The first pass of a run has read neither every ServiceAccount nor the Pods.
            let references_read =
                self.observed.service_accounts_listed == Listed::All && self.observed.pods != Pods::NotRead;
            let op = if s.keep {
                held_by_hand()
            } else if self.observed.held_over.contains(&(s.namespace.clone(), s.name.clone())) {
                still_held()
            } else if !references_read {
                plan.needs_references = true;
                Op::Refused {
                    reason: "ReferencesNotRead",
                    message: "not deleted: Pods and ServiceAccounts were not read to check that none still names it"
                        .into(),
                    names: vec![],
                }
            } else {
                let named_by = self.named_by(&s.namespace, &s.name, &asm.final_lists);
                let unlisted = self.unlisted_here(&s.namespace, &s.name, &asm.final_lists);
                if !named_by.is_empty() {
                    Op::Kept {
                        reason: "StillReferenced",
                        message: kept_message(&named_by),
                    }
                } else if matches!(self.observed.pods, Pods::Unreadable(_)) {
                    pods_unreadable = true;
                    Op::Refused {
                        reason: "PodsNotListable",
                        message: "not deleted: Pods could not be listed to check that none still names it".into(),
                        names: vec![],
                    }
                } else if !unlisted.is_empty() {
                    Op::Kept {
                        reason: "UnlistedThisRun",
                        message: unlisted_message(&unlisted),
                    }
                } else {
                    Op::DeleteSecret {
                        resource_version: s.resource_version.clone(),
                        uid: s.uid.clone(),
                    }
                }
            };
            let after = if op.is_write() {
                asm.removals
                    .get(&key(&s.namespace, &s.name))
                    .cloned()
                    .unwrap_or_default()
            } else {
                vec![]
            };
            asm.push(Action {
                kind: Kind::Secret,
                namespace: s.namespace.clone(),
                name: s.name.clone(),
                op,
                after,
            });
        }
        if let Pods::Unreadable(why) = &self.observed.pods
            && pods_unreadable
        {
            plan.findings.push(Finding {
                namespace: String::new(),
                kind: "Pod",
                name: String::new(),
                reason: "PodsNotListable",
                message: format!(
                    "nothing was deleted: listing Pods (to make sure none still names a Secret before it is \
                     deleted) failed: {why}. Grant `list` on pods, and on deployments, statefulsets, daemonsets, \
                     replicasets, jobs and cronjobs (their Pod templates): the ClusterRole \
                     pullsecret-reconciler-prune (manifests/rbac-prune.yaml; the chart with prune on)"
                ),
                severity: Severity::Error,
            });
        }
    }

    /// Retired names are forgotten once every copy and entry of theirs is gone: the forgetting
    /// waits for all of their removals; a name with a kept or refused copy or entry stays.
    pub(super) fn forget_retired(&self, asm: &mut Assembly) {
        if !self.policy.prune {
            return;
        }
        let mut held: BTreeSet<&String> = BTreeSet::new();
        let mut deletes: BTreeMap<&String, Vec<usize>> = BTreeMap::new();
        for (i, a) in asm.actions.iter().enumerate() {
            match (&a.op, a.kind) {
                (Op::DeleteSecret { .. }, _) => deletes.entry(&a.name).or_default().push(i),
                (Op::Refused { names, .. }, Kind::ServiceAccount) => held.extend(names),
                (Op::Refused { .. } | Op::Kept { .. }, Kind::Secret) => {
                    held.insert(&a.name);
                }
                _ => {}
            }
        }
        let forget: Vec<String> = self
            .known
            .iter()
            .filter(|n| !self.targets.contains(n) && !self.observed.unlistable.contains(n) && !held.contains(n))
            .cloned()
            .collect();
        if forget.is_empty() {
            return;
        }
        let mut after: Vec<usize> = forget
            .iter()
            .flat_map(|n| deletes.get(n).cloned().unwrap_or_default())
            .collect();
        for ((_, name), idx) in &asm.removals {
            if forget.contains(name) {
                after.extend(idx);
            }
        }
        after.extend(asm.record);
        after.sort_unstable();
        after.dedup();
        let mut a = inventory_action(self, vec![], forget);
        a.after = after;
        asm.push(a);
    }

    /// The ServiceAccounts in `ns` that this run stops naming `name`. Until such a patch is
    /// acknowledged the API server still copies the old list into every Pod it admits, and the
    /// run read its Pods before the patch: a Pod admitted in between would carry a name whose
    /// Secret is gone. So the copy waits for the next run, whose reference read comes after the
    /// patch and sees such Pods.
    fn unlisted_here(
        &self,
        ns: &str,
        name: &str,
        final_lists: &BTreeMap<(String, String), Vec<String>>,
    ) -> Vec<String> {
        self.service_accounts
            .range((ns, "")..)
            .take_while(|((n, _), _)| *n == ns)
            .filter(|(_, sa)| {
                sa.pull_secrets.iter().any(|n| n == name)
                    && final_lists
                        .get(&key(&sa.namespace, &sa.name))
                        .is_some_and(|list| !list.iter().any(|n| n == name))
            })
            .map(|(_, sa)| sa.name.clone())
            .collect()
    }

    /// What still names `name` in `ns` once this run's ServiceAccount edits are done.
    fn named_by(&self, ns: &str, name: &str, final_lists: &BTreeMap<(String, String), Vec<String>>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        // The namespace's ServiceAccounts: a range of the (namespace, name)-ordered index.
        let in_namespace = self
            .service_accounts
            .range((ns, "")..)
            .take_while(|((n, _), _)| *n == ns);
        for (_, sa) in in_namespace {
            let list = final_lists
                .get(&key(&sa.namespace, &sa.name))
                .unwrap_or(&sa.pull_secrets);
            if list.iter().any(|n| n == name) {
                out.push(format!("ServiceAccount {}", sa.name));
            }
        }
        if let Pods::Read(pods) = &self.observed.pods {
            // Pods first, then the workloads whose templates name it.
            let mut names: Vec<(bool, &str, &str)> = pods
                .iter()
                .filter(|p| p.namespace == ns && p.secrets.iter().any(|n| n == name))
                .map(|p| (p.kind != "Pod", p.kind, p.name.as_str()))
                .collect();
            names.sort_unstable();
            names.dedup();
            out.extend(names.into_iter().map(|(_, kind, p)| format!("{kind} {p}")));
        }
        out
    }
}

/// The [`Held`] records after this plan: a copy kept only for Pods (no ServiceAccount, no
/// template names it) gets the youngest holder's creation and how many unfinished Pods of its
/// namespace were created by then (`observed.pod_ages`); a copy held over keeps its record.
/// Without those ages (references were read per namespace: cheap enough) nothing is recorded.
pub fn held_records(plan: &Plan, observed: &crate::core::model::Observed) -> Vec<crate::core::model::Held> {
    let Some(ages) = &observed.pod_ages else { return vec![] };
    let Pods::Read(pods) = &observed.pods else {
        return vec![];
    };
    let mut out = Vec::new();
    for a in &plan.actions {
        if !matches!(
            a.op,
            Op::Kept {
                reason: "StillReferenced",
                ..
            }
        ) || a.kind != Kind::Secret
        {
            continue;
        }
        let copy = (a.namespace.clone(), a.name.clone());
        if observed.held_over.contains(&copy) {
            out.extend(
                observed
                    .inventory
                    .held
                    .iter()
                    .filter(|h| (&h.namespace, &h.name) == (&copy.0, &copy.1))
                    .cloned(),
            );
            continue;
        }
        let names = |p: &&crate::core::model::PodState| p.namespace == a.namespace && p.secrets.contains(&a.name);
        let holders: Vec<&crate::core::model::PodState> = pods.iter().filter(names).collect();
        let by_account = observed
            .service_accounts
            .iter()
            .any(|sa| sa.namespace == a.namespace && sa.pull_secrets.contains(&a.name));
        if holders.is_empty() || by_account || holders.iter().any(|p| p.kind != "Pod") {
            continue;
        }
        let before = holders.iter().map(|p| p.created).max().unwrap_or(0);
        let pods = crate::core::model::created_by(ages, &a.namespace, before);
        out.push(crate::core::model::Held {
            namespace: copy.0,
            name: copy.1,
            before,
            pods,
        });
    }
    out.sort();
    out
}
