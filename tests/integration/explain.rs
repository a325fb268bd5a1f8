//! `explain` against the real control plane and a real registry holding a pushed image: a Pod
//! that would pull (and a pull of that image with the copied Secret's credentials, standing in
//! for the kubelet, which is not run here); a Pod admitted before its ServiceAccount was patched;
//! an image whose registry no auths entry matches; a wrong-type and a missing Secret; a rejected
//! credential; a tag that does not exist; `--image` for a Pod not created yet; `--stuck` grouping
//! two Pods with the same cause; and an invalid question (exit 2).

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::support::registry::Registry;
use crate::support::{RunResult, TestEnv, run_binary_args, secret_data};

async fn pod(env: &TestEnv, ns: &str, name: &str, image: &str, pull_secrets: &[&str]) {
    let mut spec = json!({ "containers": [{ "name": "app", "image": image }] });
    if !pull_secrets.is_empty() {
        spec["imagePullSecrets"] = pull_secrets.iter().map(|n| json!({ "name": n })).collect();
    }
    let pod: Pod = serde_json::from_value(json!({ "metadata": { "name": name }, "spec": spec })).unwrap();
    Api::<Pod>::namespaced(env.client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
}

/// What the kubelet would report for a Pod it cannot pull for.
async fn mark_stuck(env: &TestEnv, ns: &str, name: &str) {
    let status = json!({ "status": { "containerStatuses": [{
        "name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
        "state": { "waiting": { "reason": "ImagePullBackOff", "message": "Back-off pulling image" } } }] } });
    Api::<Pod>::namespaced(env.client.clone(), ns)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

async fn explain(env: &TestEnv, registry: &Registry, args: &[&str]) -> (RunResult, Value) {
    let vars = vec![(
        "PULLSECRET_REGISTRY_CA_FILE".to_string(),
        registry.ca.to_str().unwrap().to_string(),
    )];
    let mut all = vec!["explain"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--output", "json"]);
    let run = run_binary_args(&env.kubeconfig, &vars, &all).await;
    let value = serde_json::from_str(run.stdout.trim()).unwrap_or(Value::Null);
    (run, value)
}

fn cause(v: &Value) -> &str {
    v["images"][0]["cause"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_walks_the_kubelets_chain_step_by_step() {
    let registry = Registry::start("ci-bot", "fake-right-password");
    registry.push("team/app", "1.0").await;
    let env = TestEnv::new("ex1").await;
    let (a, early) = (env.name("a"), env.name("early"));
    env.create_namespace(&a, &[], &[]).await;
    env.create_namespace(&early, &[], &[]).await;
    let image = format!("{}/team/app:1.0", registry.host);
    // A Pod admitted before the run patched its ServiceAccount.
    pod(&env, &early, "admitted-early", &image, &[]).await;

    let src = env.name("regcred");
    let config =
        json!({ "auths": { registry.host.as_str(): { "username": "ci-bot", "password": "fake-right-password" } } });
    env.put_dockerconfig(&env.home, &src, config.to_string().as_bytes(), &[])
        .await;
    let run = env.run(&[("PULLSECRET_SOURCE_SECRETS", src.as_str())]).await;
    assert_eq!(run.code, 0, "{run:?}");

    // A working Pod: its ServiceAccount's entry was copied at admission.
    pod(&env, &a, "works", &image, &[]).await;
    let (run, v) = explain(&env, &registry, &["works", "-n", &a]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(v["would_pull"], true, "{v}");
    assert_eq!(v["pull_secrets"], json!([src]));
    assert!(
        v["pull_secrets_from"].as_str().unwrap().contains("copied at admission"),
        "{v}"
    );
    let steps: Vec<(&str, &str)> = v["images"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("pull-secrets", "ok"),
            ("secret", "ok"),
            ("match", "ok"),
            ("login", "ok"),
            ("manifest", "ok")
        ]
    );
    assert!(!run.stdout.contains("fake-right-password") && !run.stderr.contains("fake-right-password"));
    // The text form, for a person.
    let text = run_binary_args(
        &env.kubeconfig,
        &[(
            "PULLSECRET_REGISTRY_CA_FILE".into(),
            registry.ca.to_str().unwrap().into(),
        )],
        &["explain", "works", "-n", &a],
    )
    .await;
    assert!(
        text.stdout.starts_with(&format!("Pod {a}/works: would pull\n")),
        "{}",
        text.stdout
    );

    // The kubelet is not run here: pulling the image through the real registry with the copied
    // Secret's own credentials stands in for it.
    let copy = env.secret(&a, &src).await.unwrap();
    let auths: Value = serde_json::from_slice(&secret_data(&copy)).unwrap();
    let entry = &auths["auths"][registry.host.as_str()];
    let pulled = registry
        .client()
        .pull(
            &image.parse().unwrap(),
            &oci_client::secrets::RegistryAuth::Basic(
                entry["username"].as_str().unwrap().into(),
                entry["password"].as_str().unwrap().into(),
            ),
            vec![oci_client::manifest::IMAGE_LAYER_MEDIA_TYPE],
        )
        .await
        .unwrap();
    assert_eq!(pulled.layers.len(), 1);

    // Admitted before its ServiceAccount was patched.
    let (run, v) = explain(&env, &registry, &["admitted-early", "-n", &early]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(cause(&v), "ServiceAccountPatchedAfterAdmission", "{v}");
    assert!(
        v["images"][0]["fix"].as_str().unwrap().contains("rollout restart"),
        "{v}"
    );

    // An image on a registry no auths entry matches (another port).
    let elsewhere = format!("127.0.0.1:{}/team/app:1.0", crate::support::kubeconfig::unused_port());
    pod(&env, &a, "elsewhere", &elsewhere, &[]).await;
    let (run, v) = explain(&env, &registry, &["elsewhere", "-n", &a]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(cause(&v), "NoAuthsEntry", "{v}");
    assert!(
        v["images"][0]["verdict"]
            .as_str()
            .unwrap()
            .contains("has an auths entry for 127.0.0.1:"),
        "{v}"
    );

    // A wrong-type Secret, and a missing one.
    env.put_secret(
        &a,
        "opaque-creds",
        "Opaque",
        ".dockerconfigjson",
        config.to_string().as_bytes(),
        &[],
        &[],
    )
    .await;
    pod(&env, &a, "wrong-type", &image, &["opaque-creds"]).await;
    let (run, v) = explain(&env, &registry, &["wrong-type", "-n", &a]).await;
    assert_eq!((run.code, cause(&v)), (1, "SecretWrongType"), "{v}");
    pod(&env, &a, "missing", &image, &["no-such-secret"]).await;
    let (run, v) = explain(&env, &registry, &["missing", "-n", &a]).await;
    assert_eq!((run.code, cause(&v)), (1, "SecretMissing"), "{v}");
    assert!(
        v["images"][0]["verdict"].as_str().unwrap().contains("no-such-secret"),
        "{v}"
    );

    // A credential the registry rejects; a tag it does not have.
    let wrong = json!({ "auths": { registry.host.as_str(): { "username": "ci-bot", "password": "fake-typo" } } });
    env.put_dockerconfig(&a, "typo-creds", wrong.to_string().as_bytes(), &[])
        .await;
    pod(&env, &a, "rejected", &image, &["typo-creds"]).await;
    let (run, v) = explain(&env, &registry, &["rejected", "-n", &a]).await;
    assert_eq!((run.code, cause(&v)), (1, "Rejected"), "{v}");
    assert!(!run.stdout.contains("fake-typo"));
    let missing_tag = format!("{}/team/app:9.9", registry.host);
    let (run, v) = explain(&env, &registry, &["--image", &missing_tag, "-n", &a]).await;
    assert_eq!((run.code, cause(&v)), (1, "ManifestMissing"), "{v}");

    // A Pod not created yet: the ServiceAccount's list, as admission would copy it.
    let (run, v) = explain(
        &env,
        &registry,
        &["--image", &image, "--service-account", "default", "-n", &a],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(v["pod"], Value::Null);

    // --stuck: two Pods with the same cause are one line.
    let other = env.name("other");
    env.create_namespace(&other, &[], &[]).await;
    assert_eq!(env.run(&[("PULLSECRET_SOURCE_SECRETS", src.as_str())]).await.code, 0);
    pod(&env, &other, "elsewhere-too", &elsewhere, &[]).await;
    mark_stuck(&env, &a, "elsewhere").await;
    mark_stuck(&env, &other, "elsewhere-too").await;
    let vars = vec![(
        "PULLSECRET_REGISTRY_CA_FILE".to_string(),
        registry.ca.to_str().unwrap().to_string(),
    )];
    let run = run_binary_args(&env.kubeconfig, &vars, &["explain", "--stuck", "--output", "json"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let v: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let host = elsewhere.split('/').next().unwrap();
    let group = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["subject"] == host)
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(
        group["summary"],
        format!("2 Pods in 2 namespaces use {host}, for which no Secret they name has an entry")
    );
    assert_eq!(
        group["pods"],
        json!([format!("{a}/elsewhere"), format!("{other}/elsewhere-too")])
    );
    let text = run_binary_args(&env.kubeconfig, &vars, &["explain", "--stuck"]).await;
    assert!(
        text.stdout.contains(&format!("2 Pods in 2 namespaces use {host}")),
        "{}",
        text.stdout
    );

    // An invalid question.
    let (run, _) = explain(&env, &registry, &["no-such-pod", "-n", &a]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
    let (run, _) = explain(&env, &registry, &["works", "--stuck"]).await;
    assert_eq!(run.code, 2, "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_pods_share_one_check_per_registry_and_credential() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let env = TestEnv::new("ex9").await;
    // A registry that takes connections and never answers (an outage), counting them.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    let ns = env.name("a");
    env.create_namespace(&ns, &[], &[]).await;
    let config = json!({ "auths": { host.as_str(): { "username": "ci-bot", "password": "fake-hung-password" } } });
    env.put_dockerconfig(&ns, "hung", config.to_string().as_bytes(), &[])
        .await;
    let image = format!("{host}/team/app:1");
    for i in 0..5 {
        let name = format!("stuck-{i}");
        pod(&env, &ns, &name, &image, &["hung"]).await;
        mark_stuck(&env, &ns, &name).await;
    }
    let run = run_binary_args(&env.kubeconfig, &[], &["explain", "--stuck", "--output", "json"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    for i in 0..5 {
        assert!(
            run.stdout.contains(&format!("stuck-{i}")),
            "every stuck Pod is explained: {}",
            run.stdout
        );
    }
    assert!(run.stdout.contains("Unreachable"), "{}", run.stdout);
    let connections = accepted.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&connections),
        "five Pods, one registry, one credential: one check, not one per Pod ({connections} connections)"
    );
    server.abort();
}
