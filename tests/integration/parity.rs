//! The inject policy (manifests/components/inject, run by the real API server) and the
//! reconciler agree on which namespaces are selected, for every setting they share: for a table of
//! configurations, the namespaces whose new Pods the policy gives a managed name are exactly the
//! namespaces a run (dry run) would give a copy. kube-public and kube-node-lease take part (they
//! are labelled into this test's selection while it runs), so the default excludes are checked
//! against the real defaults, and so is an exclude list set to nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::support::{TEST_LABEL, TestEnv};

const POLICY: &str = include_str!("../../manifests/components/inject/policy.yaml");

/// Labels (or, with `None`, unlabels) a namespace this test does not own into its selection.
async fn label(env: &TestEnv, ns: &str, value: Option<&str>) {
    let body = json!({ "metadata": { "labels": { TEST_LABEL: value } } });
    Api::<Namespace>::all(env.client.clone())
        .patch(ns, &PatchParams::default(), &Patch::Merge(body))
        .await
        .unwrap();
}

/// The managed names the policy gives a new Pod in `ns` (a server-side dry run: nothing created).
async fn injected(env: &TestEnv, ns: &str) -> Vec<String> {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "parity-probe" },
        "spec": { "containers": [{ "name": "c", "image": "registry.example.invalid/app:1" }] }
    }))
    .unwrap();
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let created = Api::<Pod>::namespaced(env.client.clone(), ns)
        .create(&params, &pod)
        .await
        .unwrap_or_else(|e| panic!("dry-run Pod in {ns}: {e}"));
    created
        .spec
        .and_then(|s| s.image_pull_secrets)
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.name)
        .collect()
}

/// Restores the cluster's own namespaces and removes the policy, whatever the test's outcome.
struct Cleanup {
    client: kube::Client,
    policy: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (client, policy) = (self.client.clone(), self.policy.clone());
        let handle = tokio::runtime::Handle::current();
        std::thread::spawn(move || {
            handle.block_on(async move {
                let body = json!({ "metadata": { "labels": { TEST_LABEL: null } } });
                for ns in ["kube-public", "kube-node-lease"] {
                    let _ = Api::<Namespace>::all(client.clone())
                        .patch(ns, &PatchParams::default(), &Patch::Merge(body.clone()))
                        .await;
                }
                for kind in ["mutatingadmissionpolicybindings", "mutatingadmissionpolicies"] {
                    let url = format!("/apis/admissionregistration.k8s.io/v1/{kind}/{policy}");
                    let req = http::Request::delete(url).body(Vec::new()).unwrap();
                    let _ = client.request_text(req).await;
                }
            })
        })
        .join()
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inject_policy_selects_what_a_run_selects() {
    let env = TestEnv::new("par").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    let id = env.id.clone();
    let own = |s: &str| env.name(s);
    let mut namespaces = vec![env.home.clone()];
    for (suffix, annotations) in [
        ("a0", vec![]),
        ("a1", vec![]),
        ("b1", vec![]),
        ("bx", vec![]),
        ("opted", vec![("pullsecret-reconciler/exclude", "TRUE")]),
        (
            "patcher",
            vec![("k8s.titansoft.com/imagepullsecret-patcher-exclude", "true")],
        ),
    ] {
        env.create_namespace(&own(suffix), &[], &annotations).await;
        namespaces.push(own(suffix));
    }
    // The cluster's own namespaces that the default excludes name (kube-system is left alone).
    let _cleanup = Cleanup {
        client: env.client.clone(),
        policy: format!("pullsecret-reconciler-inject-{id}"),
    };
    for ns in ["kube-public", "kube-node-lease"] {
        label(&env, ns, Some(&id)).await;
        namespaces.push(ns.into());
    }

    // The shipped policy under this test's name, bound to this test's namespaces and ConfigMap.
    let policy = POLICY.split("\n---").next().unwrap().replace(
        "  name: pullsecret-reconciler-inject\n",
        &format!("  name: pullsecret-reconciler-inject-{id}\n"),
    );
    let binding = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicyBinding",
        "metadata": { "name": format!("pullsecret-reconciler-inject-{id}") },
        "spec": { "policyName": format!("pullsecret-reconciler-inject-{id}"),
                  "paramRef": { "name": "parity", "namespace": env.home, "parameterNotFoundAction": "Allow" },
                  "matchResources": { "namespaceSelector": { "matchLabels": { TEST_LABEL: id } } } }
    });
    let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.home);
    let config = |data: Value| -> ConfigMap {
        serde_json::from_value(json!({ "metadata": { "name": "parity" }, "data": data })).unwrap()
    };
    configmaps
        .create(&PostParams::default(), &config(json!({})))
        .await
        .unwrap();
    env.cp.apply_yaml(&policy);
    env.cp.apply_yaml(&binding.to_string());

    // Every row names a fresh target, so the policy's view of its parameter is known to be new
    // once the target shows up in `<id>-a0` (selected in every row).
    let rows: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("defaults", vec![]),
        (
            "an exclude list set to nothing",
            vec![("PULLSECRET_EXCLUDE_NAMESPACES", String::new())],
        ),
        (
            "an exclude list of spaces",
            vec![("PULLSECRET_EXCLUDE_NAMESPACES", "  ".into())],
        ),
        (
            "an include list set to nothing",
            vec![("PULLSECRET_NAMESPACES", String::new())],
        ),
        (
            "globs both ways",
            vec![
                ("PULLSECRET_NAMESPACES", format!("{id}-a*, kube-*,{id}-b?")),
                ("PULLSECRET_EXCLUDE_NAMESPACES", format!("kube-node-lease,{id}-b1")),
            ],
        ),
        (
            "excluding nothing the defaults name",
            vec![("PULLSECRET_EXCLUDE_NAMESPACES", format!("{id}-bx"))],
        ),
    ];
    let mut report = Vec::new();
    for (i, (row, settings)) in rows.iter().enumerate() {
        let target = format!("parity-{i}");
        let mut data = json!({ "PULLSECRET_SOURCE_SECRETS": format!("{src}={target}") });
        for (k, v) in settings {
            data[*k] = json!(v);
        }
        configmaps
            .replace("parity", &PostParams::default(), &config(data))
            .await
            .unwrap();
        let mut in_force = false;
        for _ in 0..600 {
            if injected(&env, &own("a0")).await.contains(&target) {
                in_force = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(in_force, "{row}: the policy never picked up its parameter");
        let mut by_policy = BTreeSet::new();
        for ns in &namespaces {
            if injected(&env, ns).await.contains(&target) {
                by_policy.insert(ns.clone());
            }
        }
        let sources = format!("{src}={target}");
        let mut vars: Vec<(&str, &str)> = vec![("PULLSECRET_SOURCE_SECRETS", &sources), ("PULLSECRET_DRY_RUN", "true")];
        vars.extend(settings.iter().map(|(k, v)| (*k, v.as_str())));
        let run = env.run(&vars).await;
        assert_eq!(run.code, 0, "{row}: {run:?}");
        let by_run: BTreeSet<String> = run.summary()["actions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == "Secret" && a["action"] == "create" && a["name"] == target.as_str())
            .map(|a| a["namespace"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            by_policy, by_run,
            "{row}: the policy injects where the run does not copy, or back"
        );
        report.push(format!("{row}: {}", by_run.len()));
    }
    eprintln!("parity (namespaces selected by both): {}", report.join("; "));
    let _ = configmaps.delete("parity", &DeleteParams::default()).await;
}
