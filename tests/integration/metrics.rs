//! Run metrics pushed to a real Pushgateway and scraped back: counts, exit code, the last-run and
//! last-success times (the latter only for converged runs, kept across a failed one), grouping by
//! cluster name, nothing pushed by a dry run, and a push failure that is only a warning.

use crate::support::TestEnv;
use crate::support::pushgateway::Pushgateway;

const JOB: (&str, &str) = ("job", "pullsecret-reconciler");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_push_their_outcome_and_the_success_time_survives_a_failed_run() {
    let pg = Pushgateway::start().await;
    let env = TestEnv::new("pgw1").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    let (a, b) = (env.name("a"), env.name("b"));
    env.create_namespace(&a, &[], &[]).await;
    env.create_namespace(&b, &[], &[]).await;
    let cluster = "ci/east 1"; // needs the Pushgateway's base64 form in the URL
    let vars = [
        ("PULLSECRET_SOURCE_SECRETS", src.as_str()),
        ("PULLSECRET_PUSHGATEWAY_URL", pg.url.as_str()),
        ("PULLSECRET_CLUSTER_NAME", cluster),
    ];
    let group = [JOB, ("cluster", cluster)];
    let with =
        |extra: (&'static str, &'static str)| -> Vec<(&str, &str)> { group.iter().copied().chain([extra]).collect() };

    let first = env.run(&vars).await;
    assert_eq!(first.code, 0, "{first:?}");
    assert!(first.problems().is_empty(), "{first:?}");
    let text = pg.scrape().await;
    let value = |name: &str, labels: &[(&str, &str)]| {
        crate::support::pushgateway::sample(&text, &format!("pullsecret_reconciler_{name}"), labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    assert_eq!(value("exit_code", &group), 0.0);
    assert_eq!(value("converged", &group), 1.0);
    assert_eq!(value("secrets", &with(("outcome", "created"))), 2.0);
    let selected = first.count("namespaces", "selected") as f64;
    assert_eq!(value("namespaces", &with(("state", "selected"))), selected);
    let reads = first.count("api_requests", "reads") as f64;
    assert_eq!(value("api_requests", &with(("kind", "reads"))), reads);
    let ran = value("last_run_timestamp_seconds", &group);
    let succeeded = value("last_success_timestamp_seconds", &group);
    assert_eq!(ran, succeeded);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - ran).abs() < 120.0, "last run {ran}, now {now}");
    assert!(value("duration_seconds", &group) > 0.0);

    // A conflict: exit 1. The run's time moves on, the success time stays.
    env.delete_secret(&b, &src).await;
    env.put_secret(&b, &src, "Opaque", "password", b"users-own", &[], &[])
        .await;
    let failed = env.run(&vars).await;
    assert_eq!(failed.code, 1, "{failed:?}");
    let text = pg.scrape().await;
    let value = |name: &str, labels: &[(&str, &str)]| {
        crate::support::pushgateway::sample(&text, &format!("pullsecret_reconciler_{name}"), labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    assert_eq!(value("exit_code", &group), 1.0);
    assert_eq!(value("converged", &group), 0.0);
    assert_eq!(value("secrets", &with(("outcome", "conflicts"))), 1.0);
    assert!(value("last_run_timestamp_seconds", &group) > ran);
    assert_eq!(value("last_success_timestamp_seconds", &group), succeeded);

    // A dry run pushes nothing: the last run is still the failed one.
    let last = value("last_run_timestamp_seconds", &group);
    let dry: Vec<(&str, &str)> = vars.iter().copied().chain([("PULLSECRET_DRY_RUN", "true")]).collect();
    assert_eq!(env.run(&dry).await.code, 1);
    assert_eq!(
        pg.value("pullsecret_reconciler_last_run_timestamp_seconds", &group)
            .await,
        Some(last)
    );

    // A run stopped before writing (its source is gone) pushes exit code 2.
    let missing = env.name("missing");
    let stopped: Vec<(&str, &str)> = vars
        .iter()
        .copied()
        .map(|(k, v)| {
            if k == "PULLSECRET_SOURCE_SECRETS" {
                (k, missing.as_str())
            } else {
                (k, v)
            }
        })
        .collect();
    let run = env.run(&stopped).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(pg.value("pullsecret_reconciler_exit_code", &group).await, Some(2.0));
    assert_eq!(
        pg.value("pullsecret_reconciler_last_success_timestamp_seconds", &group)
            .await,
        Some(succeeded)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_push_is_a_warning_and_never_changes_the_exit_code() {
    let env = TestEnv::new("pgw2").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    env.create_namespace(&env.name("a"), &[], &[]).await;
    // Nothing listens there.
    let url = format!("http://127.0.0.1:{}", crate::support::kubeconfig::unused_port());
    let run = env
        .run(&[
            ("PULLSECRET_SOURCE_SECRETS", src.as_str()),
            ("PULLSECRET_PUSHGATEWAY_URL", url.as_str()),
        ])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let summary = run.summary();
    assert_eq!(summary["converged"], true);
    let problems = run.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["reason"], "MetricsNotPushed");
    assert_eq!(problems[0]["severity"], "warning");
    assert!(problems[0]["message"].as_str().unwrap().contains(&url), "{problems:?}");
    assert!(run.stderr.contains("pushing run metrics failed"), "{}", run.stderr);

    // Without a group of its own, the run's metrics go under the job alone; a Pushgateway that
    // refuses the push (here: a path that is not the push API) is a warning too.
    let pg = Pushgateway::start().await;
    let wrong = format!("{}/nothing-here", pg.url);
    let run = env
        .run(&[
            ("PULLSECRET_SOURCE_SECRETS", src.as_str()),
            ("PULLSECRET_PUSHGATEWAY_URL", wrong.as_str()),
        ])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.problems()[0]["reason"], "MetricsNotPushed", "{run:?}");
    let run = env
        .run(&[
            ("PULLSECRET_SOURCE_SECRETS", src.as_str()),
            ("PULLSECRET_PUSHGATEWAY_URL", pg.url.as_str()),
        ])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(pg.value("pullsecret_reconciler_exit_code", &[JOB]).await, Some(0.0));
}
