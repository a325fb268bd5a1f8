//! Healing stuck Pods (PULLSECRET_HEAL_PODS=evict), without the admission policy: Pods admitted
//! before any run are stuck on a 401 for good; a dry run lists the evictions (the limit holds)
//! and evicts nothing; a run evicts the controller-owned ones, whose replacements pull and run;
//! a bare Pod is left alone and reported with the fix. `explain --stuck` agrees with the kubelet
//! before and after. A PodDisruptionBudget with maxUnavailable 0 does not protect a Pending Pod:
//! the API server's Eviction API admits evicting a Pod that is not running (it counts for no
//! budget), so the guarded Deployment's stuck Pod is evicted too, and its replacement runs.
//! Healing cannot loop or fail a Job: a Deployment whose template sets a list of its own (a subset
//! of the ServiceAccount's) is reported, never evicted, on every run; a Job with `backoffLimit: 0`
//! (an evicted Pod would fail it) is reported, never evicted.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support::node::{self, PRIVILEGED, Pull};
use crate::support::registry::Registry;
use crate::support::{TestEnv, run_binary_args};

async fn uids(env: &TestEnv, ns: &str) -> BTreeSet<String> {
    node::pods(&env.client, ns, "")
        .await
        .into_iter()
        .filter_map(|p| p.metadata.uid)
        .collect()
}

/// `explain --stuck --output json`: the stuck Pods it names, and its exit code.
async fn explain_stuck(env: &TestEnv, registry: &Registry, ns: &str) -> (i32, BTreeSet<String>) {
    let vars = vec![(
        "PULLSECRET_REGISTRY_CA_FILE".to_string(),
        registry.ca.to_str().unwrap().to_string(),
    )];
    let run = run_binary_args(&env.kubeconfig, &vars, &["explain", "--stuck", "--output", "json"]).await;
    let v: Value = serde_json::from_str(run.stdout.trim()).unwrap_or_else(|_| panic!("{run:?}"));
    let text = v.to_string();
    let pods = node::pods(&env.client, ns, "").await;
    let named = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .filter(|n| text.contains(&format!("\"{n}\"")))
        .collect();
    (run.code, named)
}

/// The Pods of `ns` the kubelet reports as failing their pull.
async fn failing(env: &TestEnv, ns: &str) -> BTreeSet<String> {
    node::pods(&env.client, ns, "")
        .await
        .iter()
        .filter(|p| matches!(node::pull(p), Pull::Failed(_)))
        .filter_map(|p| p.metadata.name.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_controller_owned_pods_are_evicted_and_their_replacements_pull() {
    let cp = node::shared();
    let env = TestEnv::on(cp, "heal").await;
    let registry = Registry::start("ci-bot", "fake-heal-password");
    cp.trust(&registry);
    let image = registry.push_app("team/app", "1");
    env.put_dockerconfig(&env.home, "heal-regcred", registry.dockerconfig().as_bytes(), &[])
        .await;
    let ns = env.name("a");
    let start = std::time::Instant::now();
    env.create_namespace(&ns, &[PRIVILEGED], &[]).await;

    // Before any run: two Deployments, one guarded by a budget that allows no disruption, and a
    // bare Pod. All of them are admitted without a pull Secret. The team's ServiceAccount lists
    // its own (absent) Secret; a third Deployment's template sets that same list; a Job that may
    // fail no Pod.
    env.set_pull_secrets(&ns, "default", &["team-own"]).await;
    let mut team = node::deployment(&ns, "team", &image, 1);
    team["spec"]["template"]["spec"]["imagePullSecrets"] = json!([{ "name": "team-own" }]);
    cp.apply_yaml(&team.to_string());
    let mut job_pod = node::pod_spec(&image, &[]);
    job_pod["restartPolicy"] = json!("Never");
    cp.apply_yaml(
        &json!({ "apiVersion": "batch/v1", "kind": "Job", "metadata": { "name": "batch", "namespace": ns },
                 "spec": { "backoffLimit": 0, "template": { "metadata": { "labels": { "app": "batch" } }, "spec": job_pod } } })
        .to_string(),
    );
    cp.apply_yaml(&node::deployment(&ns, "web", &image, 2).to_string());
    cp.apply_yaml(&node::deployment(&ns, "guarded", &image, 1).to_string());
    cp.apply_yaml(
        &json!({ "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                 "metadata": { "name": "guarded", "namespace": ns },
                 "spec": { "maxUnavailable": 0, "selector": { "matchLabels": { "app": "guarded" } } } })
        .to_string(),
    );
    cp.apply_yaml(
        &json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "bare", "namespace": ns, "labels": { "app": "bare" } },
                 "spec": node::pod_spec(&image, &[]) })
        .to_string(),
    );
    let stuck = node::wait_for("6 Pods failing their pull", 180, || async {
        let f = failing(&env, &ns).await;
        if f.len() == 6 { Ok(f) } else { Err(format!("{f:?}")) }
    })
    .await;
    let failing_at = start.elapsed().as_secs();
    let (code, named) = explain_stuck(&env, &registry, &ns).await;
    assert_eq!(
        (code, &named),
        (1, &stuck),
        "explain --stuck names exactly the Pods the kubelet fails"
    );

    // A dry run with a limit of 1: one eviction listed, the rest refused, nothing evicted.
    let before = uids(&env, &ns).await;
    let heal = [
        ("PULLSECRET_SOURCE_SECRETS", "heal-regcred"),
        ("PULLSECRET_HEAL_PODS", "evict"),
    ];
    let mut dry = heal.to_vec();
    dry.extend([("PULLSECRET_DRY_RUN", "true"), ("PULLSECRET_HEAL_LIMIT", "1")]);
    let run = env.run(&dry).await;
    let actions = run.summary()["actions"].as_array().unwrap().clone();
    let of = |what: &str| {
        actions
            .iter()
            .filter(|a| a["kind"] == "Pod" && a["action"] == what)
            .count()
    };
    assert_eq!((of("evict"), of("refused")), (1, 2), "{run:?}");
    assert_eq!(
        run.summary()["pods"]["not_healable"],
        3,
        "the bare Pod, the templated one, the Job's: {run:?}"
    );
    assert_eq!(uids(&env, &ns).await, before, "a dry run evicts nothing");

    // The run: the Secret and the ServiceAccount entry first, then the evictions.
    let run = env.run(&heal).await;
    let ran_at = start.elapsed().as_secs();
    let summary = run.summary();
    assert_eq!(summary["pods"]["evicted"], 3, "{run:?}");
    assert_eq!(
        summary["pods"]["refused"], 0,
        "Pending Pods count for no budget: {run:?}"
    );
    assert_eq!(run.code, 0, "{run:?}");
    let problems = run.problems();
    let reasons: Vec<(&str, &str)> = problems
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        reasons.iter().map(|(_, r)| *r).collect::<Vec<_>>(),
        [
            "StuckPodNotHealable",
            "JobCannotAbsorbEviction",
            "TemplateSetsPullSecrets"
        ],
        "{problems:?}"
    );
    assert_eq!(reasons[0].0, "bare");
    assert!(
        reasons[1].0.starts_with("batch-") && reasons[2].0.starts_with("team-"),
        "{reasons:?}"
    );

    // The replacements get the Secret at admission, pull and run.
    let mut pods = node::wait_running(&env.client, &ns, "app=web", 2).await;
    pods.extend(node::wait_running(&env.client, &ns, "app=guarded", 1).await);
    node::assert_pulled(&env.client, &pods).await;
    eprintln!(
        "healing: namespace created at 0 s; 4 Pods failing (401) at {failing_at} s; the evicting run done at \
         {ran_at} s; every replacement pulled and running at {} s",
        start.elapsed().as_secs()
    );
    for p in &pods {
        assert!(!before.contains(p.metadata.uid.as_ref().unwrap()), "a new Pod");
    }
    let still = failing(&env, &ns).await;
    let not_healed: BTreeSet<String> = reasons.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(still, not_healed, "the Pods not healable are left as they were");
    // Nothing stuck for our reason any more: the next run evicts nothing.
    let again = env.run(&heal).await;
    assert_eq!(
        (again.code, again.summary()["pods"]["evicted"].as_u64().unwrap_or(0)),
        (0, 0),
        "{again:?}"
    );
    let (code, named) = explain_stuck(&env, &registry, &ns).await;
    assert_eq!((code, &named), (1, &still), "explain --stuck agrees after the run");
}
