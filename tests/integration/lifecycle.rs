//! Ownership and lifecycle: conflicts, adoption, prune, rename, GitOps owners, several registries.

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::support::{TestEnv, is_ours, secret_data};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_we_do_not_own_are_left_alone_and_reported() {
    let env = TestEnv::new("lc1").await;
    let src = env.name("regcred");
    let bytes = env.create_source(&src, "fake-user", "fake-password").await;
    let (opaque, foreign, fine) = (env.name("opaque"), env.name("foreign"), env.name("fine"));
    for ns in [&opaque, &foreign, &fine] {
        env.create_namespace(ns, &[], &[]).await;
    }
    env.put_secret(&opaque, &src, "Opaque", "token", b"user-data", &[], &[])
        .await;
    let users = crate::support::fake_dockerconfig("someone-else", "their-password");
    env.put_dockerconfig(&foreign, &src, &users, &[]).await;
    let before = env.snapshot().await;

    let run = env.run(&[("PULLSECRET_SOURCE_SECRETS", src.as_str())]).await;
    assert_eq!(run.code, 1, "conflicts are not convergence: {run:?}");
    assert_eq!(run.count("secrets", "conflicts"), 2, "{}", run.stdout);
    let after = env.snapshot().await;
    for ns in [&opaque, &foreign] {
        let key = format!("secret/{ns}/{src}");
        assert_eq!(before[&key], after[&key], "{key} was modified");
        let sa = format!("sa/{ns}/default");
        assert_eq!(before[&sa], after[&sa], "{sa} was pointed at a Secret we do not own");
        let p = run
            .problems()
            .into_iter()
            .find(|p| p["namespace"] == ns.as_str())
            .expect("problem reported");
        assert_eq!(p["kind"], "Secret");
        assert!(p["message"].as_str().unwrap().contains("managed by"), "{p}");
    }
    assert_eq!(secret_data(&env.secret(&foreign, &src).await.unwrap()), users);
    assert_eq!(secret_data(&env.secret(&fine, &src).await.unwrap()), bytes);
    assert_eq!(env.pull_secrets(&fine, "default").await, vec![src.clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_its_owner_accepts_is_info_and_the_run_converges() {
    let env = TestEnv::new("lc9").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    let (tenant, fine) = (env.name("tenant"), env.name("fine"));
    for ns in [&tenant, &fine] {
        env.create_namespace(ns, &[], &[]).await;
    }
    let theirs = crate::support::fake_dockerconfig("tenant-user", "tenant-password");
    env.put_dockerconfig(&tenant, &src, &theirs, &[("pullsecret-reconciler/conflict", "accept")])
        .await;
    let before = env.snapshot().await;
    let vars = [("PULLSECRET_SOURCE_SECRETS", src.as_str())];
    let run = env.run(&vars).await;
    assert_eq!(
        run.code, 0,
        "an accepted conflict does not count against convergence: {run:?}"
    );
    assert_eq!(
        (
            run.count("secrets", "conflicts"),
            run.count("secrets", "conflicts_accepted")
        ),
        (0, 1)
    );
    let p = &run.problems()[0];
    assert_eq!(
        (p["namespace"].as_str(), p["severity"].as_str()),
        (Some(tenant.as_str()), Some("info"))
    );
    let after = env.snapshot().await;
    for key in [format!("secret/{tenant}/{src}"), format!("sa/{tenant}/default")] {
        assert_eq!(before[&key], after[&key], "{key} was modified");
    }
    assert_eq!(secret_data(&env.secret(&tenant, &src).await.unwrap()), theirs);
    // The next run has nothing to write and no Event to send about it.
    let again = env.run(&vars).await;
    assert_eq!((again.code, again.writes()), (0, 0), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imagepullsecret_patcher_secrets_are_adopted_unless_adopt_none() {
    let env = TestEnv::new("lc2").await;
    let src = env.name("regcred");
    let bytes = env.create_source(&src, "fake-user", "fake-password").await;
    let (adopted, kept) = (env.name("adopted"), env.name("kept"));
    let old = crate::support::fake_dockerconfig("fake-user", "old-patcher-password");
    let marker = [("app.kubernetes.io/managed-by", "imagepullsecret-patcher")];
    for ns in [&adopted, &kept] {
        env.create_namespace(ns, &[], &[]).await;
        env.put_dockerconfig(ns, &src, &old, &marker).await;
        env.set_pull_secrets(ns, "default", &[&src]).await;
    }

    // ADOPT=none first, scoped to one namespace: the patcher's Secret is a conflict there.
    let only_kept = kept.clone();
    let run = env
        .run(&[
            ("PULLSECRET_SOURCE_SECRETS", &src),
            ("PULLSECRET_ADOPT", "none"),
            ("PULLSECRET_NAMESPACES", &only_kept),
        ])
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    let s = env.secret(&kept, &src).await.unwrap();
    assert!(!is_ours(&s));
    assert_eq!(secret_data(&s), old);

    let only_adopted = adopted.clone();
    let run = env
        .run(&[
            ("PULLSECRET_SOURCE_SECRETS", &src),
            ("PULLSECRET_NAMESPACES", &only_adopted),
        ])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.count("secrets", "adopted"), 1, "{}", run.stdout);
    let s = env.secret(&adopted, &src).await.unwrap();
    assert!(is_ours(&s), "adopted Secrets carry our label");
    assert_eq!(secret_data(&s), bytes);
    assert_eq!(
        env.pull_secrets(&adopted, "default").await,
        vec![src.clone()],
        "no duplicate entry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_moves_every_entry_in_one_run_and_deletes_the_old_copies_in_the_next() {
    let env = TestEnv::new("lc3").await;
    let source = env.name("source");
    let bytes = env.create_source(&source, "fake-user", "fake-password").await;
    let (old, new) = (env.name("regcred"), env.name("regcred-v2"));
    let namespaces: Vec<String> = (0..3).map(|i| env.name(&format!("n{i}"))).collect();
    for ns in &namespaces {
        env.create_namespace(ns, &[], &[]).await;
        env.set_pull_secrets(ns, "default", &["other-secret"]).await;
    }
    let first = env
        .run(&[("PULLSECRET_SOURCE_SECRETS", &format!("{source}={old}"))])
        .await;
    assert_eq!(first.code, 0, "{first:?}");
    for ns in &namespaces {
        assert_eq!(
            env.pull_secrets(ns, "default").await,
            vec!["other-secret".to_string(), old.clone()]
        );
    }

    let second = env
        .run(&[("PULLSECRET_SOURCE_SECRETS", &format!("{source}={new}"))])
        .await;
    assert_eq!(second.code, 0, "{second:?}");
    for ns in &namespaces {
        assert!(env.secret(ns, &old).await.is_some(), "kept by the run that unlists it");
    }
    let third = env
        .run(&[("PULLSECRET_SOURCE_SECRETS", &format!("{source}={new}"))])
        .await;
    assert_eq!(third.code, 0, "{third:?}");
    for ns in namespaces.iter().chain([&env.home]) {
        assert!(env.secret(ns, &old).await.is_none(), "{old} still in {ns}");
        assert_eq!(secret_data(&env.secret(ns, &new).await.unwrap()), bytes);
    }
    for ns in &namespaces {
        assert_eq!(
            env.pull_secrets(ns, "default").await,
            vec!["other-secret".to_string(), new.clone()],
            "{ns}"
        );
    }
    assert!(
        env.secret(&env.home, &source).await.is_some(),
        "the source is never pruned"
    );
    let third = env
        .run(&[("PULLSECRET_SOURCE_SECRETS", &format!("{source}={new}"))])
        .await;
    assert_eq!(third.writes(), 0, "{}", third.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newly_excluded_namespace_is_cleaned_up_and_nothing_else_changes() {
    let env = TestEnv::new("lc4").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    let ns = env.name("leaving");
    env.create_namespace(&ns, &[], &[]).await;
    env.set_pull_secrets(&ns, "default", &["other-secret"]).await;
    env.put_secret(&ns, "users-own", "Opaque", "k", b"v", &[], &[]).await;
    let vars = [("PULLSECRET_SOURCE_SECRETS", src.as_str())];
    assert_eq!(env.run(&vars).await.code, 0);
    assert_eq!(
        env.pull_secrets(&ns, "default").await,
        vec!["other-secret".to_string(), src.clone()]
    );
    let before = env.snapshot().await;

    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(env.client.clone());
    let annotate = Patch::Merge(json!({ "metadata": { "annotations": { "pullsecret-reconciler/exclude": "true" } } }));
    nss.patch(&ns, &PatchParams::default(), &annotate).await.unwrap();
    let run = env.run(&vars).await;
    assert_eq!(run.code, 0, "{run:?}");
    // The entry goes first; a Pod admitted before that patch could still carry the name, so
    // the copy goes in the next run.
    assert_eq!(run.count("secrets", "kept"), 1, "{}", run.stdout);
    assert_eq!(env.pull_secrets(&ns, "default").await, vec!["other-secret".to_string()]);
    let run = env.run(&vars).await;
    assert_eq!(run.count("secrets", "deleted"), 1, "{}", run.stdout);
    assert!(env.secret(&ns, &src).await.is_none());
    assert_eq!(env.pull_secrets(&ns, "default").await, vec!["other-secret".to_string()]);
    let after = env.snapshot().await;
    let key = format!("secret/{ns}/users-own");
    assert_eq!(before[&key], after[&key]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_of_a_gitops_applier_survive_and_the_manager_is_named() {
    let env = TestEnv::new("lc5").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    let ns = env.name("gitops");
    env.create_namespace(&ns, &[], &[]).await;
    let api: Api<ServiceAccount> = Api::namespaced(env.client.clone(), &ns);
    let manifest = json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": { "name": "deployer", "namespace": ns },
        "imagePullSecrets": [{ "name": "gitops-secret" }],
    });
    let argo = PatchParams::apply("argocd-controller").force();
    api.patch("deployer", &argo, &Patch::Apply(manifest.clone()))
        .await
        .unwrap();
    let vars = [
        ("PULLSECRET_SOURCE_SECRETS", src.as_str()),
        ("PULLSECRET_SERVICE_ACCOUNTS", "default,deployer"),
    ];

    for round in 0..2 {
        let run = env.run(&vars).await;
        assert_eq!(run.code, 0, "warnings do not fail the run: {run:?}");
        assert_eq!(
            env.pull_secrets(&ns, "deployer").await,
            vec!["gitops-secret".to_string(), src.clone()],
            "round {round}"
        );
        let warning = run
            .problems()
            .into_iter()
            .find(|p| p["name"] == "deployer" && p["namespace"] == ns.as_str())
            .unwrap_or_else(|| panic!("no warning naming the applier: {}", run.stdout));
        assert!(
            warning["message"].as_str().unwrap().contains("argocd-controller"),
            "{warning}"
        );
        assert_eq!(warning["severity"], "warning");
        // The GitOps tool applies its manifest again and drops our entry.
        api.patch("deployer", &argo, &Patch::Apply(manifest.clone()))
            .await
            .unwrap();
        assert_eq!(
            env.pull_secrets(&ns, "deployer").await,
            vec!["gitops-secret".to_string()]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_corrupt_source_changes_nothing_anywhere() {
    let env = TestEnv::new("lc6").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    for i in 0..2 {
        env.create_namespace(&env.name(&format!("n{i}")), &[], &[]).await;
    }
    let vars = [("PULLSECRET_SOURCE_SECRETS", src.as_str())];
    assert_eq!(env.run(&vars).await.code, 0);

    env.put_dockerconfig(&env.home, &src, br#"{"auths":{}}"#, &[]).await;
    let before = env.snapshot().await;
    let run = env.run(&vars).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.summary()["error"].as_str().unwrap().contains("\"auths\" is empty"),
        "{}",
        run.stdout
    );
    assert_eq!(env.snapshot().await, before);

    env.delete_secret(&env.home, &src).await;
    let before = env.snapshot().await;
    let run = env.run(&vars).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
    assert_eq!(run.writes(), 0);
    assert_eq!(env.snapshot().await, before, "a vanished source must never prune");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_registries_are_managed_independently() {
    let env = TestEnv::new("lc7").await;
    let (a, b, c) = (env.name("reg-a"), env.name("reg-b"), env.name("reg-c"));
    let bytes_a = env.create_source(&a, "fake-user-a", "fake-password-a").await;
    let bytes_b = env.create_source(&b, "fake-user-b", "fake-password-b").await;
    let ns = env.name("app");
    env.create_namespace(&ns, &[], &[]).await;
    let list = format!("{a},{b}={c}");
    let run = env.run(&[("PULLSECRET_SOURCE_SECRETS", &list)]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(secret_data(&env.secret(&ns, &a).await.unwrap()), bytes_a);
    assert_eq!(secret_data(&env.secret(&ns, &c).await.unwrap()), bytes_b);
    assert_eq!(env.pull_secrets(&ns, "default").await, vec![a.clone(), c.clone()]);

    // Dropping one registry removes only that one.
    let run = env.run(&[("PULLSECRET_SOURCE_SECRETS", &a)]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(env.pull_secrets(&ns, "default").await, vec![a.clone()]);
    let run = env.run(&[("PULLSECRET_SOURCE_SECRETS", &a)]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(env.secret(&ns, &c).await.is_none());
    assert!(env.secret(&ns, &a).await.is_some());
    assert_eq!(env.pull_secrets(&ns, "default").await, vec![a.clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_name_dropped_from_rbac_too_early_warns_and_is_pruned_later() {
    let env = TestEnv::new("lc8").await;
    let source = env.name("source");
    env.create_source(&source, "fake-user", "fake-password").await;
    let (old, new) = (env.name("old"), env.name("new"));
    let ns = env.name("app");
    env.create_namespace(&ns, &[], &[]).await;
    assert_eq!(
        env.run(&[("PULLSECRET_SOURCE_SECRETS", &format!("{source}={old}"))])
            .await
            .code,
        0
    );

    // The operator renames, and already removed the old name from the RBAC resourceNames.
    let rules = format!(
        r#"- {{apiGroups: [""], resources: [namespaces], verbs: [list]}}
- {{apiGroups: [""], resources: [serviceaccounts], verbs: [get, list, patch]}}
- {{apiGroups: [""], resources: [secrets], verbs: [list, patch, delete], resourceNames: [{new}]}}
- {{apiGroups: [""], resources: [secrets], verbs: [create]}}
- {{apiGroups: [""], resources: [secrets], verbs: [get], resourceNames: [{source}]}}
- {{apiGroups: [""], resources: [configmaps], verbs: [get, patch, create]}}"#
    );
    let kubeconfig = env.identity("renamer", &rules).await;
    let run = env
        .run_as(
            &kubeconfig,
            &[("PULLSECRET_SOURCE_SECRETS", &format!("{source}={new}"))],
        )
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let warning = run
        .problems()
        .into_iter()
        .find(|p| p["reason"] == "RetiredNameNotListable");
    assert!(
        warning.is_some_and(|w| w["severity"] == "warning" && w["name"] == old.as_str()),
        "{}",
        run.stdout
    );
    assert!(
        env.secret(&ns, &old).await.is_some(),
        "what it cannot see it does not prune"
    );
    assert_eq!(env.pull_secrets(&ns, "default").await, vec![old.clone(), new.clone()]);

    // With the old name readable again (here: as admin), two runs finish the rename: the
    // entry, then the copy.
    for _ in 0..2 {
        let run = env
            .run(&[("PULLSECRET_SOURCE_SECRETS", &format!("{source}={new}"))])
            .await;
        assert_eq!(run.code, 0, "{run:?}");
    }
    assert!(env.secret(&ns, &old).await.is_none());
    assert_eq!(env.pull_secrets(&ns, "default").await, vec![new]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_our_secret_made_by_hand_is_never_pruned_as_ours() {
    use k8s_openapi::api::core::v1::{Namespace, Secret};
    let env = TestEnv::new("lc10").await;
    let src = env.name("regcred");
    let bytes = env.create_source(&src, "fake-user", "fake-password").await;
    let ns = env.name("a");
    env.create_namespace(&ns, &[], &[]).await;
    let vars = [("PULLSECRET_SOURCE_SECRETS", src.as_str())];
    assert_eq!(env.run(&vars).await.code, 0);
    // `kubectl get secret -o yaml | edit the namespace | kubectl apply`: the label and
    // annotations come along into a namespace this configuration does not select.
    let elsewhere = env.name("elsewhere");
    let namespace: Namespace = serde_json::from_value(json!({ "metadata": { "name": elsewhere } })).unwrap();
    Api::<Namespace>::all(env.client.clone())
        .create(&Default::default(), &namespace)
        .await
        .unwrap();
    let ours = env.secret(&ns, &src).await.unwrap();
    let copy = json!({
        "apiVersion": "v1", "kind": "Secret", "type": ours.type_,
        "metadata": { "name": src, "namespace": elsewhere,
                      "labels": ours.metadata.labels, "annotations": ours.metadata.annotations },
        "data": { ".dockerconfigjson": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes) },
    });
    let out = env.cp.kubectl_stdin(&["apply", "-f", "-"], &copy.to_string());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        crate::support::is_ours(&env.secret(&elsewhere, &src).await.unwrap()),
        "it carries our label"
    );

    let run = env.run(&vars).await;
    assert_eq!((run.code, run.count("secrets", "deleted")), (0, 0), "{run:?}");
    let still: Secret = env.secret(&elsewhere, &src).await.expect("the copy is left alone");
    assert_eq!(secret_data(&still), bytes);
}
