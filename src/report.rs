//! Stage 6, report (pure): Plan + Outcomes -> [`Summary`], rendered as text or JSON, and the exit code.

use std::fmt::Write as _;

use serde::Serialize;

use crate::apply::{Failure, Outcomes};
use crate::plan::{Plan, SecretOp, ServiceAccountOp};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub dry_run: bool,
    /// True when every selected namespace holds the desired state (exit code 0).
    pub converged: bool,
    pub namespaces: Namespaces,
    pub secrets: Secrets,
    pub service_accounts: ServiceAccounts,
    pub api_requests: ApiRequests,
    pub duration_ms: u64,
    pub problems: Vec<Problem>,
    /// Set when the run stopped before writing anything (exit code 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Namespaces {
    pub seen: usize,
    pub selected: usize,
    pub excluded: usize,
    pub terminating: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Secrets {
    pub created: usize,
    /// Includes `adopted`.
    pub updated: usize,
    pub adopted: usize,
    pub unchanged: usize,
    pub deleted: usize,
    pub conflicts: usize,
    pub failed: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ServiceAccounts {
    pub patched: usize,
    pub unchanged: usize,
    pub missing: usize,
    pub failed: usize,
    /// Writes repeated because another client changed the ServiceAccount meanwhile.
    pub retried: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ApiRequests {
    pub reads: u64,
    pub writes: u64,
    /// The most write requests that were ever in flight at once (bounded by PULLSECRET_CONCURRENCY).
    pub max_writes_in_flight: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub reason: String,
    pub message: String,
    /// `error` makes the run non-converged; `warning` does not.
    pub severity: &'static str,
}

impl Summary {
    /// Builds the summary of a run that got as far as a plan. In a dry run `outcomes` is empty
    /// and every planned action counts as what would happen.
    pub fn from_run(plan: &Plan, outcomes: &Outcomes, dry_run: bool) -> Summary {
        let mut s = Summary {
            dry_run,
            ..Summary::default()
        };
        let n = plan.namespaces;
        s.namespaces = Namespaces {
            seen: n.seen,
            selected: n.selected,
            excluded: n.excluded,
            terminating: n.terminating,
        };
        for (i, a) in plan.secrets.iter().enumerate() {
            if let SecretOp::Conflict { reason, message } = &a.op {
                s.secrets.conflicts += 1;
                s.problems
                    .push(problem(&a.namespace, "Secret", &a.name, reason, message, "error"));
                continue;
            }
            if let Some(Some(f)) = outcomes.secrets.get(i) {
                s.secrets.failed += 1;
                s.problems.push(failure(&a.namespace, "Secret", &a.name, f));
                continue;
            }
            match &a.op {
                SecretOp::Create { .. } => s.secrets.created += 1,
                SecretOp::Update { adopt, .. } => {
                    s.secrets.updated += 1;
                    s.secrets.adopted += usize::from(*adopt);
                }
                SecretOp::Unchanged => s.secrets.unchanged += 1,
                SecretOp::Delete { .. } => s.secrets.deleted += 1,
                SecretOp::Conflict { .. } => {}
            }
        }
        for (i, a) in plan.service_accounts.iter().enumerate() {
            if let Some(Some(f)) = outcomes.service_accounts.get(i) {
                s.service_accounts.failed += 1;
                s.problems.push(failure(&a.namespace, "ServiceAccount", &a.name, f));
                continue;
            }
            match a.op {
                ServiceAccountOp::Patch { .. } => s.service_accounts.patched += 1,
                ServiceAccountOp::Unchanged => s.service_accounts.unchanged += 1,
                ServiceAccountOp::Missing => s.service_accounts.missing += 1,
            }
        }
        s.service_accounts.retried = outcomes.retries;
        if let Some(f) = &outcomes.inventory {
            s.problems.push(failure("", "ConfigMap", crate::INVENTORY_NAME, f));
        }
        for w in &plan.warnings {
            s.problems
                .push(problem(&w.namespace, w.kind, &w.name, w.reason, &w.message, "warning"));
        }
        s.converged = !s.problems.iter().any(|p| p.severity == "error");
        s
    }

    /// The summary of a run that stopped before writing anything.
    pub fn aborted(dry_run: bool, error: &anyhow::Error) -> Summary {
        let message = format!("{error:#}");
        Summary {
            dry_run,
            problems: vec![problem("", "Run", "", "NothingWritten", &message, "error")],
            error: Some(message),
            ..Summary::default()
        }
    }

    /// 0 converged, 1 finished but not converged, 2 stopped before writing.
    pub fn exit_code(&self) -> u8 {
        match (self.error.is_some(), self.converged) {
            (true, _) => 2,
            (false, true) => 0,
            (false, false) => 1,
        }
    }

    pub fn to_json(&self) -> String {
        // A struct of plain strings and numbers always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn to_text(&self) -> String {
        let mut t = String::new();
        let state = match self.exit_code() {
            0 => "converged",
            1 => "NOT converged",
            _ => "stopped, nothing written",
        };
        let dry = if self.dry_run {
            " (dry run: counts are what would happen)"
        } else {
            ""
        };
        let _ = writeln!(t, "pullsecret-reconciler: {state}{dry} in {} ms", self.duration_ms);
        let n = &self.namespaces;
        let _ = writeln!(
            t,
            "  namespaces:       {} seen, {} selected, {} excluded, {} terminating",
            n.seen, n.selected, n.excluded, n.terminating
        );
        let c = &self.secrets;
        let _ = writeln!(
            t,
            "  secrets:          {} created, {} updated ({} adopted), {} unchanged, {} deleted, {} conflicts, {} failed",
            c.created, c.updated, c.adopted, c.unchanged, c.deleted, c.conflicts, c.failed
        );
        let a = &self.service_accounts;
        let _ = writeln!(
            t,
            "  service accounts: {} patched, {} unchanged, {} missing, {} failed",
            a.patched, a.unchanged, a.missing, a.failed
        );
        let _ = writeln!(
            t,
            "  api requests:     {} reads, {} writes",
            self.api_requests.reads, self.api_requests.writes
        );
        if !self.problems.is_empty() {
            let _ = writeln!(t, "  problems:");
            for p in &self.problems {
                let at = match (p.namespace.is_empty(), p.name.is_empty()) {
                    (true, true) => p.kind.clone(),
                    (true, false) => format!("{} {}", p.kind, p.name),
                    _ => format!("{} {}/{}", p.kind, p.namespace, p.name),
                };
                let _ = writeln!(t, "    - {}: {at}: {}: {}", p.severity, p.reason, p.message);
            }
        }
        t
    }
}

fn problem(namespace: &str, kind: &str, name: &str, reason: &str, message: &str, severity: &'static str) -> Problem {
    Problem {
        namespace: namespace.to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        severity,
    }
}

fn failure(namespace: &str, kind: &str, name: &str, f: &Failure) -> Problem {
    problem(namespace, kind, name, &f.reason, &f.message, "error")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Edit, NamespaceCounts, SecretAction, ServiceAccountAction, Warning};

    fn sample() -> Plan {
        let s = |ns: &str, op| SecretAction {
            namespace: ns.into(),
            name: "regcred".into(),
            op,
        };
        Plan {
            namespaces: NamespaceCounts {
                seen: 5,
                selected: 3,
                excluded: 1,
                terminating: 1,
            },
            secrets: vec![
                s("a", SecretOp::Create { credential: 0 }),
                s(
                    "b",
                    SecretOp::Update {
                        credential: 0,
                        resource_version: "1".into(),
                        adopt: true,
                    },
                ),
                s(
                    "c",
                    SecretOp::Conflict {
                        reason: "NotOwned",
                        message: "left alone".into(),
                    },
                ),
                s(
                    "d",
                    SecretOp::Delete {
                        resource_version: "2".into(),
                        uid: "u".into(),
                    },
                ),
            ],
            service_accounts: vec![
                ServiceAccountAction {
                    namespace: "a".into(),
                    name: "default".into(),
                    op: ServiceAccountOp::Patch {
                        resource_version: "3".into(),
                        edit: Edit::default(),
                        list: vec![],
                        recorded: vec![],
                    },
                },
                ServiceAccountAction {
                    namespace: "b".into(),
                    name: "default".into(),
                    op: ServiceAccountOp::Missing,
                },
            ],
            warnings: vec![Warning {
                namespace: "a".into(),
                kind: "ServiceAccount",
                name: "default".into(),
                reason: "ListOwnedByApplier",
                message: "argocd".into(),
            }],
            ..Plan::default()
        }
    }

    #[test]
    fn dry_run_counts_what_would_happen() {
        let s = Summary::from_run(&sample(), &Outcomes::default(), true);
        assert_eq!(
            s.secrets,
            Secrets {
                created: 1,
                updated: 1,
                adopted: 1,
                unchanged: 0,
                deleted: 1,
                conflicts: 1,
                failed: 0
            }
        );
        assert_eq!((s.service_accounts.patched, s.service_accounts.missing), (1, 1));
        assert_eq!(s.exit_code(), 1, "a conflict is not converged");
        assert_eq!(s.problems.iter().filter(|p| p.severity == "warning").count(), 1);
    }

    #[test]
    fn failures_are_problems_and_exit_1() {
        let mut plan = sample();
        plan.secrets.retain(|a| !matches!(a.op, SecretOp::Conflict { .. }));
        let ok = Summary::from_run(&plan, &Outcomes::default(), false);
        assert_eq!(ok.exit_code(), 0, "warnings alone keep exit 0");
        let outcomes = Outcomes {
            secrets: vec![
                Some(Failure {
                    reason: "Forbidden".into(),
                    message: "no".into(),
                }),
                None,
                None,
            ],
            ..Outcomes::default()
        };
        let s = Summary::from_run(&plan, &outcomes, false);
        assert_eq!((s.secrets.failed, s.secrets.created), (1, 0));
        assert_eq!(s.exit_code(), 1);
        assert!(s.problems.iter().any(|p| p.namespace == "a" && p.reason == "Forbidden"));
    }

    #[test]
    fn json_has_the_contract_keys() {
        let s = Summary::from_run(&sample(), &Outcomes::default(), false);
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        for key in [
            "dry_run",
            "namespaces",
            "secrets",
            "service_accounts",
            "api_requests",
            "duration_ms",
            "problems",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        for key in ["created", "updated", "unchanged", "deleted", "conflicts", "failed"] {
            assert!(v["secrets"].get(key).is_some(), "{key}");
        }
        for key in ["patched", "unchanged", "missing", "failed"] {
            assert!(v["service_accounts"].get(key).is_some(), "{key}");
        }
        assert!(v["problems"][0].get("reason").is_some());
    }

    #[test]
    fn aborted_is_exit_2() {
        let s = Summary::aborted(false, &anyhow::anyhow!("source Secret x/y does not exist"));
        assert_eq!(s.exit_code(), 2);
        assert!(s.to_text().contains("nothing written"));
        assert!(s.to_json().contains("does not exist"));
    }
}
