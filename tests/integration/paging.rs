//! Lists cross page boundaries: with a page size of 2, every namespace, Secret, ServiceAccount
//! and Pod is still seen, through the API server's continue tokens.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use pullsecret_reconciler::client::RequestCounter;
use pullsecret_reconciler::glob::Glob;
use pullsecret_reconciler::model::{Adopt, Pods, Policy};
use pullsecret_reconciler::observe::Reader;
use serde_json::json;

use crate::support::{TEST_LABEL, TestEnv};

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
    let policy = Policy {
        include: vec![Glob::new("*").unwrap()],
        exclude: vec![],
        namespace_selector: Some(format!("{TEST_LABEL}={}", env.id)),
        service_accounts: vec![Glob::new("default").unwrap()],
        adopt: Adopt::Patcher,
        prune: true,
        prune_limit: 10,
    };
    let observed = reader
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
    let Pods::Read(pods) = reader.pods(std::slice::from_ref(&target)).await.unwrap() else {
        panic!("Pods unreadable as admin")
    };
    let ours: Vec<_> = pods.iter().filter(|p| namespaces.contains(&p.namespace)).collect();
    assert_eq!(ours.len(), 5, "{pods:?}");
    assert!(
        ours.iter().all(|p| p.pull_secrets == vec![target.clone()]),
        "only managed names are kept"
    );
    let requests = counter.snapshot();
    // inventory GET + 3 namespace pages + 3 Secret pages + ≥ 3 ServiceAccount pages + ≥ 3 Pod pages.
    assert!(requests.reads >= 13, "{requests:?}");
    assert!(requests.bytes_read > 0, "the byte counter counts response bodies");
}
