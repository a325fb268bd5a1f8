//! Unit and property tests of the pure planner: structs in, assertions out.

use proptest::prelude::*;

use super::*;
use crate::core::glob::Glob;
use crate::core::model::{Inventory, Listed, NamespaceCounts, NamespaceState, PodState, Pods};

const DOCKER: &str = DOCKERCONFIGJSON_TYPE;

fn policy(service_accounts: &[&str], adopt: Adopt, prune: bool) -> Policy {
    Policy {
        include: vec![Glob::new("*").unwrap()],
        exclude: vec![Glob::new("kube-system").unwrap()],
        namespace_selector: None,
        service_accounts: service_accounts.iter().map(|g| Glob::new(g).unwrap()).collect(),
        adopt,
        prune,
        prune_limit: 10,
        heal: Default::default(),
        heal_limit: 10,
    }
}

fn cred(target: &str, data: &str) -> Credential {
    Credential {
        target: target.into(),
        origin: "secret:home/src".into(),
        source_secret: Some(("home".into(), "src".into())),
        data: data.as_bytes().to_vec(),
    }
}

fn ns(name: &str) -> NamespaceState {
    NamespaceState {
        name: name.into(),
        terminating: false,
        opted_out: false,
    }
}

fn secret(ns: &str, name: &str, ours: bool, data: &str) -> SecretState {
    SecretState {
        namespace: ns.into(),
        name: name.into(),
        resource_version: "7".into(),
        uid: format!("uid-{ns}-{name}"),
        type_: DOCKER.into(),
        ours,
        patcher: false,
        conflict_accepted: false,
        keep: false,
        installation: None,
        source_annotation: ours.then(|| "secret:home/src".into()),
        data: Some(data.as_bytes().to_vec()),
        managers: vec!["kubectl".into()],
    }
}

fn sa(ns: &str, name: &str, list: &[&str], recorded: &[&str]) -> ServiceAccountState {
    ServiceAccountState {
        namespace: ns.into(),
        name: name.into(),
        resource_version: "3".into(),
        pull_secrets: list.iter().map(|s| s.to_string()).collect(),
        recorded: recorded.iter().map(|s| s.to_string()).collect(),
        list_appliers: vec![],
    }
}

fn pod(ns: &str, name: &str, secrets: &[&str]) -> PodState {
    PodState {
        kind: "Pod",
        namespace: ns.into(),
        name: name.into(),
        secrets: secrets.iter().map(|s| s.to_string()).collect(),
        created: 0,
    }
}

fn inventory(names: &[&str]) -> Inventory {
    Inventory {
        held: vec![],
        names: names.iter().map(|s| s.to_string()).collect(),
        resource_version: Some("1".into()),
    }
}

fn no_pods() -> Pods {
    Pods::Read(vec![])
}

fn writes(plan: &Plan) -> usize {
    plan.writes().count()
}

fn find<'a>(p: &'a Plan, kind: Kind, ns: &str, name: &str) -> &'a Action {
    p.actions
        .iter()
        .find(|a| a.kind == kind && a.namespace == ns && a.name == name)
        .unwrap_or_else(|| panic!("no {kind:?} {ns}/{name} in {p:#?}"))
}

fn patched_list(a: &Action) -> &[String] {
    match &a.op {
        Op::PatchServiceAccount { list, .. } => list,
        other => panic!("not a patch: {other:?}"),
    }
}

fn deletes(p: &Plan) -> Vec<(String, String)> {
    p.actions
        .iter()
        .filter(|a| matches!(a.op, Op::DeleteSecret { .. }))
        .map(|a| (a.namespace.clone(), a.name.clone()))
        .collect()
}

/// The Pods the plan evicts, by name, in plan order.
fn evicted(p: &Plan) -> Vec<&str> {
    p.actions
        .iter()
        .filter(|a| matches!(a.op, Op::Evict { .. }))
        .map(|a| a.name.as_str())
        .collect()
}

/// What the cluster looks like after every write of `plan` succeeded.
fn simulate(observed: &Observed, plan: &Plan, creds: &[Credential]) -> Observed {
    let mut next = observed.clone();
    for a in plan.writes() {
        let pos = next
            .secrets
            .iter()
            .position(|s| s.namespace == a.namespace && s.name == a.name);
        match &a.op {
            Op::CreateSecret { credential } | Op::UpdateSecret { credential, .. } => {
                let c = &creds[*credential];
                let mut s = secret(&a.namespace, &a.name, true, "");
                s.data = Some(c.data.clone());
                s.source_annotation = Some(c.origin.clone());
                s.resource_version = "8".into();
                match pos {
                    Some(i) => next.secrets[i] = s,
                    None => next.secrets.push(s),
                }
            }
            Op::DeleteSecret { .. } => {
                next.secrets.remove(pos.expect("deleting a Secret that was observed"));
            }
            Op::PatchServiceAccount { list, recorded, .. } => {
                let s = next
                    .service_accounts
                    .iter_mut()
                    .find(|s| s.namespace == a.namespace && s.name == a.name)
                    .unwrap();
                s.pull_secrets = list.clone();
                s.recorded = recorded.clone();
            }
            Op::EditInventory { add, remove, .. } => {
                if let Some(names) = edit_inventory(&next.inventory.names, add, remove) {
                    next.inventory.names = names;
                }
                next.inventory.resource_version = Some("9".into());
            }
            _ => unreachable!("not a write"),
        }
    }
    next
}

#[test]
fn fresh_namespace_gets_secret_and_entry_after_the_inventory() {
    let creds = [cred("regcred", "D1")];
    let observed = Observed {
        namespaces: vec![ns("a"), ns("kube-system")],
        service_accounts: vec![
            sa("a", "default", &["other"], &[]),
            sa("kube-system", "default", &[], &[]),
        ],
        ..Observed::default()
    };
    let p = plan(&policy(&["default"], Adopt::Patcher, true), &creds, &observed);
    assert_eq!(
        p.namespaces,
        NamespaceCounts {
            seen: 2,
            selected: 1,
            excluded: 1,
            terminating: 0
        }
    );
    let record = p.actions.iter().position(|a| a.kind == Kind::ConfigMap).unwrap();
    assert!(
        matches!(&p.actions[record].op, Op::EditInventory { add, resource_version: None, .. } if add == &["regcred"])
    );
    let create = p
        .actions
        .iter()
        .position(|a| a.kind == Kind::Secret && a.op == Op::CreateSecret { credential: 0 })
        .unwrap();
    assert_eq!(
        p.actions[create].after,
        vec![record],
        "the name is recorded before it is written"
    );
    let patch = find(&p, Kind::ServiceAccount, "a", "default");
    assert_eq!(patched_list(patch), &["other", "regcred"]);
    assert_eq!(patch.after, vec![create], "the ServiceAccount waits for its Secret");
    assert_eq!(writes(&p), 3);
}

#[test]
fn source_secret_is_never_overwritten_or_pruned() {
    let creds = [cred("src", "D1")];
    let observed = Observed {
        namespaces: vec![ns("home")],
        secrets: vec![secret("home", "src", true, "OTHER")],
        pods: no_pods(),
        ..Observed::default()
    };
    let p = plan(&policy(&[], Adopt::All, true), &creds, &observed);
    assert!(!p.actions.iter().any(|a| a.kind == Kind::Secret), "{p:?}");
    let p = plan(
        &policy(&[], Adopt::All, true),
        &[cred("renamed", "D1")],
        &Observed {
            inventory: inventory(&["src"]),
            ..observed
        },
    );
    assert!(
        !p.actions
            .iter()
            .any(|a| a.namespace == "home" && a.name == "src" && a.kind == Kind::Secret),
        "{p:?}"
    );
}

#[test]
fn wrong_type_is_a_conflict_even_with_adopt_all() {
    let mut s = secret("a", "regcred", false, "x");
    s.type_ = "Opaque".into();
    let observed = Observed {
        namespaces: vec![ns("a")],
        secrets: vec![s],
        ..Observed::default()
    };
    let p = plan(
        &policy(&["default"], Adopt::All, true),
        &[cred("regcred", "D")],
        &observed,
    );
    assert!(matches!(
        find(&p, Kind::Secret, "a", "regcred").op,
        Op::Conflict {
            reason: "WrongType",
            ..
        }
    ));
}

#[test]
fn conflicting_target_is_not_added_to_service_accounts() {
    let observed = Observed {
        namespaces: vec![ns("a")],
        secrets: vec![secret("a", "regcred", false, "theirs")],
        service_accounts: vec![sa("a", "default", &[], &[])],
        ..Observed::default()
    };
    let p = plan(
        &policy(&["default"], Adopt::None, true),
        &[cred("regcred", "D")],
        &observed,
    );
    assert_eq!(find(&p, Kind::ServiceAccount, "a", "default").op, Op::Unchanged);
}

#[test]
fn rename_moves_our_entry_then_deletes_the_old_copy_then_forgets_the_name() {
    let observed = Observed {
        namespaces: vec![ns("a")],
        secrets: vec![secret("a", "old", true, "D")],
        service_accounts: vec![sa("a", "default", &["x", "old", "y"], &["old"])],
        inventory: inventory(&["old"]),
        pods: no_pods(),
        ..Observed::default()
    };
    let pol = policy(&["default"], Adopt::Patcher, true);
    let (p, next) = two_runs(&pol, &[cred("new", "D")], &observed);
    let pos = |p: &Plan, kind, name: &str| {
        p.actions
            .iter()
            .position(|a| a.kind == kind && a.name == name && a.op.is_write())
            .unwrap()
    };
    let patch = &p.actions[pos(&p, Kind::ServiceAccount, "default")];
    assert_eq!(patched_list(patch), &["x", "y", "new"]);
    assert_eq!(patch.after, vec![pos(&p, Kind::Secret, "new")]);
    // A Pod admitted before the patch gets the old list: the old copy waits for the next run,
    // whose reference read comes after the patch.
    assert_eq!(kept_reason(&p, "a", "old"), "UnlistedThisRun");
    assert!(deletes(&p).is_empty());
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(&a.op, Op::EditInventory { remove, .. } if !remove.is_empty())),
        "the name is remembered until its last copy is gone"
    );
    // The next run deletes it (nothing names it any more), then forgets the name.
    assert_eq!(deletes(&next), vec![("a".into(), "old".into())]);
    let forget = next.actions.last().unwrap();
    assert!(matches!(&forget.op, Op::EditInventory { remove, .. } if remove == &["old"]));
    assert!(forget.after.contains(&pos(&next, Kind::Secret, "old")));
}

#[test]
fn an_entry_naming_an_old_name_that_we_never_recorded_is_left_and_keeps_its_copy() {
    // Someone added `old` to b's ServiceAccount by hand; our record there is empty.
    let observed = Observed {
        namespaces: vec![ns("a"), ns("b")],
        secrets: vec![secret("a", "old", true, "D"), secret("b", "old", true, "D")],
        service_accounts: vec![
            sa("a", "default", &["old"], &["old"]),
            sa("b", "default", &["old"], &[]),
        ],
        inventory: inventory(&["old"]),
        pods: no_pods(),
        ..Observed::default()
    };
    let pol = policy(&["default"], Adopt::Patcher, true);
    let (p, next) = two_runs(&pol, &[cred("new", "D")], &observed);
    assert_eq!(patched_list(find(&p, Kind::ServiceAccount, "a", "default")), &["new"]);
    // b: only the new name is added; the unrecorded entry stays (the fence would refuse its
    // removal: a run removes only what it recorded), and so its copy stays.
    assert_eq!(
        patched_list(find(&p, Kind::ServiceAccount, "b", "default")),
        &["old", "new"]
    );
    assert_eq!(deletes(&next), vec![("a".into(), "old".into())]);
    assert_eq!(kept_reason(&next, "b", "old"), "StillReferenced");
}

#[test]
fn a_copy_held_by_its_keep_annotation_is_kept_without_reading_references() {
    let mut held = secret("a", "old", true, "D");
    held.keep = true;
    let observed = Observed {
        namespaces: vec![ns("a")],
        secrets: vec![held, secret("a", "gone", true, "D")],
        service_accounts: vec![sa("a", "default", &["new"], &["new"])],
        inventory: inventory(&["gone", "new", "old"]),
        pods: Pods::Read(vec![]),
        service_accounts_listed: Listed::All,
        ..Observed::default()
    };
    let p = plan(
        &policy(&["default"], Adopt::Patcher, true),
        &[cred("new", "D")],
        &observed,
    );
    assert_eq!(kept_reason(&p, "a", "old"), "KeepAnnotation");
    assert_eq!(deletes(&p), vec![("a".into(), "gone".into())]);
    assert!(
        p.actions
            .iter()
            .any(|a| matches!(&a.op, Op::EditInventory { remove, .. } if remove == &["gone"])),
        "the held name is remembered, the deleted one forgotten"
    );
    // Without the references read, the held copy needs none; the other one does.
    let unread = Observed {
        pods: Pods::NotRead,
        ..observed.clone()
    };
    let p = plan(
        &policy(&["default"], Adopt::Patcher, true),
        &[cred("new", "D")],
        &unread,
    );
    assert_eq!(kept_reason(&p, "a", "old"), "KeepAnnotation");
    assert!(p.needs_references);
}

#[test]
fn a_copy_another_installation_wrote_is_a_conflict_never_written_nor_pruned_and_an_unrecorded_one_is_adopted() {
    let mut mine = secret("a", "regcred", true, "D");
    mine.installation = Some("home".into());
    let mut theirs = secret("b", "regcred", true, "D");
    theirs.installation = Some("ci".into());
    let legacy = secret("c", "regcred", true, "D");
    let mut theirs_old = secret("b", "old", true, "D");
    theirs_old.installation = Some("ci".into());
    let observed = Observed {
        namespaces: vec![ns("a"), ns("b"), ns("c")],
        secrets: vec![mine, theirs, legacy, theirs_old],
        service_accounts: vec![
            sa("a", "default", &["regcred"], &["regcred"]),
            sa("b", "default", &["old"], &["old"]),
            sa("c", "default", &["regcred"], &["regcred"]),
        ],
        inventory: inventory(&["old", "regcred"]),
        pods: Pods::Read(vec![]),
        service_accounts_listed: Listed::All,
        installation: "home".into(),
        ..Observed::default()
    };
    let p = plan(
        &policy(&["default"], Adopt::Patcher, true),
        &[cred("regcred", "D")],
        &observed,
    );
    assert!(matches!(find(&p, Kind::Secret, "a", "regcred").op, Op::Unchanged));
    assert!(
        matches!(&find(&p, Kind::Secret, "b", "regcred").op, Op::Conflict { reason: "OtherInstallation", message } if message.contains("ci")),
        "{:?}",
        find(&p, Kind::Secret, "b", "regcred").op
    );
    assert!(
        matches!(
            find(&p, Kind::Secret, "c", "regcred").op,
            Op::UpdateSecret { adopt: false, .. }
        ),
        "an unrecorded copy of ours is written once, to record this installation"
    );
    assert!(
        deletes(&p).is_empty(),
        "another installation's retired copy is not ours to prune"
    );
    assert!(
        !p.actions.iter().any(|a| matches!(&a.op, Op::PatchServiceAccount { .. })
            && a.namespace == "b"
            && patched_list(a).contains(&"regcred".to_string())),
        "no ServiceAccount is pointed at a copy another installation owns"
    );
}

#[test]
fn prune_off_keeps_everything() {
    let observed = Observed {
        namespaces: vec![ns("a")],
        secrets: vec![secret("a", "old", true, "D")],
        service_accounts: vec![sa("a", "default", &["old"], &["old"])],
        inventory: inventory(&["old"]),
        ..Observed::default()
    };
    let p = plan(
        &policy(&["default"], Adopt::Patcher, false),
        &[cred("new", "D")],
        &observed,
    );
    assert!(deletes(&p).is_empty());
    assert_eq!(
        patched_list(find(&p, Kind::ServiceAccount, "a", "default")),
        &["old", "new"]
    );
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(&a.op, Op::EditInventory { remove, .. } if !remove.is_empty()))
    );
}

#[test]
fn missing_service_account_is_reported_for_literal_names_only() {
    let observed = Observed {
        namespaces: vec![ns("a")],
        ..Observed::default()
    };
    let p = plan(
        &policy(&["default", "build-*"], Adopt::Patcher, true),
        &[cred("r", "D")],
        &observed,
    );
    let sas: Vec<&Action> = p.actions.iter().filter(|a| a.kind == Kind::ServiceAccount).collect();
    assert_eq!(sas.len(), 1);
    assert_eq!(sas[0].op, Op::Missing);
}

#[test]
fn a_retired_name_we_may_not_list_is_left_alone_and_remembered() {
    let observed = Observed {
        namespaces: vec![ns("a")],
        service_accounts: vec![sa("a", "default", &["old"], &["old"])],
        inventory: inventory(&["old"]),
        unlistable: vec!["old".into()],
        ..Observed::default()
    };
    let p = plan(
        &policy(&["default"], Adopt::Patcher, true),
        &[cred("new", "D")],
        &observed,
    );
    assert_eq!(
        patched_list(find(&p, Kind::ServiceAccount, "a", "default")),
        &["old", "new"],
        "the entry of a name we cannot see is not removed"
    );
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(&a.op, Op::EditInventory { remove, .. } if !remove.is_empty())),
        "and the name is not forgotten"
    );
    assert_eq!(p.findings[0].reason, "RetiredNameNotListable");
}

#[test]
fn a_gitops_applier_of_the_list_is_named_in_a_warning() {
    let mut owned = sa("a", "default", &["theirs"], &[]);
    owned.list_appliers = vec!["argocd-controller".into()];
    let observed = Observed {
        namespaces: vec![ns("a")],
        service_accounts: vec![owned],
        ..Observed::default()
    };
    let p = plan(
        &policy(&["default"], Adopt::Patcher, true),
        &[cred("regcred", "D")],
        &observed,
    );
    let f = &p.findings[0];
    assert_eq!((f.reason, f.severity), ("ListOwnedByApplier", Severity::Warning));
    assert!(f.message.contains("argocd-controller"));
    assert_eq!(
        patched_list(find(&p, Kind::ServiceAccount, "a", "default")),
        &["theirs", "regcred"]
    );
}

// ---- prune safety ---------------------------------------------------------------------------

/// `n` namespaces that each hold our copy and our recorded entry.
/// The plans of two runs in a row, every write of the first done before the second.
fn two_runs(pol: &Policy, creds: &[Credential], observed: &Observed) -> (Plan, Plan) {
    let first = plan(pol, creds, observed);
    let second = plan(pol, creds, &simulate(observed, &first, creds));
    (first, second)
}

fn kept_reason(p: &Plan, ns: &str, name: &str) -> &'static str {
    match &find(p, Kind::Secret, ns, name).op {
        Op::Kept { reason, .. } => reason,
        other => panic!("{other:?}"),
    }
}

fn converged(n: usize) -> Observed {
    let names: Vec<String> = (0..n).map(|i| format!("team-{i}")).collect();
    Observed {
        namespaces: names.iter().map(|n| ns(n)).collect(),
        secrets: names.iter().map(|n| secret(n, "regcred", true, "D")).collect(),
        service_accounts: names
            .iter()
            .map(|n| sa(n, "default", &["regcred"], &["regcred"]))
            .collect(),
        inventory: inventory(&["regcred"]),
        pods: no_pods(),
        ..Observed::default()
    }
}

fn refused(p: &Plan) -> usize {
    p.actions.iter().filter(|a| matches!(a.op, Op::Refused { .. })).count()
}

#[test]
fn an_empty_selection_prunes_nothing_and_is_an_error() {
    let mut pol = policy(&["default"], Adopt::Patcher, true);
    pol.namespace_selector = Some("tier=aps".into());
    let mut observed = converged(3);
    // The API server evaluated the selector: no namespace came back.
    observed.namespaces.clear();
    let p = plan(&pol, &[cred("regcred", "D")], &observed);
    assert_eq!(writes(&p), 0, "{p:#?}");
    let f = &p.findings[0];
    assert_eq!((f.reason, f.severity), ("EmptySelection", Severity::Error));
    assert!(f.message.contains("tier=aps"), "{}", f.message);
    assert_eq!(refused(&p), 6, "3 copies and 3 entries refused");
}

#[test]
fn deselecting_more_namespaces_than_the_limit_refuses_every_deselection() {
    let mut pol = policy(&["default"], Adopt::Patcher, true);
    pol.include = vec![Glob::new("team-1").unwrap()];
    pol.prune_limit = 10;
    let observed = converged(12);
    let p = plan(&pol, &[cred("regcred", "D")], &observed);
    assert_eq!(writes(&p), 0, "{p:#?}");
    let f = p.findings.iter().find(|f| f.reason == "PruneLimitExceeded").unwrap();
    assert!(f.message.contains("11 namespaces"), "{}", f.message);
    assert!(f.message.contains("PULLSECRET_PRUNE_LIMIT=11"), "{}", f.message);
    // Raised: proceeds. No limit: proceeds.
    for limit in [11, 0] {
        pol.prune_limit = limit;
        let (p, next) = two_runs(&pol, &[cred("regcred", "D")], &observed);
        assert!(p.findings.is_empty());
        assert_eq!(
            deletes(&next).len(),
            11,
            "entries removed first, copies by the next run"
        );
    }
}

#[test]
fn one_excluded_namespace_still_prunes_at_the_default_limit() {
    let mut pol = policy(&["default"], Adopt::Patcher, true);
    pol.exclude.push(Glob::new("team-3").unwrap());
    let (p, next) = two_runs(&pol, &[cred("regcred", "D")], &converged(12));
    assert_eq!(kept_reason(&p, "team-3", "regcred"), "UnlistedThisRun");
    assert!(p.findings.is_empty());
    assert_eq!(deletes(&next), vec![("team-3".into(), "regcred".into())]);
}

#[test]
fn a_rename_keeps_copies_still_named_by_a_pod_or_an_unmanaged_service_account() {
    let mut observed = converged(3);
    observed
        .service_accounts
        .push(sa("team-1", "builder", &["regcred"], &[]));
    observed.pods = Pods::Read(vec![pod("team-2", "web-1", &["regcred"])]);
    let (p, next) = two_runs(
        &policy(&["default"], Adopt::Patcher, true),
        &[cred("regcred-v2", "D")],
        &observed,
    );
    assert!(
        deletes(&p).is_empty(),
        "every default ServiceAccount named it when the run began"
    );
    assert_eq!(kept_reason(&p, "team-0", "regcred"), "UnlistedThisRun");
    assert_eq!(deletes(&next), vec![("team-0".into(), "regcred".into())]);
    let kept = |ns| match &find(&p, Kind::Secret, ns, "regcred").op {
        Op::Kept { reason, message } => (*reason, message.clone()),
        other => panic!("{other:?}"),
    };
    assert_eq!(kept("team-1").0, "StillReferenced");
    assert!(
        kept("team-1").1.contains("ServiceAccount builder"),
        "{}",
        kept("team-1").1
    );
    assert!(kept("team-2").1.contains("Pod web-1"), "{}", kept("team-2").1);
    // The name stays remembered until a later run deletes the last copy.
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(&a.op, Op::EditInventory { remove, .. } if !remove.is_empty()))
    );
    // Every default ServiceAccount moves to the new name.
    for n in ["team-0", "team-1", "team-2"] {
        assert_eq!(
            patched_list(find(&p, Kind::ServiceAccount, n, "default")),
            &["regcred-v2"]
        );
    }
}

#[test]
fn a_delete_waits_for_pods_and_service_accounts_and_refuses_when_pods_cannot_be_read() {
    let mut observed = converged(2);
    observed.pods = Pods::NotRead;
    let p = plan(
        &policy(&["default"], Adopt::Patcher, true),
        &[cred("v2", "D")],
        &observed,
    );
    assert!(p.needs_references && deletes(&p).is_empty());
    // Likewise with only the configured ServiceAccounts read: a team's own one may name it.
    observed.pods = no_pods();
    observed.service_accounts_listed = Listed::Named;
    let p = plan(
        &policy(&["default"], Adopt::Patcher, true),
        &[cred("v2", "D")],
        &observed,
    );
    assert!(p.needs_references && deletes(&p).is_empty());
    observed.service_accounts_listed = Listed::All;
    observed.pods = Pods::Unreadable("pods is forbidden".into());
    let p = plan(
        &policy(&["default"], Adopt::Patcher, true),
        &[cred("v2", "D")],
        &observed,
    );
    assert!(deletes(&p).is_empty() && !p.needs_references);
    let f = p.findings.iter().find(|f| f.reason == "PodsNotListable").unwrap();
    assert_eq!(f.severity, Severity::Error);
    assert!(f.message.contains("pods is forbidden"));
}

#[test]
fn an_entry_naming_our_adopted_secret_is_ours_and_moves_on_rename() {
    let mut s = secret("a", "patcher-secret", false, "D");
    s.patcher = true;
    let observed = Observed {
        namespaces: vec![ns("a")],
        secrets: vec![s],
        service_accounts: vec![sa("a", "default", &["x", "patcher-secret"], &[])],
        pods: no_pods(),
        ..Observed::default()
    };
    let creds = [cred("patcher-secret", "D")];
    let pol = policy(&["default"], Adopt::Patcher, true);
    let p = plan(&pol, &creds, &observed);
    assert!(matches!(
        find(&p, Kind::Secret, "a", "patcher-secret").op,
        Op::UpdateSecret { adopt: true, .. }
    ));
    let after = simulate(&observed, &p, &creds);
    assert_eq!(after.service_accounts[0].recorded, vec!["patcher-secret"], "claimed");
    // A later rename moves the entry, and the run after it deletes the old copy.
    let (p, next) = two_runs(&pol, &[cred("regcred", "D")], &after);
    assert_eq!(
        patched_list(find(&p, Kind::ServiceAccount, "a", "default")),
        &["x", "regcred"]
    );
    assert_eq!(deletes(&next), vec![("a".into(), "patcher-secret".into())]);
}

// ---- property tests ------------------------------------------------------------------------

const NAMESPACES: [&str; 5] = ["a", "b", "c", "home", "kube-system"];
const NAMES: [&str; 4] = ["t1", "t2", "old", "src"];
const ENTRIES: [&str; 6] = ["t1", "t2", "old", "src", "other", "x"];

fn arb_world() -> impl Strategy<Value = (Policy, Vec<Credential>, Observed)> {
    let namespaces = proptest::collection::vec((any::<bool>(), 0u8..6), NAMESPACES.len());
    let secrets = proptest::collection::vec((0u8..6, any::<bool>(), 0u8..3), NAMESPACES.len() * NAMES.len());
    let sas = proptest::collection::vec(
        (
            0u8..3,
            proptest::collection::vec(0..ENTRIES.len(), 0..5),
            proptest::collection::vec(0..ENTRIES.len(), 0..3),
            any::<bool>(),
        ),
        NAMESPACES.len() * 2,
    );
    let pods = proptest::collection::vec((0..NAMESPACES.len(), 0..ENTRIES.len()), 0..4);
    let settings = (
        (0u8..3, 0u8..3, 0u8..3, any::<bool>(), 0u8..4),
        proptest::collection::vec(0usize..2, 0..3),
        any::<bool>(),
        (0u8..4, 0u8..3, 0u8..8),
    );
    (namespaces, secrets, sas, pods, settings).prop_map(
        |(
            nss,
            secrets,
            sas,
            pods,
            ((targets, sa_mode, adopt, prune, rotate), inv, hidden, (include, limit, pod_mode)),
        )| {
            let mut observed = Observed::default();
            for (i, (present, flags)) in nss.iter().enumerate() {
                if *present || NAMESPACES[i] == "home" {
                    observed.namespaces.push(NamespaceState {
                        name: NAMESPACES[i].into(),
                        terminating: *flags == 1,
                        opted_out: *flags == 2,
                    });
                }
            }
            for (k, (kind, patcher, data)) in secrets.iter().enumerate() {
                let (n, name) = (NAMESPACES[k / NAMES.len()], NAMES[k % NAMES.len()]);
                if *kind == 0 || *kind == 5 {
                    continue;
                }
                let mut s = secret(n, name, *kind == 1 || *kind == 2, ["D1", "D2", "D3"][*data as usize]);
                s.patcher = *patcher;
                // Some copies of ours are held by hand.
                s.keep = *kind == 1 && *patcher;
                if *kind == 4 {
                    s.type_ = "Opaque".into();
                }
                if *kind == 2 {
                    s.source_annotation = Some("somewhere-else".into());
                }
                observed.secrets.push(s);
            }
            for (k, (kind, list, recorded, applier)) in sas.iter().enumerate() {
                let (n, name) = (NAMESPACES[k / 2], ["default", "builder"][k % 2]);
                if *kind == 0 {
                    continue;
                }
                let list: Vec<&str> = list.iter().map(|i| ENTRIES[*i]).collect();
                let recorded: Vec<&str> = recorded.iter().map(|i| ENTRIES[*i]).collect();
                let mut s = sa(n, name, &list, &recorded);
                if *applier {
                    s.list_appliers = vec!["argocd".into()];
                }
                observed.service_accounts.push(s);
            }
            let mut names: Vec<String> = inv.iter().map(|i| ["old", "t2"][*i].to_string()).collect();
            names.sort();
            names.dedup();
            observed.inventory = Inventory {
                held: vec![],
                names,
                resource_version: Some("1".into()),
            };
            // Sometimes RBAC no longer lets us list the retired name "old".
            if hidden && observed.inventory.names.contains(&"old".to_string()) {
                observed.unlistable = vec!["old".into()];
                observed.secrets.retain(|s| s.name != "old");
            }
            let pods: Vec<PodState> = pods
                .iter()
                .enumerate()
                .map(|(i, (n, e))| pod(NAMESPACES[*n], &format!("p{i}"), &[ENTRIES[*e]]))
                .collect();
            observed.pods = match pod_mode {
                0 => Pods::Unreadable("forbidden".into()),
                _ => Pods::Read(pods),
            };
            let data = ["D1", "D2", "D3", "D1"][rotate as usize];
            let creds = match targets {
                0 => vec![cred("t1", data)],
                1 => vec![cred("t1", data), cred("t2", "D2")],
                _ => vec![cred("src", data)], // target named like the source: home's copy is the source itself
            };
            let sa_globs: &[&str] = match sa_mode {
                0 => &["default"],
                1 => &["*"],
                _ => &[],
            };
            let mut pol = policy(
                sa_globs,
                [Adopt::Patcher, Adopt::All, Adopt::None][adopt as usize],
                prune,
            );
            pol.include = match include {
                0 => vec![Glob::new("*").unwrap()],
                1 => vec![Glob::new("a").unwrap()],
                2 => vec![Glob::new("nothing").unwrap()],
                _ => vec![
                    Glob::new("a").unwrap(),
                    Glob::new("b").unwrap(),
                    Glob::new("home").unwrap(),
                ],
            };
            pol.prune_limit = [0, 1, 10][limit as usize];
            (pol, creds, observed)
        },
    )
}

/// Namespaces in which `p` deletes a Secret or removes an entry while they are not selected.
fn deselected(pol: &Policy, observed: &Observed, p: &Plan) -> BTreeSet<String> {
    let selected = |n: &str| {
        observed.namespaces.iter().any(|s| {
            s.name == n
                && !s.terminating
                && !s.opted_out
                && any_matches(&pol.include, n)
                && !any_matches(&pol.exclude, n)
        })
    };
    p.actions
        .iter()
        .filter(|a| match &a.op {
            Op::DeleteSecret { .. } => true,
            Op::PatchServiceAccount { edit, .. } => !edit.remove.is_empty(),
            _ => false,
        })
        .filter(|a| !selected(&a.namespace))
        .map(|a| a.namespace.clone())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn planning_after_an_applied_plan_leaves_only_the_deletes_then_nothing((pol, creds, observed) in arb_world()) {
        let first = plan(&pol, &creds, &observed);
        let after = simulate(&observed, &first, &creds);
        let second = plan(&pol, &creds, &after);
        // What the first run unlisted, the second deletes (and forgets); nothing else.
        for a in second.writes() {
            let removal = matches!(&a.op, Op::EditInventory { add, .. } if add.is_empty());
            prop_assert!(matches!(a.op, Op::DeleteSecret { .. }) || removal, "second plan: {:#?}", second);
        }
        let third = plan(&pol, &creds, &simulate(&after, &second, &creds));
        prop_assert_eq!(writes(&third), 0, "third plan: {:#?}", third);
    }

    #[test]
    fn a_copy_a_service_account_named_when_the_run_began_is_never_deleted((pol, creds, observed) in arb_world()) {
        let p = plan(&pol, &creds, &observed);
        for (ns, name) in deletes(&p) {
            let listed = observed
                .service_accounts
                .iter()
                .any(|sa| sa.namespace == ns && sa.pull_secrets.contains(&name));
            prop_assert!(!listed, "{}/{} deleted while a ServiceAccount listed it: {:#?}", ns, name, p);
        }
    }

    #[test]
    fn input_order_does_not_change_the_plan((pol, creds, observed) in arb_world(), seed in any::<u64>()) {
        let mut shuffled = observed.clone();
        let rot = |len: usize| if len == 0 { 0 } else { (seed as usize) % len };
        let r = rot(shuffled.namespaces.len());
        shuffled.namespaces.rotate_left(r);
        shuffled.namespaces.reverse();
        let r = rot(shuffled.secrets.len());
        shuffled.secrets.rotate_left(r);
        let r = rot(shuffled.service_accounts.len());
        shuffled.service_accounts.rotate_left(r);
        shuffled.service_accounts.reverse();
        if let Pods::Read(p) = &mut shuffled.pods {
            p.reverse();
        }
        prop_assert_eq!(plan(&pol, &creds, &observed), plan(&pol, &creds, &shuffled));
    }

    #[test]
    fn what_we_do_not_own_is_never_touched((pol, creds, observed) in arb_world()) {
        let p = plan(&pol, &creds, &observed);
        for a in p.actions.iter().filter(|a| a.kind == Kind::Secret) {
            let found = observed.secrets.iter().find(|s| s.namespace == a.namespace && s.name == a.name);
            let is_source = creds.iter().any(|c| c.source_secret == Some((a.namespace.clone(), a.name.clone())));
            match &a.op {
                Op::DeleteSecret { .. } => {
                    prop_assert!(found.is_some_and(|s| s.ours), "delete of a Secret not ours: {:?}", a);
                    prop_assert!(!is_source);
                }
                Op::UpdateSecret { adopt, .. } => {
                    let s = found.unwrap();
                    prop_assert!(!is_source);
                    prop_assert_eq!(&s.type_, DOCKER);
                    if *adopt {
                        prop_assert!(!s.ours);
                        prop_assert!(pol.adopt == Adopt::All || (pol.adopt == Adopt::Patcher && s.patcher));
                    } else {
                        prop_assert!(s.ours);
                    }
                }
                Op::CreateSecret { .. } => prop_assert!(found.is_none() && !is_source),
                _ => {}
            }
        }
    }

    #[test]
    fn foreign_entries_are_always_kept_in_order((pol, creds, observed) in arb_world()) {
        let p = plan(&pol, &creds, &observed);
        let managed: Vec<String> = managed_names(&creds.iter().map(|c| c.target.clone()).collect::<Vec<_>>(), &observed.inventory.names);
        for a in &p.actions {
            let Op::PatchServiceAccount { list, .. } = &a.op else { continue };
            let before = observed.service_accounts.iter().find(|s| s.namespace == a.namespace && s.name == a.name).unwrap();
            // Entries neither recorded by us nor naming a Secret we manage are someone else's.
            let foreign: Vec<&String> = before.pull_secrets.iter().filter(|n| !before.recorded.contains(n) && !managed.contains(n)).collect();
            let kept: Vec<&String> = list.iter().filter(|n| foreign.contains(n)).collect();
            // Every foreign entry survives, duplicates included, in its original order.
            let mut it = kept.iter();
            for f in &foreign {
                prop_assert_eq!(it.next(), Some(f), "{:?} -> {:?}", before.pull_secrets, list);
            }
        }
    }

    #[test]
    fn nothing_is_written_in_terminating_namespaces((pol, creds, observed) in arb_world()) {
        let p = plan(&pol, &creds, &observed);
        let terminating: Vec<&str> = observed.namespaces.iter().filter(|n| n.terminating).map(|n| n.name.as_str()).collect();
        for a in p.writes() {
            prop_assert!(!terminating.contains(&a.namespace.as_str()), "{:?}", a);
        }
    }

    #[test]
    fn no_service_account_names_a_secret_the_plan_deletes((pol, creds, observed) in arb_world()) {
        let p = plan(&pol, &creds, &observed);
        let after = simulate(&observed, &p, &creds);
        for (n, name) in deletes(&p) {
            for s in after.service_accounts.iter().filter(|s| s.namespace == n) {
                prop_assert!(!s.pull_secrets.contains(&name), "{}/{} still lists deleted {}", n, s.name, name);
            }
            // And the delete waits for every edit that stops naming it.
            let d = p.actions.iter().find(|a| a.namespace == n && a.name == name && matches!(a.op, Op::DeleteSecret { .. })).unwrap();
            for a in &p.actions {
                if let Op::PatchServiceAccount { edit, .. } = &a.op && a.namespace == n && edit.remove.contains(&name) {
                    let i = p.actions.iter().position(|x| x == a).unwrap();
                    prop_assert!(d.after.contains(&i));
                }
            }
        }
    }

    #[test]
    fn a_secret_an_unfinished_pod_names_is_never_deleted((pol, creds, observed) in arb_world()) {
        let p = plan(&pol, &creds, &observed);
        let dels = deletes(&p);
        match &observed.pods {
            Pods::Read(pods) => for pod in pods {
                for name in &pod.secrets {
                    prop_assert!(!dels.contains(&(pod.namespace.clone(), name.clone())));
                }
            },
            _ => prop_assert!(dels.is_empty(), "deleted without reading Pods"),
        }
        for s in observed.secrets.iter().filter(|s| s.keep) {
            prop_assert!(!dels.contains(&(s.namespace.clone(), s.name.clone())), "deleted a held copy");
        }
    }

    #[test]
    fn losing_the_inventory_never_deletes_a_forgotten_name((pol, creds, observed) in arb_world()) {
        // Deleting the ConfigMap by hand makes prune forget retired names: no copy of one is
        // deleted, and any other delete is one the full plan wants too (perhaps refused there
        // by the deselection limit, which also counted the retired names' namespaces).
        let full = plan(&pol, &creds, &observed);
        let mut forgotten = observed.clone();
        forgotten.inventory = Inventory::default();
        forgotten.unlistable.clear();
        let targets: Vec<&String> = creds.iter().map(|c| &c.target).collect();
        for (ns, name) in deletes(&plan(&pol, &creds, &forgotten)) {
            prop_assert!(targets.contains(&&name), "deleted {}/{}, a forgotten name", ns, name);
            let wanted = full.actions.iter().any(|a| {
                a.kind == Kind::Secret
                    && a.namespace == ns
                    && a.name == name
                    && matches!(a.op, Op::DeleteSecret { .. } | Op::Refused { .. })
            });
            prop_assert!(wanted, "{}/{} deleted only without the inventory", ns, name);
        }
    }

    #[test]
    fn never_deselects_more_than_the_limit_nor_on_an_empty_selection((pol, creds, observed) in arb_world()) {
        let p = plan(&pol, &creds, &observed);
        let d = deselected(&pol, &observed, &p);
        if pol.prune_limit > 0 {
            prop_assert!(d.len() <= pol.prune_limit, "{:?}", d);
        }
        if p.namespaces.selected == 0 {
            prop_assert!(d.is_empty());
            prop_assert!(p.findings.iter().any(|f| f.reason == "EmptySelection"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Healing stuck Pods (PULLSECRET_HEAL_PODS=evict).

fn stuck(ns: &str, name: &str, secrets: &[&str], controller: Option<&str>) -> crate::core::model::StuckPod {
    crate::core::model::StuckPod {
        namespace: ns.into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        service_account: "default".into(),
        pull_secrets: secrets.iter().map(|s| s.to_string()).collect(),
        controller: controller.map(str::to_owned),
        owner: None,
    }
}

fn healing(limit: usize) -> Policy {
    Policy {
        heal: crate::core::model::Heal::Evict,
        heal_limit: limit,
        ..policy(&["default"], Adopt::Patcher, true)
    }
}

fn healed(stuck_pods: Vec<crate::core::model::StuckPod>, pol: &Policy) -> Plan {
    let observed = Observed {
        namespaces: vec![ns("a"), ns("kube-system")],
        service_accounts: vec![sa("a", "default", &[], &[]), sa("kube-system", "default", &[], &[])],
        stuck: stuck_pods,
        inventory: inventory(&["regcred"]),
        ..Observed::default()
    };
    plan(pol, &[cred("regcred", "D1")], &observed)
}

#[test]
fn a_stuck_controller_owned_pod_is_evicted_after_its_namespace_is_written() {
    let p = healed(vec![stuck("a", "web-1", &[], Some("ReplicaSet/web-7f"))], &healing(10));
    let evict = find(&p, Kind::Pod, "a", "web-1");
    assert_eq!(
        evict.op,
        Op::Evict {
            uid: "uid-web-1".into(),
            controller: "ReplicaSet/web-7f".into()
        }
    );
    let patch = p
        .actions
        .iter()
        .position(|a| a.kind == Kind::ServiceAccount && a.namespace == "a")
        .unwrap();
    let create = p
        .actions
        .iter()
        .position(|a| a.kind == Kind::Secret && a.namespace == "a")
        .unwrap();
    assert_eq!(
        evict.after,
        vec![patch, create],
        "evicted only once the replacement would get the name"
    );
}

#[test]
fn healing_off_unselected_or_not_lacking_pods_are_never_touched() {
    let pods = vec![
        stuck("a", "web-1", &[], Some("ReplicaSet/web-7f")),
        stuck("kube-system", "sys", &[], Some("ReplicaSet/sys")),
    ];
    let off = healed(pods.clone(), &policy(&["default"], Adopt::Patcher, true));
    assert!(!off.actions.iter().any(|a| a.kind == Kind::Pod), "{off:?}");
    let on = healed(pods, &healing(10));
    assert_eq!(
        on.actions.iter().filter(|a| a.kind == Kind::Pod).count(),
        1,
        "only the selected namespace"
    );
    // A Pod that already names regcred is stuck for another reason: not ours to heal.
    let other = healed(
        vec![stuck("a", "web-1", &["regcred"], Some("ReplicaSet/web"))],
        &healing(10),
    );
    assert!(!other.actions.iter().any(|a| a.kind == Kind::Pod));
    assert!(other.findings.is_empty(), "{:?}", other.findings);
}

#[test]
fn bare_pods_and_templates_with_their_own_list_are_reported_not_evicted() {
    let p = healed(
        vec![
            stuck("a", "bare", &[], None),
            stuck("a", "templated", &["team-secret"], Some("ReplicaSet/t")),
        ],
        &healing(10),
    );
    assert!(!p.actions.iter().any(|a| a.kind == Kind::Pod), "{p:?}");
    let reasons: Vec<(&str, &str)> = p.findings.iter().map(|f| (f.name.as_str(), f.reason)).collect();
    assert_eq!(
        reasons,
        [
            ("bare", "StuckPodNotHealable"),
            ("templated", "TemplateSetsPullSecrets")
        ]
    );
    assert!(
        p.findings[0].message.contains("kubectl -n a delete pod bare"),
        "{}",
        p.findings[0].message
    );
    assert!(p.findings.iter().all(|f| f.severity == Severity::Warning));
}

#[test]
fn the_heal_limit_holds_and_the_rest_is_refused() {
    let pods: Vec<_> = (0..5)
        .map(|i| stuck("a", &format!("web-{i}"), &[], Some("ReplicaSet/web")))
        .collect();
    let p = healed(pods.clone(), &healing(2));
    assert_eq!(evicted(&p), ["web-0", "web-1"], "deterministic: by namespace and name");
    let refused = p
        .actions
        .iter()
        .filter(|a| {
            matches!(
                a.op,
                Op::Refused {
                    reason: "HealLimitExceeded",
                    ..
                }
            )
        })
        .count();
    assert_eq!(refused, 3);
    let unlimited = healed(pods, &healing(0));
    assert_eq!(evicted(&unlimited).len(), 5);
}

#[test]
fn a_conflict_its_owner_accepts_is_left_alone_as_info() {
    let creds = [cred("regcred", "D1")];
    let mut theirs = secret("a", "regcred", false, "THEIRS");
    theirs.conflict_accepted = true;
    let observed = Observed {
        namespaces: vec![ns("a")],
        secrets: vec![theirs],
        service_accounts: vec![sa("a", "default", &[], &[])],
        inventory: inventory(&["regcred"]),
        pods: no_pods(),
        ..Observed::default()
    };
    let p = plan(&policy(&["default"], Adopt::Patcher, true), &creds, &observed);
    let a = find(&p, Kind::Secret, "a", "regcred");
    assert!(
        matches!(
            a.op,
            Op::AcceptedConflict {
                reason: "ConflictAccepted",
                ..
            }
        ),
        "{a:?}"
    );
    assert_eq!(
        writes(&p),
        0,
        "never written, and no ServiceAccount entry for it: {p:?}"
    );
    let s = crate::core::summary::Summary::from_run(
        &p,
        &crate::apply::unsent(p.actions.clone()),
        crate::core::model::DryRun::Off,
    );
    assert_eq!((s.secrets.conflicts, s.secrets.conflicts_accepted), (0, 1));
    assert_eq!(s.problems[0].severity, Severity::Info);
    assert_eq!(
        s.exit_code(),
        0,
        "an accepted conflict does not count against convergence"
    );
    // Unmarked, the same Secret is a conflict: exit 1.
    let mut unmarked = observed.clone();
    unmarked.secrets[0].conflict_accepted = false;
    let p = plan(&policy(&["default"], Adopt::Patcher, true), &creds, &unmarked);
    let s = crate::core::summary::Summary::from_run(
        &p,
        &crate::apply::unsent(p.actions.clone()),
        crate::core::model::DryRun::Off,
    );
    assert_eq!((s.secrets.conflicts, s.exit_code()), (1, 1));
}

fn owned_by(
    mut pod: crate::core::model::StuckPod,
    template: &[&str],
    job_absorbs: Option<bool>,
) -> crate::core::model::StuckPod {
    pod.owner = Some(crate::core::model::OwnerTemplate {
        pull_secrets: template.iter().map(|s| s.to_string()).collect(),
        job_absorbs,
    });
    pod
}

/// The ServiceAccount lists `[team, regcred]`; a template that sets `[team]` makes Pods whose
/// list is a subset of it. Judged from the Pod alone that looks like a copy of the ServiceAccount
/// (evict, and the replacement lacks regcred again: a loop, every run); judged from the template
/// it is the template's list: reported, never evicted. A template without a list heals.
#[test]
fn healing_decides_from_the_owners_template_so_it_cannot_loop() {
    let observed = |pods| Observed {
        namespaces: vec![ns("a")],
        service_accounts: vec![sa("a", "default", &["team"], &[])],
        stuck: pods,
        inventory: inventory(&["regcred"]),
        ..Observed::default()
    };
    let pods = vec![
        owned_by(
            stuck("a", "sets-team", &["team"], Some("ReplicaSet/t")),
            &["team"],
            None,
        ),
        owned_by(stuck("a", "copied", &["team"], Some("ReplicaSet/c")), &[], None),
        owned_by(
            stuck("a", "fixed-since", &["team"], Some("ReplicaSet/f")),
            &["team", "regcred"],
            None,
        ),
    ];
    let p = plan(&healing(10), &[cred("regcred", "D1")], &observed(pods));
    assert_eq!(evicted(&p), ["copied", "fixed-since"]);
    let reasons: Vec<(&str, &str)> = p.findings.iter().map(|f| (f.name.as_str(), f.reason)).collect();
    assert_eq!(reasons, [("sets-team", "TemplateSetsPullSecrets")]);
    let s = crate::core::summary::Summary::from_run(&p, &[], crate::core::model::DryRun::Client);
    assert_eq!(s.pods.not_healable, 1);
}

#[test]
fn a_jobs_pod_is_evicted_only_when_the_job_absorbs_one_more_failure() {
    let pods = vec![
        owned_by(stuck("a", "budget-left", &[], Some("Job/left")), &[], Some(true)),
        owned_by(stuck("a", "budget-spent", &[], Some("Job/spent")), &[], Some(false)),
    ];
    let p = healed(pods, &healing(10));
    assert_eq!(evicted(&p), ["budget-left"]);
    let f = &p.findings[0];
    assert_eq!((f.name.as_str(), f.reason), ("budget-spent", "JobCannotAbsorbEviction"));
    assert!(f.message.contains("podFailurePolicy"), "{}", f.message);
}

/// Kept copies held by Pods alone are recorded (youngest holder, older Pods then); a template or
/// a ServiceAccount as holder is not (they can make new holders); a held-over copy keeps its record.
#[test]
fn held_records_cover_copies_kept_for_pods_alone() {
    let mut web = pod("a", "web", &["old"]);
    web.created = 200;
    let mut older = pod("a", "web-older", &["old"]);
    older.created = 150;
    let mut template = pod("b", "deploy", &["old"]);
    template.kind = "Deployment";
    let observed = Observed {
        namespaces: vec![ns("a"), ns("b"), ns("c"), ns("d")],
        secrets: vec![
            secret("a", "old", true, "D"),
            secret("b", "old", true, "D"),
            secret("c", "old", true, "D"),
            secret("d", "old", true, "D"),
        ],
        service_accounts: vec![sa("c", "builder", &["old"], &[])],
        inventory: Inventory {
            held: vec![crate::core::model::Held {
                namespace: "d".into(),
                name: "old".into(),
                before: 7,
                pods: 3,
            }],
            ..inventory(&["new", "old"])
        },
        pods: Pods::Read(vec![web, older, template]),
        service_accounts_listed: Listed::All,
        held_over: BTreeSet::from([("d".to_string(), "old".to_string())]),
        pod_ages: Some(BTreeMap::from([("a".to_string(), vec![100, 150, 200, 900])])),
        ..Observed::default()
    };
    let p = plan(&policy(&[], Adopt::Patcher, true), &[cred("new", "D")], &observed);
    for ns in ["a", "b", "c", "d"] {
        assert_eq!(kept_reason(&p, ns, "old"), "StillReferenced", "{ns}");
    }
    let records: Vec<(String, i64, usize)> = crate::core::plan::held_records(&p, &observed)
        .into_iter()
        .map(|h| (h.namespace, h.before, h.pods))
        .collect();
    assert_eq!(records, [("a".to_string(), 200, 3), ("d".to_string(), 7, 3)]);
}

#[test]
fn healing_without_the_pending_pods_evicts_nothing_says_which_right_and_writes_the_rest() {
    let observed = Observed {
        namespaces: vec![ns("a")],
        service_accounts: vec![sa("a", "default", &[], &[])],
        stuck_unreadable: Some("pods is forbidden: cannot list resource \"pods\"".into()),
        inventory: inventory(&["regcred"]),
        ..Observed::default()
    };
    let p = plan(&healing(10), &[cred("regcred", "D1")], &observed);
    assert!(evicted(&p).is_empty());
    let f = p
        .findings
        .iter()
        .find(|f| f.reason == "PendingPodsNotListable")
        .unwrap();
    assert_eq!(f.severity, Severity::Error);
    assert!(f.message.contains("`list` and `watch` on pods"), "{}", f.message);
    assert!(
        matches!(find(&p, Kind::Secret, "a", "regcred").op, Op::CreateSecret { .. }),
        "the rest of the run is planned as ever"
    );
}
