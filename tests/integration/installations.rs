//! Two installations never fight. The CronJob's installation (source Secret in its own
//! namespace) and a CI step's (inline credentials, another namespace holding its Lease and
//! inventory) write the same target name: the second finds every copy recorded by the first
//! (`pullsecret-reconciler/installation`), reports each as an `OtherInstallation` conflict and
//! changes no Secret and no ServiceAccount; a rename in the second never prunes the first's copies.
//! A copy written before installations were recorded is adopted by the first run that sees it.

use std::collections::BTreeMap;

use crate::support::{TestEnv, fake_dockerconfig};

const INSTALLATION: &str = "pullsecret-reconciler/installation";

fn installation_of(s: &k8s_openapi::api::core::v1::Secret) -> Option<String> {
    s.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INSTALLATION))
        .cloned()
}

/// Only the Secrets and ServiceAccounts: a run of the other installation keeps its own Lease and
/// inventory in its own namespace.
fn copies_and_accounts(snapshot: BTreeMap<String, String>, not_in: &str) -> BTreeMap<String, String> {
    snapshot
        .into_iter()
        .filter(|(k, _)| !k.starts_with("cm/") && !k.contains(&format!("/{not_in}/")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_installation_over_the_same_name_reports_the_conflict_and_changes_nothing() {
    let env = TestEnv::new("ins").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    let shared = env.name("shared");
    let namespaces: Vec<String> = (0..3).map(|i| env.name(&format!("n{i}"))).collect();
    for ns in &namespaces {
        env.create_namespace(ns, &[], &[]).await;
    }
    // The CronJob's installation: source namespace `<id>-home`.
    let cronjob = [("PULLSECRET_SOURCE_SECRETS", format!("{src}={shared}"))];
    let cronjob: Vec<(&str, &str)> = cronjob.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = env.run(&cronjob).await;
    assert_eq!(run.code, 0, "{run:?}");
    // (From the CI step's first run on, its own namespace holds its copy: a conflict in the first
    // installation's later runs, which therefore exit 1. The checks below look at n0..n2.)
    for ns in &namespaces {
        let copy = env.secret(ns, &shared).await.unwrap();
        assert_eq!(installation_of(&copy).as_deref(), Some(env.home.as_str()), "{ns}");
    }

    // A CI step: inline credentials, its own namespace (its Lease and inventory live there).
    let ci = env.name("ci");
    env.create_namespace(&ci, &[], &[]).await;
    let inline = String::from_utf8(fake_dockerconfig("ci-user", "ci-password")).unwrap();
    let ci_vars = |name: &str| {
        vec![
            ("PULLSECRET_DOCKERCONFIGJSON".to_owned(), inline.clone()),
            ("PULLSECRET_SECRET_NAME".to_owned(), name.to_owned()),
            ("PULLSECRET_SOURCE_NAMESPACE".to_owned(), ci.clone()),
        ]
    };
    let before = copies_and_accounts(env.snapshot().await, &ci);
    let vars = ci_vars(&shared);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let second = env.run(&vars).await;
    assert_eq!(second.code, 1, "a conflict is not convergence: {second:?}");
    let conflicts: Vec<String> = second
        .problems()
        .into_iter()
        .filter(|p| p["reason"] == "OtherInstallation")
        .map(|p| p["namespace"].as_str().unwrap().to_owned())
        .collect();
    let mut expected: Vec<String> = namespaces.iter().cloned().chain([env.home.clone()]).collect();
    expected.sort();
    assert_eq!(conflicts, expected, "{}", second.stdout);
    let message = second.problems()[0]["message"].as_str().unwrap().to_owned();
    assert!(message.contains(&env.home), "names the other installation: {message}");
    assert_eq!(
        copies_and_accounts(env.snapshot().await, &ci),
        before,
        "no Secret or ServiceAccount outside its own namespace changed"
    );

    // The CI step renames its target: the first installation's copies are not its to prune.
    let renamed = ci_vars(&env.name("other"));
    let renamed: Vec<(&str, &str)> = renamed.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let before = copies_and_accounts(env.snapshot().await, &ci);
    let third = env.run(&renamed).await;
    assert_eq!(third.count("secrets", "deleted"), 0, "{third:?}");
    for ns in &namespaces {
        assert!(env.secret(ns, &shared).await.is_some(), "{ns}");
        assert!(
            env.pull_secrets(ns, "default").await.contains(&shared),
            "{ns}: the first installation's entry stays"
        );
    }
    let after = copies_and_accounts(env.snapshot().await, &ci);
    let changed: Vec<&String> = after.keys().filter(|k| before.get(*k) != after.get(*k)).collect();
    assert!(
        changed
            .iter()
            .all(|k| k.ends_with(&format!("/{}", env.name("other"))) || k.starts_with("sa/")),
        "only its own new copies and its own entries: {changed:?}"
    );
    // The first installation's next run has nothing to undo.
    let run = env.run(&cronjob).await;
    assert_eq!(run.count("service_accounts", "patched"), 0, "{}", run.stdout);

    // A copy written before installations were recorded: the first run that sees it adopts it.
    env.annotate_secret(&namespaces[0], &shared, &format!("{INSTALLATION}-"));
    let run = env.run(&cronjob).await;
    assert_eq!(run.count("secrets", "updated"), 1, "{}", run.stdout);
    let copy = env.secret(&namespaces[0], &shared).await.unwrap();
    assert_eq!(installation_of(&copy).as_deref(), Some(env.home.as_str()));
}
