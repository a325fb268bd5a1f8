//! Report: outcomes in, counts, problems, actions and text out.

use super::*;
use crate::core::model::{Action, Edit, Finding, NamespaceCounts};

fn action(kind: Kind, ns: &str, name: &str, op: Op) -> Action {
    Action {
        kind,
        namespace: ns.into(),
        name: name.into(),
        op,
        after: vec![],
    }
}

fn sample() -> Plan {
    let secret = |ns: &str, op| action(Kind::Secret, ns, "regcred", op);
    Plan {
        namespaces: NamespaceCounts {
            seen: 5,
            selected: 3,
            excluded: 1,
            terminating: 1,
        },
        actions: vec![
            secret("a", Op::CreateSecret { credential: 0 }),
            secret(
                "b",
                Op::UpdateSecret {
                    credential: 0,
                    resource_version: "1".into(),
                    adopt: true,
                },
            ),
            secret(
                "c",
                Op::Conflict {
                    reason: "NotOwned",
                    message: "left alone".into(),
                },
            ),
            secret(
                "d",
                Op::DeleteSecret {
                    resource_version: "2".into(),
                    uid: "u".into(),
                },
            ),
            secret(
                "e",
                Op::Kept {
                    reason: "StillReferenced",
                    message: "kept: still named by Pod web-1".into(),
                },
            ),
            action(
                Kind::ServiceAccount,
                "a",
                "default",
                Op::PatchServiceAccount {
                    resource_version: "3".into(),
                    edit: Edit {
                        add: vec!["regcred".into()],
                        remove: vec!["old".into()],
                        claim: vec![],
                    },
                    list: vec!["regcred".into()],
                    recorded: vec!["regcred".into()],
                },
            ),
            action(Kind::ServiceAccount, "b", "default", Op::Missing),
        ],
        findings: vec![Finding {
            namespace: "a".into(),
            kind: "ServiceAccount",
            name: "default".into(),
            reason: "ListOwnedByApplier",
            message: "argocd".into(),
            severity: Severity::Warning,
        }],
        needs_references: false,
    }
}

fn outcomes(plan: &Plan, status: impl Fn(&Action) -> Status) -> Vec<Outcome> {
    plan.actions
        .iter()
        .map(|a| Outcome {
            action: a.clone(),
            status: status(a),
        })
        .collect()
}

fn done(a: &Action) -> Status {
    if a.op.is_write() {
        Status::Done { retries: 0 }
    } else {
        Status::NotSent
    }
}

#[test]
fn dry_run_counts_what_would_happen_and_lists_every_action() {
    let plan = sample();
    let s = Summary::from_run(&plan, &crate::apply::unsent(plan.actions.clone()), DryRun::Client);
    assert_eq!(
        s.secrets,
        Secrets {
            created: 1,
            updated: 1,
            adopted: 1,
            unchanged: 0,
            deleted: 1,
            kept: 1,
            refused: 0,
            conflicts: 1,
            conflicts_accepted: 0,
            failed: 0
        }
    );
    assert_eq!((s.service_accounts.patched, s.service_accounts.missing), (1, 1));
    assert_eq!(s.exit_code(), 1, "a conflict is not converged");
    assert!((s.dry_run, s.dry_run_mode) == (true, "client"));
    let actions: Vec<(&str, &str, &str)> = s
        .actions
        .iter()
        .map(|a| (a.action, a.namespace.as_str(), a.status))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("create", "a", "planned"),
            ("adopt", "b", "planned"),
            ("delete", "d", "planned"),
            ("kept", "e", "planned"),
            ("patch", "a", "planned"),
        ]
    );
    let patch = &s.actions[4];
    assert_eq!(
        (patch.added.clone(), patch.removed.clone()),
        (vec!["regcred".into()], vec!["old".into()])
    );
    assert_eq!(s.actions[3].reason.as_deref(), Some("StillReferenced"));
    let text = s.to_text();
    assert!(text.contains("delete Secret regcred in 1 namespace(s): d"), "{text}");
    assert!(
        text.contains("kept Secret regcred (StillReferenced) in 1 namespace(s): e"),
        "{text}"
    );
}

#[test]
fn kept_alone_keeps_exit_0_and_warnings_too() {
    let mut plan = sample();
    plan.actions.retain(|a| !matches!(a.op, Op::Conflict { .. }));
    let s = Summary::from_run(&plan, &outcomes(&plan, done), DryRun::Off);
    assert_eq!(s.exit_code(), 0, "{s:?}");
    assert_eq!(s.problems.iter().filter(|p| p.severity == Severity::Warning).count(), 2);
    assert!(s.actions.iter().all(|a| a.status == "done"));
}

#[test]
fn failures_and_skips_are_problems_and_exit_1() {
    let mut plan = sample();
    plan.actions.retain(|a| !matches!(a.op, Op::Conflict { .. }));
    let o = outcomes(&plan, |a| match (&a.op, a.namespace.as_str()) {
        (Op::CreateSecret { .. }, _) => Status::Failed(Failure::new("Forbidden", "no")),
        (Op::PatchServiceAccount { .. }, _) => Status::Skipped(Failure::new("SecretNotWritten", "waits")),
        _ => done(a),
    });
    let s = Summary::from_run(&plan, &o, DryRun::Off);
    assert_eq!((s.secrets.failed, s.secrets.created), (1, 0));
    assert_eq!((s.service_accounts.failed, s.service_accounts.patched), (1, 0));
    assert_eq!(s.exit_code(), 1);
    assert!(s.problems.iter().any(|p| p.namespace == "a" && p.reason == "Forbidden"));
    let skipped = s.actions.iter().find(|a| a.action == "patch").unwrap();
    assert_eq!(
        (skipped.status, skipped.reason.as_deref()),
        ("skipped", Some("SecretNotWritten"))
    );
}

#[test]
fn a_gone_service_account_counts_as_missing_and_retries_are_counted() {
    let plan = sample();
    let o = outcomes(&plan, |a| match &a.op {
        Op::PatchServiceAccount { .. } => Status::Gone,
        Op::CreateSecret { .. } => Status::Done { retries: 3 },
        _ => done(a),
    });
    let s = Summary::from_run(&plan, &o, DryRun::Server);
    assert_eq!((s.service_accounts.missing, s.service_accounts.failed), (2, 0));
    assert_eq!(s.service_accounts.retried, 0, "only ServiceAccount retries count there");
    assert_eq!(s.dry_run_mode, "server");
}

#[test]
fn json_has_the_contract_keys() {
    let plan = sample();
    let s = Summary::from_run(&plan, &outcomes(&plan, done), DryRun::Off);
    let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
    for key in [
        "dry_run",
        "converged",
        "namespaces",
        "secrets",
        "service_accounts",
        "api_requests",
        "duration_ms",
        "problems",
        "actions",
    ] {
        assert!(v.get(key).is_some(), "{key}");
    }
    for key in ["seen", "selected", "excluded", "terminating"] {
        assert!(v["namespaces"].get(key).is_some(), "{key}");
    }
    for key in [
        "created",
        "updated",
        "unchanged",
        "deleted",
        "conflicts",
        "failed",
        "adopted",
    ] {
        assert!(v["secrets"].get(key).is_some(), "{key}");
    }
    for key in ["patched", "unchanged", "missing", "failed", "retried"] {
        assert!(v["service_accounts"].get(key).is_some(), "{key}");
    }
    for key in ["reads", "writes", "max_writes_in_flight", "bytes_read"] {
        assert!(v["api_requests"].get(key).is_some(), "{key}");
    }
    for key in ["namespace", "kind", "name", "reason", "message", "severity"] {
        assert!(v["problems"][0].get(key).is_some(), "{key}");
    }
    for key in ["kind", "namespace", "name", "action"] {
        assert!(v["actions"][0].get(key).is_some(), "{key}");
    }
}

#[test]
fn the_text_listing_of_a_large_dry_run_is_capped() {
    let plan = Plan {
        actions: (0..100)
            .map(|i| {
                action(
                    Kind::Secret,
                    &format!("ns-{i}"),
                    &format!("name-{i}"),
                    Op::CreateSecret { credential: 0 },
                )
            })
            .collect(),
        ..Plan::default()
    };
    let s = Summary::from_run(&plan, &crate::apply::unsent(plan.actions.clone()), DryRun::Client);
    let text = s.to_text();
    assert!(text.contains("… and 70 more lines"), "{text}");
    assert_eq!(s.actions.len(), 100, "under the cap JSON lists every action");
    assert_eq!(s.actions_omitted, 0);
}

#[test]
fn the_listed_actions_are_capped_the_counts_stay_exact_and_failures_stay_listed() {
    let n = ACTIONS_LISTED * 3;
    let plan = Plan {
        actions: (0..n)
            .map(|i| {
                action(
                    Kind::Secret,
                    &format!("ns-{i:05}"),
                    "regcred",
                    Op::CreateSecret { credential: 0 },
                )
            })
            .collect(),
        ..Plan::default()
    };
    // The last two writes fail: past the cap they still make the list, in order, at its end.
    let failed = |a: &Action| {
        if a.namespace >= format!("ns-{:05}", n - 2) {
            Status::Failed(Failure::new("Forbidden", "no"))
        } else {
            Status::Done { retries: 0 }
        }
    };
    let s = Summary::from_run(&plan, &outcomes(&plan, failed), DryRun::Off);
    assert_eq!(s.secrets.created, n - 2);
    assert_eq!(s.secrets.failed, 2);
    assert_eq!(s.actions.len(), ACTIONS_LISTED);
    assert_eq!(s.actions_omitted, n - ACTIONS_LISTED);
    let last: Vec<(&str, &str)> = s.actions[ACTIONS_LISTED - 3..]
        .iter()
        .map(|a| (a.namespace.as_str(), a.status))
        .collect();
    assert_eq!(
        last,
        [("ns-00997", "done"), ("ns-02998", "failed"), ("ns-02999", "failed")]
    );
    let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
    assert_eq!(v["actions_omitted"], n - ACTIONS_LISTED);
    assert_eq!(v["actions"].as_array().unwrap().len(), ACTIONS_LISTED);
}

#[test]
fn aborted_is_exit_2() {
    let s = Summary::aborted(DryRun::Off, &anyhow::anyhow!("source Secret x/y does not exist"));
    assert_eq!(s.exit_code(), 2);
    assert!(s.to_text().contains("nothing written"));
    assert!(s.to_json().contains("does not exist"));
}
