//! The shipped CronJob's watch window on the real node: a Job made from the CronJob (the shipped
//! settings, a 60 s window instead of 4m30s) is watching when a namespace and its Deployment
//! arrive in one `kubectl apply`, as GitOps applies them. The window writes the copy and patches
//! the ServiceAccount within seconds; with the inject policy (1.36+) the Deployment's first Pod
//! names the Secret from birth and the *same* Pod pulls on the kubelet's next retry, nothing
//! deleted. The Job ends by itself at the window's end with one summary.

use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde_json::json;

use crate::seed::{self, SHIPPED};
use crate::support::node::{self, PRIVILEGED, Pull};
use crate::support::{TestEnv, controlplane::kubernetes_version, ok};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitops_namespace_and_deployment_are_covered_within_the_window() {
    let _one = SHIPPED.lock().await;
    let cp = node::shared();
    let env = TestEnv::on(cp, "win").await;
    let minor: u32 = kubernetes_version().split('.').nth(1).unwrap().parse().unwrap();
    let inject = minor >= 36;
    let images = seed::images_on(cp, "fake-window-password");
    let (yaml, _uninstall) = seed::rendered(cp, "win", &images.product_repository, inject);
    // The node tests' overlay makes one-shot Jobs; this one keeps the shipped window, shorter.
    let yaml = yaml.replace("PULLSECRET_WATCH: \"0\"", "PULLSECRET_WATCH: 60s");
    assert!(yaml.contains("PULLSECRET_WATCH: 60s"), "{yaml}");
    ok(
        cp.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &yaml),
        "kubectl apply of the base",
    );
    seed::create_source(&env, &images.registry).await;

    seed::start_job(&env, "win-1");
    // The Job's full pass has run once the test's own home namespace lists the Secret.
    node::wait_for("the Job's full pass", 120, || async {
        let list = env.pull_secrets(&env.home, "default").await;
        if list.iter().any(|n| n == "regcred") {
            Ok(())
        } else {
            Err(format!("{list:?}"))
        }
    })
    .await;

    let ns = env.name("shop");
    let label = json!({ "pullsecret-test": "win", PRIVILEGED.0: PRIVILEGED.1 });
    let list = json!({ "apiVersion": "v1", "kind": "List", "items": [
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns, "labels": label } }),
        node::deployment(&ns, "web", &images.app, 1),
    ]});
    let start = Instant::now();
    seed::apply_retried(cp, &list).await;
    let _teams = seed::remove_namespaces(cp, std::slice::from_ref(&ns), &env.home);

    node::wait_for("the window's copy and ServiceAccount patch", 30, || async {
        let list = env.pull_secrets(&ns, "default").await;
        match env.secret(&ns, "regcred").await {
            Some(_) if list.iter().any(|n| n == "regcred") => Ok(()),
            other => Err(format!("copy {}, list {list:?}", other.is_some())),
        }
    })
    .await;
    let covered_after = start.elapsed().as_millis();

    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &ns);
    let first = node::wait_for("the Deployment's Pod", 30, || async {
        node::pods(&env.client, &ns, "app=web")
            .await
            .into_iter()
            .next()
            .ok_or_else(|| "none yet".to_owned())
    })
    .await;
    let name = first.metadata.name.clone().unwrap();
    if inject {
        assert_eq!(node::pod_pull_secrets(&first), ["regcred"], "named from birth");
        let pulled = node::wait_for("the same Pod to pull", 120, || async {
            let p = pods.get(&name).await.unwrap();
            match node::pull(&p) {
                Pull::Pulled => Ok(p),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        assert_eq!(pulled.metadata.uid, first.metadata.uid, "the same Pod, never deleted");
        eprintln!(
            "window + inject: applied at 0 ms; copy and ServiceAccount at {covered_after} ms; the same Pod pulled \
             at {} ms",
            start.elapsed().as_millis()
        );
    } else {
        // Before 1.36 there is no inject policy: a Pod admitted after the patch gets the name.
        ok(
            cp.kubectl()
                .args(["-n", &ns, "rollout", "restart", "deployment/web"])
                .output()
                .unwrap(),
            "kubectl rollout restart",
        );
        let running = node::wait_running(&env.client, &ns, "app=web", 1).await;
        node::assert_pulled(&env.client, &running).await;
        eprintln!("window: applied at 0 ms; copy and ServiceAccount at {covered_after} ms");
    }

    let summary = seed::finish_job(&env, "win-1", 180).await;
    assert_eq!(summary["converged"], true, "{summary}");
    assert_eq!(summary["watch"]["ended_by"], "window", "{summary}");
    assert!(summary["watch"]["reactions"].as_u64().unwrap() >= 1, "{summary}");
    eprintln!("the Job's window: {}", summary["watch"]);
}
