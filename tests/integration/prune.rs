//! Prune safety on the real control plane: an empty selection and the deselection limit refuse
//! to prune, copies still named by a ServiceAccount or an unfinished Pod are kept, adopted
//! entries move on a rename, dry runs can be reviewed, the inventory never loses a name.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use pullsecret_reconciler::apply::{self, Limits};
use pullsecret_reconciler::cluster::writes::KubeCluster;
use pullsecret_reconciler::core::model::{Action, Kind, Op, Status};
use serde_json::{Value, json};

use crate::support::{RunResult, TestEnv, ok, run_binary};

const INVENTORY: &str = "pullsecret-reconciler-inventory";

/// `n` namespaces `<id>-nNN`, converged on `target` (copied from source `src`).
async fn converged(env: &TestEnv, n: usize, src: &str, target: &str) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..n {
        let ns = env.name(&format!("n{i:02}"));
        env.create_namespace(&ns, &[], &[]).await;
        out.push(ns);
    }
    let run = env
        .run(&[("PULLSECRET_SOURCE_SECRETS", &format!("{src}={target}"))])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    out
}

fn problem(run: &RunResult, reason: &str) -> Value {
    run.problems()
        .into_iter()
        .find(|p| p["reason"] == reason)
        .unwrap_or_else(|| panic!("no {reason} problem: {}", run.stdout))
}

/// (namespace, name) of the run's actions that `keep` selects, sorted.
fn pairs(run: &RunResult, keep: impl Fn(&Value) -> bool) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = run.summary()["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| keep(a))
        .map(|a| {
            (
                a["namespace"].as_str().unwrap().to_owned(),
                a["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The copies a run kept for `reason`.
fn kept_for(run: &RunResult, reason: &str) -> Vec<(String, String)> {
    pairs(run, |a| a["action"] == "kept" && a["reason"] == reason)
}

fn actions(run: &RunResult, action: &str) -> Vec<(String, String)> {
    pairs(run, |a| a["action"] == action)
}

async fn inventory(env: &TestEnv) -> Vec<String> {
    let cm = Api::<ConfigMap>::namespaced(env.client.clone(), &env.home)
        .get(INVENTORY)
        .await
        .unwrap();
    let mut names: Vec<String> = cm.data.unwrap()["names"].split(',').map(str::to_owned).collect();
    names.sort();
    names
}

/// No ServiceAccount in `namespaces` names a Secret that does not exist there.
async fn no_dangling_references(env: &TestEnv, namespaces: &[String]) {
    for ns in namespaces {
        for sa in Api::<ServiceAccount>::namespaced(env.client.clone(), ns)
            .list(&Default::default())
            .await
            .unwrap()
        {
            for name in crate::support::pull_secret_names(&sa) {
                if name.starts_with(&env.id) {
                    assert!(
                        env.secret(ns, &name).await.is_some(),
                        "{ns}/{} names missing Secret {name}",
                        sa.metadata.name.as_deref().unwrap_or_default()
                    );
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_typo_over_a_converged_cluster_deletes_nothing() {
    let env = TestEnv::new("pr1").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    converged(&env, 3, &src, &src).await;
    let before = env.snapshot().await;
    let typo = format!("pullsecret-test={}-typo", env.id);
    let run = env
        .run(&[
            ("PULLSECRET_SOURCE_SECRETS", &src),
            ("PULLSECRET_NAMESPACE_SELECTOR", &typo),
        ])
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    let p = problem(&run, "EmptySelection");
    assert!(p["message"].as_str().unwrap().contains(&typo), "{p}");
    assert_eq!(run.writes(), 1, "only the run's summary Event");
    assert_eq!(env.snapshot().await, before, "no resourceVersion changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrowed_run_over_the_limit_deselects_nothing_until_the_limit_is_raised() {
    let env = TestEnv::new("pr2").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    let namespaces = converged(&env, 12, &src, &src).await;
    let before = env.snapshot().await;
    // "Just fix n00": everything else would be deselected (11 copies, plus the entries in the
    // source namespace's ServiceAccount).
    let narrowed = [
        ("PULLSECRET_SOURCE_SECRETS", src.as_str()),
        ("PULLSECRET_NAMESPACES", namespaces[0].as_str()),
    ];
    let run = env.run(&narrowed).await;
    assert_eq!(run.code, 1, "{run:?}");
    let p = problem(&run, "PruneLimitExceeded");
    let message = p["message"].as_str().unwrap();
    assert!(
        message.contains("12 namespaces") && message.contains("PULLSECRET_PRUNE_LIMIT=12"),
        "{p}"
    );
    assert_eq!(
        actions(&run, "refused").len(),
        11 + 12,
        "11 copies and 12 ServiceAccount entries"
    );
    assert_eq!(env.snapshot().await, before, "nothing deselected");

    let raised: Vec<(&str, &str)> = narrowed
        .iter()
        .copied()
        .chain([("PULLSECRET_PRUNE_LIMIT", "12")])
        .collect();
    let run = env.run(&raised).await;
    assert_eq!(run.code, 0, "{run:?}");
    // The entries go first; the copies in the next run (a Pod admitted meanwhile may name them).
    assert_eq!(run.count("secrets", "kept"), 11);
    let run = env.run(&raised).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.count("secrets", "deleted"), 11);
    assert!(env.secret(&namespaces[0], &src).await.is_some());
    for ns in &namespaces[1..] {
        assert!(env.secret(ns, &src).await.is_none(), "{ns}");
        assert!(env.pull_secrets(ns, "default").await.is_empty(), "{ns}");
    }

    // Back to everything, then one excluded namespace prunes at the default limit.
    assert_eq!(env.run(&[("PULLSECRET_SOURCE_SECRETS", &src)]).await.code, 0);
    let exclude_one = [
        ("PULLSECRET_SOURCE_SECRETS", src.as_str()),
        ("PULLSECRET_EXCLUDE_NAMESPACES", namespaces[5].as_str()),
    ];
    let run = env.run(&exclude_one).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        kept_for(&run, "UnlistedThisRun"),
        vec![(namespaces[5].clone(), src.clone())]
    );
    let run = env.run(&exclude_one).await;
    assert_eq!(actions(&run, "delete"), vec![(namespaces[5].clone(), src.clone())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_keeps_what_a_pod_or_an_unmanaged_service_account_still_names() {
    let env = TestEnv::new("pr3").await;
    let src = env.name("source");
    env.create_source(&src, "fake-user", "fake-password").await;
    let (old, new) = (env.name("old"), env.name("new"));
    let namespaces = converged(&env, 4, &src, &old).await;
    let (plain, builder_ns, pod_ns) = (&namespaces[0], &namespaces[1], &namespaces[2]);
    // A team's own ServiceAccount that lists our Secret, and a Pod admitted before the rename
    // (the API server copies the default ServiceAccount's list into it).
    let sa: ServiceAccount =
        serde_json::from_value(json!({ "metadata": { "name": "builder" }, "imagePullSecrets": [{ "name": old }] }))
            .unwrap();
    Api::<ServiceAccount>::namespaced(env.client.clone(), builder_ns)
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), pod_ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": { "containers": [{ "name": "web", "image": "registry.example.invalid/web:1" }] }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let admitted = pods.get("web").await.unwrap();
    assert_eq!(admitted.spec.unwrap().image_pull_secrets.unwrap()[0].name, old);

    let rename = [("PULLSECRET_SOURCE_SECRETS", format!("{src}={new}"))];
    let rename: Vec<(&str, &str)> = rename.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // First, review it: the dry run lists every delete and every kept copy by namespace and name.
    let before = env.snapshot().await;
    let dry: Vec<(&str, &str)> = rename.iter().copied().chain([("PULLSECRET_DRY_RUN", "true")]).collect();
    let review = env.run(&dry).await;
    assert_eq!(review.code, 0, "{review:?}");
    assert_eq!(env.snapshot().await, before, "a dry run changes nothing");
    // The source namespace is selected too, so it holds a copy of its own. Every default
    // ServiceAccount named the old copy when the run began: this run unlists, the next deletes.
    let mut expect_unlisted = vec![
        (plain.clone(), old.clone()),
        (namespaces[3].clone(), old.clone()),
        (env.home.clone(), old.clone()),
    ];
    expect_unlisted.sort();
    assert!(actions(&review, "delete").is_empty(), "{review:?}");
    assert_eq!(kept_for(&review, "UnlistedThisRun"), expect_unlisted);
    let mut expect_kept = vec![(builder_ns.clone(), old.clone()), (pod_ns.clone(), old.clone())];
    expect_kept.sort();
    assert_eq!(kept_for(&review, "StillReferenced"), expect_kept);
    let summary = review.summary();
    let excerpt: Vec<&Value> = summary["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| ["delete", "kept"].contains(&a["action"].as_str().unwrap()) || a["namespace"] == plain.as_str())
        .collect();
    eprintln!(
        "dry-run actions of a rename (excerpt): {}",
        serde_json::to_string_pretty(&excerpt).unwrap()
    );

    let run = env.run(&rename).await;
    assert_eq!(run.code, 0, "keeping copies is the normal middle of a rename: {run:?}");
    assert_eq!(run.count("secrets", "kept"), 5);
    let kept: Vec<Value> = run
        .problems()
        .into_iter()
        .filter(|p| p["reason"] == "StillReferenced")
        .collect();
    let messages: String = kept.iter().map(|p| p["message"].as_str().unwrap()).collect();
    assert!(
        messages.contains("ServiceAccount builder") && messages.contains("Pod web"),
        "{messages}"
    );
    assert!(env.secret(builder_ns, &old).await.is_some() && env.secret(pod_ns, &old).await.is_some());
    assert!(
        env.secret(plain, &old).await.is_some(),
        "unlisted this run, deleted by the next"
    );
    for ns in &namespaces {
        assert_eq!(env.pull_secrets(ns, "default").await, vec![new.clone()], "{ns}");
    }
    no_dangling_references(&env, &namespaces).await;
    assert!(inventory(&env).await.contains(&old), "the old name is still remembered");

    // Once nothing names them, the next run deletes the rest and forgets the name.
    pods.delete("web", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    env.set_pull_secrets(builder_ns, "builder", &[]).await;
    let run = env.run(&rename).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.count("secrets", "deleted"), 5);
    for ns in &namespaces {
        assert!(env.secret(ns, &old).await.is_none(), "{ns}");
    }
    assert_eq!(inventory(&env).await, vec![new.clone()]);
    assert_eq!(env.run(&rename).await.writes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_patcher_entry_moves_with_a_rename() {
    let env = TestEnv::new("pr4").await;
    let src = env.name("source");
    env.create_source(&src, "fake-user", "fake-password").await;
    let ns = env.name("a");
    env.create_namespace(&ns, &[], &[]).await;
    let patcher = env.name("patcher");
    let old = crate::support::fake_dockerconfig("fake-user", "old-patcher-password");
    env.put_dockerconfig(
        &ns,
        &patcher,
        &old,
        &[("app.kubernetes.io/managed-by", "imagepullsecret-patcher")],
    )
    .await;
    env.set_pull_secrets(&ns, "default", &["other-secret", &patcher]).await;

    let adopt = env
        .run(&[("PULLSECRET_SOURCE_SECRETS", &format!("{src}={patcher}"))])
        .await;
    assert_eq!(adopt.code, 0, "{adopt:?}");
    assert_eq!(adopt.count("secrets", "adopted"), 1);
    let regcred = env.name("regcred");
    let run = env
        .run(&[("PULLSECRET_SOURCE_SECRETS", &format!("{src}={regcred}"))])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        env.pull_secrets(&ns, "default").await,
        vec!["other-secret".to_string(), regcred.clone()]
    );
    let run = env
        .run(&[("PULLSECRET_SOURCE_SECRETS", &format!("{src}={regcred}"))])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        env.secret(&ns, &patcher).await.is_none(),
        "the adopted copy is pruned once nothing names it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_list_on_pods_nothing_is_deleted_and_the_report_says_why() {
    let env = TestEnv::new("pr5").await;
    let src = env.name("source");
    env.create_source(&src, "fake-user", "fake-password").await;
    let namespaces = converged(&env, 2, &src, &env.name("old")).await;
    let kubeconfig = env
        .identity(
            "no-pods",
            r#"- {apiGroups: [""], resources: [namespaces], verbs: [list]}
- {apiGroups: [""], resources: [secrets, serviceaccounts, configmaps], verbs: ["*"]}"#,
        )
        .await;
    let run = env
        .run_as(
            &kubeconfig,
            &[("PULLSECRET_SOURCE_SECRETS", &format!("{src}={}", env.name("new")))],
        )
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    let p = problem(&run, "PodsNotListable");
    assert!(p["message"].as_str().unwrap().contains("list` on pods"), "{p}");
    for ns in &namespaces {
        assert!(
            env.secret(ns, &env.name("old")).await.is_some(),
            "{ns}: deleted without the Pod check"
        );
        assert!(
            env.secret(ns, &env.name("new")).await.is_some(),
            "{ns}: the rest of the run still happens"
        );
    }
    no_dangling_references(&env, &namespaces).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_side_dry_run_persists_nothing_and_reports_what_rbac_refuses() {
    let env = TestEnv::new("pr6").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    for i in 0..2 {
        env.create_namespace(&env.name(&format!("n{i}")), &[], &[]).await;
    }
    let before = env.snapshot().await;
    let vars = [
        ("PULLSECRET_SOURCE_SECRETS", src.as_str()),
        ("PULLSECRET_DRY_RUN", "server"),
    ];
    let run = env.run(&vars).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.summary()["dry_run_mode"], "server");
    assert!(
        run.writes() >= 5,
        "every write was sent (with dryRun=All): {}",
        run.stdout
    );
    assert_eq!(actions(&run, "create").len(), 3, "two copies and the inventory");
    assert_eq!(env.snapshot().await, before, "nothing persisted");

    // An identity whose RBAC lacks `create` on Secrets: the API server refuses, nothing persists.
    let kubeconfig = env
        .identity(
            "no-create",
            r#"- {apiGroups: [""], resources: [namespaces, pods], verbs: [list]}
- {apiGroups: [""], resources: [secrets], verbs: [get, list, patch, delete]}
- {apiGroups: [""], resources: [serviceaccounts, configmaps], verbs: ["*"]}"#,
        )
        .await;
    let before = env.snapshot().await;
    let run = env.run_as(&kubeconfig, &vars).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.problems()
            .iter()
            .any(|p| p["kind"] == "Secret" && p["reason"] == "Forbidden"),
        "{}",
        run.stdout
    );
    assert_eq!(env.snapshot().await, before, "nothing persisted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_runs_with_different_targets_both_keep_their_names() {
    let env = TestEnv::new("pr7").await;
    let src = env.name("source");
    env.create_source(&src, "fake-user", "fake-password").await;
    env.create_namespace(&env.name("a"), &[], &[]).await;
    // Two configurations at once (a manual Job during a rollout), prune off so neither forgets
    // the other's name whatever the timing: both names must end up recorded.
    for round in 0..3 {
        let (a, b) = (env.name(&format!("a{round}")), env.name(&format!("b{round}")));
        let run = |target: String| {
            let vars = env.vars(&[
                ("PULLSECRET_SOURCE_SECRETS", &format!("{src}={target}")),
                ("PULLSECRET_PRUNE", "false"),
            ]);
            let kubeconfig = env.kubeconfig.clone();
            tokio::spawn(async move { run_binary(&kubeconfig, &vars).await })
        };
        let (ra, rb) = (run(a.clone()), run(b.clone()));
        assert_eq!(ra.await.unwrap().code, 0);
        assert_eq!(rb.await.unwrap().code, 0);
        let names = inventory(&env).await;
        assert!(names.contains(&a) && names.contains(&b), "round {round}: {names:?}");
    }

    // Deterministically: a write based on a stale read re-reads and merges.
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.home);
    let stale = cms.get(INVENTORY).await.unwrap().metadata.resource_version;
    let other = env.name("other");
    let run = env
        .run(&[
            ("PULLSECRET_SOURCE_SECRETS", &format!("{src}={other}")),
            ("PULLSECRET_PRUNE", "false"),
        ])
        .await;
    assert_eq!(run.code, 0);
    let mine = env.name("mine");
    let actions = vec![Action {
        kind: Kind::ConfigMap,
        namespace: String::new(),
        name: INVENTORY.into(),
        op: Op::EditInventory {
            resource_version: stale,
            add: vec![mine.clone()],
            remove: vec![],
            names: vec![mine.clone()],
        },
        after: vec![],
    }];
    let cluster = KubeCluster {
        client: env.client.clone(),
        once: env.client.clone(),
        namespace: env.home.clone(),
        dry_run: false,
    };
    let limits = Limits {
        concurrency: 1,
        deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(30),
    };
    let out = apply::execute(Arc::new(cluster), actions, Arc::from(vec![]), limits).await;
    assert_eq!(
        out[0].status,
        Status::Done { retries: 1 },
        "the stale write met a 409 and retried"
    );
    let names = inventory(&env).await;
    assert!(names.contains(&mine) && names.contains(&other), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_at_zero_replicas_whose_template_names_a_copy_keeps_it() {
    let env = TestEnv::new("prt").await;
    let src = env.name("source");
    env.create_source(&src, "fake-user", "fake-password").await;
    let (old, new) = (env.name("old"), env.name("new"));
    let namespaces = converged(&env, 3, &src, &old).await;
    // Scaled to zero, and a CronJob between runs: no Pod names the copy, their templates do.
    let template = |name: &str, restart: &str| {
        json!({ "metadata": { "labels": { "app": name } }, "spec": {
            "restartPolicy": restart, "imagePullSecrets": [{ "name": old }],
            "containers": [{ "name": "app", "image": "registry.example.invalid/app:1" }] } })
    };
    env.cp.apply_yaml(
        &json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web", "namespace": namespaces[0] },
                 "spec": { "replicas": 0, "selector": { "matchLabels": { "app": "web" } }, "template": template("web", "Always") } })
        .to_string(),
    );
    env.cp.apply_yaml(
        &json!({ "apiVersion": "batch/v1", "kind": "CronJob", "metadata": { "name": "nightly", "namespace": namespaces[1] },
                 "spec": { "schedule": "0 3 * * *", "suspend": true, "jobTemplate": { "spec": { "template": template("nightly", "Never") } } } })
        .to_string(),
    );
    let renamed = format!("{src}={new}");
    let run = env.run(&[("PULLSECRET_SOURCE_SECRETS", &renamed)]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let kept: Vec<(String, String)> = kept_for(&run, "StillReferenced");
    assert_eq!(
        kept,
        vec![
            (namespaces[0].clone(), old.clone()),
            (namespaces[1].clone(), old.clone())
        ],
        "{}",
        run.stdout
    );
    let messages: Vec<String> = run
        .problems()
        .iter()
        .map(|p| p["message"].as_str().unwrap().to_owned())
        .collect();
    assert!(messages.iter().any(|m| m.contains("Deployment web")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("CronJob nightly")), "{messages:?}");
    let run = env.run(&[("PULLSECRET_SOURCE_SECRETS", &renamed)]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        env.secret(&namespaces[2], &old).await.is_none(),
        "nothing names the third copy: deleted by the run after the one that unlisted it"
    );
    for ns in &namespaces[..2] {
        assert!(
            env.secret(ns, &old).await.is_some(),
            "{ns}: kept for the Pods the template will make"
        );
    }
    no_dangling_references(&env, &namespaces).await;
}

/// A copy mounted as a volume (Kaniko's `/kaniko/.docker`), through a projected volume, read by
/// `env[].valueFrom.secretKeyRef` or `envFrom[].secretRef` — in a Pod or a workload's template —
/// is as much in use as one in `imagePullSecrets`; and a copy annotated
/// `pullsecret-reconciler/keep: "true"` is held by hand. A rename keeps all of them and deletes
/// only the copy nothing uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_a_pod_uses_a_copy_keeps_it_and_so_does_the_keep_annotation() {
    let env = TestEnv::new("prv").await;
    let src = env.name("source");
    env.create_source(&src, "fake-user", "fake-password").await;
    let (old, new) = (env.name("old"), env.name("new"));
    let mut namespaces = Vec::new();
    for i in 0..6 {
        let ns = env.name(&format!("n{i:02}"));
        env.create_namespace(&ns, &[], &[]).await;
        namespaces.push(ns);
    }
    // ServiceAccounts are left alone: only the Pods' own uses can keep a copy.
    let sources = format!("{src}={old}");
    let run = env
        .run(&[
            ("PULLSECRET_SOURCE_SECRETS", &sources),
            ("PULLSECRET_SERVICE_ACCOUNTS", ""),
        ])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let container = |extra: Value| {
        let mut c = json!({ "name": "build", "image": "registry.example.invalid/kaniko:1" });
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    };
    let pod = |ns: &str, name: &str, spec: Value| {
        env.cp.apply_yaml(
            &json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": name, "namespace": ns }, "spec": spec })
                .to_string(),
        )
    };
    pod(
        &namespaces[0],
        "kaniko",
        json!({ "containers": [container(json!({ "volumeMounts": [{ "name": "docker", "mountPath": "/kaniko/.docker" }] }))],
                "volumes": [{ "name": "docker", "secret": { "secretName": old,
                    "items": [{ "key": ".dockerconfigjson", "path": "config.json" }] } }] }),
    );
    pod(
        &namespaces[1],
        "buildkit",
        json!({ "containers": [container(json!({ "volumeMounts": [{ "name": "p", "mountPath": "/root/.docker" }] }))],
                "volumes": [{ "name": "p", "projected": { "sources": [{ "secret": { "name": old } }] } }] }),
    );
    pod(
        &namespaces[2],
        "runner",
        json!({ "containers": [container(json!({ "env": [{ "name": "DOCKER_AUTH_CONFIG",
                    "valueFrom": { "secretKeyRef": { "name": old, "key": ".dockerconfigjson" } } }] }))] }),
    );
    env.cp.apply_yaml(
        &json!({ "apiVersion": "batch/v1", "kind": "CronJob", "metadata": { "name": "ci", "namespace": namespaces[3] },
                 "spec": { "schedule": "0 3 * * *", "suspend": true, "jobTemplate": { "spec": { "template": { "spec": {
                    "restartPolicy": "Never",
                    "containers": [container(json!({ "envFrom": [{ "secretRef": { "name": old } }] }))] } } } } } })
        .to_string(),
    );
    env.annotate_secret(&namespaces[4], &old, "pullsecret-reconciler/keep=true");

    let renamed = format!("{src}={new}");
    let rename = [
        ("PULLSECRET_SOURCE_SECRETS", renamed.as_str()),
        ("PULLSECRET_SERVICE_ACCOUNTS", ""),
    ];
    let run = env.run(&rename).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        kept_for(&run, "StillReferenced"),
        namespaces[..4]
            .iter()
            .map(|ns| (ns.clone(), old.clone()))
            .collect::<Vec<_>>(),
        "{}",
        run.stdout
    );
    let messages: String = run
        .problems()
        .iter()
        .map(|p| p["message"].as_str().unwrap().to_owned())
        .collect();
    for holder in ["Pod kaniko", "Pod buildkit", "Pod runner", "CronJob ci"] {
        assert!(messages.contains(holder), "{holder}: {messages}");
    }
    assert_eq!(
        kept_for(&run, "KeepAnnotation"),
        vec![(namespaces[4].clone(), old.clone())]
    );
    let held = problem(&run, "KeepAnnotation");
    assert_eq!(held["severity"], "info", "a hold by hand is not a warning: {held}");
    let mut deleted = vec![(namespaces[5].clone(), old.clone()), (env.home.clone(), old.clone())];
    deleted.sort();
    assert_eq!(actions(&run, "delete"), deleted);
    for ns in &namespaces[..5] {
        assert!(env.secret(ns, &old).await.is_some(), "{ns}");
    }
    assert!(
        inventory(&env).await.contains(&old),
        "a kept copy keeps its name remembered"
    );

    // Once the uses are gone (the hold stays), the next run deletes those copies.
    for (ns, name) in [
        (&namespaces[0], "kaniko"),
        (&namespaces[1], "buildkit"),
        (&namespaces[2], "runner"),
    ] {
        Api::<Pod>::namespaced(env.client.clone(), ns)
            .delete(name, &DeleteParams::default().grace_period(0))
            .await
            .unwrap();
    }
    ok(
        env.cp
            .kubectl()
            .args(["delete", "cronjob", "ci", "-n", &namespaces[3]])
            .output()
            .unwrap(),
        "kubectl delete",
    );
    let run = env.run(&rename).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        actions(&run, "delete"),
        namespaces[..4]
            .iter()
            .map(|ns| (ns.clone(), old.clone()))
            .collect::<Vec<_>>()
    );
    assert!(
        env.secret(&namespaces[4], &old).await.is_some(),
        "held by its annotation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_reads_cost_what_the_candidates_need_not_the_cluster() {
    let env = TestEnv::new("prc").await;
    let src = env.name("source");
    env.create_source(&src, "fake-user", "fake-password").await;
    let (old, new) = (env.name("old"), env.name("new"));
    let namespaces = converged(&env, 2, &src, &old).await;
    // A rename left half-done by one Pod that never restarts: every run re-checks references.
    let pod: Pod = serde_json::from_value(json!({ "metadata": { "name": "stays" }, "spec": {
        "imagePullSecrets": [{ "name": old }],
        "containers": [{ "name": "app", "image": "registry.example.invalid/app:1" }] } }))
    .unwrap();
    Api::<Pod>::namespaced(env.client.clone(), &namespaces[0])
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    let renamed = [("PULLSECRET_SOURCE_SECRETS", format!("{src}={new}"))];
    let vars: Vec<(&str, &str)> = renamed.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(env.run(&vars).await.code, 0);
    let steady = env.run(&vars).await;
    assert_eq!(actions(&steady, "kept"), vec![(namespaces[0].clone(), old.clone())]);
    // Sixty Pods elsewhere in the cluster, naming nothing of ours.
    let elsewhere = env.name("busy");
    env.create_namespace(&elsewhere, &[], &[]).await;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &elsewhere);
    for i in 0..60 {
        let p: Pod = serde_json::from_value(json!({ "metadata": { "name": format!("p{i}") }, "spec": {
            "containers": [{ "name": "app", "image": "registry.example.invalid/app:1" }] } }))
        .unwrap();
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    let again = env.run(&vars).await;
    assert_eq!(actions(&again, "kept"), vec![(namespaces[0].clone(), old.clone())]);
    let bytes = |r: &RunResult| r.count("api_requests", "bytes_read");
    // The new namespace itself is seen (its namespace object and ServiceAccount), its Pods are not.
    assert!(
        bytes(&again) < bytes(&steady) + 30_000,
        "the Pods of other namespaces were read: {} bytes, then {}",
        bytes(&steady),
        bytes(&again)
    );
}

/// After a rename that Pods hold up in more namespaces than references are read one by one (as
/// the inject policy makes it: every Pod admitted before names the old copy), the run that finds
/// them records the holders; the following runs read one list of Pod metadata instead of every Pod
/// and workload of the cluster, keep the copies unread while none of the older Pods has ended, and
/// read again exactly the namespaces where one has — deleting those copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_held_by_pods_are_not_read_again_until_one_of_their_pods_ends() {
    let env = TestEnv::new("prh").await;
    let src = env.name("source");
    env.create_source(&src, "fake-user", "fake-password").await;
    let (old, new) = (env.name("old"), env.name("new"));
    let n = 22;
    let mut namespaces = Vec::new();
    for i in 0..n {
        let ns = env.name(&format!("n{i:02}"));
        env.create_namespace(&ns, &[], &[]).await;
        namespaces.push(ns);
    }
    let no_accounts = ("PULLSECRET_SERVICE_ACCOUNTS", "");
    let sources = format!("{src}={old}");
    let run = env.run(&[("PULLSECRET_SOURCE_SECRETS", &sources), no_accounts]).await;
    assert_eq!(run.code, 0, "{run:?}");
    for ns in &namespaces {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": { "name": "app" },
            "spec": { "imagePullSecrets": [{ "name": old }],
                      "containers": [{ "name": "app", "image": "registry.example.invalid/app:1" }] }
        }))
        .unwrap();
        Api::<Pod>::namespaced(env.client.clone(), ns)
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
    }
    let renamed = format!("{src}={new}");
    // (Events off: a kept copy is a warning, and Events are counted as writes.)
    let rename = [
        ("PULLSECRET_SOURCE_SECRETS", renamed.as_str()),
        no_accounts,
        ("PULLSECRET_EVENTS", "false"),
    ];

    // The run that finds them: every Pod and workload read, 22 copies kept, holders recorded.
    let first = env.run(&rename).await;
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(kept_for(&first, "StillReferenced").len(), n, "{}", first.stdout);
    let cm = Api::<ConfigMap>::namespaced(env.client.clone(), &env.home)
        .get(INVENTORY)
        .await
        .unwrap();
    let held = cm.data.unwrap_or_default().get("held").cloned().unwrap_or_default();
    assert_eq!(held.split(',').count(), n, "{held}");

    // Nothing ended: kept unread (one list of Pod metadata instead of seven lists), no write.
    let steady = env.run(&rename).await;
    assert_eq!((steady.code, steady.writes()), (0, 0), "{steady:?}");
    assert_eq!(kept_for(&steady, "StillReferenced").len(), n);
    let reads = |r: &RunResult| r.summary()["api_requests"]["reads"].as_u64().unwrap();
    assert!(
        reads(&steady) + 6 <= reads(&first),
        "steady {} reads, first {}",
        reads(&steady),
        reads(&first)
    );

    // Two of the Pods end: exactly those namespaces are read again, and their copies go.
    for ns in &namespaces[..2] {
        Api::<Pod>::namespaced(env.client.clone(), ns)
            .delete("app", &DeleteParams::default().grace_period(0))
            .await
            .unwrap();
    }
    let after = env.run(&rename).await;
    assert_eq!(after.code, 0, "{after:?}");
    assert_eq!(
        actions(&after, "delete"),
        namespaces[..2]
            .iter()
            .map(|ns| (ns.clone(), old.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(kept_for(&after, "StillReferenced").len(), n - 2);
    no_dangling_references(&env, &namespaces).await;
}
