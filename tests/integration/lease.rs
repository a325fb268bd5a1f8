//! One run at a time: the Lease `pullsecret-reconciler` in the tool's namespace. A run that finds
//! it held waits a bounded time, then writes nothing, names the holder and exits 1; a holder that
//! stopped renewing is taken over; overlapping runs with different targets and prune on take
//! turns and never leave a ServiceAccount naming a missing Secret.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use crate::support::TestEnv;

async fn hold(env: &TestEnv, holder: &str, renewed_secs_ago: i64) {
    let t = k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(renewed_secs_ago);
    let lease: Lease = serde_json::from_value(json!({
        "metadata": { "name": "pullsecret-reconciler" },
        "spec": { "holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": MicroTime(t), "leaseTransitions": 0 },
    }))
    .unwrap();
    Api::<Lease>::namespaced(env.client.clone(), &env.home)
        .create(&PostParams::default(), &lease)
        .await
        .unwrap();
}

async fn lease(env: &TestEnv) -> Lease {
    Api::<Lease>::namespaced(env.client.clone(), &env.home)
        .get("pullsecret-reconciler")
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lease_stops_the_run_before_any_write() {
    let env = TestEnv::new("ls1").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    env.create_namespace(&env.name("a"), &[], &[]).await;
    hold(&env, "another-run/42", 0).await;
    let before = env.snapshot().await;
    let run = env
        .run(&[
            ("PULLSECRET_SOURCE_SECRETS", src.as_str()),
            ("PULLSECRET_TIMEOUT_SECS", "6"),
        ])
        .await;
    assert_eq!((run.code, run.writes()), (1, 0), "{run:?}");
    let p = &run.problems()[0];
    assert_eq!(p["reason"], "LeaseHeld", "{p}");
    assert!(
        p["message"].as_str().unwrap().contains("another-run/42"),
        "names the holder: {p}"
    );
    assert_eq!(before, env.snapshot().await, "nothing written");
    assert_eq!(
        lease(&env).await.spec.unwrap().holder_identity.as_deref(),
        Some("another-run/42"),
        "the holder keeps its Lease"
    );
    // A dry run takes no Lease: it persists nothing.
    let dry = env
        .run(&[
            ("PULLSECRET_SOURCE_SECRETS", src.as_str()),
            ("PULLSECRET_DRY_RUN", "true"),
        ])
        .await;
    assert_eq!(dry.code, 0, "{dry:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_its_holder_stopped_renewing_is_taken_over_and_released() {
    let env = TestEnv::new("ls2").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    env.create_namespace(&env.name("a"), &[], &[]).await;
    hold(&env, "crashed-run/7", 120).await;
    let run = env.run(&[("PULLSECRET_SOURCE_SECRETS", src.as_str())]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let spec = lease(&env).await.spec.unwrap();
    assert_eq!(spec.lease_transitions, Some(1), "taken over once");
    assert_eq!(
        spec.holder_identity, None,
        "released at the end: the next run need not wait"
    );
    let again = env.run(&[("PULLSECRET_SOURCE_SECRETS", src.as_str())]).await;
    assert_eq!((again.code, again.writes()), (0, 0), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_runs_with_prune_on_never_leave_an_entry_without_its_secret() {
    let env = TestEnv::new("ls3").await;
    let (a, b) = (env.name("ra"), env.name("rb"));
    env.create_source(&a, "fake-user", "fake-password-a").await;
    env.create_source(&b, "fake-user", "fake-password-b").await;
    let namespaces: Vec<String> = (0..4).map(|i| env.name(&format!("n{i}"))).collect();
    for ns in &namespaces {
        env.create_namespace(ns, &[], &[]).await;
    }
    for round in 0..3 {
        let (va, vb) = (
            [("PULLSECRET_SOURCE_SECRETS", a.as_str())],
            [("PULLSECRET_SOURCE_SECRETS", b.as_str())],
        );
        let (ra, rb) = tokio::join!(env.run(&va), env.run(&vb));
        for r in [&ra, &rb] {
            assert!(
                r.code == 0,
                "round {round}: each run waits its turn and converges: {r:?}"
            );
        }
        for ns in &namespaces {
            for name in env.pull_secrets(ns, "default").await {
                assert!(
                    env.secret(ns, &name).await.is_some(),
                    "round {round}: {ns}/default names {name}, which does not exist"
                );
            }
        }
    }
}
