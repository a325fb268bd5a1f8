//! The control plane itself behaves like a real cluster: ServiceAccounts appear, Pods are
//! admitted without a kubelet, namespaces really finish terminating.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

use crate::support::TestEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_gets_default_service_account_and_pods_are_admitted() {
    let env = TestEnv::new("cp1").await;
    let ns = env.name("a");
    env.create_namespace(&ns, &[], &[]).await; // waits for the default ServiceAccount

    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": { "containers": [{ "name": "web", "image": "registry.example.invalid/web:1" }] }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let back = pods.get("web").await.unwrap();
    assert_eq!(back.spec.unwrap().service_account_name.as_deref(), Some("default"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_namespace_goes_away() {
    let env = TestEnv::new("cp2").await;
    let ns = env.name("gone");
    env.create_namespace(&ns, &[], &[]).await;
    env.put_secret(&ns, "some", "Opaque", "k", b"v", &[], &[]).await;
    let api: Api<Namespace> = Api::all(env.client.clone());
    api.delete(&ns, &DeleteParams::default()).await.unwrap();
    for _ in 0..300 {
        if api.get_opt(&ns).await.unwrap().is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("namespace {ns} never finished terminating: is the namespace controller running?");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_reports_the_built_version() {
    let env = TestEnv::new("cp3").await;
    let v = env.client.apiserver_version().await.unwrap();
    let expected = crate::support::controlplane::kubernetes_version();
    assert_eq!(v.git_version, expected);
    let minor = expected.split('.').nth(1).unwrap();
    assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", minor));
}
