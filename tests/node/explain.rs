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
}

async fn create_pod(env: &TestEnv, ns: &str, case: &Case) {
    let mut spec = node::pod_spec(&case.image, &case.secrets);
    // Every case is judged by a pull, never by an image the node already has.
    spec["containers"][0]["imagePullPolicy"] = json!("Always");
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

    let cases = vec![
        Case {
            name: "working",
            image: image.clone(),
            secrets: vec!["good"],
        },
        Case {
            name: "wrong-password",
            image: image.clone(),
            secrets: vec!["wrong-password"],
        },
        Case {
            name: "missing-secret",
            image: image.clone(),
            secrets: vec!["absent"],
        },
        Case {
            name: "wrong-type",
            image: image.clone(),
            secrets: vec!["opaque"],
        },
        Case {
            name: "auths-key-https-v1",
            image: image.clone(),
            secrets: vec!["scheme-v1"],
        },
        Case {
            name: "auths-key-path-prefix",
            image: image.clone(),
            secrets: vec!["path-team"],
        },
        Case {
            name: "auths-key-other-path",
            image: image.clone(),
            secrets: vec!["path-other"],
        },
        Case {
            name: "missing-tag",
            image: format!("{host}/team/app:nope"),
            secrets: vec!["good"],
        },
        Case {
            name: "digest",
            image: format!("{host}/team/app@{digest}"),
            secrets: vec!["good"],
        },
        Case {
            name: "several-secrets",
            image: image.clone(),
            secrets: vec!["wrong-password", "good"],
        },
        Case {
            name: "no-secret",
            image: image.clone(),
            secrets: vec![],
        },
        Case {
            name: "patched-after-admission",
            image: image.clone(),
            secrets: vec![],
        },
    ];
    // Admitted under a ServiceAccount listing nothing, which lists `good` afterwards.
    let sa_name = "late";
    let sa: ServiceAccount = serde_json::from_value(json!({ "metadata": { "name": sa_name } })).unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(env.client.clone(), &ns);
    sas.create(&PostParams::default(), &sa).await.unwrap();
    for case in &cases {
        if case.name == "patched-after-admission" {
            let mut spec = node::pod_spec(&case.image, &[]);
            spec["serviceAccountName"] = json!(sa_name);
            spec["containers"][0]["imagePullPolicy"] = json!("Always");
            let pod: Pod = serde_json::from_value(json!({ "metadata": { "name": case.name }, "spec": spec })).unwrap();
            Api::<Pod>::namespaced(env.client.clone(), &ns)
                .create(&PostParams::default(), &pod)
                .await
                .unwrap();
        } else {
            create_pod(&env, &ns, case).await;
        }
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
