//! Lists cross page boundaries: with a page size of 2, every namespace, Secret, ServiceAccount
//! and Pod is still seen, through the API server's continue tokens.

use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::Api;
use kube::api::PostParams;
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use pullsecret_reconciler::cluster::client::RequestCounter;
use pullsecret_reconciler::cluster::reads::Reader;
use pullsecret_reconciler::core::glob::Glob;
use pullsecret_reconciler::core::model::{Adopt, Listed, Pods, Policy};
use serde_json::json;

use crate::support::{TEST_LABEL, TestEnv};

/// Every namespace of this test, and the given ServiceAccount names or globs.
fn policy(env: &TestEnv, service_accounts: &[&str]) -> Policy {
    Policy {
        include: vec![Glob::new("*").unwrap()],
        exclude: vec![],
        namespace_selector: Some(format!("{TEST_LABEL}={}", env.id)),
        service_accounts: service_accounts.iter().map(|g| Glob::new(g).unwrap()).collect(),
        adopt: Adopt::Patcher,
        prune: true,
        prune_limit: 10,
        heal: Default::default(),
        heal_limit: 10,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_follows_continue_tokens() {
    let env = TestEnv::new("pg1").await;
    let target = env.name("regcred");
    let namespaces: Vec<String> = (0..5).map(|i| env.name(&format!("n{i}"))).collect();
    for ns in &namespaces {
        env.create_namespace(ns, &[], &[]).await;
        env.put_dockerconfig(ns, &target, b"{}", &[]).await;
        let pod: Pod = serde_json::from_value(json!({
            "metadata": { "name": "web" },
            "spec": {
                "containers": [{ "name": "web", "image": "registry.example.invalid/web:1" }],
                "imagePullSecrets": [{ "name": target }, { "name": "unrelated" }],
            }
        }))
        .unwrap();
        Api::<Pod>::namespaced(env.client.clone(), ns)
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
    }

    let counter = RequestCounter::default();
    let kc = Kubeconfig::read_from(&env.kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    let client = ClientBuilder::try_from(config).unwrap().with_layer(&counter).build();
    let reader = Reader { client, page_size: 2 };
    let policy = policy(&env, &["default"]);
    let mut observed = reader
        .observe(&policy, std::slice::from_ref(&target), &env.home)
        .await
        .unwrap();
    let mut seen: Vec<&str> = observed.namespaces.iter().map(|n| n.name.as_str()).collect();
    seen.sort();
    let mut expected: Vec<&str> = namespaces
        .iter()
        .map(String::as_str)
        .chain([env.home.as_str()])
        .collect();
    expected.sort();
    assert_eq!(seen, expected, "6 namespaces over 3 pages");
    assert_eq!(observed.secrets.len(), 5, "5 Secrets over 3 pages");
    for ns in &namespaces {
        assert!(
            observed
                .service_accounts
                .iter()
                .any(|s| &s.namespace == ns && s.name == "default"),
            "{ns}"
        );
    }
    let candidates = namespaces.iter().cloned().collect();
    reader
        .references(&mut observed, &candidates, std::slice::from_ref(&target))
        .await;
    let Pods::Read(pods) = &observed.pods else {
        panic!("Pods unreadable as admin: {:?}", observed.pods)
    };
    let ours: Vec<_> = pods.iter().filter(|p| namespaces.contains(&p.namespace)).collect();
    assert_eq!(ours.len(), 5, "{pods:?}");
    assert!(
        ours.iter().all(|p| p.secrets == vec![target.clone()]),
        "only managed names are kept"
    );
    let requests = counter.snapshot();
    // inventory GET + 3 namespace pages + 3 Secret pages + ≥ 3 ServiceAccount pages + a Pod list
    // per candidate namespace.
    assert!(requests.reads >= 13, "{requests:?}");
    assert!(requests.bytes_read > 0, "the byte counter counts response bodies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_accounts_are_read_by_name_unless_a_glob_or_a_delete_asks_for_all() {
    let env = TestEnv::new("pg2").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    let namespaces: Vec<String> = (0..3).map(|i| env.name(&format!("n{i}"))).collect();
    for ns in &namespaces {
        env.create_namespace(ns, &[], &[]).await;
        for extra in ["builder", "ci", "deployer"] {
            let sa: ServiceAccount = serde_json::from_value(json!({ "metadata": { "name": extra } })).unwrap();
            Api::<ServiceAccount>::namespaced(env.client.clone(), ns)
                .create(&PostParams::default(), &sa)
                .await
                .unwrap();
        }
    }

    // The reader itself, with pages of 2: literal names list only those, across pages.
    let reader = Reader {
        client: env.client.clone(),
        page_size: 2,
    };
    let mut policy = policy(&env, &["default", "ci"]);
    let named = reader
        .observe(&policy, std::slice::from_ref(&src), &env.home)
        .await
        .unwrap();
    assert_eq!(named.service_accounts_listed, Listed::Named);
    assert!(
        named
            .service_accounts
            .iter()
            .all(|s| s.name == "default" || s.name == "ci")
    );
    for ns in &namespaces {
        for name in ["default", "ci"] {
            assert!(
                named
                    .service_accounts
                    .iter()
                    .any(|s| &s.namespace == ns && s.name == name),
                "{ns}/{name}"
            );
        }
    }
    policy.service_accounts = vec![Glob::new("*").unwrap()];
    let all = reader
        .observe(&policy, std::slice::from_ref(&src), &env.home)
        .await
        .unwrap();
    assert_eq!(all.service_accounts_listed, Listed::All);
    for ns in &namespaces {
        assert_eq!(
            all.service_accounts.iter().filter(|s| &s.namespace == ns).count(),
            4,
            "{ns}"
        );
    }

    // The real binary: a literal run reads fewer bytes than a glob run, and says which it did.
    let literal = env.run(&[("PULLSECRET_SOURCE_SECRETS", &src)]).await;
    assert_eq!(literal.code, 0, "{literal:?}");
    let steady = env.run(&[("PULLSECRET_SOURCE_SECRETS", &src)]).await;
    assert_eq!(
        (steady.writes(), steady.summary()["service_accounts"]["listed"].as_str()),
        (0, Some("named"))
    );
    let glob = env
        .run(&[
            ("PULLSECRET_SOURCE_SECRETS", &src),
            ("PULLSECRET_SERVICE_ACCOUNTS", "*"),
            ("PULLSECRET_DRY_RUN", "true"),
        ])
        .await;
    assert_eq!(glob.summary()["service_accounts"]["listed"], "all");
    let (named_bytes, all_bytes) = (
        steady.count("api_requests", "bytes_read"),
        glob.count("api_requests", "bytes_read"),
    );
    assert!(
        named_bytes > 0 && named_bytes < all_bytes,
        "named {named_bytes} B, all {all_bytes} B"
    );

    // A run that would delete reads every ServiceAccount first: a team's own one still names
    // the old Secret, so that copy is kept.
    env.set_pull_secrets(&namespaces[0], "builder", &[&src]).await;
    let other = env.name("other");
    let rename = env
        .run(&[("PULLSECRET_SOURCE_SECRETS", &format!("{src}={other}"))])
        .await;
    assert_eq!(rename.code, 0, "{rename:?}");
    assert_eq!(rename.summary()["service_accounts"]["listed"], "all");
    assert!(
        env.secret(&namespaces[0], &src).await.is_some(),
        "kept: builder names it"
    );
    let next = env
        .run(&[("PULLSECRET_SOURCE_SECRETS", &format!("{src}={other}"))])
        .await;
    assert_eq!(next.code, 0, "{next:?}");
    assert!(
        env.secret(&namespaces[1], &src).await.is_none(),
        "deleted by the next run"
    );
}
