//! Faults: a stopped API server, concurrent writers, throttling, slow and hung responses,
//! forbidden namespaces, and secret hygiene with trace logging.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

use crate::support::proxy::{Mode, Proxy};
use crate::support::{ControlPlane, TestEnv, is_ours, run_binary, secret_data};

async fn namespaces_with_other_secret(env: &TestEnv, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..n {
        let ns = env.name(&format!("n{i:02}"));
        env.create_namespace(&ns, &[], &[]).await;
        env.set_pull_secrets(&ns, "default", &["other-secret"]).await;
        out.push(ns);
    }
    out
}

/// Nothing half-written: every copy that exists is ours and holds one of `allowed` whole, and
/// every list still starts with the other tool's entry and names only whole copies of ours.
/// Returns how many copies hold `allowed[0]`.
async fn assert_whole(env: &TestEnv, namespaces: &[String], src: &str, allowed: &[&[u8]]) -> usize {
    let mut first = 0;
    for ns in namespaces {
        let copy = env.secret(ns, src).await;
        if let Some(s) = &copy {
            let data = secret_data(s);
            assert!(is_ours(s), "{ns}/{src} lost our label");
            assert!(
                allowed.contains(&data.as_slice()),
                "{ns}/{src} holds neither version whole"
            );
            first += usize::from(data == allowed[0]);
        }
        let list = env.pull_secrets(ns, "default").await;
        assert_eq!(list[0], "other-secret", "{ns}: {list:?}");
        assert!(
            !list.contains(&src.to_string()) || copy.is_some(),
            "{ns}: the list names {src}, which was not written: {list:?}"
        );
    }
    first
}

/// The cluster agrees with the run's summary, copy by copy, whatever the exit code:
/// - exit 2 said nothing was written, and `before` (a snapshot) is what the cluster still holds;
/// - otherwise each copy's action says what its data must be: reported done (or no action:
///   already current) holds `new`; failed or skipped before the write started holds `old` (`None`:
///   there was no copy, and there still is none); cut off while in flight holds either, whole
///   (the server may have applied it).
///
/// Every list still names only whole copies (see [`assert_whole`]). Returns how many copies
/// hold `new`.
async fn assert_agrees(
    env: &TestEnv,
    run: &crate::support::RunResult,
    before: &std::collections::BTreeMap<String, String>,
    (namespaces, src): (&[String], &str),
    (new, old): (&[u8], Option<&[u8]>),
) -> usize {
    if run.code == 2 {
        assert_eq!(
            run.summary()["problems"][0]["reason"],
            "NothingWritten",
            "{}",
            run.stdout
        );
        assert_eq!(&env.snapshot().await, before, "exit 2 wrote nothing");
        return 0;
    }
    let actions = run.summary()["actions"].as_array().cloned().unwrap_or_default();
    let mut current = 0;
    for ns in namespaces {
        let data = env.secret(ns, src).await.map(|s| secret_data(&s));
        let action = actions
            .iter()
            .find(|a| a["kind"] == "Secret" && a["namespace"] == ns.as_str() && a["name"] == src);
        let status = action.map_or("unchanged", |a| a["status"].as_str().unwrap_or_default());
        let message = action.map_or("", |a| a["message"].as_str().unwrap_or_default());
        let allowed: &[Option<&[u8]>] = match status {
            "done" | "unchanged" => &[Some(new)],
            "skipped" => &[old],
            "failed" if message.contains("before this write started") => &[old],
            "failed" => &[Some(new), old],
            other => panic!("{ns}/{src}: unexpected status {other:?} in {}", run.stdout),
        };
        assert!(
            allowed.contains(&data.as_deref()),
            "{ns}/{src}: the summary says {status} ({message}), the cluster disagrees"
        );
        current += usize::from(data.as_deref() == Some(new));
    }
    let versions: Vec<&[u8]> = std::iter::once(new).chain(old).collect();
    assert_whole(env, namespaces, src, &versions).await;
    let converged = run.summary()["converged"] == true;
    assert_eq!(
        converged,
        current == namespaces.len() && run.code == 0,
        "converged is said exactly when every copy is current: {}",
        run.stdout
    );
    current
}

/// A fault-injecting proxy in front of the test's API server, and a kubeconfig through it.
async fn proxied(env: &TestEnv) -> (Proxy, std::path::PathBuf) {
    let proxy = Proxy::start(env.cp.api_address()).await;
    let dir = env.cp.kubeconfig.parent().unwrap().to_owned();
    let via = proxy.kubeconfig(&env.cp.kubeconfig, &dir);
    (proxy, via)
}

/// Every namespace holds exactly the wanted state, and nobody's entry was lost.
async fn assert_converged(env: &TestEnv, namespaces: &[String], src: &str, bytes: &[u8]) {
    for ns in namespaces {
        let s = env.secret(ns, src).await.unwrap_or_else(|| panic!("no {src} in {ns}"));
        assert!(
            is_ours(&s) && secret_data(&s) == bytes,
            "{ns}/{src} is not our exact copy"
        );
        assert_eq!(
            env.pull_secrets(ns, "default").await,
            vec!["other-secret".to_string(), src.to_string()],
            "{ns}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_stopped_mid_run_then_restarted() {
    let cp: &'static ControlPlane = Box::leak(Box::new(ControlPlane::start()));
    let env = TestEnv::on(cp, "f1").await;
    let src = env.name("regcred");
    let bytes = env.create_source(&src, "fake-user", "fake-password").await;
    let namespaces = namespaces_with_other_secret(&env, 40).await;

    // Slow the conversation down so "mid-run" is a wide window.
    let proxy = Proxy::start(cp.api_address()).await;
    proxy.set(Mode::Slow, Duration::from_millis(40));
    let dir = cp.kubeconfig.parent().unwrap().to_owned();
    let via_proxy = proxy.kubeconfig(&cp.kubeconfig, &dir);
    let v = env.vars(&[
        ("PULLSECRET_SOURCE_SECRETS", &src),
        ("PULLSECRET_CONCURRENCY", "2"),
        ("PULLSECRET_TIMEOUT_SECS", "40"),
    ]);
    let run = tokio::spawn(async move { run_binary(&via_proxy, &v).await });

    // Stop the API server once some Secrets have been written.
    let secrets: Api<Secret> = Api::all(env.client.clone());
    let field = format!("metadata.name={src}");
    loop {
        let n = secrets
            .list(&ListParams::default().fields(&field))
            .await
            .unwrap()
            .items
            .len();
        if n >= 6 {
            break;
        }
        assert!(!run.is_finished(), "the run ended before it had written 6 copies");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cp.command("stop-apiserver");
    let run = run.await.unwrap();
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.count("api_requests", "max_writes_in_flight") <= 2, "{}", run.stdout);
    let failed = run.count("secrets", "failed") + run.count("service_accounts", "failed");
    assert!(
        failed > 0 && !run.problems().is_empty(),
        "the writes it could not make are listed: {}",
        run.stdout
    );

    cp.command("start-apiserver");
    let env = TestEnv {
        client: cp.client().await,
        ..env
    };
    // Nothing half-done: every Secret that exists is a complete copy; every list kept other-secret.
    for ns in &namespaces {
        if let Some(s) = env.secret(ns, &src).await {
            assert_eq!(secret_data(&s), bytes);
        }
        assert_eq!(env.pull_secrets(ns, "default").await[0], "other-secret");
    }
    let again = env.run(&[("PULLSECRET_SOURCE_SECRETS", &src)]).await;
    assert_eq!(again.code, 0, "{again:?}");
    assert_converged(&env, &namespaces, &src, &bytes).await;
    drop(proxy);
    cp.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_editors_of_the_same_service_accounts_lose_nothing() {
    let env = TestEnv::new("f2").await;
    let src = env.name("source");
    env.create_source(&src, "fake-user", "fake-password").await;
    let namespaces = namespaces_with_other_secret(&env, 8).await;
    let mut added: Vec<(String, String)> = Vec::new();
    let mut retried = 0;

    for round in 0..6 {
        // Each round renames our target, so the run both removes and adds entries.
        let target = env.name(if round % 2 == 0 { "even" } else { "odd" });
        let other = env.name(if round % 2 == 0 { "odd" } else { "even" });
        let stop = Arc::new(AtomicBool::new(false));
        let editor = {
            let (client, namespaces, stop) = (env.client.clone(), namespaces.clone(), stop.clone());
            tokio::spawn(async move { edit_until(client, namespaces, stop, round).await })
        };
        let run = env
            .run(&[("PULLSECRET_SOURCE_SECRETS", &format!("{src}={target}"))])
            .await;
        stop.store(true, Ordering::SeqCst);
        added.extend(editor.await.unwrap());
        assert_eq!(run.code, 0, "round {round}: {run:?}");
        retried += run.count("service_accounts", "retried");
        for ns in &namespaces {
            let list = env.pull_secrets(ns, "default").await;
            assert_eq!(list[0], "other-secret", "{ns}: {list:?}");
            assert!(
                list.contains(&target) && !list.contains(&other),
                "round {round} {ns}: {list:?}"
            );
            for (ens, entry) in &added {
                assert!(
                    ens != ns || list.contains(entry),
                    "round {round}: {entry} lost from {ns}: {list:?}"
                );
            }
        }
    }
    assert!(!added.is_empty(), "the editor never wrote");
    assert!(
        retried > 0,
        "the reconciler never met a stale resourceVersion: the re-read and retry path was not exercised"
    );
    eprintln!(
        "concurrent editor: {} entries added, {retried} reconciler retries",
        added.len()
    );
}

/// Another well-behaved client: read-modify-write with a resourceVersion precondition.
async fn edit_until(
    client: kube::Client,
    namespaces: Vec<String>,
    stop: Arc<AtomicBool>,
    round: usize,
) -> Vec<(String, String)> {
    let mut added = Vec::new();
    let mut k = 0;
    while !stop.load(Ordering::SeqCst) {
        let ns = &namespaces[k % namespaces.len()];
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        let entry = format!("editor-{round}-{k}");
        loop {
            let sa = api.get("default").await.unwrap();
            let mut list: Vec<serde_json::Value> = crate::support::pull_secret_names(&sa)
                .into_iter()
                .map(|n| json!({ "name": n }))
                .collect();
            list.push(json!({ "name": entry }));
            let body =
                json!({ "metadata": { "resourceVersion": sa.metadata.resource_version }, "imagePullSecrets": list });
            match api.patch("default", &PatchParams::default(), &Patch::Merge(body)).await {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => panic!("editor: {e}"),
            }
        }
        added.push((ns.clone(), entry));
        k += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    added
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_429_is_retried_within_the_deadline() {
    let env = TestEnv::new("f3").await;
    let src = env.name("regcred");
    let bytes = env.create_source(&src, "fake-user", "fake-password").await;
    let namespaces = namespaces_with_other_secret(&env, 30).await;
    let level = env.name("tiny");
    // A real API Priority and Fairness level with ~3 seats that rejects (429 + Retry-After)
    // instead of queueing, for requests of one ServiceAccount.
    let kubeconfig = env
        .identity("throttled", r#"- {apiGroups: ["*"], resources: ["*"], verbs: ["*"]}"#)
        .await;
    env.cp.apply_yaml(&format!(
        r#"
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {{name: {level}}}
spec:
  type: Limited
  limited:
    nominalConcurrencyShares: 1
    lendablePercent: 0
    limitResponse: {{type: Reject}}
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {{name: {level}}}
spec:
  matchingPrecedence: 100
  priorityLevelConfiguration: {{name: {level}}}
  rules:
  - subjects: [{{kind: ServiceAccount, serviceAccount: {{name: throttled, namespace: {home}}}}}]
    resourceRules:
    - {{verbs: ["*"], apiGroups: ["*"], resources: ["*"], namespaces: ["*"], clusterScope: true}}
"#,
        home = env.home
    ));
    let rejected_before = env
        .cp
        .metric("apiserver_flowcontrol_rejected_requests_total", &level)
        .await;

    let started = Instant::now();
    let v = env.vars(&[
        ("PULLSECRET_SOURCE_SECRETS", &src),
        ("PULLSECRET_CONCURRENCY", "16"),
        ("PULLSECRET_TIMEOUT_SECS", "60"),
    ]);
    let run = run_binary(&kubeconfig, &v).await;
    let elapsed = started.elapsed();
    let rejected = env
        .cp
        .metric("apiserver_flowcontrol_rejected_requests_total", &level)
        .await
        - rejected_before;
    eprintln!(
        "throttled run: exit {} in {elapsed:?}, {rejected} requests rejected with 429",
        run.code
    );
    assert!(
        rejected > 0.0,
        "the API server never throttled: the test proves nothing"
    );
    assert_eq!(run.code, 0, "429s are retried until the writes succeed: {run:?}");
    let in_flight = run.count("api_requests", "max_writes_in_flight");
    assert!((1..=16).contains(&in_flight), "{}", run.stdout);
    assert_converged(&env, &namespaces, &src, &bytes).await;

    // A tight deadline under the same throttling: the run ends at it, and the cluster agrees
    // with what the summary says was and was not done (how far it got depends on the machine).
    env.create_source(&src, "fake-user", "fake-password-rotated").await;
    let v = env.vars(&[
        ("PULLSECRET_SOURCE_SECRETS", &src),
        ("PULLSECRET_CONCURRENCY", "16"),
        ("PULLSECRET_TIMEOUT_SECS", "2"),
    ]);
    let rotated = env.secret(&env.home, &src).await.map(|s| secret_data(&s)).unwrap();
    let before = env.snapshot().await;
    let run = run_binary(&kubeconfig, &v).await;
    let current = assert_agrees(&env, &run, &before, (&namespaces, &src), (&rotated, Some(&bytes))).await;
    if run.code == 1 {
        for p in run.problems() {
            assert!(
                [
                    "DeadlineExceeded",
                    "SecretNotWritten",
                    "TooManyRequests",
                    "EventsNotWritten"
                ]
                .contains(&p["reason"].as_str().unwrap()),
                "unexpected problem under a tight deadline: {p}"
            );
        }
        assert!(
            current < namespaces.len() || !run.problems().is_empty(),
            "{}",
            run.stdout
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_and_slow_servers_are_bounded_by_the_deadline() {
    let env = TestEnv::new("f4").await;
    let src = env.name("regcred");
    let bytes = env.create_source(&src, "fake-user", "fake-password").await;
    let namespaces = namespaces_with_other_secret(&env, 6).await;
    let (proxy, via_proxy) = proxied(&env).await;
    let before = env.snapshot().await;

    // A server that accepts and never answers: exit 2 (nothing written) at the deadline.
    proxy.set(Mode::Hang, Duration::ZERO);
    let run = run_binary(
        &via_proxy,
        &env.vars(&[("PULLSECRET_SOURCE_SECRETS", &src), ("PULLSECRET_TIMEOUT_SECS", "3")]),
    )
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("deadline"), "{}", run.stderr);
    assert_eq!(env.snapshot().await, before);

    // Very slow answers: the deadline cuts the run (during the reads: exit 2; during the writes:
    // exit 1), and the cluster agrees with the summary either way.
    proxy.set(Mode::Slow, Duration::from_millis(250));
    let run = run_binary(
        &via_proxy,
        &env.vars(&[
            ("PULLSECRET_SOURCE_SECRETS", &src),
            ("PULLSECRET_TIMEOUT_SECS", "4"),
            ("PULLSECRET_CONCURRENCY", "1"),
        ]),
    )
    .await;
    assert_ne!(run.code, 0, "a 4 s deadline at 250 ms a chunk cannot converge: {run:?}");
    if run.code == 2 {
        assert!(run.stderr.contains("deadline"), "{}", run.stderr);
    } else {
        let reasons: Vec<String> = run
            .problems()
            .iter()
            .map(|p| p["reason"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert!(
            reasons.iter().any(|r| r == "DeadlineExceeded"),
            "exit 1 says the deadline cut it: {reasons:?}"
        );
    }
    // The copies are new here: a write not started leaves no copy at all.
    assert_agrees(&env, &run, &before, (&namespaces, &src), (&bytes, None)).await;

    // Merely slow answers within the deadline: converges.
    proxy.set(Mode::Slow, Duration::from_millis(20));
    let run = run_binary(
        &via_proxy,
        &env.vars(&[("PULLSECRET_SOURCE_SECRETS", &src), ("PULLSECRET_TIMEOUT_SECS", "60")]),
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_converged(&env, &namespaces, &src, &bytes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_namespaces_do_not_stop_the_others() {
    let env = TestEnv::new("f5").await;
    let src = env.name("regcred");
    let bytes = env.create_source(&src, "fake-user", "fake-password").await;
    let allowed = namespaces_with_other_secret(&env, 2).await;
    let denied = env.name("denied");
    env.create_namespace(&denied, &[], &[]).await;
    // Reads everywhere; writes only where a RoleBinding grants them (not in `denied`).
    let reads = format!(
        r#"- {{apiGroups: [""], resources: [namespaces, serviceaccounts], verbs: [list]}}
- {{apiGroups: [""], resources: [secrets], verbs: [get, list], resourceNames: [{src}]}}
- {{apiGroups: [""], resources: [configmaps], verbs: [get, create, patch]}}"#
    );
    let kubeconfig = env.identity("limited", &reads).await;
    let role = env.name("writer");
    let mut yaml = format!(
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {role}}}
rules:
- {{apiGroups: [""], resources: [secrets], verbs: [create, patch, delete]}}
- {{apiGroups: [""], resources: [serviceaccounts], verbs: [get, patch]}}
"#
    );
    for ns in allowed.iter().chain([&env.home]) {
        yaml.push_str(&format!(
            "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: {role}, namespace: {ns}}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {role}}}\n\
             subjects: [{{kind: ServiceAccount, name: limited, namespace: {home}}}]\n",
            home = env.home
        ));
    }
    env.cp.apply_yaml(&yaml);
    let run = env.run_as(&kubeconfig, &[("PULLSECRET_SOURCE_SECRETS", &src)]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let problems = run.problems();
    let named: Vec<&serde_json::Value> = problems.iter().filter(|p| p["namespace"] == denied.as_str()).collect();
    // The Secret write is refused; the ServiceAccount there is then not pointed at a missing Secret.
    let has = |kind: &str, reason: &str| named.iter().any(|p| p["kind"] == kind && p["reason"] == reason);
    assert!(
        has("Secret", "Forbidden") && has("ServiceAccount", "SecretNotWritten"),
        "{}",
        run.stdout
    );
    // (This identity may not write Events: that is a warning, not a failure.)
    assert!(
        problems
            .iter()
            .all(|p| p["namespace"] == denied.as_str() || p["reason"] == "EventsNotWritten"),
        "only the denied namespace fails: {}",
        run.stdout
    );
    assert_converged(&env, &allowed, &src, &bytes).await;
    assert!(env.secret(&denied, &src).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_never_contain_a_credential() {
    use base64::Engine;
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let password = "fake-pw-Trace-9x8y7z";
    let env = TestEnv::new("f6").await;
    let src = env.name("regcred");
    let bytes = env.create_source(&src, "fake-user", password).await;
    let conflict = env.name("conflict");
    env.create_namespace(&conflict, &[], &[]).await;
    env.put_secret(&conflict, &src, "Opaque", "k", b"v", &[], &[]).await;
    let forbidden = [
        password.to_string(),
        b64(format!("fake-user:{password}").as_bytes()),
        b64(&bytes),
    ];
    let inline = String::from_utf8(bytes.clone()).unwrap();

    let runs = [
        vec![
            ("PULLSECRET_SOURCE_SECRETS", src.as_str()),
            ("PULLSECRET_LOG_FORMAT", "json"),
        ],
        vec![
            ("PULLSECRET_SOURCE_SECRETS", src.as_str()),
            ("PULLSECRET_OUTPUT", "text"),
        ],
        vec![
            ("PULLSECRET_DOCKERCONFIGJSON", inline.as_str()),
            ("PULLSECRET_SECRET_NAME", src.as_str()),
        ],
        vec![
            ("PULLSECRET_REGISTRY_USERNAME", "fake-user"),
            ("PULLSECRET_REGISTRY_PASSWORD", password),
            ("PULLSECRET_SECRET_NAME", src.as_str()),
        ],
        vec![
            ("PULLSECRET_REGISTRY_USERNAME", "fake-user"),
            ("PULLSECRET_REGISTRY_PASSWORD", password),
            ("PULLSECRET_ADOPT", "bogus"),
        ],
        vec![
            ("PULLSECRET_SOURCE_SECRETS", src.as_str()),
            ("PULLSECRET_EXTRA", password),
        ],
    ];
    // And the modes that talk to a registry or a plugin: verify against a real registry that
    // takes this password, a credential-provider plugin that answers with it, and explain.
    let registry = crate::support::registry::Registry::start("fake-user", password);
    let verified = env.name("verified");
    env.put_dockerconfig(&env.home, &verified, registry.dockerconfig().as_bytes(), &[])
        .await;
    let ca = registry.ca.to_str().unwrap().to_owned();
    let dir = crate::providers::plugin_dir(&env, &["trace-provider"]);
    let plugin_auth = format!(r#"{{"registry.trace.test": {{"username": "fake-user", "password": "{password}"}}}}"#);
    let config = crate::providers::config_file(
        &dir,
        &[crate::providers::provider(
            "trace-provider",
            &["registry.trace.test"],
            &[("PLUGIN_AUTH", plugin_auth.as_str())],
            "",
        )],
    );
    let (config, dir_s) = (config.to_str().unwrap().to_owned(), dir.to_str().unwrap().to_owned());
    let image = format!("{}/team/app:1", registry.host);
    // (variables, arguments) of each run.
    type Run<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>);
    let talking: [Run; 3] = [
        (
            vec![
                ("PULLSECRET_SOURCE_SECRETS", verified.as_str()),
                ("PULLSECRET_VERIFY", "strict"),
                ("PULLSECRET_REGISTRY_CA_FILE", ca.as_str()),
            ],
            vec![],
        ),
        (
            vec![
                ("PULLSECRET_CREDENTIAL_PROVIDER_CONFIG", config.as_str()),
                ("PULLSECRET_CREDENTIAL_PROVIDER_BIN_DIR", dir_s.as_str()),
                ("PULLSECRET_CREDENTIAL_PROVIDER_IMAGES", "registry.trace.test/app:1"),
                ("PULLSECRET_SECRET_NAME", src.as_str()),
            ],
            vec![],
        ),
        (
            vec![("PULLSECRET_REGISTRY_CA_FILE", ca.as_str())],
            vec!["explain", "--image", image.as_str(), "-n", conflict.as_str()],
        ),
    ];
    for (i, (extra, args)) in talking.iter().enumerate() {
        let mut e: Vec<(&str, &str)> = vec![("RUST_LOG", "trace")];
        e.extend(extra.iter().copied());
        let run = crate::support::run_binary_args(&env.kubeconfig, &env.vars(&e), args).await;
        assert!(
            run.stderr.len() > 1000,
            "talking run {i}: trace logging is not on: {run:?}"
        );
        assert!(
            run.code != 2 || !args.is_empty(),
            "talking run {i} did its work: {run:?}"
        );
        let all = format!("{}{}", run.stdout, run.stderr);
        for f in &forbidden {
            assert!(
                !all.contains(f.as_str()),
                "talking run {i} (exit {}) printed a credential",
                run.code
            );
        }
    }
    for (i, extra) in runs.iter().enumerate() {
        let mut e: Vec<(&str, &str)> = vec![("RUST_LOG", "trace")];
        e.extend(extra.iter().copied());
        let run = env.run(&e).await;
        assert!(
            run.stderr.len() > 1000 || run.code == 2,
            "run {i}: trace logging is not on: {}",
            run.stderr
        );
        let all = format!("{}{}", run.stdout, run.stderr);
        for f in &forbidden {
            assert!(
                !all.contains(f.as_str()),
                "run {i} (exit {}) printed a credential",
                run.code
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_hits_its_deadline_still_writes_its_events() {
    use k8s_openapi::api::events::v1::Event;
    let env = TestEnv::new("f9").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    namespaces_with_other_secret(&env, 30).await;
    // Every chunk from the API server held 40 ms: 30 namespaces cannot be written in 2 s.
    let (proxy, via_proxy) = proxied(&env).await;
    proxy.set(Mode::Slow, Duration::from_millis(40));
    let v = env.vars(&[
        ("PULLSECRET_SOURCE_SECRETS", &src),
        ("PULLSECRET_CONCURRENCY", "1"),
        ("PULLSECRET_TIMEOUT_SECS", "2"),
    ]);
    let run = run_binary(&via_proxy, &v).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.problems().iter().any(|p| p["reason"] == "DeadlineExceeded"),
        "the deadline struck: {}",
        run.stdout
    );
    let events = Api::<Event>::namespaced(env.client.clone(), &env.home)
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    let summary = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("NotConverged"))
        .unwrap_or_else(|| panic!("no summary Event after a run that hit its deadline: {}", run.stdout));
    assert_eq!(
        summary.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some(src.as_str())
    );
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_new_writes_and_still_prints_the_summary() {
    let env = TestEnv::new("f10").await;
    let src = env.name("regcred");
    let bytes = env.create_source(&src, "fake-user", "fake-password").await;
    let namespaces = namespaces_with_other_secret(&env, 30).await;
    let (proxy, via_proxy) = proxied(&env).await;
    proxy.set(Mode::Slow, Duration::from_millis(40));
    let v = env.vars(&[("PULLSECRET_SOURCE_SECRETS", &src), ("PULLSECRET_CONCURRENCY", "1")]);
    let child = crate::support::runner::command(&via_proxy, &v, &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once some copies exist, the kubelet's SIGTERM (a Job at its activeDeadlineSeconds).
    env.wait_for_copies(&src, 4).await;
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().await.unwrap();
    let run = crate::support::RunResult {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.problems().iter().any(|p| p["reason"] == "Stopped"),
        "{}",
        run.stdout
    );
    let stopped = run.summary()["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["reason"] == "Stopped")
        .count();
    assert!(
        stopped > 0,
        "writes not started are reported as stopped: {}",
        run.stdout
    );
    // The cluster agrees with the summary: every copy it reports created exists, whole.
    let created = run.count("secrets", "created") as usize;
    let present = assert_whole(&env, &namespaces, &src, &[&bytes]).await;
    assert!(
        present >= created && present < namespaces.len(),
        "{present} present, {created} reported: {}",
        run.stdout
    );
    drop(proxy);
}
