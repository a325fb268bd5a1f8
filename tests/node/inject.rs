//! References from birth: the shipped MutatingAdmissionPolicy (manifests/components/inject). A
//! namespace and its Deployment applied in one `kubectl apply`, before any run: the Pod names the
//! Secret from birth, fails its pull while the Secret is absent, and the *same* Pod runs after the
//! next run — no Pod deleted. Opt-outs (Pod and Namespace annotations, excluded namespaces) are
//! never mutated. On Kubernetes before 1.36 the v1 policy does not exist: the test asserts that
//! the API server refuses it, which is what docs/install.md says.

use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde_json::json;

use crate::seed::{self, SHIPPED};
use crate::support::node::{self, PRIVILEGED, Pull};
use crate::support::{TestEnv, controlplane::kubernetes_version, ok};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_admitted_before_any_run_name_the_secret_from_birth() {
    let _one = SHIPPED.lock().await;
    let cp = node::shared();
    let env = TestEnv::on(cp, "inj").await;
    let minor: u32 = kubernetes_version().split('.').nth(1).unwrap().parse().unwrap();
    let images = seed::images_on(cp, "fake-inject-password");
    let (yaml, _uninstall) = seed::rendered(cp, "inj", &images.product_repository, true);
    let applied = cp.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &yaml);
    if minor < 36 {
        let stderr = String::from_utf8_lossy(&applied.stderr);
        assert!(
            !applied.status.success() && stderr.contains("MutatingAdmissionPolicy"),
            "v1.{minor} has no admissionregistration.k8s.io/v1 MutatingAdmissionPolicy: {stderr}"
        );
        return;
    }
    ok(applied, "kubectl apply of the base with the inject component");
    seed::create_source(&env, &images.registry).await;

    // The API server picks a new policy up asynchronously: probe with a server-side dry run.
    let probe = env.name("probe");
    env.create_namespace(&probe, &[PRIVILEGED], &[]).await;
    let pod = json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "probe", "namespace": probe },
                      "spec": node::pod_spec(&images.app, &[]) });
    node::wait_for("the policy to be in force", 60, || async {
        let out = cp.kubectl_stdin(
            &["create", "--dry-run=server", "-o", "json", "-f", "-"],
            &pod.to_string(),
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("\"imagePullSecrets\"") {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await;

    // One apply, before any run: a namespace, its Deployment, a Pod that opts out; and an
    // excluded namespace with a Pod.
    let (ns, excluded) = (env.name("shop"), env.name("excluded"));
    let label = json!({ "pullsecret-test": "inj", PRIVILEGED.0: PRIVILEGED.1 });
    let opted_out = node::pod_spec(&images.app, &[]);
    let objects = [
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns, "labels": label } }),
        json!({ "apiVersion": "v1", "kind": "Namespace",
                "metadata": { "name": excluded, "labels": label, "annotations": { "pullsecret-reconciler/exclude": "true" } } }),
        node::deployment(&ns, "web", &images.app, 1),
        json!({ "apiVersion": "v1", "kind": "Pod",
                "metadata": { "name": "opted-out", "namespace": ns, "annotations": { "pullsecret-reconciler/inject": "false" } },
                "spec": opted_out }),
        json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "bare", "namespace": excluded },
                "spec": node::pod_spec(&images.app, &[]) }),
    ];
    let list = json!({ "apiVersion": "v1", "kind": "List", "items": objects });
    let start = Instant::now();
    seed::apply_retried(cp, &list).await;
    let _teams = seed::remove_namespaces(cp, &[ns.clone(), excluded.clone(), probe.clone()], &env.home);

    let (stuck, message) = node::wait_pull_failed(&env.client, &ns, "app=web").await;
    let failed_after = start.elapsed().as_secs();
    assert_eq!(node::pod_pull_secrets(&stuck), ["regcred"], "named from birth");
    assert!(message.contains("401"), "the Secret does not exist yet: {message}");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &ns);
    assert!(
        node::pod_pull_secrets(&pods.get("opted-out").await.unwrap()).is_empty(),
        "a Pod that opts out"
    );
    let bare: Api<Pod> = Api::namespaced(env.client.clone(), &excluded);
    assert!(
        node::pod_pull_secrets(&bare.get("bare").await.unwrap()).is_empty(),
        "an excluded namespace"
    );

    let summary = seed::run_job(&env, "inj-first").await;
    assert_eq!(summary["converged"], true, "{summary}");
    let ran_after = start.elapsed().as_secs();
    let uid = stuck.metadata.uid.clone();
    let name = stuck.metadata.name.clone().unwrap();
    let pulled = node::wait_for("the same Pod to pull by itself", 330, || async {
        let p = pods.get(&name).await.unwrap();
        match node::pull(&p) {
            Pull::Pulled => Ok(p),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(pulled.metadata.uid, uid, "the same Pod, never deleted");
    assert_eq!(node::pods(&env.client, &ns, "app=web").await.len(), 1);
    let events = node::kubelet_events(&env.client, &ns, &name).await;
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("Pulled: Successfully pulled image")),
        "{events:?}"
    );
    eprintln!(
        "references from birth: namespace applied at 0 s; Pod failing (401, Secret absent) at {failed_after} s; \
         run finished at {ran_after} s; the same Pod pulled at {} s",
        start.elapsed().as_secs()
    );
}
