//! Plan (pure): healing stuck Pods. A Pod keeps the `imagePullSecrets` it was admitted with, so
//! one admitted before its ServiceAccount listed our Secret waits on ImagePullBackOff forever. With
//! `PULLSECRET_HEAL_PODS=evict` such a Pod is evicted — only when its controller recreates it and
//! the replacement would get the name from the ServiceAccount at admission — after this run's
//! Secret and ServiceAccount writes in its namespace, at most `PULLSECRET_HEAL_LIMIT` per run.
//! Everything else stuck for that reason is reported with the command that fixes it.

use std::collections::BTreeMap;

use super::{Assembly, World, key};
use crate::core::model::{Action, Finding, Heal, Kind, Op, Plan, Severity, StuckPod};

/// A ServiceAccount's list once this run's edits are done, and the position of its patch (if any).
type FinalList = (Vec<String>, Option<usize>);

/// A Pod to evict: the Pod, its controller, the writes it waits for, and the names it lacks.
type Eviction<'p> = (&'p StuckPod, String, Vec<usize>, String);

impl World<'_> {
    pub(super) fn heal(&self, asm: &mut Assembly, plan: &mut Plan) {
        if self.policy.heal == Heal::Off {
            return;
        }
        if let Some(why) = &self.observed.stuck_unreadable {
            plan.findings.push(Finding {
                namespace: String::new(),
                kind: "Pod",
                name: String::new(),
                reason: "PendingPodsNotListable",
                message: format!(
                    "no Pod was healed: listing the Pending Pods (PULLSECRET_HEAL_PODS=evict) failed: {why}. \
                     Grant `list` and `watch` on pods and `create` on pods/eviction (the heal component, or \
                     the chart with config.PULLSECRET_HEAL_PODS=evict); the rest of the run is unaffected"
                ),
                severity: Severity::Error,
            });
            return;
        }
        let lists = self.final_lists(asm);
        let mut stuck: Vec<&StuckPod> = self
            .observed
            .stuck
            .iter()
            .filter(|p| self.selected.contains(p.namespace.as_str()))
            .collect();
        stuck.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let evictions: Vec<Eviction> = stuck
            .into_iter()
            .filter_map(|pod| self.eviction(pod, &lists, asm, plan))
            .collect();
        push_evictions(asm, evictions, self.policy.heal_limit);
    }

    /// ServiceAccounts as this run leaves them: (namespace, name) -> (list, the patch's position).
    fn final_lists<'a>(&'a self, asm: &'a Assembly) -> BTreeMap<(&'a str, &'a str), FinalList> {
        let mut lists: BTreeMap<(&'a str, &'a str), FinalList> = self
            .service_accounts
            .iter()
            .map(|(k, sa)| (*k, (sa.pull_secrets.clone(), None)))
            .collect();
        for (i, a) in asm.actions.iter().enumerate() {
            if let Op::PatchServiceAccount { list, .. } = &a.op {
                lists.insert((a.namespace.as_str(), a.name.as_str()), (list.clone(), Some(i)));
            }
        }
        lists
    }

    /// Whether `pod` is stuck for want of a managed name, and can be healed by eviction; what
    /// cannot be healed is reported in `plan`.
    fn eviction<'p>(
        &self,
        pod: &'p StuckPod,
        lists: &BTreeMap<(&str, &str), FinalList>,
        asm: &Assembly,
        plan: &mut Plan,
    ) -> Option<Eviction<'p>> {
        let (list, patch) = lists.get(&(pod.namespace.as_str(), pod.service_account.as_str()))?;
        let lacking: Vec<&String> = self
            .targets
            .iter()
            .filter(|t| list.contains(t) && !pod.pull_secrets.contains(t))
            .collect();
        if lacking.is_empty() {
            return None;
        }
        let names = lacking.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
        let (ns, name, sa) = (&pod.namespace, &pod.name, &pod.service_account);
        // A replacement is made from the owner's template: a template with a list of its own
        // gives it exactly that list (admission copies nothing into a Pod with a list). Decided
        // from the template as read this run; without it, from the Pod (a list that is not part of
        // the ServiceAccount's came from the template).
        let template_sets = match &pod.owner {
            Some(owner) if !owner.pull_secrets.is_empty() => lacking.iter().any(|t| !owner.pull_secrets.contains(t)),
            Some(_) => false,
            None => !pod.pull_secrets.iter().all(|n| list.contains(n)),
        };
        if template_sets {
            plan.findings.push(finding(
                pod,
                "TemplateSetsPullSecrets",
                format!(
                    "waits on an image pull and its own imagePullSecrets lack {names}, which ServiceAccount {sa} \
                     lists; they come from its template, so a new Pod would lack them too: add {names} to the \
                     template's imagePullSecrets"
                ),
            ));
            return None;
        }
        let Some(controller) = pod.controller.clone() else {
            plan.findings.push(finding(
                pod,
                "StuckPodNotHealable",
                format!(
                    "waits on an image pull: admitted before ServiceAccount {sa} listed {names}, and no controller \
                     recreates it, so it is left alone. Recreate it: kubectl -n {ns} get pod {name} -o yaml > pod.yaml; \
                     kubectl -n {ns} delete pod {name}; remove spec.imagePullSecrets from pod.yaml; kubectl apply -f pod.yaml"
                ),
            ));
            return None;
        };
        // A Job's budget unknown (the window does not read owners): the next full pass decides.
        if pod.owner.is_none() && controller.starts_with("Job/") {
            return None;
        }
        if pod.owner.as_ref().and_then(|o| o.job_absorbs) == Some(false) {
            plan.findings.push(finding(
                pod,
                "JobCannotAbsorbEviction",
                format!(
                    "waits on an image pull (it lacks {names}), but an evicted Pod counts as failed and {controller} \
                     has no backoff left (backoffLimit reached, or per-index limits) and no podFailurePolicy rule \
                     ignoring DisruptionTarget: evicting it would fail the Job, so it is left alone. Re-create the \
                     Job (kubectl -n {ns} get job ... -o yaml, delete, apply), or give it a podFailurePolicy rule \
                     {{action: Ignore, onPodConditions: [{{type: DisruptionTarget}}]}} and the next run evicts the Pod"
                ),
            ));
            return None;
        }
        let mut after: Vec<usize> = patch.iter().copied().collect();
        after.extend(lacking.iter().filter_map(|t| asm.upserts.get(&key(ns, t))));
        Some((pod, controller, after, names))
    }
}

/// The evictions in order, those past `limit` (0 = none) refused.
fn push_evictions(asm: &mut Assembly, evictions: Vec<Eviction>, limit: usize) {
    let limit = match limit {
        0 => usize::MAX,
        n => n,
    };
    let over = evictions.len().saturating_sub(limit);
    for (i, (pod, controller, after, names)) in evictions.into_iter().enumerate() {
        let op = if i < limit {
            Op::Evict {
                uid: pod.uid.clone(),
                controller,
            }
        } else {
            Op::Refused {
                reason: "HealLimitExceeded",
                message: format!(
                    "not evicted this run: {over} more stuck Pod(s) than PULLSECRET_HEAL_LIMIT={limit}; the next \
                     run continues (it lacks {names})"
                ),
                names: vec![],
            }
        };
        asm.push(Action {
            kind: Kind::Pod,
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            op,
            after,
        });
    }
}

/// The reasons a stuck Pod is reported instead of evicted (`pods.not_healable` counts these).
pub const NOT_HEALABLE: &[&str] = &[
    "TemplateSetsPullSecrets",
    "StuckPodNotHealable",
    "JobCannotAbsorbEviction",
];

fn finding(pod: &StuckPod, reason: &'static str, message: String) -> Finding {
    Finding {
        namespace: pod.namespace.clone(),
        kind: "Pod",
        name: pod.name.clone(),
        reason,
        message,
        severity: Severity::Warning,
    }
}
