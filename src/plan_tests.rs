//! Unit and property tests of the pure planner: structs in, assertions out.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::config::{Format, Source};
use crate::glob::Glob;
use crate::observe::NamespaceState;

const DOCKER: &str = DOCKERCONFIGJSON_TYPE;

fn config(service_accounts: &[&str], adopt: Adopt, prune: bool) -> Config {
    Config {
        source: Source::Secrets(vec![]),
        source_namespace: Some("home".into()),
        include: vec![Glob::new("*").unwrap()],
        exclude: vec![Glob::new("kube-system").unwrap()],
        namespace_selector: None,
        service_accounts: service_accounts.iter().map(|g| Glob::new(g).unwrap()).collect(),
        adopt,
        prune,
        dry_run: false,
        concurrency: 4,
        timeout: Duration::from_secs(60),
        output: Format::Json,
        log_format: Format::Text,
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

fn writes(plan: &Plan) -> usize {
    plan.secrets.iter().filter(|a| a.op.is_write()).count()
        + plan.service_accounts.iter().filter(|a| a.op.is_write()).count()
        + usize::from(plan.inventory_before.is_some())
        + usize::from(plan.inventory_after.is_some())
}

/// What the cluster looks like after every action of `plan` succeeded.
fn simulate(observed: &Observed, plan: &Plan, creds: &[Credential]) -> Observed {
    let mut next = observed.clone();
    for a in &plan.secrets {
        let pos = next
            .secrets
            .iter()
            .position(|s| s.namespace == a.namespace && s.name == a.name);
        match &a.op {
            SecretOp::Create { credential } | SecretOp::Update { credential, .. } => {
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
            SecretOp::Delete { .. } => {
                next.secrets.remove(pos.expect("deleting a Secret that was observed"));
            }
            SecretOp::Unchanged | SecretOp::Conflict { .. } => {}
        }
    }
    for a in &plan.service_accounts {
        if let ServiceAccountOp::Patch { list, recorded, .. } = &a.op {
            let s = next
                .service_accounts
                .iter_mut()
                .find(|s| s.namespace == a.namespace && s.name == a.name)
                .unwrap();
            s.pull_secrets = list.clone();
            s.recorded = recorded.clone();
        }
    }
    if let Some(inv) = &plan.inventory_before {
        next.inventory = inv.clone();
    }
    if let Some(inv) = &plan.inventory_after {
        next.inventory = inv.clone();
    }
    next
}

#[test]
fn fresh_namespace_gets_secret_and_entry() {
    let creds = [cred("regcred", "D1")];
    let observed = Observed {
        namespaces: vec![ns("a"), ns("kube-system")],
        service_accounts: vec![
            sa("a", "default", &["other"], &[]),
            sa("kube-system", "default", &[], &[]),
        ],
        ..Observed::default()
    };
    let p = plan(&config(&["default"], Adopt::Patcher, true), &creds, &observed);
    assert_eq!(
        p.namespaces,
        NamespaceCounts {
            seen: 2,
            selected: 1,
            excluded: 1,
            terminating: 0
        }
    );
    assert_eq!(
        p.secrets,
        vec![SecretAction {
            namespace: "a".into(),
            name: "regcred".into(),
            op: SecretOp::Create { credential: 0 }
        }]
    );
    match &p.service_accounts[0].op {
        ServiceAccountOp::Patch { list, recorded, .. } => {
            assert_eq!(list, &["other", "regcred"]);
            assert_eq!(recorded, &["regcred"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.inventory_before, Some(vec!["regcred".into()]));
}

#[test]
fn source_secret_is_never_overwritten_or_pruned() {
    let creds = [cred("src", "D1")];
    let observed = Observed {
        namespaces: vec![ns("home")],
        secrets: vec![secret("home", "src", true, "OTHER")],
        ..Observed::default()
    };
    let p = plan(&config(&[], Adopt::All, true), &creds, &observed);
    assert!(p.secrets.is_empty(), "{p:?}");
    let p = plan(
        &config(&[], Adopt::All, true),
        &[cred("renamed", "D1")],
        &Observed {
            inventory: vec!["src".into()],
            ..observed
        },
    );
    assert!(
        !p.secrets.iter().any(|a| a.namespace == "home" && a.name == "src"),
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
        &config(&["default"], Adopt::All, true),
        &[cred("regcred", "D")],
        &observed,
    );
    assert!(matches!(
        p.secrets[0].op,
        SecretOp::Conflict {
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
        &config(&["default"], Adopt::None, true),
        &[cred("regcred", "D")],
        &observed,
    );
    assert_eq!(p.service_accounts[0].op, ServiceAccountOp::Unchanged);
}

#[test]
fn rename_adds_new_and_removes_only_our_old_entry() {
    let observed = Observed {
        namespaces: vec![ns("a")],
        secrets: vec![secret("a", "old", true, "D")],
        service_accounts: vec![sa("a", "default", &["x", "old", "y"], &["old"])],
        inventory: vec!["old".into()],
        ..Observed::default()
    };
    let p = plan(
        &config(&["default"], Adopt::Patcher, true),
        &[cred("new", "D")],
        &observed,
    );
    let ServiceAccountOp::Patch { list, .. } = &p.service_accounts[0].op else {
        panic!("{p:?}")
    };
    assert_eq!(list, &["x", "y", "new"]);
    assert!(
        p.secrets
            .iter()
            .any(|a| a.name == "old" && matches!(a.op, SecretOp::Delete { .. }))
    );
    assert_eq!(p.inventory_before, Some(vec!["new".into(), "old".into()]));
    assert_eq!(p.inventory_after, Some(vec!["new".into()]));
}

#[test]
fn prune_off_keeps_everything() {
    let observed = Observed {
        namespaces: vec![ns("a")],
        secrets: vec![secret("a", "old", true, "D")],
        service_accounts: vec![sa("a", "default", &["old"], &["old"])],
        inventory: vec!["old".into()],
        ..Observed::default()
    };
    let p = plan(
        &config(&["default"], Adopt::Patcher, false),
        &[cred("new", "D")],
        &observed,
    );
    assert!(!p.secrets.iter().any(|a| matches!(a.op, SecretOp::Delete { .. })));
    let ServiceAccountOp::Patch { list, .. } = &p.service_accounts[0].op else {
        panic!()
    };
    assert_eq!(list, &["old", "new"]);
    assert_eq!(p.inventory_after, None);
}

#[test]
fn missing_service_account_is_reported_for_literal_names_only() {
    let observed = Observed {
        namespaces: vec![ns("a")],
        ..Observed::default()
    };
    let p = plan(
        &config(&["default", "build-*"], Adopt::Patcher, true),
        &[cred("r", "D")],
        &observed,
    );
    assert_eq!(p.service_accounts.len(), 1);
    assert_eq!(p.service_accounts[0].op, ServiceAccountOp::Missing);
}

#[test]
fn edit_keeps_duplicates_and_order_of_foreign_entries() {
    let list: Vec<String> = ["x", "ours", "x", "y"].iter().map(|s| s.to_string()).collect();
    let edit = Edit {
        add: vec!["new".into()],
        remove: vec!["ours".into(), "x".into()],
    };
    let (l, r) = edit.apply_to(&list, &["ours".into()]).unwrap();
    assert_eq!(l, ["x", "x", "y", "new"]);
    assert_eq!(r, ["new"]);
}

// ---- property tests ------------------------------------------------------------------------

const NAMESPACES: [&str; 5] = ["a", "b", "c", "home", "kube-system"];
const NAMES: [&str; 4] = ["t1", "t2", "old", "src"];
const ENTRIES: [&str; 6] = ["t1", "t2", "old", "src", "other", "x"];

fn arb_world() -> impl Strategy<Value = (Config, Vec<Credential>, Observed)> {
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
    let settings = (
        0u8..3,
        0u8..3,
        0u8..3,
        any::<bool>(),
        0u8..4,
        proptest::collection::vec(0usize..2, 0..3),
        any::<bool>(),
    );
    (namespaces, secrets, sas, settings).prop_map(
        |(nss, secrets, sas, (targets, sa_mode, adopt, prune, rotate, inv, hidden))| {
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
            observed.inventory = inv.iter().map(|i| ["old", "t2"][*i].to_string()).collect();
            observed.inventory.sort();
            observed.inventory.dedup();
            // Sometimes RBAC no longer lets us list the retired name "old".
            if hidden && observed.inventory.contains(&"old".to_string()) {
                observed.unlistable = vec!["old".into()];
                observed.secrets.retain(|s| s.name != "old");
            }
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
            let adopt = [Adopt::Patcher, Adopt::All, Adopt::None][adopt as usize];
            (config(sa_globs, adopt, prune), creds, observed)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn planning_after_an_applied_plan_yields_nothing((config, creds, observed) in arb_world()) {
        let first = plan(&config, &creds, &observed);
        let after = simulate(&observed, &first, &creds);
        let second = plan(&config, &creds, &after);
        prop_assert_eq!(writes(&second), 0, "second plan: {:?}", second);
    }

    #[test]
    fn input_order_does_not_change_the_plan((config, creds, observed) in arb_world(), seed in any::<u64>()) {
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
        prop_assert_eq!(plan(&config, &creds, &observed), plan(&config, &creds, &shuffled));
    }

    #[test]
    fn what_we_do_not_own_is_never_touched((config, creds, observed) in arb_world()) {
        let p = plan(&config, &creds, &observed);
        for a in &p.secrets {
            let found = observed.secrets.iter().find(|s| s.namespace == a.namespace && s.name == a.name);
            let is_source = creds.iter().any(|c| c.source_secret == Some((a.namespace.clone(), a.name.clone())));
            match &a.op {
                SecretOp::Delete { .. } => {
                    prop_assert!(found.is_some_and(|s| s.ours), "delete of a Secret not ours: {:?}", a);
                    prop_assert!(!is_source);
                }
                SecretOp::Update { adopt, .. } => {
                    let s = found.unwrap();
                    prop_assert!(!is_source);
                    prop_assert_eq!(&s.type_, DOCKER);
                    if *adopt {
                        prop_assert!(!s.ours);
                        prop_assert!(config.adopt == Adopt::All || (config.adopt == Adopt::Patcher && s.patcher));
                    } else {
                        prop_assert!(s.ours);
                    }
                }
                SecretOp::Create { .. } => prop_assert!(found.is_none() && !is_source),
                _ => {}
            }
        }
    }

    #[test]
    fn foreign_entries_are_always_kept_in_order((config, creds, observed) in arb_world()) {
        let p = plan(&config, &creds, &observed);
        for a in &p.service_accounts {
            let ServiceAccountOp::Patch { list, .. } = &a.op else { continue };
            let before = observed.service_accounts.iter().find(|s| s.namespace == a.namespace && s.name == a.name).unwrap();
            let foreign: Vec<&String> = before.pull_secrets.iter().filter(|n| !before.recorded.contains(n)).collect();
            let kept: Vec<&String> = list.iter().filter(|n| foreign.contains(n)).collect();
            // Every foreign entry survives, duplicates included, in its original order.
            let mut it = kept.iter();
            for f in &foreign {
                prop_assert_eq!(it.next(), Some(f), "{:?} -> {:?}", before.pull_secrets, list);
            }
        }
    }

    #[test]
    fn nothing_is_written_in_terminating_namespaces((config, creds, observed) in arb_world()) {
        let p = plan(&config, &creds, &observed);
        let terminating: Vec<&str> = observed.namespaces.iter().filter(|n| n.terminating).map(|n| n.name.as_str()).collect();
        for a in &p.secrets {
            prop_assert!(!(a.op.is_write() && terminating.contains(&a.namespace.as_str())));
        }
        for a in &p.service_accounts {
            let patch = a.op.is_write();
            prop_assert!(!(patch && terminating.contains(&a.namespace.as_str())), "{:?}", a);
        }
    }
}

#[test]
fn a_retired_name_we_may_not_list_is_left_alone_and_remembered() {
    let observed = Observed {
        namespaces: vec![ns("a")],
        service_accounts: vec![sa("a", "default", &["old"], &["old"])],
        inventory: vec!["old".into()],
        unlistable: vec!["old".into()],
        ..Observed::default()
    };
    let p = plan(
        &config(&["default"], Adopt::Patcher, true),
        &[cred("new", "D")],
        &observed,
    );
    let ServiceAccountOp::Patch { list, .. } = &p.service_accounts[0].op else {
        panic!("{p:?}")
    };
    assert_eq!(
        list,
        &["old", "new"],
        "the entry of a name we cannot see is not removed"
    );
    assert_eq!(p.inventory_after, None, "and the name is not forgotten");
    assert_eq!(p.warnings[0].reason, "RetiredNameNotListable");
}
