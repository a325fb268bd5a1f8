//! Events, read back from the API server: a Warning on the affected object for each problem, a
//! summary Event on the source Secret for each run that changed something or found a problem,
//! none for a run with nothing to do, none with PULLSECRET_EVENTS=false.

use k8s_openapi::api::events::v1::Event;
use kube::Api;

use crate::support::TestEnv;

/// (reason, type, regarding kind/name) of our Events in `ns`, oldest first.
async fn events(env: &TestEnv, ns: &str) -> Vec<(String, String, String)> {
    let mut list: Vec<Event> = Api::<Event>::namespaced(env.client.clone(), ns)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reporting_controller.as_deref() == Some("pullsecret-reconciler"))
        .collect();
    list.sort_by_key(|e| e.event_time.clone().map(|t| t.0));
    list.into_iter()
        .map(|e| {
            let regarding = e.regarding.unwrap_or_default();
            (
                e.reason.unwrap_or_default(),
                e.type_.unwrap_or_default(),
                format!(
                    "{}/{}",
                    regarding.kind.unwrap_or_default(),
                    regarding.name.unwrap_or_default()
                ),
            )
        })
        .collect()
}

fn owned(v: (&str, &str, &str)) -> (String, String, String) {
    (v.0.into(), v.1.into(), v.2.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn problems_and_changes_are_events_and_a_quiet_run_writes_none() {
    let env = TestEnv::new("ev1").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    let (a, b) = (env.name("a"), env.name("b"));
    env.create_namespace(&a, &[], &[]).await;
    env.create_namespace(&b, &[], &[]).await;
    // A user's own Secret with our target name in b: a conflict.
    env.put_secret(&b, &src, "Opaque", "password", b"users-own", &[], &[])
        .await;
    let vars = [("PULLSECRET_SOURCE_SECRETS", src.as_str())];

    let run = env.run(&vars).await;
    assert_eq!(run.code, 1, "{run:?}");
    let secret = format!("Secret/{src}");
    assert_eq!(events(&env, &b).await, vec![owned(("WrongType", "Warning", &secret))]);
    assert_eq!(
        events(&env, &env.home).await,
        vec![owned(("NotConverged", "Warning", &secret))]
    );
    assert!(events(&env, &a).await.is_empty(), "a converged namespace gets no Event");

    env.delete_secret(&b, &src).await;
    let run = env.run(&vars).await;
    assert_eq!(run.code, 0, "{run:?}");
    let home = events(&env, &env.home).await;
    assert_eq!(home.last(), Some(&owned(("Reconciled", "Normal", &secret))), "{home:?}");

    // Nothing to do: no Event, zero writes.
    let quiet = env.run(&vars).await;
    assert_eq!((quiet.code, quiet.writes()), (0, 0), "{quiet:?}");
    assert_eq!(events(&env, &env.home).await.len(), home.len());

    // Turned off: a run that changes something writes no Event.
    env.create_source(&src, "fake-user", "fake-password-rotated").await;
    let off: Vec<(&str, &str)> = vars.iter().copied().chain([("PULLSECRET_EVENTS", "false")]).collect();
    let run = env.run(&off).await;
    assert_eq!((run.code, run.count("secrets", "updated")), (0, 2), "{run:?}");
    assert_eq!(run.writes(), 2, "the two copies only");
    assert_eq!(events(&env, &env.home).await.len(), home.len());
}

/// A persistent warning (a same-name Secret of someone else's) over three steady runs: one
/// Event, and no write at all in the two runs after the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_warning_is_one_event_not_one_a_run() {
    let env = TestEnv::new("ev2").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    let (a, b) = (env.name("a"), env.name("b"));
    env.create_namespace(&a, &[], &[]).await;
    let vars = [("PULLSECRET_SOURCE_SECRETS", src.as_str())];
    assert_eq!(env.run(&vars).await.code, 0);
    // Then someone's own Secret with our name appears in a new namespace, and stays.
    env.create_namespace(&b, &[], &[]).await;
    env.put_secret(&b, &src, "Opaque", "password", b"users-own", &[], &[])
        .await;
    let first = env.run(&vars).await;
    assert_eq!(first.code, 1, "{first:?}");
    assert!(first.writes() > 0, "the new condition is written at once");
    for run in 2..=3 {
        let steady = env.run(&vars).await;
        assert_eq!((steady.code, steady.writes()), (1, 0), "steady run {run}: {steady:?}");
    }
    let secret = format!("Secret/{src}");
    assert_eq!(events(&env, &b).await, vec![owned(("WrongType", "Warning", &secret))]);
    assert_eq!(
        events(&env, &env.home).await,
        vec![
            owned(("Reconciled", "Normal", &secret)),
            owned(("NotConverged", "Warning", &secret))
        ],
        "the run's own Event for the same state is the same condition too"
    );
}
