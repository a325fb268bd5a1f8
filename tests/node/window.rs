//! The shipped CronJob's watch window on the real node: a Job made from the CronJob (the shipped
//! settings, a 60 s window instead of 4m30s) is watching when a namespace and its Deployment
//! arrive in one `kubectl apply`, as GitOps applies them. The window writes the copy and patches
//! the ServiceAccount within seconds; with the inject policy (1.36+) the Deployment's first Pod
//! names the Secret from birth and the *same* Pod pulls on the kubelet's next retry, nothing
//! deleted. The Job ends by itself at the window's end with one summary.

use std::process::Stdio;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::seed::{self, SHIPPED};
use crate::support::node::{self, PRIVILEGED, Pull};
use crate::support::registry::Registry;
use crate::support::runner::command;
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

/// With healing and no inject policy: a Deployment already stuck in a namespace that was
/// excluded is brought into the selection while a run watches. The window writes the copy,
/// patches the ServiceAccount and evicts the stuck Pod (healing waits for the patch); the
/// replacement is admitted with the name and pulls. Works on every supported version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_healing_a_stuck_pod_is_evicted_within_the_window_and_its_replacement_runs() {
    let cp = node::shared();
    let env = TestEnv::on(cp, "wheal").await;
    let registry = Registry::start("ci-bot", "fake-window-heal-password");
    cp.trust(&registry);
    let image = registry.push_app("team/app", "1");
    env.put_dockerconfig(&env.home, "wheal-regcred", registry.dockerconfig().as_bytes(), &[])
        .await;
    let ns = env.name("a");
    env.create_namespace(&ns, &[PRIVILEGED], &[("pullsecret-reconciler/exclude", "true")])
        .await;
    cp.apply_yaml(&node::deployment(&ns, "web", &image, 1).to_string());
    let (stuck, _) = node::wait_pull_failed(&env.client, &ns, "app=web").await;
    assert!(node::pod_pull_secrets(&stuck).is_empty());

    let vars = env.vars(&[
        ("PULLSECRET_SOURCE_SECRETS", "wheal-regcred"),
        ("PULLSECRET_HEAL_PODS", "evict"),
        ("PULLSECRET_WATCH", "5m"),
    ]);
    let mut child = command(&env.kubeconfig, &vars, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    node::wait_for("the full pass", 60, || async {
        let list = env.pull_secrets(&env.home, "default").await;
        if list.iter().any(|n| n == "wheal-regcred") {
            Ok(())
        } else {
            Err(format!("{list:?}"))
        }
    })
    .await;
    // Opt the namespace back in, as its owner would.
    let start = Instant::now();
    let patch = json!({ "metadata": { "annotations": { "pullsecret-reconciler/exclude": null } } });
    Api::<Namespace>::all(env.client.clone())
        .patch(&ns, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
    let _teams = seed::remove_namespaces(cp, std::slice::from_ref(&ns), &env.home);
    let replacement = node::wait_for("the replacement to pull and run", 120, || async {
        let pods = node::pods(&env.client, &ns, "app=web").await;
        match pods.iter().find(|p| p.metadata.uid != stuck.metadata.uid) {
            Some(p) if node::pull(p) == Pull::Pulled => Ok(p.clone()),
            Some(p) => Err(format!("{:?}", node::pull(p))),
            None => Err("the stuck Pod is still the only one".into()),
        }
    })
    .await;
    let ran_after = start.elapsed().as_millis();
    assert_eq!(node::pod_pull_secrets(&replacement), ["wheal-regcred"]);
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut stdout = String::new();
    tokio::io::AsyncReadExt::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout)
        .await
        .unwrap();
    let status = child.wait().await.unwrap();
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(status.code(), Some(0), "{summary}");
    assert_eq!(summary["watch"]["ended_by"], "signal", "{summary}");
    assert_eq!(summary["pods"]["evicted"], 1, "{summary}");
    eprintln!(
        "window + healing: opted in at 0 ms; stuck Pod evicted and its replacement running at {ran_after} ms; \
         window {}",
        summary["watch"]
    );
}
