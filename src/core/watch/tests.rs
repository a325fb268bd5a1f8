//! The window's store and plan: structs in, assertions out.

use std::collections::BTreeSet;

use super::*;
use crate::core::glob::Glob;
use crate::core::model::{Adopt, Kind};

fn ns(name: &str) -> NamespaceState {
    NamespaceState {
        name: name.into(),
        terminating: false,
        opted_out: false,
    }
}

fn sa(namespace: &str, list: &[&str]) -> ServiceAccountState {
    ServiceAccountState {
        namespace: namespace.into(),
        name: "default".into(),
        resource_version: "1".into(),
        pull_secrets: list.iter().map(|s| s.to_string()).collect(),
        // Every entry in these fixtures was added by us.
        recorded: list.iter().map(|s| s.to_string()).collect(),
        list_appliers: vec![],
    }
}

fn credential(data: &[u8]) -> Vec<Credential> {
    vec![Credential {
        target: "regcred".into(),
        origin: "secret:home/src".into(),
        source_secret: Some(("home".into(), "src".into())),
        data: data.to_vec(),
    }]
}

fn policy() -> Policy {
    Policy {
        include: vec![Glob::new("*").unwrap()],
        exclude: vec![],
        namespace_selector: None,
        service_accounts: vec![Glob::new("default").unwrap()],
        adopt: Adopt::Patcher,
        prune: true,
        prune_limit: 10,
        heal: Heal::Off,
        heal_limit: 10,
    }
}

fn copy(namespace: &str, data: &[u8]) -> SecretState {
    SecretState {
        namespace: namespace.into(),
        name: "regcred".into(),
        resource_version: "5".into(),
        uid: format!("uid-{namespace}"),
        type_: crate::core::DOCKERCONFIGJSON_TYPE.into(),
        ours: true,
        patcher: false,
        conflict_accepted: false,
        keep: false,
        installation: None,
        source_annotation: Some("secret:home/src".into()),
        data: Some(data.to_vec()),
        managers: vec![],
    }
}

/// A store where namespace `a` is converged.
fn converged() -> Store {
    Store::new(Observed {
        namespaces: vec![ns("a")],
        secrets: vec![copy("a", b"D")],
        service_accounts: vec![sa("a", &["regcred"])],
        inventory: crate::core::model::Inventory {
            held: vec![],
            names: vec!["regcred".into()],
            resource_version: Some("1".into()),
        },
        ..Observed::default()
    })
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn writes(plan: &Plan) -> Vec<(Kind, String, &'static str)> {
    plan.writes()
        .map(|a| {
            let op = match a.op {
                Op::CreateSecret { .. } => "create",
                Op::UpdateSecret { .. } => "update",
                Op::DeleteSecret { .. } => "delete",
                Op::PatchServiceAccount { .. } => "patch",
                Op::EditInventory { .. } => "inventory",
                Op::Evict { .. } => "evict",
                _ => "other",
            };
            (a.kind, a.namespace.clone(), op)
        })
        .collect()
}

#[test]
fn a_new_namespace_gets_its_copy_then_its_service_account_is_patched() {
    let mut store = converged();
    let creds = credential(b"D");
    let touched = store.apply(Change::Namespace(Event::Applied(ns("b"))));
    assert_eq!(touched.0, set(&["b"]));
    let plan = plan_window(&policy(), &creds, &store, &touched.0, None);
    assert_eq!(writes(&plan), [(Kind::Secret, "b".into(), "create")]);
    for a in plan.writes() {
        store.wrote(a, &creds);
    }
    // The ServiceAccount controller makes `default` a moment later.
    let touched = store.apply(Change::ServiceAccount(
        Scope::Named("default".into()),
        Event::Applied(sa("b", &[])),
    ));
    let plan = plan_window(&policy(), &creds, &store, &touched.0, None);
    assert_eq!(
        writes(&plan),
        [(Kind::ServiceAccount, "b".into(), "patch")],
        "the copy written before is not written again"
    );
}

#[test]
fn a_deleted_copy_is_restored_and_a_rotation_updates_it() {
    let mut store = converged();
    let touched = store.apply(Change::Secret(
        Scope::Named("regcred".into()),
        Event::Deleted(copy("a", b"D")),
    ));
    assert_eq!(touched.0, set(&["a"]));
    let plan = plan_window(&policy(), &credential(b"D"), &store, &touched.0, None);
    assert_eq!(writes(&plan), [(Kind::Secret, "a".into(), "create")]);

    let store = converged();
    let plan = plan_window(&policy(), &credential(b"NEW"), &store, &store.namespace_names(), None);
    assert_eq!(writes(&plan), [(Kind::Secret, "a".into(), "update")]);
}

#[test]
fn nothing_is_deleted_or_unlisted_inside_a_window() {
    let mut store = converged();
    // Relabelled out of the selection: the namespace watch says it is gone.
    let touched = store.apply(Change::Namespace(Event::Deleted(ns("a"))));
    assert!(touched.0.is_empty(), "a namespace that leaves touches nothing");
    let plan = plan_window(&policy(), &credential(b"D"), &store, &set(&["a"]), None);
    assert!(writes(&plan).is_empty(), "{plan:#?}");
    // Excluded by annotation: still nothing removed.
    let mut store = converged();
    let mut out = ns("a");
    out.opted_out = true;
    let touched = store.apply(Change::Namespace(Event::Applied(out)));
    let plan = plan_window(&policy(), &credential(b"D"), &store, &touched.0, None);
    assert!(writes(&plan).is_empty(), "{plan:#?}");
}

#[test]
fn a_list_replaces_only_its_scope_and_touches_what_differs() {
    let mut store = converged();
    store.apply(Change::Namespace(Event::Applied(ns("b"))));
    store.apply(Change::Secret(
        Scope::Named("other".into()),
        Event::Applied({
            let mut s = copy("b", b"X");
            s.name = "other".into();
            s
        }),
    ));
    // A relist of `regcred` that no longer has a's copy, and a new one in b.
    let touched = store.apply(Change::Secret(
        Scope::Named("regcred".into()),
        Event::Listed(vec![copy("b", b"D")]),
    ));
    assert_eq!(touched.0, set(&["a", "b"]));
    let o = store.observed_in(&set(&["a", "b"]));
    let names: Vec<(String, String)> = o
        .secrets
        .iter()
        .map(|s| (s.namespace.clone(), s.name.clone()))
        .collect();
    assert_eq!(
        names,
        [("b".into(), "other".into()), ("b".into(), "regcred".into())],
        "the other name's Secret stays"
    );
    // The same list again touches nothing.
    let again = store.apply(Change::Secret(
        Scope::Named("regcred".into()),
        Event::Listed(vec![copy("b", b"D")]),
    ));
    assert!(again.0.is_empty());
}

#[test]
fn an_unchanged_object_touches_nothing() {
    let mut store = converged();
    assert!(store.apply(Change::Namespace(Event::Applied(ns("a")))).0.is_empty());
    assert!(
        store
            .apply(Change::ServiceAccount(
                Scope::All,
                Event::Applied(sa("a", &["regcred"]))
            ))
            .0
            .is_empty()
    );
}

#[test]
fn the_eviction_budget_is_shared_with_the_full_pass() {
    let mut store = converged();
    let stuck = StuckPod {
        namespace: "a".into(),
        name: "web-1".into(),
        uid: "u1".into(),
        service_account: "default".into(),
        pull_secrets: vec![],
        controller: Some("ReplicaSet/web".into()),
        owner: None,
    };
    let touched = store.apply(Change::Pod(Event::Applied(PendingPod {
        namespace: "a".into(),
        name: "web-1".into(),
        stuck: Some(stuck),
    })));
    let mut p = policy();
    p.heal = Heal::Evict;
    let creds = credential(b"D");
    let plan = plan_window(&p, &creds, &store, &touched.0, Some(1));
    assert_eq!(writes(&plan), [(Kind::Pod, "a".into(), "evict")]);
    let plan = plan_window(&p, &creds, &store, &touched.0, Some(0));
    assert!(writes(&plan).is_empty(), "the run's budget is spent");
}

#[test]
fn an_object_written_too_often_leaves_its_namespace_alone() {
    let mut contest = Contest::default();
    let a = Action {
        kind: Kind::ServiceAccount,
        namespace: "a".into(),
        name: "default".into(),
        op: Op::Unchanged,
        after: vec![],
    };
    assert!(!contest.count(&a));
    assert!(!contest.count(&a));
    assert!(contest.count(&a));
    assert_eq!(
        contest.left_alone.get("a"),
        Some(&("ServiceAccount", "default".to_owned()))
    );
}

#[test]
fn latency_is_the_median_and_the_maximum() {
    assert_eq!(Latency::of(&[]), Latency::default());
    assert_eq!(Latency::of(&[30, 10, 20]), Latency { p50: 20, max: 30 });
    assert_eq!(Latency::of(&[10, 40]), Latency { p50: 10, max: 40 });
}
