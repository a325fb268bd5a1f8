//! `explain` agrees with the kubelet. For each case a Pod is created on the real node, the
//! kubelet's outcome is awaited (running, or waiting on ErrImagePull/ImagePullBackOff), then
//! `explain POD` is asked; any disagreement fails, and the whole table is printed.

use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::support::node::{self, PRIVILEGED, Pull};
use crate::support::registry::Registry;
use crate::support::{TestEnv, run_binary_args};

struct Case {
    name: &'static str,
    image: String,
    secrets: Vec<&'static str>,
    service_account: Option<&'static str>,
}

async fn create_pod(env: &TestEnv, ns: &str, case: &Case) {
    let mut spec = node::pod_spec(&case.image, &case.secrets);
    // Every case is judged by a pull, never by an image the node already has.
    spec["containers"][0]["imagePullPolicy"] = json!("Always");
    if let Some(sa) = case.service_account {
        spec["serviceAccountName"] = json!(sa);
    }
    let pod: Pod = serde_json::from_value(json!({ "metadata": { "name": case.name }, "spec": spec })).unwrap();
    Api::<Pod>::namespaced(env.client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_agrees_with_the_kubelet() {
    let cp = node::shared();
    let env = TestEnv::on(cp, "ek").await;
    let registry = Registry::start("ci-bot", "fake-explain-password");
    cp.trust(&registry);
    let host = registry.host.clone();
    let image = registry.push_app("team/app", "1");
    let digest = registry.digest("team/app", "1");
    let ns = env.name("a");
    env.create_namespace(&ns, &[PRIVILEGED], &[]).await;

    let good = registry.dockerconfig();
    let wrong = registry.dockerconfig_for(&host, "fake-wrong-password");
    for (name, config) in [
        ("good", good.clone()),
        ("wrong-password", wrong),
        (
            "scheme-v1",
            registry.dockerconfig_for(&format!("https://{host}/v1/"), &registry.password),
        ),
        (
            "path-team",
            registry.dockerconfig_for(&format!("{host}/team"), &registry.password),
        ),
        (
            "path-other",
            registry.dockerconfig_for(&format!("{host}/other"), &registry.password),
        ),
    ] {
        env.put_dockerconfig(&ns, name, config.as_bytes(), &[]).await;
    }
    env.put_secret(&ns, "opaque", "Opaque", ".dockerconfigjson", good.as_bytes(), &[], &[])
        .await;

    // (name, image, the Pod's own pull secrets); the last one is admitted under a ServiceAccount
    // that lists nothing yet and lists `good` afterwards.
    let digest_image = format!("{host}/team/app@{digest}");
    let missing_tag = format!("{host}/team/app:nope");
    let table: [(&'static str, &str, &[&'static str]); 12] = [
        ("working", &image, &["good"]),
        ("wrong-password", &image, &["wrong-password"]),
        ("missing-secret", &image, &["absent"]),
        ("wrong-type", &image, &["opaque"]),
        ("auths-key-https-v1", &image, &["scheme-v1"]),
        ("auths-key-path-prefix", &image, &["path-team"]),
        ("auths-key-other-path", &image, &["path-other"]),
        ("missing-tag", &missing_tag, &["good"]),
        ("digest", &digest_image, &["good"]),
        ("several-secrets", &image, &["wrong-password", "good"]),
        ("no-secret", &image, &[]),
        ("patched-after-admission", &image, &[]),
    ];
    let cases: Vec<Case> = table
        .iter()
        .map(|(name, image, secrets)| Case {
            name,
            image: image.to_string(),
            secrets: secrets.to_vec(),
            service_account: (*name == "patched-after-admission").then_some("late"),
        })
        .collect();
    let sa_name = "late";
    let sa: ServiceAccount = serde_json::from_value(json!({ "metadata": { "name": sa_name } })).unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(env.client.clone(), &ns);
    sas.create(&PostParams::default(), &sa).await.unwrap();
    for case in &cases {
        create_pod(&env, &ns, case).await;
    }
    sas.patch(
        sa_name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "imagePullSecrets": [{ "name": "good" }] })),
    )
    .await
    .unwrap();

    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &ns);
    let mut table = vec![format!(
        "{:<26} {:<8} {:<8} {}",
        "case", "kubelet", "explain", "explain's cause / kubelet's message"
    )];
    let mut disagreements = vec![];
    for case in &cases {
        let outcome = node::wait_for(&format!("the kubelet's outcome for {}", case.name), 180, || async {
            match node::pull(&pods.get(case.name).await.unwrap()) {
                Pull::Pending => Err("pending".to_string()),
                done => Ok(done),
            }
        })
        .await;
        let vars = vec![(
            "PULLSECRET_REGISTRY_CA_FILE".to_string(),
            registry.ca.to_str().unwrap().to_string(),
        )];
        let run = run_binary_args(
            &env.kubeconfig,
            &vars,
            &["explain", case.name, "-n", &ns, "--output", "json"],
        )
        .await;
        let v: Value = serde_json::from_str(run.stdout.trim()).unwrap_or(Value::Null);
        assert!(
            !run.stdout.contains("fake-explain-password") && !run.stderr.contains("fake-explain-password"),
            "explain never prints a credential"
        );
        let kubelet_pulls = outcome == Pull::Pulled;
        let explain_pulls = match run.code {
            0 => true,
            1 => false,
            _ => panic!("explain {} did not answer: {run:?}", case.name),
        };
        let cause = v["images"][0]["cause"].as_str().unwrap_or("-").to_owned();
        let message = match &outcome {
            Pull::Failed(m) => m.chars().take(90).collect::<String>(),
            _ => String::new(),
        };
        let word = |b: bool| if b { "pulls" } else { "fails" };
        table.push(format!(
            "{:<26} {:<8} {:<8} {cause} / {message}",
            case.name,
            word(kubelet_pulls),
            word(explain_pulls)
        ));
        if kubelet_pulls != explain_pulls {
            disagreements.push(format!("{}: kubelet {outcome:?}, explain {}", case.name, run.stdout));
        }
    }
    eprintln!("explain vs the kubelet:\n{}", table.join("\n"));
    assert!(
        disagreements.is_empty(),
        "explain disagrees with the kubelet:\n{}",
        disagreements.join("\n")
    );
}
