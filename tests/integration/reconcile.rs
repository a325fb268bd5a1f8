//! One run converges every selected namespace; a second run changes nothing.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{TestEnv, is_ours, secret_data};

/// Creates a namespace that stays Terminating (a finalizer holds a ConfigMap) until `release`.
pub async fn terminating_namespace(env: &TestEnv, name: &str) {
    env.create_namespace(name, &[], &[]).await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), name);
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "held", "finalizers": ["example.com/hold"] }
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let nss: Api<Namespace> = Api::all(env.client.clone());
    nss.delete(name, &DeleteParams::default()).await.unwrap();
    for _ in 0..100 {
        let ns = nss.get(name).await.unwrap();
        if ns.metadata.deletion_timestamp.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never became Terminating");
}

pub async fn release(env: &TestEnv, name: &str) {
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), name);
    let _ = cms
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_converges_and_a_second_changes_nothing() {
    let env = TestEnv::new("rc1").await;
    let src = env.name("regcred");
    let bytes = env.create_source(&src, "fake-user", "fake-password-1").await;
    let (a, b) = (env.name("a"), env.name("b"));
    env.create_namespace(&a, &[], &[]).await;
    env.create_namespace(&b, &[], &[]).await;
    env.set_pull_secrets(&b, "default", &["other-secret"]).await;
    let skipped = env.name("skip-x");
    env.create_namespace(&skipped, &[], &[]).await;
    let opted = env.name("optout");
    env.create_namespace(&opted, &[], &[("pullsecret-reconciler/exclude", "true")])
        .await;
    let patcher_opted = env.name("patcher-optout");
    env.create_namespace(
        &patcher_opted,
        &[],
        &[("k8s.titansoft.com/imagepullsecret-patcher-exclude", "true")],
    )
    .await;
    let term = env.name("term");
    terminating_namespace(&env, &term).await;
    let before = env.snapshot().await;

    let exclude = format!("{},kube-system", env.name("skip-*"));
    let vars = [
        ("PULLSECRET_SOURCE_SECRETS", src.as_str()),
        ("PULLSECRET_EXCLUDE_NAMESPACES", exclude.as_str()),
    ];
    let first = env.run(&vars).await;
    assert_eq!(first.code, 0, "{first:?}");
    let s = first.summary();
    assert_eq!(s["namespaces"]["selected"], 3, "{s}"); // a, b, home
    assert_eq!(s["namespaces"]["excluded"], 3, "{s}");
    assert_eq!(s["namespaces"]["terminating"], 1, "{s}");
    assert_eq!(s["secrets"]["created"], 2, "{s}"); // home holds the source itself

    for ns in [&a, &b] {
        let secret = env.secret(ns, &src).await.expect("copied Secret");
        assert_eq!(secret_data(&secret), bytes, "exact bytes in {ns}");
        assert!(is_ours(&secret), "labelled in {ns}");
        let origin = secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("pullsecret-reconciler/source"))
            .cloned();
        assert_eq!(
            origin,
            Some(format!("secret:{}/{src}", env.home)),
            "source annotation in {ns}"
        );
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
    }
    assert_eq!(env.pull_secrets(&a, "default").await, vec![src.clone()]);
    assert_eq!(
        env.pull_secrets(&b, "default").await,
        vec!["other-secret".to_string(), src.clone()]
    );
    assert_eq!(env.pull_secrets(&env.home, "default").await, vec![src.clone()]);
    let after = env.snapshot().await;
    for ns in [&skipped, &opted, &patcher_opted, &term] {
        assert!(env.secret(ns, &src).await.is_none(), "nothing written in {ns}");
        let key = format!("sa/{ns}/default");
        assert_eq!(before.get(&key), after.get(&key), "{key} untouched");
    }

    // The contract's "off" values of features this version does not have yet are accepted.
    let off = [("PULLSECRET_EVENTS", "false"), ("PULLSECRET_VERIFY", "off")];
    let second_vars: Vec<(&str, &str)> = vars.iter().copied().chain(off).collect();
    let second = env.run(&second_vars).await;
    assert_eq!(second.code, 0, "{second:?}");
    assert_eq!(second.writes(), 0, "{}", second.stdout);
    assert_eq!(second.count("secrets", "unchanged"), 2);
    assert_eq!(env.snapshot().await, after, "the second run changed a resourceVersion");
    release(&env, &term).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_created_after_the_run_carries_the_pull_secret() {
    let env = TestEnv::new("rc2").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    let ns = env.name("app");
    env.create_namespace(&ns, &[], &[]).await;
    let run = env.run(&[("PULLSECRET_SOURCE_SECRETS", src.as_str())]).await;
    assert_eq!(run.code, 0, "{run:?}");

    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "private" },
        "spec": { "containers": [{ "name": "app", "image": "registry.example.invalid/private/app:1" }] }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let back = pods.get("private").await.unwrap();
    let names: Vec<String> = back
        .spec
        .unwrap()
        .image_pull_secrets
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, vec![src]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_updates_every_copy_and_nothing_else() {
    let env = TestEnv::new("rc3").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password-old").await;
    let names: Vec<String> = (0..4).map(|i| env.name(&format!("n{i}"))).collect();
    for n in &names {
        env.create_namespace(n, &[], &[]).await;
    }
    let vars = [("PULLSECRET_SOURCE_SECRETS", src.as_str())];
    assert_eq!(env.run(&vars).await.code, 0);
    let before = env.snapshot().await;

    let rotated = env.create_source(&src, "fake-user", "fake-password-new").await;
    let run = env.run(&vars).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.count("secrets", "updated"), 4, "{}", run.stdout);
    assert_eq!(run.count("service_accounts", "patched"), 0, "{}", run.stdout);
    assert_eq!(
        run.writes(),
        4 + 1,
        "only the four copies, and the run's summary Event: {}",
        run.stdout
    );
    let after = env.snapshot().await;
    for n in &names {
        assert_eq!(secret_data(&env.secret(n, &src).await.unwrap()), rotated);
        let key = format!("sa/{n}/default");
        assert_eq!(before[&key], after[&key], "{key} was written");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_created_between_runs_is_covered() {
    let env = TestEnv::new("rc4").await;
    let src = env.name("regcred");
    let bytes = env.create_source(&src, "fake-user", "fake-password").await;
    let vars = [("PULLSECRET_SOURCE_SECRETS", src.as_str())];
    assert_eq!(env.run(&vars).await.code, 0);
    let late = env.name("late");
    env.create_namespace(&late, &[], &[]).await;
    let run = env.run(&vars).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.count("secrets", "created"), 1);
    assert_eq!(secret_data(&env.secret(&late, &src).await.unwrap()), bytes);
    assert_eq!(env.pull_secrets(&late, "default").await, vec![src]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_counts_everything_and_changes_nothing() {
    let env = TestEnv::new("rc5").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    for i in 0..3 {
        env.create_namespace(&env.name(&format!("n{i}")), &[], &[]).await;
    }
    let before = env.snapshot().await;
    for vars in [
        vec![
            ("PULLSECRET_SOURCE_SECRETS", src.as_str()),
            ("PULLSECRET_DRY_RUN", "true"),
        ],
        vec![("PULLSECRET_SOURCE_SECRETS", src.as_str())],
    ] {
        let run = if vars.len() == 2 {
            env.run(&vars).await
        } else {
            // the --dry-run flag, not the variable
            let v = env.vars(&[("PULLSECRET_SOURCE_SECRETS", src.as_str())]);
            crate::support::run_binary_args(&env.kubeconfig, &v, &["--dry-run"]).await
        };
        assert_eq!(run.code, 0, "{run:?}");
        let s = run.summary();
        assert_eq!(s["dry_run"], true);
        assert_eq!(s["secrets"]["created"], 3, "{s}");
        assert_eq!(s["service_accounts"]["patched"], 4, "{s}"); // three namespaces + home
        assert_eq!(run.writes(), 0);
        assert_eq!(env.snapshot().await, before, "dry run changed the cluster");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_service_accounts_are_counted_never_created() {
    let env = TestEnv::new("rc6").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    let ns = env.name("app");
    env.create_namespace(&ns, &[], &[]).await;
    let run = env
        .run(&[
            ("PULLSECRET_SOURCE_SECRETS", &src),
            ("PULLSECRET_SERVICE_ACCOUNTS", "default,builder"),
        ])
        .await;
    assert_eq!(run.code, 0, "a missing ServiceAccount is not a failure: {run:?}");
    assert_eq!(run.count("service_accounts", "missing"), 2, "{}", run.stdout); // app and home
    let api: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(env.client.clone(), &ns);
    assert!(api.get_opt("builder").await.unwrap().is_none(), "never created");

    // Once it exists, the next run patches it.
    let sa: k8s_openapi::api::core::v1::ServiceAccount =
        serde_json::from_value(json!({ "metadata": { "name": "builder" } })).unwrap();
    api.create(&PostParams::default(), &sa).await.unwrap();
    let run = env
        .run(&[
            ("PULLSECRET_SOURCE_SECRETS", &src),
            ("PULLSECRET_SERVICE_ACCOUNTS", "default,builder"),
        ])
        .await;
    assert_eq!(run.count("service_accounts", "missing"), 1, "{}", run.stdout);
    assert_eq!(env.pull_secrets(&ns, "builder").await, vec![src]);
}
