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

/// Configurations whose managed names the admission fence, the inject policy and the chart's RBAC
/// must derive as the tool does (`Source::target_names`, the one rule): spaces, empty entries,
/// `source=target`, the name of the non-Secret modes and its default, a name that is set but
/// unused. Consecutive rows give different names (the policies' view of a new parameter is known
/// to be in force once it changes).
pub const NAME_ROWS: &[&[(&str, &str)]] = &[
    &[("PULLSECRET_SOURCE_SECRETS", "a-r1")],
    &[("PULLSECRET_SOURCE_SECRETS", " src-r2 = tgt-r2 , other-r2 ,, ")],
    &[
        ("PULLSECRET_SECRET_NAME", " named-r3 "),
        ("PULLSECRET_DOCKERCONFIGJSON_FILE", "/etc/pull/config.json"),
    ],
    &[
        ("PULLSECRET_SOURCE_SECRETS", "   "),
        ("PULLSECRET_DOCKERCONFIGJSON_FILE", "/etc/pull/config.json"),
    ],
    &[
        ("PULLSECRET_SOURCE_SECRETS", "x-r5=y-r5,y2-r5"),
        ("PULLSECRET_SECRET_NAME", "unused-r5"),
    ],
];

/// The managed names of a row, as the tool derives them.
pub fn tool_names(row: &[(&str, &str)]) -> Vec<String> {
    let env = row.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    pullsecret_reconciler::config::Config::from_env(env, false)
        .unwrap_or_else(|e| panic!("{row:?}: {e:#}"))
        .source
        .target_names()
}

/// The managed names in the fence's `[secret-name]` denial of `probe`.
fn fence_names(result: Result<k8s_openapi::api::core::v1::Secret, kube::Error>) -> Option<Vec<String>> {
    let Err(kube::Error::Api(s)) = result else { return None };
    let (_, rest) = s.message.split_once("PULLSECRET_SOURCE_SECRETS (")?;
    let (list, _) = rest.split_once("), not ")?;
    Some(list.split(", ").map(str::to_owned).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fence_and_the_inject_policy_derive_the_managed_names_as_the_tool_does() {
    use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
    // Its own control plane: admission policies with a ConfigMap parameter share the API
    // server's parameter informers, and removing this test's policies while the selection test
    // above runs on the shared one left that one's parameter stale (seen once in CI).
    let cp: &'static crate::support::ControlPlane = Box::leak(Box::new(crate::support::ControlPlane::start()));
    let env = TestEnv::on(cp, "pan").await;
    let id = env.id.clone();
    let a0 = env.name("a0");
    env.create_namespace(&a0, &[], &[]).await;
    // The job's identity in this test's home: the fence matches `pullsecret-reconciler` in its
    // parameter's namespace. RBAC lets it create Secrets in a0, so admission gets to decide.
    let sa: ServiceAccount =
        serde_json::from_value(json!({ "metadata": { "name": "pullsecret-reconciler" } })).unwrap();
    Api::<ServiceAccount>::namespaced(env.client.clone(), &env.home)
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();
    env.cp.apply_yaml(
        &json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": { "name": "parity-job", "namespace": a0 },
            "rules": [{ "apiGroups": [""], "resources": ["secrets"], "verbs": ["create"] }]
        })
        .to_string(),
    );
    env.cp.apply_yaml(
        &json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": { "name": "parity-job", "namespace": a0 },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "parity-job" },
            "subjects": [{ "kind": "ServiceAccount", "name": "pullsecret-reconciler", "namespace": env.home }]
        })
        .to_string(),
    );
    let job = crate::support::client_for(
        &env.cp
            .service_account_kubeconfig(&env.home, "pullsecret-reconciler")
            .await,
    )
    .await;

    // Both shipped policies under this test's names, bound to its namespaces and ConfigMap.
    let fence_yaml = include_str!("../../manifests/admission-fence.yaml");
    let fence = fence_yaml.split("\n---").next().unwrap().replace(
        "  name: pullsecret-reconciler-fence\n",
        &format!("  name: pullsecret-reconciler-fence-{id}\n"),
    );
    let inject = POLICY.split("\n---").next().unwrap().replace(
        "  name: pullsecret-reconciler-inject\n",
        &format!("  name: pullsecret-reconciler-inject-{id}\n"),
    );
    let bind = |kind: &str, policy: &str| {
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
            "metadata": { "name": policy },
            "spec": { "policyName": policy,
                      "paramRef": { "name": "names", "namespace": env.home, "parameterNotFoundAction": "Allow" },
                      "matchResources": { "namespaceSelector": { "matchLabels": { TEST_LABEL: id } } } }
        })
    };
    let mut fence_binding = bind(
        "ValidatingAdmissionPolicyBinding",
        &format!("pullsecret-reconciler-fence-{id}"),
    );
    fence_binding["spec"]["validationActions"] = json!(["Deny"]);
    let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.home);
    let config = |row: &[(&str, &str)]| -> ConfigMap {
        let data: serde_json::Map<String, Value> = row.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        serde_json::from_value(json!({ "metadata": { "name": "names" }, "data": data })).unwrap()
    };
    configmaps
        .create(&PostParams::default(), &config(NAME_ROWS[0]))
        .await
        .unwrap();
    env.cp.apply_yaml(&fence);
    env.cp.apply_yaml(&fence_binding.to_string());
    env.cp.apply_yaml(&inject);
    env.cp.apply_yaml(
        &bind(
            "MutatingAdmissionPolicyBinding",
            &format!("pullsecret-reconciler-inject-{id}"),
        )
        .to_string(),
    );

    let probe = || async {
        let params = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        let secret: Secret = serde_json::from_value(json!({
            "metadata": { "name": "zz-not-managed", "labels": { "app.kubernetes.io/managed-by": "pullsecret-reconciler" } },
            "type": "kubernetes.io/dockerconfigjson",
            "data": { ".dockerconfigjson": "e30=" }
        }))
        .unwrap();
        fence_names(
            Api::<Secret>::namespaced(job.clone(), &a0)
                .create(&params, &secret)
                .await,
        )
    };
    let mut report = Vec::new();
    for row in NAME_ROWS {
        let want = tool_names(row);
        configmaps
            .replace("names", &PostParams::default(), &config(row))
            .await
            .unwrap();
        let (mut by_fence, mut by_inject) = (None, vec![]);
        for _ in 0..300 {
            by_fence = probe().await;
            by_inject = injected(&env, &a0).await;
            if by_fence.as_ref() == Some(&want) && by_inject == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(by_fence.as_ref(), Some(&want), "{row:?}: the fence's managed names");
        assert_eq!(by_inject, want, "{row:?}: the inject policy's managed names");
        report.push(want.join("+"));
    }
    eprintln!("parity (managed names, tool = fence = inject): {}", report.join("; "));
    cp.stop();
}
