//! One run at a time: the Lease `pullsecret-reconciler` in the tool's namespace. A run that finds
//! it held waits a bounded time, then writes nothing, names the holder and exits 1; a holder that
//! stopped renewing is taken over; overlapping runs with different targets and prune on take
//! turns and never leave a ServiceAccount naming a missing Secret.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use std::time::Duration;

use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::proxy::{Mode, Proxy};
use crate::support::{RunResult, TestEnv, run_binary};

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

/// Starts a windowed run in the background; its outcome when it ends.
fn windowed(
    env: &TestEnv,
    kubeconfig: &std::path::Path,
    src: &str,
    window: &str,
) -> tokio::task::JoinHandle<RunResult> {
    let vars = env.vars(&[("PULLSECRET_SOURCE_SECRETS", src), ("PULLSECRET_WATCH", window)]);
    let kubeconfig = kubeconfig.to_owned();
    tokio::spawn(async move { run_binary(&kubeconfig, &vars).await })
}

/// Waits (bounded) until the Lease is held by someone other than `not`; that holder.
async fn held_by_other_than(env: &TestEnv, not: Option<&str>) -> String {
    let api = Api::<Lease>::namespaced(env.client.clone(), &env.home);
    for _ in 0..600 {
        if let Ok(Some(l)) = api.get_opt("pullsecret-reconciler").await
            && let Some(h) = l.spec.and_then(|s| s.holder_identity)
            && Some(h.as_str()) != not
        {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nobody took the Lease");
}

fn ended_by(run: &RunResult) -> String {
    run.summary()["watch"]["ended_by"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Another holder's clock decides nothing: a Lease stamped an hour in the future and never
/// renewed again is taken over once this run has seen it unchanged for its duration; one stamped
/// an hour in the past but renewed all along is never taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_follows_what_the_run_sees_not_the_holders_clock() {
    let env = TestEnv::new("ls4").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    env.create_namespace(&env.name("a"), &[], &[]).await;
    let api = Api::<Lease>::namespaced(env.client.clone(), &env.home);

    // Ahead by an hour, gone: taken over within the run's wait (20 s > the 15 s duration).
    hold(&env, "clock-ahead/1", -3600).await;
    let run = env.run(&[("PULLSECRET_SOURCE_SECRETS", src.as_str())]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(lease(&env).await.spec.unwrap().lease_transitions, Some(1));

    // Behind by an hour, alive: renewed every 2 s (with its own, wrong, clock).
    api.delete("pullsecret-reconciler", &Default::default()).await.unwrap();
    hold(&env, "clock-behind/1", 3600).await;
    let renewing = {
        let api = api.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let t = k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(3600);
                let body = json!({ "spec": { "renewTime": MicroTime(t) } });
                let _ = api
                    .patch("pullsecret-reconciler", &PatchParams::default(), &Patch::Merge(body))
                    .await;
            }
        })
    };
    let run = env
        .run(&[
            ("PULLSECRET_SOURCE_SECRETS", src.as_str()),
            ("PULLSECRET_TIMEOUT_SECS", "40"),
        ])
        .await;
    renewing.abort();
    assert_eq!(
        (run.code, run.writes()),
        (1, 0),
        "a live holder keeps its Lease: {run:?}"
    );
    assert_eq!(run.problems()[0]["reason"], "LeaseHeld", "{run:?}");
    assert_eq!(
        lease(&env).await.spec.unwrap().holder_identity.as_deref(),
        Some("clock-behind/1")
    );
}

/// Taken over mid-run: the run's next renewal meets the new holder, it stops writing at once
/// (a namespace created afterwards gets nothing from it) and reports `LeaseLost`, exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_lease_is_taken_over_stops_writing() {
    let env = TestEnv::new("ls5").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    env.create_namespace(&env.name("a"), &[], &[]).await;
    let first = windowed(&env, &env.cp.kubeconfig, &src, "40s");
    let holder = held_by_other_than(&env, None).await;
    // Once the full pass is done (namespace a has its copy), someone takes the Lease.
    env.wait_for_copies(&src, 2).await;
    let body = json!({ "spec": { "holderIdentity": "intruder/1" } });
    Api::<Lease>::namespaced(env.client.clone(), &env.home)
        .patch("pullsecret-reconciler", &PatchParams::default(), &Patch::Merge(body))
        .await
        .unwrap();
    let run = first.await.unwrap();
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(ended_by(&run), "lease", "{}", run.stdout);
    assert!(
        run.problems().iter().any(|p| p["reason"] == "LeaseLost"),
        "{}",
        run.stdout
    );
    assert_eq!(
        lease(&env).await.spec.unwrap().holder_identity.as_deref(),
        Some("intruder/1"),
        "the run left the new holder's Lease alone (it was {holder})"
    );
    // Stopped means stopped: a namespace created now is not covered by the ended run.
    let late = env.name("late");
    env.create_namespace(&late, &[], &[]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(env.secret(&late, &src).await.is_none());
}

/// A renewal delayed past the Lease (a proxy holds every answer 20 s, longer than the Lease
/// lasts): the run stops writing on its own renewal deadline, reports `LeaseLost` and exits 1 —
/// it cannot release the Lease through the proxy either. The next run sees the record unchanged
/// for the Lease's duration, takes over and converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_delayed_past_the_lease_stops_the_run_and_the_next_takes_over() {
    let env = TestEnv::new("ls6").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    let a = env.name("a");
    env.create_namespace(&a, &[], &[]).await;
    let proxy = Proxy::start(env.cp.api_address()).await;
    let dir = env.cp.kubeconfig.parent().unwrap().to_owned();
    let via = proxy.kubeconfig(&env.cp.kubeconfig, &dir);
    let slow = windowed(&env, &via, &src, "90s");
    let holder = held_by_other_than(&env, None).await;
    env.wait_for_copies(&src, 2).await;
    proxy.set(Mode::Slow, Duration::from_secs(20));
    let first = slow.await.unwrap();
    assert_eq!(first.code, 1, "{first:?}");
    assert_eq!(ended_by(&first), "lease", "{}", first.stdout);
    assert!(
        first.problems().iter().any(|p| p["reason"] == "LeaseLost"),
        "{}",
        first.stdout
    );
    // It stopped on its own deadline, not because it met a new holder: before any takeover.
    assert!(
        first.stderr.contains("could not be renewed in time"),
        "{}",
        first.stderr
    );
    assert_eq!(
        lease(&env).await.spec.unwrap().holder_identity.as_deref(),
        Some(holder.as_str()),
        "its release could not get through"
    );
    let second = env.run(&[("PULLSECRET_SOURCE_SECRETS", src.as_str())]).await;
    assert_eq!(
        second.code, 0,
        "the next run took over after the Lease's duration: {second:?}"
    );
    assert_eq!(
        lease(&env).await.spec.unwrap().lease_transitions,
        Some(1),
        "taken over once"
    );
    assert!(env.secret(&a, &src).await.is_some());
}
