//! The admission fence (manifests/admission-fence.yaml) on its own control plane, as the CronJob's
//! identity with exactly the shipped RBAC and policy: legitimate runs (converge, adopt, server-side
//! dry run, rename) pass; every forbidden write is denied with the rule it breaks; other identities
//! are not affected. The API server loads policies and parameters asynchronously: each step that
//! depends on one waits for it by probing.

use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{DeleteParams, EvictParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use super::shipping::{HOME, install, install_rendered, render_dir, shipped_vars};
use crate::support::{ControlPlane, TestEnv, client_for, is_ours};

fn secret(name: &str, type_: &str, labelled: bool) -> Secret {
    let labels = labelled.then(|| {
        [(
            "app.kubernetes.io/managed-by".to_string(),
            "pullsecret-reconciler".to_string(),
        )]
        .into()
    });
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels,
            ..ObjectMeta::default()
        },
        type_: Some(type_.into()),
        data: Some([(".dockerconfigjson".to_string(), ByteString(br#"{"auths":{}}"#.to_vec()))].into()),
        ..Secret::default()
    }
}

const DOCKER: &str = "kubernetes.io/dockerconfigjson";

/// The error message of a refused request; panics if it was allowed or refused otherwise.
fn denied<T: std::fmt::Debug>(r: Result<T, kube::Error>, rule: &str) -> String {
    match r {
        Err(kube::Error::Api(s))
            if s.code == 403 && s.message.contains(&format!("pullsecret-reconciler fence [{rule}]")) =>
        {
            s.message
        }
        other => panic!("expected the fence's [{rule}] denial, got {other:?}"),
    }
}

/// Waits (up to 30 s) until `probe` holds: the API server picks up policies asynchronously.
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if probe().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} never happened");
}

async fn dry_run_create(client: &Client, ns: &str, s: &Secret) -> Result<Secret, kube::Error> {
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    Api::<Secret>::namespaced(client.clone(), ns).create(&params, s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fence_passes_every_legitimate_run_and_denies_everything_else() {
    let cp: &'static ControlPlane = Box::leak(Box::new(ControlPlane::start()));
    install(cp);
    let env = TestEnv::on(cp, "fe1").await;
    let bytes = crate::support::fake_dockerconfig("fake-user", "fake-password");
    env.put_dockerconfig(HOME, "regcred", &bytes, &[]).await;
    let namespaces: Vec<String> = (0..3).map(|i| env.name(&format!("n{i}"))).collect();
    for ns in &namespaces {
        env.create_namespace(ns, &[], &[]).await;
    }
    // imagepullsecret-patcher's Secret and entry in n1: adopted by the first run.
    env.put_dockerconfig(
        &namespaces[1],
        "regcred",
        b"{\"auths\":{}}",
        &[("app.kubernetes.io/managed-by", "imagepullsecret-patcher")],
    )
    .await;
    env.set_pull_secrets(&namespaces[1], "default", &["regcred"]).await;

    let kubeconfig = cp.service_account_kubeconfig(HOME, "pullsecret-reconciler").await;
    let job = client_for(&kubeconfig).await;
    eventually("the fence denying a foreign Secret name", || async {
        dry_run_create(&job, &namespaces[0], &secret("probe", DOCKER, true))
            .await
            .is_err_and(|e| e.to_string().contains("pullsecret-reconciler fence"))
    })
    .await;

    let shipped = shipped_vars();
    let vars: Vec<(&str, &str)> = shipped.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    // A server-side dry run passes the fence (admission runs on dry-run requests too).
    let before = env.snapshot().await;
    let dry: Vec<(&str, &str)> = vars.iter().copied().chain([("PULLSECRET_DRY_RUN", "server")]).collect();
    let run = env.run_as(&kubeconfig, &dry).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(env.snapshot().await, before);

    // A full run converges, adopting the patcher's Secret; the second writes nothing.
    let run = env.run_as(&kubeconfig, &vars).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.count("secrets", "adopted"), 1);
    assert_eq!(env.run_as(&kubeconfig, &vars).await.writes(), 0);
    for ns in &namespaces {
        assert!(is_ours(&env.secret(ns, "regcred").await.unwrap()), "{ns}");
        assert_eq!(env.pull_secrets(ns, "default").await, vec!["regcred".to_string()]);
    }

    // Everything else the identity's RBAC would allow, the fence denies.
    let (n0, n9) = (&namespaces[0], env.name("n9"));
    env.create_namespace(&n9, &[], &[]).await;
    let secrets = |ns: &str| Api::<Secret>::namespaced(job.clone(), ns);
    let pp = PostParams::default();
    let m = denied(
        secrets(n0).create(&pp, &secret("not-managed", DOCKER, true)).await,
        "secret-name",
    );
    assert!(m.contains("(regcred)"), "{m}");
    denied(
        secrets(&n9).create(&pp, &secret("regcred", "Opaque", true)).await,
        "secret-type",
    );
    denied(
        secrets(&n9).create(&pp, &secret("regcred", DOCKER, false)).await,
        "secret-label",
    );
    // A user's own Secret that merely shares a managed name: RBAC allows the delete, the fence not.
    env.put_secret(&n9, "regcred", "Opaque", "password", b"users-own", &[], &[])
        .await;
    denied(
        secrets(&n9).delete("regcred", &DeleteParams::default()).await,
        "secret-old",
    );
    // A tenant's own dockerconfigjson Secret with a managed name: a forced apply that labels it
    // ours (the new object would pass every rule) is denied, and so is the delete after it.
    let tenant = env.name("tenant");
    env.create_namespace(&tenant, &[], &[]).await;
    env.put_dockerconfig(&tenant, "regcred", b"{\"auths\":{\"tenant.example\":{}}}", &[])
        .await;
    let mut takeover = secret("regcred", DOCKER, true);
    takeover.metadata.namespace = Some(tenant.clone());
    let force = PatchParams::apply("pullsecret-reconciler").force();
    let m = denied(
        secrets(&tenant)
            .patch("regcred", &force, &Patch::Apply(&takeover))
            .await,
        "secret-old",
    );
    println!("fence, overwrite: {m}");
    let m = denied(
        secrets(&tenant).delete("regcred", &DeleteParams::default()).await,
        "secret-old",
    );
    println!("fence, delete: {m}");
    assert!(
        !is_ours(&env.secret(&tenant, "regcred").await.unwrap()),
        "the tenant's Secret is untouched"
    );
    // Another tool's entry in a ServiceAccount's list: the job may neither remove it, nor add a
    // name it does not manage, nor record someone's entry as its own (to remove it later).
    env.set_pull_secrets(n0, "default", &["regcred", "other-tools"]).await;
    let sas = Api::<ServiceAccount>::namespaced(job.clone(), n0);
    let entries = |names: &[&str]| {
        let list: Vec<_> = names.iter().map(|n| json!({ "name": n })).collect();
        Patch::Merge(json!({ "imagePullSecrets": list }))
    };
    let m = denied(
        sas.patch("default", &PatchParams::default(), &entries(&["regcred"]))
            .await,
        "serviceaccount-entries",
    );
    println!("fence, foreign entry removed: {m}");
    let m = denied(
        sas.patch(
            "default",
            &PatchParams::default(),
            &entries(&["regcred", "other-tools", "attacker"]),
        )
        .await,
        "serviceaccount-entries",
    );
    println!("fence, foreign name added: {m}");
    let record = Patch::Merge(json!({ "metadata": { "annotations": {
        "pullsecret-reconciler/image-pull-secrets": "regcred,other-tools" } } }));
    denied(
        sas.patch("default", &PatchParams::default(), &record).await,
        "serviceaccount-entries",
    );
    assert_eq!(env.pull_secrets(n0, "default").await, vec!["regcred", "other-tools"]);
    // (Back to the converged state for the rename below.)
    env.set_pull_secrets(n0, "default", &["regcred"]).await;
    Api::<Secret>::namespaced(env.client.clone(), &tenant)
        .delete("regcred", &DeleteParams::default())
        .await
        .unwrap();
    let automount = Patch::Merge(json!({ "automountServiceAccountToken": false }));
    denied(
        sas.patch("default", &PatchParams::default(), &automount).await,
        "serviceaccount-fields",
    );
    let label = Patch::Merge(json!({ "metadata": { "labels": { "owned": "now" } } }));
    denied(
        sas.patch("default", &PatchParams::default(), &label).await,
        "serviceaccount-fields",
    );
    let cms = Api::<ConfigMap>::namespaced(job.clone(), HOME);
    let other: ConfigMap = serde_json::from_value(json!({ "metadata": { "name": "other" } })).unwrap();
    denied(cms.create(&pp, &other).await, "configmap");

    // Any other identity is not affected.
    let admin = Api::<Secret>::namespaced(env.client.clone(), &n9);
    admin
        .create(&pp, &secret("not-managed", "Opaque", false))
        .await
        .unwrap();
    Api::<ServiceAccount>::namespaced(env.client.clone(), n0)
        .patch("default", &PatchParams::default(), &automount)
        .await
        .unwrap();
    admin.delete("regcred", &DeleteParams::default()).await.unwrap();

    // A rename: the config (the fence's parameter) and the RBAC name both names while the old
    // copies are pruned; the fence follows the config with no list of its own.
    let mut config = Api::<ConfigMap>::namespaced(env.client.clone(), HOME)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|c| {
            c.data
                .as_ref()
                .is_some_and(|d| d.contains_key("PULLSECRET_SOURCE_SECRETS"))
        })
        .expect("the generated config ConfigMap");
    config
        .data
        .as_mut()
        .unwrap()
        .insert("PULLSECRET_SOURCE_SECRETS".into(), "regcred=regcred-v2".into());
    Api::<ConfigMap>::namespaced(env.client.clone(), HOME)
        .replace(config.metadata.name.as_deref().unwrap(), &pp, &config)
        .await
        .unwrap();
    let roles = Api::<ClusterRole>::all(env.client.clone());
    let mut role = roles.get("pullsecret-reconciler").await.unwrap();
    for rule in role.rules.iter_mut().flatten() {
        if let Some(names) = rule.resource_names.as_mut() {
            names.push("regcred-v2".into());
        }
    }
    roles.replace("pullsecret-reconciler", &pp, &role).await.unwrap();
    eventually("the fence allowing the new name", || async {
        dry_run_create(&job, &n9, &secret("regcred-v2", DOCKER, true))
            .await
            .is_ok()
    })
    .await;
    let renamed: Vec<(&str, &str)> = vars
        .iter()
        .map(|&(k, v)| {
            if k == "PULLSECRET_SOURCE_SECRETS" {
                (k, "regcred=regcred-v2")
            } else {
                (k, v)
            }
        })
        .collect();
    let run = env.run_as(&kubeconfig, &renamed).await;
    assert_eq!(run.code, 0, "{run:?}");
    // The run that unlists the old name keeps its copies; the next one deletes them.
    let run = env.run_as(&kubeconfig, &renamed).await;
    assert_eq!(run.code, 0, "{run:?}");
    for ns in &namespaces {
        assert!(
            env.secret(ns, "regcred").await.is_none(),
            "{ns}: old copy (adopted one too) pruned"
        );
        assert!(is_ours(&env.secret(ns, "regcred-v2").await.unwrap()), "{ns}");
        assert_eq!(
            env.pull_secrets(ns, "default").await,
            vec!["regcred-v2".to_string()],
            "{ns}"
        );
    }

    // Healing turned on without its rights, and prune off without its (as components/no-prune
    // leaves it): the run says which rights are missing, heals nothing, and does the rest.
    let bindings = Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(env.client.clone());
    bindings
        .delete("pullsecret-reconciler-prune", &DeleteParams::default())
        .await
        .unwrap();
    let fresh = env.name("n5");
    env.create_namespace(&fresh, &[], &[]).await;
    let heal: Vec<(&str, &str)> = renamed
        .iter()
        .copied()
        .chain([("PULLSECRET_HEAL_PODS", "evict"), ("PULLSECRET_PRUNE", "false")])
        .collect();
    let mut run = env.run_as(&kubeconfig, &heal).await;
    for _ in 0..50 {
        // (RBAC changes reach the authorizer asynchronously too.)
        if run.code == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        run = env.run_as(&kubeconfig, &heal).await;
    }
    assert_eq!(run.code, 1, "{run:?}");
    let problem = run
        .problems()
        .into_iter()
        .find(|p| p["reason"] == "PendingPodsNotListable")
        .unwrap_or_else(|| panic!("{run:?}"));
    let message = problem["message"].as_str().unwrap();
    assert!(message.contains("`list` and `watch` on pods"), "{message}");
    assert!(
        is_ours(&env.secret(&fresh, "regcred-v2").await.unwrap()),
        "the rest of the run is done"
    );

    // Healing's rights (manifests/components/heal): with it, an eviction by the job
    // is still denied by the fence until the configuration turns healing on.
    let heal_rbac = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/components/heal/rbac.yaml"),
    )
    .unwrap();
    cp.apply_yaml(&heal_rbac);
    let pod: Pod = serde_json::from_value(json!({ "metadata": { "name": "stuck" },
        "spec": { "containers": [{ "name": "app", "image": "registry.example.invalid/app:1" }] } }))
    .unwrap();
    Api::<Pod>::namespaced(env.client.clone(), n0)
        .create(&pp, &pod)
        .await
        .unwrap();
    let evict = || async {
        let params = EvictParams {
            post_options: PostParams {
                dry_run: true,
                ..PostParams::default()
            },
            ..EvictParams::default()
        };
        Api::<Pod>::namespaced(job.clone(), n0).evict("stuck", &params).await
    };
    eventually("RBAC allowing the eviction, the fence denying it", || async {
        evict()
            .await
            .is_err_and(|e| e.to_string().contains("pullsecret-reconciler fence [eviction]"))
    })
    .await;
    let mut config = Api::<ConfigMap>::namespaced(env.client.clone(), HOME)
        .get("pullsecret-reconciler")
        .await
        .unwrap();
    config
        .data
        .as_mut()
        .unwrap()
        .insert("PULLSECRET_HEAL_PODS".into(), "evict".into());
    Api::<ConfigMap>::namespaced(env.client.clone(), HOME)
        .replace("pullsecret-reconciler", &pp, &config)
        .await
        .unwrap();
    eventually(
        "the fence allowing evictions with PULLSECRET_HEAL_PODS=evict",
        || async { evict().await.is_ok() },
    )
    .await;
    cp.stop();
}

/// The overlay docs/install.md gives for another namespace, rendered by kustomize from the base
/// (and the heal component, whose ClusterRoleBinding must move too), installed; the job's
/// identity in that namespace converges, and the fence denies for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlay_into_another_namespace_moves_rbac_and_the_fence() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/install.md")).unwrap();
    let start = doc
        .find("# overlay: another namespace")
        .expect("the overlay in docs/install.md");
    let overlay = &doc[start..start + doc[start..].find("```").unwrap()];
    // kustomize takes relative paths only: the overlay sits two levels under the repository.
    let overlay = overlay
        .replace("../pullsecret-reconciler/manifests", "../../manifests")
        .replace("# components:", "components:");
    let dir = root.join("target").join(format!("overlay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("kustomization.yaml"), &overlay).unwrap();
    let cp: &'static ControlPlane = Box::leak(Box::new(ControlPlane::start()));
    let ns = "platform-pulls";
    let yaml = render_dir(cp, &dir);
    assert!(
        !yaml.contains("namespace: pullsecret-reconciler"),
        "nothing left behind:\n{yaml}"
    );
    install_rendered(cp, &yaml);

    let env = TestEnv::on(cp, "fe2").await;
    let bytes = crate::support::fake_dockerconfig("fake-user", "fake-password");
    env.put_dockerconfig(ns, "regcred", &bytes, &[]).await;
    let namespaces: Vec<String> = (0..2).map(|i| env.name(&format!("n{i}"))).collect();
    for n in &namespaces {
        env.create_namespace(n, &[], &[]).await;
    }
    let kubeconfig = cp.service_account_kubeconfig(ns, "pullsecret-reconciler").await;
    let job = client_for(&kubeconfig).await;
    eventually(
        "the fence denying a foreign Secret name in the new namespace",
        || async {
            dry_run_create(&job, &namespaces[0], &secret("probe", DOCKER, true))
                .await
                .is_err_and(|e| e.to_string().contains("pullsecret-reconciler fence [secret-name]"))
        },
    )
    .await;
    let vars = env.installed_settings(ns).await;
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.converge_twice(&kubeconfig, &vars).await;
    for n in &namespaces {
        assert!(is_ours(&env.secret(n, "regcred").await.unwrap()), "{n}");
        assert_eq!(env.pull_secrets(n, "default").await, vec!["regcred".to_string()]);
    }
    // A tenant's same-name Secret: the job may not take it over.
    let tenant = &namespaces[1];
    Api::<Secret>::namespaced(env.client.clone(), tenant)
        .delete("regcred", &DeleteParams::default())
        .await
        .unwrap();
    env.put_dockerconfig(tenant, "regcred", b"{\"auths\":{}}", &[]).await;
    let force = PatchParams::apply("pullsecret-reconciler").force();
    let mut takeover = secret("regcred", DOCKER, true);
    takeover.metadata.namespace = Some(tenant.clone());
    denied(
        Api::<Secret>::namespaced(job.clone(), tenant)
            .patch("regcred", &force, &Patch::Apply(&takeover))
            .await,
        "secret-old",
    );
    cp.stop();
}
